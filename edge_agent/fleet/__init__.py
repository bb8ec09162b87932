"""The operator's view of a fleet: find agents (mDNS) and report what they advertise."""
