"""SMC chains end to end: complete-data sanity, observed cells, determinism, diagnostics."""

from __future__ import annotations

import warnings
from collections.abc import Callable

import numpy as np
import pandas as pd
import pytest

import recipe_compiler as rc
from recipe_compiler.errors import DataError, SamplerWarning
from recipe_compiler.runtime import smc
from recipe_compiler.runtime.smc.problem import make_smc_problem
from recipe_compiler.runtime.smc.sweep import SmcChainResult, run_smc_batch, run_smc_chain


@pytest.fixture(scope="module")
def frame(make_frame: Callable[..., pd.DataFrame]) -> pd.DataFrame:
    """y, x, a level 1; b 0/1; z, w level 2; y, x, b, w, a incomplete."""
    return make_frame(level1=("y", "x", "a"), binary=("b",), level2=("z", "w"),
                      missing={"y": 0.15, "x": 0.15, "b": 0.1, "w": 0.25, "a": 0.1}, seed=3,
                      n_clusters=15, cluster_size=(6, 10))


FORMULA = "y ~ x*z + b + w + cm(x) + I(x ** 2) + (1 + x | g)"


def test_complete_data_are_left_unchanged_and_draws_centre_on_the_fit(
        brandsma: pd.DataFrame) -> None:
    """No missing value: the chain only draws parameters. With a flat prior on the
    fixed effects their posterior mean is the ML estimate up to O(SE/sqrt(n)); the
    mean of 300 post-burn-in draws has a Monte Carlo sd of about SE * sqrt(tau / 300)
    with tau (autocorrelation time) below 5, i.e. 0.13 SE: 0.5 SE is about 4 sd."""
    d = brandsma[["sch", "lpo", "iqv"]].dropna().copy()
    f = "lpo ~ iqv + cm(iqv) + (1 + iqv | sch)"
    imp = rc.impute(d, f, approach="smc", m=1, maxit=2, seed=1)
    assert imp.plan.targets == [] and imp.complete(1).equals(d)
    plan = rc.compile(f, d, approach="smc")
    assert isinstance(plan, rc.ModelPlan)
    chain = run_smc_chain(make_smc_problem(plan, d), 350, np.random.SeedSequence(2))
    draws = chain.beta["lpo"][50:]
    fit = rc.fit_lmm(f, d)
    assert np.all(np.abs(draws.mean(axis=0) - fit.fixef) < 0.5 * fit.se)
    assert np.all(np.abs(draws.std(axis=0) / fit.se - 1) < 0.3)  # posterior sd ~ SE


def test_observed_cells_are_bit_for_bit_unchanged_and_missing_ones_filled(
        frame: pd.DataFrame) -> None:
    imp = rc.impute(frame, FORMULA, approach="smc", auxiliary=["a"], m=2, maxit=4, seed=7)
    assert imp.plan.targets == ["a", "y", "x", "b", "w"]
    for k in (1, 2):
        done = imp.complete(k)
        assert list(done.columns) == list(frame.columns) and done.index.equals(frame.index)
        assert done.notna().all().all()
        seen = frame.notna().to_numpy()
        assert np.array_equal(done.to_numpy()[seen], frame.to_numpy()[seen])
        assert set(done["b"]) == {0.0, 1.0}
        assert (done.groupby("g")["w"].nunique() == 1).all()
    assert not imp.complete(1).equals(imp.complete(2))


def test_the_same_seed_gives_the_same_imputations_whatever_n_jobs(frame: pd.DataFrame) -> None:
    kw = {"approach": "smc", "auxiliary": ["a"], "m": 2, "maxit": 3, "seed": 11}
    one = rc.impute(frame, FORMULA, n_jobs=1, **kw)
    two = rc.impute(frame, FORMULA, n_jobs=2, **kw)
    for k in (1, 2):
        assert one.complete(k).equals(two.complete(k))
    again = rc.impute(frame, one.plan, m=2, maxit=3, seed=11)
    assert again.complete(2).equals(one.complete(2))
    other = rc.impute(frame, FORMULA, n_jobs=1, **{**kw, "seed": 12})
    assert not other.complete(1).equals(one.complete(1))


