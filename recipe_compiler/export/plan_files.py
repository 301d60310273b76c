"""Plan specs on disk: JSON files of FCS plans and of model-based plans.

:func:`save_plan` writes either kind; :func:`load_plan` reads the file safely
(UTF-8 only, bounded nesting) and hands the spec to the validator of its
format, :mod:`.spec_json` (FCS) or :mod:`.smc_json` (``approach="smc"``). A
spec is data: loading and running it cannot execute code.
"""

from __future__ import annotations

import json
import os

from ..errors import PlanError
from ..plan import ModelPlan, Plan
from .smc_json import FORMAT as SMC_FORMAT
from .smc_json import model_plan_to_spec, spec_to_model_plan
from .spec_json import plan_to_spec, spec_to_plan


def save_plan(plan: Plan | ModelPlan, path: str | os.PathLike[str]) -> None:
    """Write the plan's spec (FCS or model-based) to ``path`` as indented JSON (UTF-8)."""
    spec = model_plan_to_spec(plan) if isinstance(plan, ModelPlan) else plan_to_spec(plan)
    with open(path, "w", encoding="utf-8") as fh:
        json.dump(spec, fh, indent=2, ensure_ascii=False)
        fh.write("\n")


def load_plan(path: str | os.PathLike[str]) -> Plan | ModelPlan:
    """Read a plan spec written by :func:`save_plan` (and perhaps edited by hand).

    Parameters
    ----------
    path : str or os.PathLike

    Returns
    -------
    Plan or ModelPlan
        A :class:`ModelPlan` for a spec written from ``approach="smc"``.

    Raises
    ------
    PlanError
        If the file is not UTF-8 text (a byte-order mark is allowed), not valid
        JSON (or nested too deeply to read) or not a valid plan spec (the
        message names the entry at fault).
    OSError
        If the file cannot be read.
    """
    where = os.fspath(path)
    with open(path, "rb") as fh:
        raw = fh.read()
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise PlanError(f"{where} is not UTF-8 text (byte {exc.start}: {exc.reason}); a plan "
                        "spec is JSON in UTF-8, so save it with that encoding") from None
    try:
        spec = json.loads(text)
    except RecursionError:
        raise PlanError(f"{where}: the JSON is nested too deeply to read; a plan spec nests "
                        "objects and lists 4 levels deep") from None
    except ValueError as exc:  # JSONDecodeError, or an integer of more than 4300 digits
        raise PlanError(f"{where} is not valid JSON: {exc}") from exc
    if isinstance(spec, dict) and spec.get("format") == SMC_FORMAT:
        return spec_to_model_plan(spec)
    return spec_to_plan(spec)
