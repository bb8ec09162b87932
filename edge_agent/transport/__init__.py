"""The wire: gRPC server and client, chunked tensor streaming, per-link throttling and byte counting."""
