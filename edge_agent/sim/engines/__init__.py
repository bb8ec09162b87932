"""Engines: where a round's per-requester work runs (this process, local worker processes, or a Ray cluster)."""
