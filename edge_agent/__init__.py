"""edge-agent: decentralized NTK learning (NTK-DFL, SPARK) for bandwidth-limited edge boards."""

__version__ = "0.1.0"
