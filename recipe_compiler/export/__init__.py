"""Export a :class:`~recipe_compiler.plan.Plan`: a plain JSON spec, an R script for mice."""

from .plan_files import load_plan, save_plan
from .r_mice import FLAVORS, plan_to_r, r_names
from .spec_json import plan_to_spec, spec_to_plan

__all__ = ["FLAVORS", "load_plan", "plan_to_r", "plan_to_spec", "r_names", "save_plan",
           "spec_to_plan"]