def test_a_chain_gives_the_same_draws_alone_or_in_any_batch(frame: pd.DataFrame) -> None:
    """Every array has a chain axis and each chain draws from its own generator only: a
    chain's imputations, parameter draws and Metropolis-Hastings tuning are bit for bit
    those it has alone (normal, logit, level-2 models; exact, enumerated and MH draws)."""
    plan = rc.compile(FORMULA, frame, approach="smc", auxiliary=["a"])
    assert isinstance(plan, rc.ModelPlan)
    problem = make_smc_problem(plan, frame)
    seeds = np.random.SeedSequence(4).spawn(3)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", SamplerWarning)
        together = run_smc_batch(problem, 4, seeds)
        alone = [run_smc_batch(problem, 4, [s])[0] for s in seeds]
        uneven = run_smc_batch(problem, 4, seeds[:2]) + run_smc_batch(problem, 4, seeds[2:])
    for a, b, c in zip(together, alone, uneven, strict=True):
        assert isinstance(a, SmcChainResult) and isinstance(b, SmcChainResult)
        assert isinstance(c, SmcChainResult)
        for other in (b, c):
            assert all(np.array_equal(a.imputed[t], other.imputed[t]) for t in a.imputed)
            assert all(np.array_equal(a.beta[t], other.beta[t]) for t in a.beta)
            assert a.scale == other.scale and a.acceptance == other.acceptance
            assert np.array_equal(a.mean, other.mean)
    assert not np.array_equal(together[0].imputed["x"], together[1].imputed["x"])


@pytest.fixture(scope="module")
def nominal(frame: pd.DataFrame) -> pd.DataFrame:
    """``frame`` with k (level 1) and h (level 2), 3 categories each, missing where a and w
    are; rows 0-2 and clusters 1-3 hold every category."""
    rng = np.random.default_rng(9)
    g = frame["g"].to_numpy()
    k = rng.integers(0, 3, len(g))
    k[:3] = [0, 1, 2]
    labels = np.array(["lo", "mid", "hi"])
    out = frame.assign(k=pd.Categorical(labels[k]),
                       h=pd.Categorical(labels[(g + rng.integers(0, 3, g.max() + 1)[g]) % 3]))
    out.loc[frame["a"].isna() & (np.arange(len(g)) >= 3), "k"] = np.nan
    out.loc[frame["w"].isna(), "h"] = np.nan
    return out


NOMINAL = "y ~ x + C(k) + h + b + (1 + x | g)"


def test_nominal_chains_give_the_same_draws_alone_or_in_any_batch(
        nominal: pd.DataFrame) -> None:
    """As above with incomplete nominal covariates at level 1 (k) and level 2 (h): the
    multinomial updates, the enumeration over categories and the level-2 draw of the
    outcome model's effects use each chain's generator only."""
    plan = rc.compile(NOMINAL, nominal, approach="smc")
    assert isinstance(plan, rc.ModelPlan)
    assert [plan.model(v).family for v in ("k", "h")] == ["multinomial"] * 2
    problem = make_smc_problem(plan, nominal)
    seeds = np.random.SeedSequence(6).spawn(3)
    together = run_smc_batch(problem, 4, seeds)
    alone = [run_smc_batch(problem, 4, [s])[0] for s in seeds]
    uneven = run_smc_batch(problem, 4, seeds[:1]) + run_smc_batch(problem, 4, seeds[1:])
    for a, b, c in zip(together, alone, uneven, strict=True):
        assert isinstance(a, SmcChainResult) and isinstance(b, SmcChainResult)
        assert isinstance(c, SmcChainResult)
        for other in (b, c):
            assert all(np.array_equal(a.imputed[t], other.imputed[t]) for t in a.imputed)
            assert all(np.array_equal(a.beta[t], other.beta[t]) for t in a.beta)
            assert np.array_equal(a.mean, other.mean)
    # k ~ 1 + b + C(h) + (1 | g): each non-reference category's 4 coefficients side by side
    assert plan.model("k").formula("g") == "k ~ 1 + b + C(h) + (1 | g)"
    assert together[0].beta["k"].shape == (4, 2 * 4)
    assert not np.array_equal(together[0].imputed["k"], together[1].imputed["k"])


