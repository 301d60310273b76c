"""recipe_compiler: compile a mixed model into its multilevel imputation model.

>>> import recipe_compiler as rc
>>> data = rc.datasets.load_brandsma()
>>> plan = rc.compile("lpo ~ iqv + den + (1 | sch)", data)
>>> plan.targets
['lpo', 'iqv', 'den']
"""

from . import datasets
from .compiler import compile_plan as compile
from .errors import (
    DataError,
    FormulaError,
    OptionError,
    PlanError,
    RecipeError,
    SamplerError,
    SamplerWarning,
)
from .formula import parse_formula
from .plan import Plan

__all__ = [
    "DataError",
    "FormulaError",
    "OptionError",
    "Plan",
    "PlanError",
    "RecipeError",
    "SamplerError",
    "SamplerWarning",
    "compile",
    "datasets",
    "parse_formula",
]
__version__ = "0.1.0"
