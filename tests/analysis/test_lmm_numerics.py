"""The LMM fitter on badly scaled data: affine equivariance, and errors instead of LinAlgError.

Each extreme data set is an exact (or one-rounding) affine image of a well-scaled one,
so the fit of the extreme data must equal the fit of the well-scaled data mapped through
the model's equivariance, with no reference needed:

* ``y -> a + b y``: intercept ``a + b beta_0``, slopes ``b beta``, standard errors,
  variance components and random effects times ``|b|`` (variances times ``b^2``),
  ``theta`` unchanged, ML log-likelihood minus ``n log|b|``, lme4's REML criterion
  minus ``(n - p) log|b|``;
* ``x -> x + d``: intercept ``beta_0 - d beta_x``, ``Var(beta) -> T Var(beta) T'``
  with ``T = [[1, -d], [0, 1]]``, nothing else changes (``det T = 1``);
* ``x -> k x``: ``beta_x / k``, its standard error ``/ |k|``, and the REML criterion
  minus ``log|k|`` (it contains ``log|X'V^-1X|``); the ML log-likelihood is unchanged.

Tolerances: both fits stop where TNC's projected gradient is below 1e-3 (1 + |theta|),
which pins ``theta`` to about 1e-8 on these data (observed: 1.1e-8 at worst); the
estimates move with ``theta`` to first order (rtol 1e-6: a hundredfold margin), the
log-likelihood is stationary there (observed: 5e-12 at worst; abs 1e-9).
"""

from __future__ import annotations

import re

import numpy as np
import pandas as pd
import pytest

from recipe_compiler.analysis.design import Design
from recipe_compiler.analysis.lmm import LMMResult, fit_design, fit_lmm
from recipe_compiler.errors import DataError

RTOL, LOGLIK_ABS = 1e-6, 1e-9


def nice_frame(seed: int = 3, n_groups: int = 60) -> pd.DataFrame:
    """Random intercepts and slopes, x with mean 0.3 and SD 1, residual SD 1."""
    rng = np.random.default_rng(seed)
    g = np.repeat(np.arange(n_groups), rng.integers(4, 12, n_groups))
    x = 0.3 + rng.normal(size=g.size)
    b = rng.multivariate_normal([0, 0], [[1.0, 0.3], [0.3, 0.5]], size=n_groups)[g]
    y = 2.0 + 0.5 * x + b[:, 0] + b[:, 1] * x + rng.normal(size=g.size)
    return pd.DataFrame({"g": g, "x": x, "y": y})


def assert_y_image(fit: LMMResult, nice: LMMResult, a: float, b: float) -> None:
    """``fit`` is the fit of ``a + b y`` when ``nice`` is the fit of ``y``."""
    n, p = nice.nobs, len(nice.fixef)
    k = nice.x_names.index("(Intercept)") if "(Intercept)" in nice.x_names else None
    expected = b * nice.fixef.to_numpy()
    if k is not None:
        expected[k] += a
    np.testing.assert_allclose(fit.fixef.to_numpy(), expected, rtol=RTOL)
    np.testing.assert_allclose(fit.se.to_numpy(), abs(b) * nice.se.to_numpy(), rtol=RTOL)
    np.testing.assert_allclose(fit.vcov.to_numpy(), b**2 * nice.vcov.to_numpy(), rtol=RTOL,
                               atol=RTOL * b**2 * np.abs(nice.vcov.to_numpy()).max())
    np.testing.assert_allclose(fit.cov_re.to_numpy(), b**2 * nice.cov_re.to_numpy(), rtol=RTOL)
    assert fit.sigma2 == pytest.approx(b**2 * nice.sigma2, rel=RTOL)
    np.testing.assert_allclose(fit.theta, nice.theta, rtol=RTOL)
    np.testing.assert_allclose(fit.random_effects.to_numpy(),
                               b * nice.random_effects.to_numpy(), rtol=1e-5,
                               atol=1e-6 * abs(b))
    shift = (n - p if nice.reml else n) * np.log(abs(b))
    assert fit.loglik == pytest.approx(nice.loglik - shift, abs=LOGLIK_ABS)
    assert fit.converged and fit.boundary == nice.boundary


@pytest.mark.parametrize("reml", [False, True])
@pytest.mark.parametrize("formula", ["y ~ x + (1 | g)", "y ~ x + (1 + x | g)"])
@pytest.mark.parametrize(("a", "b"), [(1e9, 1.0), (5.0, 1e-10), (-3e6, 1e4)],
                         ids=["y=1e9+-1", "y=5+1e-10e", "y=-3e6+1e4e"])
def test_an_affine_image_of_the_outcome_is_fitted_as_the_outcome(
        formula: str, reml: bool, a: float, b: float) -> None:
    data = nice_frame()
    extreme = data.assign(y=a + b * data["y"])
    nice = data.assign(y=(extreme["y"] - a) / b)  # y = a + b * nice, to one rounding
    assert_y_image(fit_lmm(formula, extreme, reml=reml), fit_lmm(formula, nice, reml=reml), a, b)


@pytest.mark.parametrize("reml", [False, True])
def test_outcome_without_intercept_is_scaled_not_centred(reml: bool) -> None:
    data = nice_frame()
    extreme = data.assign(y=1e-10 * data["y"])
    nice = data.assign(y=extreme["y"] / 1e-10)
    formula = "y ~ 0 + x + (1 | g)"
    assert_y_image(fit_lmm(formula, extreme, reml=reml), fit_lmm(formula, nice, reml=reml),
                   0.0, 1e-10)


