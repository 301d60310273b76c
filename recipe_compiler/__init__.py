"""recipe_compiler: compile a mixed model into its multilevel imputation model.

>>> import recipe_compiler as rc
>>> data = rc.datasets.load_brandsma()
>>> plan = rc.compile("lpo ~ iqv + den + (1 | sch)", data)
>>> plan.targets
['lpo', 'iqv', 'den']
"""

from . import datasets
from .analysis.lmm import LMMResult, fit_lmm
from .analysis.pooling import pool
from .compiler.assemble import compile_plan as compile
from .errors import (
    DataError,
    FormulaError,
    OptionError,
    PlanError,
    RecipeError,
    SamplerError,
    SamplerWarning,
)
from .export.spec_json import load_plan
from .imputations import Imputations
from .impute import impute
from .model.parse import parse_formula
from .plan import Plan

__all__ = [
    "DataError",
    "FormulaError",
    "Imputations",
    "LMMResult",
    "OptionError",
    "Plan",
    "PlanError",
    "RecipeError",
    "SamplerError",
    "SamplerWarning",
    "compile",
    "datasets",
    "fit_lmm",
    "impute",
    "load_plan",
    "parse_formula",
    "pool",
]
__version__ = "0.1.0"
