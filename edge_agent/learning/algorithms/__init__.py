"""Decentralized learning algorithms as pure functions over round messages."""