@pytest.mark.parametrize("reml", [False, True])
def test_a_predictor_far_from_zero_is_not_rank_deficient(reml: bool) -> None:
    data = nice_frame()
    far = data.assign(x=1e8 + data["x"])
    nice = data.assign(x=far["x"] - 1e8)  # exact: Sterbenz
    fit, ref = (fit_lmm("y ~ x + (1 | g)", d, reml=reml) for d in (far, nice))
    slope, intercept = ref.fixef["x"], ref.fixef["(Intercept)"]
    assert fit.fixef["x"] == pytest.approx(slope, rel=RTOL)
    # the intercept at x = 0 is 1e8 slopes away: compare it on the scale of that product
    assert fit.fixef["(Intercept)"] == pytest.approx(intercept - 1e8 * slope, abs=RTOL * 1e8)
    t = np.array([[1.0, -1e8], [0.0, 1.0]])
    np.testing.assert_allclose(fit.vcov.to_numpy(), t @ ref.vcov.to_numpy() @ t.T, rtol=RTOL)
    np.testing.assert_allclose(fit.cov_re.to_numpy(), ref.cov_re.to_numpy(), rtol=RTOL)
    assert fit.sigma2 == pytest.approx(ref.sigma2, rel=RTOL)
    assert fit.loglik == pytest.approx(ref.loglik, abs=LOGLIK_ABS)


@pytest.mark.parametrize("reml", [False, True])
def test_rescaling_a_predictor_moves_only_reml_by_the_log_of_the_scale(reml: bool) -> None:
    data = nice_frame()
    k = 1e-6
    fit, ref = (fit_lmm("y ~ x + (1 | g)", d, reml=reml)
                for d in (data.assign(x=k * data["x"]), data))
    assert fit.fixef["x"] == pytest.approx(ref.fixef["x"] / k, rel=RTOL)
    assert fit.se["x"] == pytest.approx(ref.se["x"] / k, rel=RTOL)
    assert fit.fixef["(Intercept)"] == pytest.approx(ref.fixef["(Intercept)"], rel=RTOL)
    assert fit.loglik == pytest.approx(ref.loglik - (np.log(k) if reml else 0.0),
                                       abs=LOGLIK_ABS)


def test_rank_check_on_the_centred_design_still_finds_aliased_columns() -> None:
    data = nice_frame().assign(x=lambda d: 1e8 + d["x"])
    data["x2"] = 3.0 * data["x"] - 7.0  # aliased with x and the intercept
    with pytest.raises(DataError, match=r"X is rank deficient .*columns (x|x2) are linear"):
        fit_lmm("y ~ x + x2 + (1 | g)", data)


@pytest.mark.parametrize("value", [1.0, 0.1, 1e8])
def test_a_constant_predictor_is_reported_as_aliased_with_the_intercept(value: float) -> None:
    data = nice_frame().assign(c=value)
    with pytest.raises(DataError, match=r"X is rank deficient.* c .*constant"):
        fit_lmm("y ~ x + c + (1 | g)", data)


@pytest.mark.parametrize("value", [3.0, 0.1, 1e9])
def test_a_constant_outcome_raises_data_error(value: float) -> None:
    message = re.escape(f"outcome 'y' is constant ({value:g} in every row")
    with pytest.raises(DataError, match=message):
        fit_lmm("y ~ x + (1 | g)", nice_frame().assign(y=value))


@pytest.mark.parametrize("y", ["1 + 2 * x", "1e9 + 2 * x", "1 + 2 * x + 1e-12 * e"])
def test_an_outcome_fitted_exactly_raises_data_error_naming_the_cause(y: str) -> None:
    data = nice_frame()
    rng = np.random.default_rng(4)
    x, e = data["x"].to_numpy(), rng.normal(size=len(data))
    values = {"1 + 2 * x": 1 + 2 * x, "1e9 + 2 * x": 1e9 + 2 * x,
              "1 + 2 * x + 1e-12 * e": 1 + 2 * x + 1e-12 * e}[y]
    with pytest.raises(DataError, match=r"not positive definite in the profiled deviance\): "
                                        r"its likelihood has no maximum.* fit 'y' exactly"):
        fit_lmm("y ~ x + (1 | g)", data.assign(y=values))


@pytest.mark.parametrize(("column", "factor"), [("y", 1e200), ("y", 1e-200), ("x", 1e-200)])
def test_values_beyond_the_floating_point_range_of_squares_raise_data_error(
        column: str, factor: float) -> None:
    data = nice_frame()
    data[column] *= factor
    with pytest.raises(DataError, match=rf"cannot fit '{column}': the spread .* between 1e-150"):
        fit_lmm("y ~ x + (1 | g)", data)


def test_fit_design_finds_the_intercept_by_value_wherever_it_is() -> None:
    data = nice_frame()
    y, x, g = 1e9 + data["y"].to_numpy(), data["x"].to_numpy(), data["g"].to_numpy()
    fits = []
    for X, names in ((np.column_stack([np.ones_like(x), x]), ("(Intercept)", "x")),
                     (np.column_stack([x, np.ones_like(x)]), ("x", "one"))):
        fits.append(fit_design(Design(
            y=y, X=X, x_names=names, Z=np.ones((len(y), 1)), z_names=("(Intercept)",),
            groups=g, group_labels=np.unique(g), outcome="y", cluster="g",
            rows=pd.RangeIndex(len(y)), n_dropped=0)))
    first, last = fits
    assert last.fixef["x"] == pytest.approx(first.fixef["x"], rel=RTOL)
    assert last.fixef["one"] - 1e9 == pytest.approx(first.fixef["(Intercept)"] - 1e9, rel=RTOL)
    assert last.loglik == pytest.approx(first.loglik, abs=LOGLIK_ABS)
