"""Recipe passes: FIMD Table 7.5 (level-1 targets) and Table 7.6 (level-2 targets)."""

from .context import Context, Entry, check_model
from .level1 import level1_row
from .level2 import level2_row

__all__ = ["Context", "Entry", "check_model", "level1_row", "level2_row"]
