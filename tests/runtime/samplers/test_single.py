"""Single-level samplers (norm, pmm, logreg, polyreg): recovery and robustness.

Tolerances are multiples (4-5) of the Monte-Carlo standard error stated next to
each check, so a correct sampler fails with negligible probability and the
seeded tests are deterministic anyway.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable

import numpy as np
import pytest
import statsmodels.api as sm
from scipy.special import expit, softmax

from recipe_compiler.data.grouping import Grouping
from recipe_compiler.errors import SamplerError, SamplerWarning
from recipe_compiler.runtime.samplers.single import draw_logreg, draw_norm, draw_pmm, draw_polyreg

Sampler = Callable[..., np.ndarray]


def linear_data(seed: int, n: int = 400) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``y = 1 + 2 x1 - x2 + N(0, 1.5^2)``; y missing more often where x1 is high (MAR)."""
    rng = np.random.default_rng(seed)
    X = np.column_stack([np.ones(n), rng.normal(size=n), rng.normal(size=n)])
    y = X @ [1.0, 2.0, -1.0] + rng.normal(scale=1.5, size=n)
    observed = rng.random(n) > expit(-1 + X[:, 1])
    return y, observed, X


def test_norm_matches_the_posterior_predictive_moments() -> None:
    # Under norm.draw the imputation of row x is x'b + s*sqrt(1 + x'Vx) t_df, so its
    # mean is the LS prediction and its variance RSS/(df-2) (1 + x'Vx). With 4000 calls
    # each row's standardised mean error z is N(0, 1); rows share the drawn parameters
    # only weakly (correlation ~ x'Vx ~ p/n), so mean(z) has sd <= sqrt(1/n_mis + 0.02).
    # The variance ratio per row has MC sd ~ sqrt(2/4000) = 0.022, its mean over rows
    # (correlated ~1/df through sigma) ~ 0.003; allow 0.015.
    y, observed, X = linear_data(0)
    rng = np.random.default_rng(1)
    draws = np.array([draw_norm(y, observed, X, rng, name="y") for _ in range(4000)])
    xo, yo, xm = X[observed], y[observed], X[~observed]
    V = np.linalg.inv(xo.T @ xo)
    b = V @ xo.T @ yo
    rss = np.sum((yo - xo @ b) ** 2)
    df = len(yo) - 3
    scale = rss / (df - 2) * (1 + np.einsum("ij,jk,ik->i", xm, V, xm))
    z = (draws.mean(axis=0) - xm @ b) / np.sqrt(scale / 4000)
    assert abs(z.mean()) < 4 * np.sqrt(1 / len(z) + 0.02)
    ratio = draws.var(axis=0) / scale
    assert abs(ratio.mean() - 1) < 0.015


def test_pmm_returns_observed_values_and_removes_the_mar_bias_of_the_mean() -> None:
    # m = 20 imputations; MI mean vs the full-data mean must agree within 4 sd of
    # the between-imputation spread ((1 + 1/m) B), while the complete-case mean
    # is far off (the MAR mechanism depends on x1, which drives y).
    y, observed, X = linear_data(2, n=3000)
    rng = np.random.default_rng(3)
    means = []
    for _ in range(20):
        imp = draw_pmm(y, observed, X, rng, donors=5, name="y")
        assert np.isin(imp, y[observed]).all()
        completed = y.copy()
        completed[~observed] = imp
        means.append(completed.mean())
    between = np.var(means, ddof=1) * (1 + 1 / 20)
    assert abs(np.mean(means) - y.mean()) < 4 * np.sqrt(between) + 0.01
    assert abs(y[observed].mean() - y.mean()) > 10 * np.sqrt(between)


def test_logreg_imputes_the_fitted_probabilities() -> None:
    # 200 calls x ~600 missing rows; the imputed share of ones must match the mean
    # MLE probability: Bernoulli MC sd ~0.0014, parameter-draw part ~0.001; allow 0.01.
    rng = np.random.default_rng(4)
    n = 2000
    X = np.column_stack([np.ones(n), rng.normal(size=n)])
    y = (rng.random(n) < expit(X @ [-0.5, 1.2])).astype(float)
    observed = rng.random(n) > expit(-1 + 0.8 * X[:, 1])
    mle = sm.Logit(y[observed], X[observed]).fit(disp=0).params
    draws = np.array([draw_logreg(y, observed, X, rng, name="b") for _ in range(200)])
    assert set(np.unique(draws)) <= {0.0, 1.0}
    assert abs(draws.mean() - expit(X[~observed] @ mle).mean()) < 0.01


def test_logreg_survives_perfect_separation() -> None:
    # y = 1 exactly when x > 0: the MLE does not exist; the augmentation keeps the
    # fit finite and the imputations still follow x.
    rng = np.random.default_rng(5)
    x = rng.normal(size=300)
    X = np.column_stack([np.ones(300), x])
    y = (x > 0).astype(float)
    observed = rng.random(300) < 0.7
    draws = np.array([draw_logreg(y, observed, X, rng, name="sep") for _ in range(50)])
    far = np.abs(x[~observed]) > 1
    agree = draws[:, far] == (x[~observed][far] > 0)
    assert agree.mean() > 0.95