def test_nominal_imputations_are_labels_and_level2_ones_constant(
        nominal: pd.DataFrame) -> None:
    imp = rc.impute(nominal, NOMINAL, approach="smc", m=2, maxit=4, seed=3)
    for i in (1, 2):
        done = imp.complete(i)
        assert done[["k", "h"]].notna().all().all()
        assert set(done["k"]) == set(done["h"]) == {"lo", "mid", "hi"}
        assert (done.groupby("g")["h"].nunique() == 1).all()
        seen = nominal["k"].notna()
        assert done.loc[seen, "k"].equals(nominal.loc[seen, "k"])
    pooled = imp.fit(NOMINAL).pool()
    assert {"C(k)[T.lo]", "C(k)[T.mid]", "C(h)[T.lo]", "C(h)[T.mid]"} <= set(pooled["term"]), \
        list(pooled["term"])


def test_diagnostics_rhat_and_acceptance(frame: pd.DataFrame) -> None:
    imp = rc.impute(frame, FORMULA, approach="smc", m=2, maxit=6, seed=5)
    assert list(imp.rhat().index) == imp.plan.targets
    assert imp.chain_mean.shape == (6 * len(imp.plan.targets), 2)
    rates = imp.acceptance()
    # x for I(x ** 2), w because it predicts b's logit model: Metropolis-Hastings
    assert list(rates.index) == ["x", "w"]
    assert [imp.plan.draws[v].how for v in rates.index] == ["metropolis"] * 2
    assert ((rates > 0) & (rates < 1)).all()
    plain = rc.impute(frame, "y ~ x + (1 | g)", approach="smc", m=1, maxit=2, seed=5)
    assert plain.acceptance().empty


def test_an_acceptance_rate_outside_the_range_warns(frame: pd.DataFrame,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(smc, "ACCEPTANCE_RANGE", (0.99, 1.0))
    f = "y ~ x + I(x ** 2) + (1 | g)"
    with pytest.warns(SamplerWarning, match="imputing 'x': the Metropolis-Hastings acceptance "
                                            "rate is 0.[0-9]+, outside 0.99-1.0"):
        rc.impute(frame, f, approach="smc", m=2, maxit=10, seed=5)
    with warnings.catch_warnings():  # 23 cells, 1 sweep after burn-in: too few to judge
        warnings.simplefilter("error")
        rc.impute(frame, f, approach="smc", m=1, maxit=2, seed=5)


def test_a_model_plan_must_fit_its_data(frame: pd.DataFrame) -> None:
    plan = rc.compile("y ~ x + z + (1 | g)", frame, approach="smc")
    with pytest.raises(DataError, match="column 'z' of the plan is not in the data; did you "
                                        "mean 'zz'"):
        rc.impute(frame.rename(columns={"z": "zz"}), plan, m=1, maxit=1)
    with pytest.raises(DataError, match="uses 'z' as a complete variable"):
        rc.impute(frame.assign(z=frame["z"].where(frame["g"] != 5)), plan, m=1, maxit=1)
    with pytest.raises(rc.OptionError, match="cannot be combined with a compiled plan"):
        rc.impute(frame, plan, auxiliary=["a"])
    with pytest.raises(DataError, match="integer dtype"):
        rc.impute(frame.assign(y=frame["y"].round().astype("Int64")), "y ~ x + (1 | g)",
                  approach="smc", m=1, maxit=1)


def test_maxit_zero_is_the_initial_fill(frame: pd.DataFrame) -> None:
    imp = rc.impute(frame, "y ~ x + (1 | g)", approach="smc", m=1, maxit=0, seed=1)
    filled = imp.complete(1)
    assert filled["y"].notna().all()
    assert set(filled.loc[frame["y"].isna(), "y"]) <= set(frame["y"].dropna())
