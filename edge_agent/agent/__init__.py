"""The agent process: round loop and handler, who takes part (liveness), records committed with checkpoints, its shard,
kernels and memory bounds, Status and Prometheus reports, and the launcher of local fleets."""
