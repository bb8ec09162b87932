"""The operator's view of a fleet: find agents (mDNS), reach them (gRPC, mutual TLS), and what peers, status and inspect
print."""
