"""Finding peers: mDNS advertise/browse (zeroconf), static peer lists, and the membership both feed."""
