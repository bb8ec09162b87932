"""The wire: gRPC server and client (chunked frames, mutual TLS, limits, stall deadlines), throttled links and kernel
links, byte ledgers, and the in-memory twin."""
