"""Source text that makes a child interpreter behave like a board (torch and scipy are not installed there), and the
environment of a board's own Python."""

import os

REFUSE_TORCH_AND_SCIPY = """
import sys
class _RefuseBoardMissing:
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in ("torch", "scipy"):
            raise ImportError(f"{name} is not installed on this board")
        return None
sys.meta_path.insert(0, _RefuseBoardMissing())
"""


def board_environment(**extra: str) -> dict[str, str]:
    """This process's environment without what would make a board's Python read the source tree."""
    env = {key: value for key, value in os.environ.items()
           if key not in ("PYTHONPATH", "VIRTUAL_ENV", "EDGE_AGENT_PROFILES")}
    return {**env, **extra}