def test_polyreg_reproduces_category_proportions_given_x() -> None:
    # Three categories, multinomial logit in x. Imputed shares per x-tercile over 100
    # calls vs the MLE (statsmodels MNLogit) probabilities: MC sd per share about
    # sqrt(.25 / (100 * ~200)) = 0.004 plus parameter draws ~0.005; allow 0.03.
    rng = np.random.default_rng(6)
    n = 3000
    X = np.column_stack([np.ones(n), rng.normal(size=n)])
    eta = np.column_stack([np.zeros(n), X @ [0.3, 1.0], X @ [-0.2, -1.0]])
    cum = np.cumsum(softmax(eta, axis=1), axis=1)
    y = (rng.random(n)[:, None] > cum).sum(axis=1).astype(float)
    observed = rng.random(n) > expit(-1 + 0.5 * X[:, 1])
    fit = sm.MNLogit(y[observed], X[observed]).fit(disp=0)
    expected = fit.predict(X[~observed])
    draws = np.array([draw_polyreg(y, observed, X, rng, n_categories=3, name="c")
                      for _ in range(100)])
    assert set(np.unique(draws)) <= {0.0, 1.0, 2.0}
    tercile = np.digitize(X[~observed, 1], np.quantile(X[~observed, 1], [1 / 3, 2 / 3]))
    for t in range(3):
        shares = np.array([(draws[:, tercile == t] == c).mean() for c in range(3)])
        np.testing.assert_allclose(shares, expected[tercile == t].mean(axis=0), atol=0.03)


def test_polyreg_with_one_observed_category_imputes_it_and_warns() -> None:
    rng = np.random.default_rng(7)
    X = np.column_stack([np.ones(20), rng.normal(size=20)])
    y = np.full(20, 2.0)
    observed = np.arange(20) < 15
    with pytest.warns(SamplerWarning, match=r"'den'.*only category 2"):
        out = draw_polyreg(y, observed, X, rng, n_categories=4, name="den")
    assert out.tolist() == [2.0] * 5


def test_samplers_work_at_cluster_level_as_the_2lonly_methods() -> None:
    # 2lonly.pmm: the caller aggregates level-1 predictors to cluster means and passes
    # cluster-level arrays; imputations are observed level-2 values.
    rng = np.random.default_rng(8)
    groups = np.repeat(np.arange(40), 10)
    w = rng.normal(size=40)
    x = w[groups] + rng.normal(size=400)
    Xc = np.column_stack([np.ones(40), Grouping(groups, 40).means(x)])
    observed = rng.random(40) < 0.7
    imp = draw_pmm(w, observed, Xc, rng, name="w")
    assert np.isin(imp, w[observed]).all() and len(imp) == (~observed).sum()
    assert np.isfinite(draw_norm(w, observed, Xc, rng, name="w")).all()


@pytest.mark.parametrize("sampler", [draw_norm, draw_pmm, draw_logreg])
def test_same_seed_gives_identical_imputations(sampler: Sampler) -> None:
    y, observed, X = linear_data(9)
    y = (y > 1).astype(float)
    first = sampler(y, observed, X, np.random.default_rng(10), name="y")
    again = sampler(y, observed, X, np.random.default_rng(10), name="y")
    assert np.array_equal(first, again)


# --- robustness -------------------------------------------------------------------


@pytest.mark.parametrize("sampler", [draw_norm, draw_pmm, draw_logreg])
def test_aliased_and_constant_columns_are_dropped_with_one_warning(sampler: Sampler) -> None:
    # Dropping the duplicate and the constant column leaves exactly the clean design,
    # so with the same seed the imputations are identical.
    y, observed, X = linear_data(11)
    y = (y > 1).astype(float) if sampler is draw_logreg else y
    bad = np.column_stack([X, X[:, 1] + X[:, 2], np.full(len(y), 5.0)])
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        got = sampler(y, observed, bad, np.random.default_rng(12), name="lpo")
    assert len(caught) == 1 and caught[0].category is SamplerWarning
    message = str(caught[0].message)
    assert "'lpo'" in message and "aliased" in message and "constant" in message
    clean = sampler(y, observed, X, np.random.default_rng(12), name="lpo")
    np.testing.assert_allclose(got, clean)


def test_very_few_observed_values_keep_a_residual_degree_of_freedom() -> None:
    rng = np.random.default_rng(13)
    X = np.column_stack([np.ones(30), rng.normal(size=(30, 4))])
    y = rng.normal(size=30)
    observed = np.zeros(30, dtype=bool)
    observed[:3] = True
    for sampler in (draw_norm, draw_pmm):
        with pytest.warns(SamplerWarning, match=r"'iqv'.*only 3 observed values"):
            out = sampler(y, observed, X, rng, name="iqv")
        assert np.isfinite(out).all() and len(out) == 27


@pytest.mark.parametrize("sampler", [draw_norm, draw_pmm, draw_logreg])
def test_fewer_than_two_observed_values_raise(sampler: Sampler) -> None:
    X = np.column_stack([np.ones(10), np.arange(10.0)])
    observed = np.zeros(10, dtype=bool)
    observed[0] = True
    with pytest.raises(SamplerError, match=r"'ses'.*1 observed"):
        sampler(np.zeros(10), observed, X, np.random.default_rng(0), name="ses")


def test_invalid_inputs_raise_naming_the_target() -> None:
    rng = np.random.default_rng(14)
    X = np.column_stack([np.ones(10), rng.normal(size=10)])
    observed = np.arange(10) < 7
    bad_x = X.copy()
    bad_x[0, 1] = np.nan
    with pytest.raises(SamplerError, match=r"'a'.*not finite"):
        draw_norm(rng.normal(size=10), observed, bad_x, rng, name="a")
    with pytest.raises(SamplerError, match=r"'b'.*intercept"):
        draw_norm(rng.normal(size=10), observed, X[:, 1:], rng, name="b")
    with pytest.raises(SamplerError, match=r"'c'.*integer codes 0..1"):
        draw_logreg(np.full(10, 2.0), observed, X, rng, name="c")
