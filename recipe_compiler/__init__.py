"""recipe_compiler: compile a mixed model into its multilevel imputation model.

>>> import recipe_compiler as rc
>>> data = rc.datasets.load_brandsma()
>>> plan = rc.compile("lpo ~ iqv + den + (1 | sch)", data)
>>> plan.targets
['lpo', 'iqv', 'den']
"""

from . import datasets
from .analysis.glmm import GLMMResult, fit_glmm
from .analysis.lmm import LMMResult
from .analysis.lmm_multi import fit_lmm
from .analysis.pooling import pool
from .compiler.assemble import compile_plan as compile
from .errors import (
    DataError,
    DataWarning,
    FormulaError,
    OptionError,
    PlanError,
    RecipeError,
    SamplerError,
    SamplerWarning,
)
from .export.plan_files import load_plan, save_plan
from .export.r_mice import plan_to_r
from .export.spec_json import plan_to_spec, spec_to_plan
from .imputations import Imputations
from .impute import impute
from .model.parse import parse_formula
from .plan import ModelPlan, Plan

__all__ = [
    "DataError",
    "DataWarning",
    "FormulaError",
    "GLMMResult",
    "Imputations",
    "LMMResult",
    "ModelPlan",
    "OptionError",
    "Plan",
    "PlanError",
    "RecipeError",
    "SamplerError",
    "SamplerWarning",
    "compile",
    "datasets",
    "fit_glmm",
    "fit_lmm",
    "impute",
    "load_plan",
    "parse_formula",
    "plan_to_r",
    "plan_to_spec",
    "pool",
    "save_plan",
    "spec_to_plan",
]
__version__ = "0.1.0"
