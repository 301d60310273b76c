"""Rubin's rules, Barnard-Rubin degrees of freedom and averaged variance components."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from recipe_compiler.analysis.pooling import POOL_COLUMNS, average_components, barnard_rubin, pool
from recipe_compiler.errors import DataError, RecipeError

Q = np.array([[1.0, 10.0], [1.2, 11.0], [0.9, 9.5], [1.1, 10.5]])
U = np.array([[0.04, 1.0], [0.05, 1.2], [0.045, 0.9], [0.05, 1.1]])


def test_pool_applies_rubins_rules_by_hand() -> None:
    out = pool(Q, U, dfcom=50).set_index("term")
    m = 4
    for j, term in enumerate(["x1", "x2"]):
        qbar, ubar, b = Q[:, j].mean(), U[:, j].mean(), Q[:, j].var(ddof=1)
        t = ubar + (1 + 1 / m) * b
        lam = (1 + 1 / m) * b / t
        df_old = (m - 1) / lam**2
        df_obs = 51 / 53 * 50 * (1 - lam)
        df = df_old * df_obs / (df_old + df_obs)
        riv = (1 + 1 / m) * b / ubar
        row = out.loc[term]
        expected = {"estimate": qbar, "ubar": ubar, "b": b, "t": t, "std_error": np.sqrt(t),
                    "df": df, "riv": riv, "lambda": lam,
                    "fmi": (riv + 2 / (df + 3)) / (riv + 1), "statistic": qbar / np.sqrt(t),
                    "p_value": 2 * stats.t.sf(qbar / np.sqrt(t), df)}
        for name, value in expected.items():
            assert row[name] == pytest.approx(value, rel=1e-12), name
    assert tuple(pool(Q, U).columns) == POOL_COLUMNS


def test_covariance_matrices_pool_as_their_diagonals() -> None:
    rng = np.random.default_rng(1)
    cov = np.stack([np.diag(u) + 0.01 * (a := rng.normal(size=(2, 2))) @ a.T for u in U])
    expected = pool(Q, np.diagonal(cov, axis1=1, axis2=2))
    pd.testing.assert_frame_equal(pool(Q, cov), expected)


def test_series_and_frames_name_the_terms() -> None:
    names = ["(Intercept)", "iqv"]
    est = [pd.Series(q, index=names) for q in Q]
    cov = [pd.DataFrame(np.diag(u), index=names, columns=names) for u in U]
    out = pool(est, cov)
    assert list(out["term"]) == names
    np.testing.assert_allclose(out["estimate"], Q.mean(axis=0))
    assert list(pool(pd.DataFrame(Q, columns=names), U)["term"]) == names
    assert list(pool(Q, U, terms=["a", "b"])["term"]) == ["a", "b"]


def test_one_dimensional_input_pools_one_parameter() -> None:
    out = pool(Q[:, 0], U[:, 0])
    assert len(out) == 1
    assert out["estimate"].iloc[0] == pytest.approx(Q[:, 0].mean())


def test_infinite_dfcom_gives_rubins_1987_df_and_large_dfcom_approaches_it() -> None:
    inf = pool(Q, U)
    m = 4
    np.testing.assert_allclose(inf["df"], (m - 1) / inf["lambda"] ** 2)
    np.testing.assert_allclose(pool(Q, U, dfcom=1e12)["df"], inf["df"], rtol=1e-6)
    assert (pool(Q, U, dfcom=20)["df"] < inf["df"]).all()


def test_identical_estimates_floor_lambda_as_mice() -> None:
    same = np.tile([2.0], (5, 1))
    out = pool(same, np.full((5, 1), 0.1), dfcom=100).iloc[0]
    assert out["b"] == 0 and out["riv"] == 0 and out["lambda"] == 0
    # mice floors lambda at 1e-4 inside barnard.rubin: df_old = 4e8, df_obs ~ dfcom
    df_obs = 101 / 103 * 100 * (1 - 1e-4)
    assert out["df"] == pytest.approx(4e8 * df_obs / (4e8 + df_obs))
    assert out["fmi"] == pytest.approx(2 / (out["df"] + 3))
    assert barnard_rubin(5, np.array([0.0]), np.array([0.1]))[0] == pytest.approx(4e8)


def test_p_value_uses_at_least_a_thousandth_degree_of_freedom() -> None:
    q = np.array([[1.0], [-1.0]])
    out = pool(q, np.full((2, 1), 1e-12), dfcom=2).iloc[0]
    assert out["df"] < 0.001
    assert out["p_value"] == pytest.approx(2 * stats.t.sf(abs(out["statistic"]), 0.001))


def test_average_components_is_the_plain_mean() -> None:
    idx = ["Intercept~~Intercept|sch", "Residual~~Residual", "ICC|sch"]
    comps = [pd.Series([8.0, 40.0, 8 / 48], index=idx), pd.Series([9.0, 41.0, 9 / 50], index=idx)]
    out = average_components(comps)
    assert list(out.index) == idx
    np.testing.assert_allclose(out, [8.5, 40.5, (8 / 48 + 9 / 50) / 2])


# ----------------------------------------------------------------------------- bad input


@pytest.mark.parametrize(("estimates", "variances", "message"), [
    (Q[:1], U[:1], "at least m = 2 imputations, got m = 1"),
    (Q, U[:, :1], r"variances have shape \(4, 1\); .* must be 4 x 2"),
    (Q, -U, "variances must be >= 0"),
    (np.where(Q > 10.9, np.nan, Q), U, "estimates have NaN"),
    (Q, np.where(U > 1.1, np.inf, U), "variances have NaN or infinite"),
    (np.ones((2, 2, 2)), U, "estimates must be m x k"),
])
def test_bad_input_raises_data_error(estimates: object, variances: object, message: str) -> None:
    with pytest.raises(DataError, match=message):
        pool(estimates, variances)


@pytest.mark.parametrize("dfcom", [0, -3, float("nan")])
def test_non_positive_dfcom_raises(dfcom: float) -> None:
    with pytest.raises(DataError, match="dfcom must be positive"):
        pool(Q, U, dfcom=dfcom)


def test_mismatched_names_raise() -> None:
    a = pd.Series([1.0, 2.0], index=["a", "b"])
    b = pd.Series([1.0, 2.0], index=["a", "c"])
    with pytest.raises(DataError, match="estimates 2 are named"):
        pool([a, b], [a**2, a**2])
    with pytest.raises(DataError, match="variances 2 are named"):
        pool([a, a], [a, b])
    with pytest.raises(DataError, match="2 terms given for 1 parameters"):
        pool(Q[:, 0], U[:, 0], terms=["a", "b"])
    with pytest.raises(DataError, match="components 2 are named"):
        average_components([a, b])
    with pytest.raises(DataError, match="at least one Series"):
        average_components([])


def test_pooling_errors_are_recipe_errors() -> None:
    with pytest.raises(RecipeError):
        pool(Q[:1], U[:1])


def test_zero_variances_give_nan_not_warnings() -> None:
    with np.errstate(all="raise"):
        out = pool(np.ones((3, 1)), np.zeros((3, 1))).iloc[0]
    assert out["estimate"] == 1.0 and out["t"] == 0.0
    assert np.isnan(out["riv"]) and np.isnan(out["df"])
