"""Finding peers: mDNS advertise/browse (zeroconf), static peer lists, the membership both feed, and this machine's
addresses."""
