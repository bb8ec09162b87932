"""Source text that makes a child interpreter behave like a board without torch: any torch import fails."""

REFUSE_TORCH = """
import sys
class _RefuseTorch:
    def find_spec(self, name, path=None, target=None):
        if name == "torch" or name.startswith("torch."):
            raise ImportError(f"{name} is not installed on this board")
        return None
sys.meta_path.insert(0, _RefuseTorch())
"""
