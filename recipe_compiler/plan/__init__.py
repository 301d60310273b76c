"""The plan IR: what the compiler produces and the runtime and exporters read.

:mod:`.fcs` holds the FCS plan of FIMD Tables 7.5/7.6 (targets, predictor
matrix, methods, derived variables, visit sequence). Plans are frozen; the
plan never imports the runtime, the exporters or the plotting code.
"""

from ..compiler.codes import CODES
from .fcs import Cell, Derived, DerivedOp, Plan, Role, Variable

__all__ = ["CODES", "Cell", "Derived", "DerivedOp", "Plan", "Role", "Variable"]
