"""The agent process: round state machine, membership, metrics records, checkpoints."""
