"""THE method table: one row per imputation method, read by every stage.

The compiler picks defaults and validates overrides from it, the runtime
dispatches each target to the sampler its row names, the spec loader
validates method names against it and the R exporter reads its R names.
Adding a method is one row here plus one registered sampler in
:mod:`recipe_compiler.runtime.samplers`.

Scopes: ``level1`` (a level-1 target of a model with a random part: the
sampler sees the rows, a fixed design with cluster means, a random design and
the grouping), ``level2`` (a target constant within clusters: the sampler sees
one row per cluster, predictors aggregated to cluster means), ``single``
(data without clusters), ``multilevel`` (a target of a plan with several
grouping factors, at level 1, or at level 2 of a nested plan: the sampler sees
one row per unit of the target's level, a random intercept for every grouping
factor of code -2 above it, random slopes (code 2) on the first of them, and
extra random-intercept blocks), ``level3`` (a target constant within the
outermost factor of a nested plan: one row per outermost cluster, predictors
aggregated to its means) and ``derived`` (never imputed, recomputed from its
parents).

Kinds of target (see :func:`target_kind`): ``numeric`` (a number, including
0/1 numbers), ``continuous`` (a float column imputed on cluster units of a plan
with several grouping factors: a class- or school-level number; predictive mean
matching inflates the between-cluster variance there when the missing clusters
are extreme and donors few, +8% to +14% on the school variance in
``benchmarks/results/ml_simulation.md``, so the normal model is its default),
``binary`` (a categorical column with two categories),
``nominal`` (a categorical column with more), ``ordinal`` (an ordered one with
more).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from ..errors import OptionError, one_of

Scope = Literal["level1", "level2", "single", "multilevel", "level3", "derived"]
TargetKind = Literal["numeric", "continuous", "binary", "nominal", "ordinal"]


@dataclass(frozen=True)
class Method:
    """Everything the package knows about one method.

    Attributes
    ----------
    name : str
        The name users write (mice's where mice has the method).
    scope : {"level1", "level2", "single", "multilevel", "level3", "derived"}
        Which targets it imputes (see the module docstring).
    sampler : str
        Key of its sampler in :mod:`recipe_compiler.runtime.samplers` (``""``
        for derived variables).
    default_for : frozenset of str
        Target kinds for which it is the default in its scope.
    codes : bool
        It imputes category codes: the target is encoded as ``0 .. K-1`` whatever
        its dtype (``2l.bin`` imputes the 0/1 values themselves).
    r_miceadds, r_mice : str or None
        The R method of the same model in each export flavour (``None``: no
        such method; the exporter picks the closest and says what differs).
    description : str
        One line for the README and error messages.
    new_values : bool
        It imputes values that need not occur in the data (draws from a normal
        model), so it cannot fill an integer or boolean column.
    """

    name: str
    scope: Scope
    sampler: str
    default_for: frozenset[str] = frozenset()
    codes: bool = False
    r_miceadds: str | None = None
    r_mice: str | None = None
    description: str = ""
    new_values: bool = False


def _row(name: str, scope: Scope, sampler: str, default_for: tuple[str, ...] = (), *,
         codes: bool = False, r_miceadds: str | None = None, r_mice: str | None = None,
         description: str = "", new_values: bool = False) -> Method:
    return Method(name, scope, sampler, frozenset(default_for), codes, r_miceadds, r_mice,
                  description, new_values)


#: Every method, in the order error messages list them.
METHODS_TABLE: tuple[Method, ...] = (
    _row("2l.pmm", "level1", "mixed_normal_pmm", ("numeric",), r_miceadds="2l.pmm",
         r_mice="2l.pan", description="two-level normal model, predictive mean matching"),
    _row("2l.norm", "level1", "mixed_normal", r_miceadds="2l.continuous", r_mice="2l.pan",
         description="two-level normal model, draws from the posterior predictive",
         new_values=True),
    _row("2l.bin", "level1", "mixed_logit", ("binary",), r_miceadds="2l.binary",
         r_mice="2l.bin", description="two-level logistic model (Polya-Gamma Gibbs)"),
    _row("2l.polyreg", "level1", "mixed_multinomial", ("nominal",), codes=True,
         description="two-level multinomial logit, correlated random intercepts (and "
                     "code-4 slopes) per non-reference category (Polya-Gamma Gibbs)"),
    _row("2l.polr", "level1", "mixed_ordinal_probit", ("ordinal",), codes=True,
         description="two-level cumulative probit model, random intercept (and code-4 "
                     "slopes); latent normal Gibbs, Metropolis-Hastings cut-points"),
    _row("2lonly.pmm", "level2", "regression_pmm", ("numeric",), r_miceadds="2lonly.pmm",
         r_mice="2lonly.pmm", description="cluster-level regression on cluster means, pmm"),
    _row("2lonly.norm", "level2", "regression_normal", r_miceadds="2lonly.norm",
         r_mice="2lonly.norm",
         description="cluster-level normal regression on cluster means", new_values=True),
    _row("2lonly.polyreg", "level2", "regression_multinomial", ("binary", "nominal"), codes=True,
         r_miceadds="2lonly.function", r_mice=None,
         description="cluster-level multinomial logit on cluster means"),
    _row("2lonly.polr", "level2", "ordinal_probit", ("ordinal",), codes=True,
         description="cluster-level cumulative probit model on cluster means"),
    _row("pmm", "single", "regression_pmm", ("numeric",), r_miceadds="pmm", r_mice="pmm",
         description="predictive mean matching (no clusters)"),
    _row("norm", "single", "regression_normal", r_miceadds="norm", r_mice="norm",
         description="Bayesian linear regression (no clusters)", new_values=True),
    _row("logreg", "single", "regression_logit", ("binary",), codes=True, r_miceadds="logreg",
         r_mice="logreg", description="Bayesian logistic regression (no clusters)"),
    _row("polyreg", "single", "regression_multinomial", ("nominal",), codes=True,
         r_miceadds="polyreg", r_mice="polyreg",
         description="multinomial logit (no clusters)"),
    _row("polr", "single", "ordinal_probit", ("ordinal",), codes=True, r_miceadds="polr",
         r_mice="polr", description="cumulative probit model (no clusters; mice's polr is "
                                    "the logit)"),
    _row("ml.pmm", "multilevel", "multilevel_pmm", ("numeric",), r_miceadds="ml.lmer",
         description="normal model with a random intercept per grouping factor (nested or "
                     "crossed) and random slopes, predictive mean matching"),
    _row("ml.norm", "multilevel", "multilevel_normal", ("continuous",), r_miceadds="ml.lmer",
         description="normal model with a random intercept per grouping factor (nested or "
                     "crossed) and random slopes, draws from the posterior predictive",
         new_values=True),
    _row("ml.bin", "multilevel", "multilevel_logit", ("binary",), r_miceadds="ml.lmer",
         description="logistic model with a random intercept per grouping factor (nested or "
                     "crossed) and random slopes (Polya-Gamma Gibbs)"),
    _row("3lonly.pmm", "level3", "regression_pmm", ("numeric",), r_miceadds="2lonly.pmm",
         description="outermost-level regression on cluster means, pmm"),
    _row("3lonly.norm", "level3", "regression_normal", ("continuous",),
         r_miceadds="2lonly.norm",
         description="outermost-level normal regression on cluster means", new_values=True),
    _row("3lonly.polyreg", "level3", "regression_multinomial", ("binary", "nominal"),
         codes=True, r_miceadds="2lonly.function",
         description="outermost-level multinomial logit on cluster means"),
    _row("2l.groupmean", "derived", "", r_miceadds="2l.groupmean", r_mice=None,
         description="cluster mean of a level-1 variable"),
    _row("passive", "derived", "", description="passive update ~ I(...) of its parents"),
)

#: Method rows by name.
TABLE: dict[str, Method] = {m.name: m for m in METHODS_TABLE}


def names(scope: Scope | None = None) -> tuple[str, ...]:
    """Names of the methods of one scope (all methods when ``scope`` is None)."""
    return tuple(m.name for m in METHODS_TABLE if scope is None or m.scope == scope)


#: Every method name a plan may hold.
METHODS = names()
LEVEL1_METHODS = names("level1")
LEVEL2_METHODS = names("level2")
SINGLE_METHODS = names("single")
MULTILEVEL_METHODS = names("multilevel")
LEVEL3_METHODS = names("level3")
DERIVED_METHODS = names("derived")
#: The method of a cluster mean and of every other derived variable.
GROUPMEAN, PASSIVE = DERIVED_METHODS


def method(name: str, what: str = "method") -> Method:
    """The row of ``name``.

    Raises
    ------
    OptionError
        An unknown name, with the list of valid ones.
    """
    if name not in TABLE:
        raise one_of(what, name, METHODS)
    return TABLE[name]


def target_scope(two_level: bool, level: int) -> Scope:
    """The scope of a target: ``single`` without clusters, else by its level."""
    if not two_level:
        return "single"
    return "level2" if level >= 2 else "level1"


def default_method(scope: Scope, kind: TargetKind) -> str:
    """The default method of a target of this scope and kind.

    Raises
    ------
    OptionError
        The table has no default for them (every imputed scope has one per kind).
    """
    for m in METHODS_TABLE:
        if m.scope == scope and kind in m.default_for:
            return m.name
    raise OptionError(f"there is no default method for a {kind} target in scope {scope!r}; "
                      f"pass one with methods=, one of {', '.join(names(scope))}")


def check_method(name: str, scope: Scope, what: str) -> Method:
    """The row of ``name`` if it imputes targets of ``scope``, else an OptionError."""
    row = TABLE.get(name)
    if row is None or row.scope != scope:
        raise one_of(what, name, names(scope))
    return row


def target_kind(categorical: bool, n_categories: int, ordered: bool = False) -> TargetKind:
    """The kind of a target: a number, or a categorical with two or more categories."""
    if not categorical:
        return "numeric"
    if n_categories <= 2:
        return "binary"
    return "ordinal" if ordered else "nominal"

