"""The plan IR: what the compiler produces and the runtime and exporters read.

:mod:`.fcs` holds the FCS plan of FIMD Tables 7.5/7.6 (targets, predictor
matrix, methods, derived variables, visit sequence); :mod:`.smc` the
model-based plan (a product of regression models). Plans are frozen; the plan
never imports the runtime, the exporters or the plotting code.
"""

from ..compiler.codes import CODES
from .fcs import Cell, Derived, DerivedOp, Plan, Role, Variable
from .smc import Draw, ModelPlan, SubModel

__all__ = ["CODES", "Cell", "Derived", "DerivedOp", "Draw", "ModelPlan", "Plan", "Role",
           "SubModel", "Variable"]
