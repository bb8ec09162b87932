"""Many clients in one process: the same round messages as the agent, delivered through memory and accounted."""
