"""Source text that makes a child interpreter behave like a board: torch and scipy are not installed there."""

REFUSE_TORCH_AND_SCIPY = """
import sys
class _RefuseBoardMissing:
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in ("torch", "scipy"):
            raise ImportError(f"{name} is not installed on this board")
        return None
sys.meta_path.insert(0, _RefuseBoardMissing())
"""
