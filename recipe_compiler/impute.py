"""``impute``: data + model (formula or plan) -> :class:`~.imputations.Imputations`."""

from __future__ import annotations

from concurrent.futures import Executor

import numpy as np
import pandas as pd

from .compiler.assemble import compile_plan
from .compiler.methods import method as method_row
from .data.schema import check_frame
from .errors import FormulaError, OptionError
from .imputations import Imputations
from .model.spec import ModelSpec
from .plan import ModelPlan, Plan
from .runtime.chains import run_chains, worker_count
from .runtime.problem import make_problem
from .runtime.smc import run_smc

#: Default iterations per chain of the FCS recipes and of model-based imputation.
FCS_MAXIT, SMC_MAXIT = 10, 50


def impute(data: pd.DataFrame, model: str | ModelSpec | Plan | ModelPlan, *, m: int = 5,
           maxit: int | None = None, seed: int | np.random.SeedSequence | None = None,
           n_jobs: int = 1, executor: Executor | None = None, progress: bool = False,
           donors: int = 5, approach: str = "fcs", **compile_options: object) -> Imputations:
    """Multiply impute ``data`` under the imputation model a mixed model implies.

    Parameters
    ----------
    data : pandas.DataFrame
        The incomplete data; never modified.
    model : str, ModelSpec, Plan or ModelPlan
        The analysis model (compiled with ``approach`` and ``compile_options``, see
        :func:`recipe_compiler.compile`) or an already compiled (or edited) plan.
    m : int
        Number of imputations (independent chains).
    maxit : int, optional
        Iterations per chain (0: the initial random fill only). Default 10 for
        FCS and 50 for ``approach="smc"``, whose first half is the burn-in that
        tunes the Metropolis-Hastings proposals (in simulations, 20 iterations
        left a bias of 3-4% on a level-2 moderator; 50 did not).
    seed : int or SeedSequence, optional
        Seed of the root ``numpy.random.SeedSequence``; chain k uses its k-th
        child, so results do not depend on ``n_jobs`` or ``executor``.
    n_jobs : int
        Processes for the chains when no ``executor`` is given, at most ``m`` and
        the available CPUs; ``-1``: all CPUs, ``-2``: all but one (joblib's convention).
    executor : concurrent.futures.Executor, optional
        Runs the chains (e.g. a Dask or Ray executor).
    progress : bool
        Progress bar on stderr.
    donors : int
        Donors for predictive mean matching.
    approach : {"fcs", "smc"}
        ``"fcs"``: the FIMD recipes (fully conditional specification);
        ``"smc"``: model-based imputation whose joint model has the analysis
        model as its outcome model (substantive-model compatible).

    Returns
    -------
    Imputations
    """
    smc_model = isinstance(model, ModelPlan) or (approach == "smc" and not isinstance(model, Plan))
    if maxit is None:
        maxit = SMC_MAXIT if smc_model else FCS_MAXIT
    for name, value, low in (("m", m, 1), ("maxit", maxit, 0), ("donors", donors, 1)):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < low:
            raise OptionError(f"{name}={value!r} is not valid; it must be an integer >= {low}")
    worker_count(n_jobs, int(m))  # validates n_jobs before the work starts
    if seed is not None and not isinstance(seed, np.random.SeedSequence):
        try:
            if isinstance(seed, (bool, np.bool_)):  # numpy takes True for 1: surely a slip
                raise TypeError(seed)
            np.random.SeedSequence(seed)
        except (TypeError, ValueError):
            raise OptionError(f"seed={seed!r} is not valid; use a non-negative integer, a "
                              "numpy.random.SeedSequence or None") from None
    if executor is not None and not callable(getattr(executor, "submit", None)):
        raise OptionError(f"executor={executor!r} is not valid; use a concurrent.futures."
                          "Executor (an object with a submit method) or None")
    check_frame(data)
    if not isinstance(model, (str, ModelSpec, Plan, ModelPlan)):
        raise FormulaError(f"the model must be a formula string such as 'y ~ x + (1 | g)', a "
                           f"ModelSpec or a compiled Plan, got {type(model).__name__}")
    if isinstance(model, (Plan, ModelPlan)):
        if approach != "fcs" and not isinstance(model, ModelPlan):
            raise OptionError(f"approach={approach!r} cannot be combined with a compiled FCS "
                              "plan; pass the formula instead")
        if compile_options:
            raise OptionError("compile options (" + ", ".join(compile_options) + ") cannot be "
                              "combined with a compiled plan; compile again instead")
        plan: Plan | ModelPlan = model
    else:
        plan = compile_plan(model, data, approach, **compile_options)
    if isinstance(plan, ModelPlan):
        smc, coded = run_smc(plan, data, m=int(m), maxit=int(maxit), seed=seed,
                             n_jobs=int(n_jobs), executor=executor, progress=progress)
        return Imputations(plan=plan, data=data, chains=tuple(smc), maxit=int(maxit),
                           coded=coded)
    problem = make_problem(plan, data)
    for t, method in plan.method_table:
        dtype = data[t].dtype if t in data.columns else None
        if method_row(method).new_values and dtype is not None and (
                pd.api.types.is_integer_dtype(dtype) or pd.api.types.is_bool_dtype(dtype)):
            raise OptionError(f"methods[{t!r}]={method!r} imputes non-integer values, but "
                              f"'{t}' has the dtype {dtype}; use a pmm method, or convert "
                              "the column to float first")
    chains = run_chains(problem, m=int(m), maxit=int(maxit), seed=seed, donors=int(donors),
                        n_jobs=int(n_jobs), executor=executor, progress=progress)
    return Imputations(plan=plan, data=data, chains=tuple(chains), maxit=int(maxit),
                       coded=frozenset(t for t in plan.targets if t in problem.categories))
