"""The multi-term LMM fitter: profiled deviance, estimates, design building and bad input.

References are closed forms: the deviance from the dense marginal covariance ``V``, its
gradient by central differences, conditional modes from dense ``V``, and the two-level
fitter of :mod:`recipe_compiler.analysis.lmm` for a single term.
"""

from __future__ import annotations

from collections.abc import Callable
from itertools import pairwise

import numpy as np
import pandas as pd
import pytest

from recipe_compiler.analysis import lmm_core, lmm_multi_deviance
from recipe_compiler.analysis.design import Design
from recipe_compiler.analysis.lmm import fit_design
from recipe_compiler.analysis.lmm_multi import (
    MultiDesign,
    fit_arrays,
    fit_multi,
    multi_design,
    random_terms,
)
from recipe_compiler.analysis.lmm_multi_deviance import build_layout, profile
from recipe_compiler.analysis.lmm_multi_result import MultiLMMResult
from recipe_compiler.errors import DataError

# ----------------------------------------------------------------------------- data


def nested(seed: int, schools: int = 12, classes: int = 4, size: int = 6,
           unbalanced: bool = False) -> pd.DataFrame:
    """Pupils in classes (labelled 1..classes within each school) in schools; class
    sizes 1..size, so some classes have a single pupil; if ``unbalanced``, school ``s``
    has only ``1 + s % classes`` classes."""
    rng = np.random.default_rng(seed)
    sizes = rng.integers(1, size + 1, schools * classes)
    if unbalanced:
        index, school = np.arange(schools * classes) % classes, np.arange(schools)
        sizes[index > school.repeat(classes) % classes] = 0
    cid = np.repeat(np.arange(schools * classes), sizes)
    school, klass = cid // classes, cid % classes + 1
    n = cid.size
    x = rng.normal(size=n)
    y = (1 + 0.5 * x + rng.normal(0, 0.9, schools)[school] + rng.normal(0, 0.7, cid.max() + 1)[cid]
         + rng.normal(0, 0.4, cid.max() + 1)[cid] * x + rng.normal(size=n))
    return pd.DataFrame({"school": school, "class": klass, "x": x, "w": rng.normal(size=n),
                         "y": y})


def crossed(seed: int, raters: int = 9, items: int = 7, p: float = 0.6,
            blocks: int = 1) -> pd.DataFrame:
    """Raters crossed with items, each pair rated (twice) with probability ``p``; with
    ``blocks > 1`` disjoint sets of raters and items (several components)."""
    rng = np.random.default_rng(seed)
    offset = np.array([raters, items])
    pairs = [np.argwhere(rng.random((raters, items)) < p) + b * offset for b in range(blocks)]
    rater, item = np.repeat(np.concatenate(pairs), 2, axis=0).T
    n = rater.size
    x = rng.normal(size=n)
    y = (2 + x + rng.normal(0, 1, rater.max() + 1)[rater]
         + rng.normal(0, 0.3, rater.max() + 1)[rater] * x
         + rng.normal(0, 0.7, item.max() + 1)[item] + rng.normal(size=n))
    return pd.DataFrame({"rater": rater, "item": item, "x": x, "w": rng.normal(size=n), "y": y})


def design_of(data: pd.DataFrame, specs: list, fixed: tuple[str, ...] = ("x", "w")) -> MultiDesign:
    X = np.column_stack([np.ones(len(data)), *(data[c] for c in fixed)])
    return MultiDesign(y=data["y"].to_numpy(float), X=X, x_names=("(Intercept)", *fixed),
                       terms=random_terms(data, specs), outcome="y", rows=data.index,
                       n_dropped=0)


NESTED_SLOPE = [(["1", "x"], "school:class"), (["1"], "school")]
CROSSED_SLOPE = [(["1", "x"], "rater"), (["1", "w"], "item")]


def layout_of(design: MultiDesign) -> lmm_multi_deviance.Layout:
    terms = sorted(design.terms, key=lambda t: -t.grouping.n)
    return build_layout(design.y, design.X, [t.Z for t in terms],
                        [t.grouping.codes for t in terms], [t.grouping.n for t in terms])


def dense_covariance(design: MultiDesign, covs: list[np.ndarray], sigma2: float) -> np.ndarray:
    """``V = sigma2 I + sum_k Z_k (I x Psi_k) Z_k'`` with one dense matrix per term."""
    n = len(design.y)
    V = sigma2 * np.eye(n)
    for t, psi in zip(design.terms, covs, strict=True):
        same = t.grouping.codes[:, None] == t.grouping.codes[None, :]
        V += same * (t.Z @ psi @ t.Z.T)
    return V


def dense_deviance(design: MultiDesign, covs: list[np.ndarray], sigma2: float,
                   reml: bool) -> tuple[float, np.ndarray]:
    """-2 log-likelihood (or lme4's REML criterion) and GLS beta, from dense ``V``."""
    V = dense_covariance(design, covs, sigma2)
    X, y = design.X, design.y
    Vi_X = np.linalg.solve(V, X)
    H = X.T @ Vi_X
    beta = np.linalg.solve(H, Vi_X.T @ y)
    e = y - X @ beta
    n, p = X.shape
    dev = np.linalg.slogdet(V)[1] + e @ np.linalg.solve(V, e) + n * np.log(2 * np.pi)
    if reml:
        dev += np.linalg.slogdet(H)[1] - p * np.log(2 * np.pi)
    return float(dev), beta


def relative_covs(design: MultiDesign, lay: lmm_multi_deviance.Layout,
                  theta: np.ndarray) -> list[np.ndarray]:
    """``Lambda_k Lambda_k'`` in the units of ``Z`` per term of ``design`` (input order)."""
    lam = lmm_core.lambda_matrix(theta, lay) / np.concatenate(lay.scale)[:, None]
    start = np.concatenate([[0], np.cumsum(lay.sizes)])
    blocks = [lam[a:b, a:b] @ lam[a:b, a:b].T for a, b in pairwise(start)]
    order = sorted(range(len(design.terms)), key=lambda k: -design.terms[k].grouping.n)
    out: list[np.ndarray] = [np.empty(0)] * len(order)
    for pos, k in enumerate(order):
        out[k] = blocks[pos]
    return out


CASES = {
    "nested": lambda: design_of(nested(1), NESTED_SLOPE),
    "unbalanced": lambda: design_of(nested(21, classes=6, unbalanced=True), NESTED_SLOPE),
    "crossed": lambda: design_of(crossed(2), CROSSED_SLOPE),
    "two_components": lambda: design_of(crossed(3, blocks=2), CROSSED_SLOPE),
    # classes in schools, crossed with five raters
    "three_terms": lambda: design_of(nested(4).assign(rater=lambda d: d.index % 5),
                                     [(["1"], "school/class"), (["1", "x"], "rater")]),
}
THETA = {"nested": [0.8, 0.3, 0.5, 0.6], "unbalanced": [0.8, 0.3, 0.5, 0.6],
         "crossed": [0.9, -0.2, 0.4, 0.6, 0.1, 0.3],
         "two_components": [0.9, -0.2, 0.4, 0.6, 0.1, 0.3],
         "three_terms": [0.7, 0.6, 0.2, 0.5, 0.4]}


# ----------------------------------------------------------------------------- the deviance


@pytest.mark.parametrize("reml", [False, True])
@pytest.mark.parametrize("case", sorted(CASES))
def test_profiled_deviance_equals_the_dense_likelihood(case: str, reml: bool) -> None:
    design = CASES[case]()
    lay = layout_of(design)
    theta = np.array(THETA[case])
    prof = profile(theta, lay, reml)
    # the profiled deviance is the deviance at sigma2 = pwrss / (n or n - p) and GLS beta
    sigma2 = prof.pwrss / (lay.nobs - lay.p if reml else lay.nobs)
    covs = [sigma2 * c for c in relative_covs(design, lay, theta)]
    dev, beta = dense_deviance(design, covs, sigma2, reml)
    assert prof.deviance == pytest.approx(dev, rel=1e-11)
    np.testing.assert_allclose(prof.beta, beta, rtol=1e-9)


@pytest.mark.parametrize("reml", [False, True])
@pytest.mark.parametrize("case", sorted(CASES))
def test_analytic_gradient_matches_central_differences(case: str, reml: bool) -> None:
    lay = layout_of(CASES[case]())
    theta = np.array(THETA[case])
    h = 1e-5
    numeric = [(profile(theta + h * e, lay, reml).deviance
                - profile(theta - h * e, lay, reml).deviance) / (2 * h)
               for e in np.eye(theta.size)]
    np.testing.assert_allclose(profile(theta, lay, reml).gradient, numeric, rtol=1e-6,
                               atol=1e-6)


def test_components_and_blocks_of_the_layout() -> None:
    """Classes in 12 schools: one component per school; two disjoint rater-item sets:
    two components; raters crossed with items: one. Schools with 1, 2, 3-4 and 5-6
    classes fall in four size classes, each padded to its largest school."""
    (blk,) = layout_of(design_of(nested(1), NESTED_SLOPE)).blocks
    assert blk.t1r.shape == (12, 4, 2, 1)
    (blk,) = layout_of(design_of(crossed(3, blocks=2), CROSSED_SLOPE)).blocks
    assert blk.trr.shape == (2, 2 * 7, 2 * 7)
    (blk,) = layout_of(design_of(crossed(2), CROSSED_SLOPE)).blocks
    assert blk.t1r.shape == (1, 9, 2, 2 * 7)  # the 9 raters are term 1, the larger factor
    lay = layout_of(CASES["unbalanced"]())
    assert sorted(b.t1r.shape[:2] for b in lay.blocks) == [(2, 1), (2, 2), (4, 4), (4, 6)]


def test_large_components_are_solved_one_by_one(monkeypatch: pytest.MonkeyPatch) -> None:
    lay = layout_of(CASES["two_components"]())
    theta = np.array(THETA["two_components"])
    batched = profile(theta, lay, True)
    monkeypatch.setattr(lmm_multi_deviance, "_BATCH_SOLVE_MAX", 0)
    looped = profile(theta, lay, True)
    assert looped.deviance == pytest.approx(batched.deviance, rel=1e-13)
    np.testing.assert_allclose(looped.gradient, batched.gradient, rtol=1e-9)


# ----------------------------------------------------------------------------- fits


@pytest.mark.parametrize("reml", [False, True])
def test_single_term_equals_the_two_level_fitter(reml: bool) -> None:
    data = nested(5)
    design = design_of(data, [(["1", "x"], "school")])
    t = design.terms[0]
    two_level = fit_design(Design(y=design.y, X=design.X, x_names=design.x_names, Z=t.Z,
                                  z_names=t.z_names, groups=t.grouping.codes,
                                  group_labels=np.asarray(t.grouping.labels), outcome="y",
                                  cluster="school", rows=design.rows, n_dropped=0), reml=reml)
    ours = fit_multi(design, reml=reml)
    assert ours.loglik == pytest.approx(two_level.loglik, abs=1e-7)
    np.testing.assert_allclose(ours.fixef, two_level.fixef, rtol=1e-6)
    np.testing.assert_allclose(ours.terms[0].cov, two_level.cov_re, rtol=1e-4, atol=1e-8)
    np.testing.assert_allclose(ours.terms[0].random_effects, two_level.random_effects,
                               rtol=1e-4, atol=1e-6)
    assert ours.variance_components().index.equals(two_level.variance_components().index)


@pytest.mark.parametrize("reml", [False, True])
@pytest.mark.parametrize("case", ["nested", "crossed"])
def test_fit_is_a_stationary_point_of_the_dense_likelihood(case: str, reml: bool) -> None:
    design = CASES[case]()
    fit = fit_multi(design, reml=reml)
    assert fit.converged
    covs = [t.cov.to_numpy() for t in _input_order(design, fit)]
    dev, beta = dense_deviance(design, covs, fit.sigma2, reml)
    assert fit.loglik == pytest.approx(-0.5 * dev, abs=1e-8)
    np.testing.assert_allclose(fit.fixef, beta, rtol=1e-9)
    # small changes of the variance parameters do not increase the likelihood
    for k, scale in [(0, 1.01), (0, 0.99), (1, 1.01), (1, 0.99)]:
        moved = [c * scale if j == k else c for j, c in enumerate(covs)]
        assert dense_deviance(design, moved, fit.sigma2, reml)[0] >= dev - 1e-9


def _input_order(design: MultiDesign, fit: MultiLMMResult) -> list:
    by_factor = {t.factor: t for t in fit.terms}
    return [by_factor[t.factor] for t in design.terms]


def test_units_of_y_and_x_do_not_change_the_fit() -> None:
    """``y -> 1e9 + 1e6 y`` and ``x -> 1e8 + x``: the fit is equivariant (theta the same,
    slopes and standard deviations times 1e6, ML log-likelihood minus n log 1e6); the
    working units of :mod:`.lmm_units` keep the cross-products exact enough."""
    data = crossed(19)
    specs = [(["1"], "rater"), (["1"], "item")]
    a = fit_multi(design_of(data, specs), reml=False)
    b = fit_multi(design_of(data.assign(y=1e9 + 1e6 * data["y"], x=1e8 + data["x"]), specs),
                  reml=False)
    np.testing.assert_allclose(b.theta, a.theta, rtol=1e-5)
    assert b.loglik == pytest.approx(a.loglik - a.nobs * np.log(1e6), abs=1e-5)
    np.testing.assert_allclose(b.fixef[["x", "w"]], 1e6 * a.fixef[["x", "w"]], rtol=1e-6)
    np.testing.assert_allclose(b.se[["x", "w"]], 1e6 * a.se[["x", "w"]], rtol=1e-4)
    assert b.sigma == pytest.approx(1e6 * a.sigma, rel=1e-6)


def _with_slope(data: pd.DataFrame, factor: str, seed: int) -> pd.DataFrame:
    """``data`` with a random slope of ``w`` (SD 0.6) over ``factor`` added to ``y``."""
    codes = data[factor].to_numpy()
    slopes = np.random.default_rng(seed).normal(0, 0.6, codes.max() + 1)
    return data.assign(y=data["y"] + slopes[codes] * data["w"])


@pytest.mark.parametrize("reml", [False, True])
@pytest.mark.parametrize(("data", "specs"), [
    (lambda: _with_slope(nested(3), "school", 1),
     [(["1"], "school:class"), (["1", "w"], "school")]),
    (lambda: _with_slope(crossed(4), "rater", 2), [(["1", "w"], "rater"), (["1"], "item")]),
], ids=["nested", "crossed"])
def test_badly_scaled_x_and_y_fit_as_their_well_scaled_image(
        data: Callable[[], pd.DataFrame], specs: list, reml: bool) -> None:
    """``x`` near ``3e6 +- 1e6`` and ``y`` near ``1e4``: the fit equals the fit of the
    well-scaled data (the exact inverse image, to one rounding) mapped through the
    model's equivariance (see ``test_lmm_numerics``): ``beta -> M beta + a e_0`` with
    ``M`` the change of units of ``(1, x, w)``, ``Var(beta) -> M Var(beta) M'``, variances
    times ``b^2``, ``theta`` unchanged, the ML log-likelihood minus ``n log b``, the REML
    criterion minus ``(n - p) log b + log k``.

    Both fits stop where the optimiser's projected gradient is below its tolerance, which
    pins ``theta`` to about 1e-8 absolute (observed: fixed effects 3e-8 relative at worst,
    ``theta`` and the variances 2e-7 relative, on their smallest elements); rtol 1e-6 as
    for the two-level fitter (``test_lmm_numerics``). The log-likelihood is stationary
    there (observed: 1.4e-12 at worst; abs 1e-9). Without the working units of
    :mod:`.lmm_units` the fixed effects differ by 3.5e-6.
    """
    a, b, d, k = 1e4, 25.0, 3e6, 1e6
    frame = data()
    extreme = frame.assign(x=d + k * frame["x"], y=a + b * frame["y"])
    nice = frame.assign(x=(extreme["x"] - d) / k, y=(extreme["y"] - a) / b)
    fit, ref = (fit_multi(design_of(f, specs), reml=reml) for f in (extreme, nice))
    m = np.diag([b, b / k, b])
    m[0, 1] = -d * b / k
    np.testing.assert_allclose(fit.fixef, m @ ref.fixef + [a, 0.0, 0.0], rtol=1e-6)
    vcov = m @ ref.vcov.to_numpy() @ m.T
    se = np.sqrt(np.diag(vcov))  # covariances near 0: compare them as correlations
    np.testing.assert_allclose(fit.vcov / np.outer(se, se), vcov / np.outer(se, se), atol=1e-6)
    np.testing.assert_allclose(fit.theta, ref.theta, rtol=1e-6, atol=1e-7)
    assert fit.sigma2 == pytest.approx(b**2 * ref.sigma2, rel=1e-6)
    for got, want in zip(fit.terms, ref.terms, strict=True):
        np.testing.assert_allclose(got.cov, b**2 * want.cov, rtol=1e-6, atol=1e-6 * b**2)
        np.testing.assert_allclose(got.random_effects, b * want.random_effects, rtol=1e-5,
                                   atol=1e-6 * b)
    n, p = ref.nobs, 3
    shift = (n - p) * np.log(b) + np.log(k) if reml else n * np.log(b)
    assert fit.loglik == pytest.approx(ref.loglik - shift, abs=1e-9)
    assert fit.converged and fit.boundary == ref.boundary


def test_random_effects_are_the_conditional_modes() -> None:
    design = CASES["crossed"]()
    fit = fit_multi(design)
    covs = [t.cov.to_numpy() for t in _input_order(design, fit)]
    V = dense_covariance(design, covs, fit.sigma2)
    r = np.linalg.solve(V, design.y - design.X @ fit.fixef.to_numpy())
    for t, psi, tf in zip(design.terms, covs, _input_order(design, fit), strict=True):
        # b_l = Psi Z_l' V^-1 (y - X beta), Z_l the rows of level l
        onehot = t.grouping.codes[:, None] == np.arange(t.grouping.n)
        blup = np.einsum("nl,na,n->la", onehot, t.Z, r) @ psi
        np.testing.assert_allclose(tf.random_effects.to_numpy(), blup, rtol=1e-8, atol=1e-10)


def test_row_and_term_order_do_not_change_the_fit() -> None:
    data = crossed(6)
    a = fit_multi(design_of(data, CROSSED_SLOPE))
    shuffled = data.sample(frac=1.0, random_state=6).reset_index(drop=True)
    b = fit_multi(design_of(shuffled, CROSSED_SLOPE[::-1]))
    assert b.loglik == pytest.approx(a.loglik, abs=1e-8)
    np.testing.assert_allclose(b.fixef, a.fixef, rtol=1e-6, atol=1e-7)  # optimiser tolerance
    np.testing.assert_allclose(b.theta, a.theta, rtol=1e-5, atol=1e-7)
    assert [t.factor for t in b.terms] == ["rater", "item"]  # lme4's order: most levels first


@pytest.mark.parametrize("start", [3.0, 0.1])
def test_optimum_does_not_depend_on_the_start(monkeypatch: pytest.MonkeyPatch,
                                              start: float) -> None:
    design = CASES["nested"]()
    reference = fit_multi(design)
    monkeypatch.setattr(lmm_core, "START", start)
    assert fit_multi(design).loglik == pytest.approx(reference.loglik, abs=1e-6)


def test_zero_school_variance_gives_a_boundary_fit() -> None:
    data = nested(7)
    g = data["school"].to_numpy()
    # remove the school means of y (and x): the ML school variance is 0
    data["y"] -= np.bincount(g, data["y"])[g] / np.bincount(g)[g]
    data["x"] -= np.bincount(g, data["x"])[g] / np.bincount(g)[g]
    fit = fit_multi(design_of(data, [(["1"], "school/class")], fixed=("x",)), reml=False)
    assert fit.boundary and fit.converged
    school = next(t for t in fit.terms if t.factor == "school")
    assert school.cov.iloc[0, 0] == pytest.approx(0.0, abs=1e-10)
    assert np.isfinite(fit.se).all()


# ----------------------------------------------------------------------------- result


@pytest.fixture(scope="module")
def slope_fit() -> MultiLMMResult:
    return fit_multi(design_of(nested(8), NESTED_SLOPE), reml=True)


def test_varcorr_is_laid_out_as_lme4s_as_data_frame(slope_fit: MultiLMMResult) -> None:
    vc = slope_fit.varcorr
    assert list(vc.columns) == ["grp", "var1", "var2", "vcov", "sdcor"]
    assert list(vc["grp"]) == ["school:class"] * 3 + ["school", "Residual"]
    assert list(vc["var1"]) == ["(Intercept)", "x", "(Intercept)", "(Intercept)", None]
    assert list(vc["var2"]) == [None, None, "x", None, None]
    cov = slope_fit.terms[0].cov.to_numpy()
    assert vc["sdcor"].iloc[2] == pytest.approx(cov[0, 1] / np.sqrt(cov[0, 0] * cov[1, 1]))
    assert vc["vcov"].iloc[-1] == slope_fit.sigma2


def test_variance_components_use_mitml_names(slope_fit: MultiLMMResult) -> None:
    """mitml 0.4-4 (``.getMisc.merMod``) names each group's components and gives no
    ICC when there are several grouping factors."""
    vc = slope_fit.variance_components()
    assert list(vc.index) == ["Intercept~~Intercept|school:class", "x~~x|school:class",
                              "Intercept~~x|school:class", "Intercept~~Intercept|school",
                              "Residual~~Residual"]
    assert vc["Intercept~~Intercept|school"] == slope_fit.terms[1].cov.iloc[0, 0]


def test_terms_of_one_factor_are_named_as_lme4_names_them() -> None:
    """lme4 1.1-31: ``(1 | school) + (0 + x | school)`` gives groups ``school`` and
    ``school.1`` in ``as.data.frame(VarCorr(fit))`` and one entry in ``ngrps``."""
    fit = fit_multi(design_of(nested(8), [(["1"], "school"), (["x"], "school")]))
    assert list(fit.varcorr["grp"]) == ["school", "school.1", "Residual"]
    assert list(fit.variance_components().index) == [
        "Intercept~~Intercept|school", "x~~x|school.1", "Residual~~Residual"]
    assert fit.ngroups.to_dict() == {"school": 12}


def test_result_fields(slope_fit: MultiLMMResult) -> None:
    fit = slope_fit
    assert list(fit.ngroups.items()) == [("school:class", 12 * 4), ("school", 12)]
    assert fit.terms[0].random_effects.shape == (48, 2)
    assert fit.terms[0].random_effects.index[:2].tolist() == ["0:1", "0:2"]
    assert fit.theta.shape == (4,)
    assert fit.df_complete == fit.nobs - (3 + 4 + 1)
    assert fit.reml_criterion == pytest.approx(-2 * fit.loglik) and fit.deviance is None
    assert fit.sigma == pytest.approx(np.sqrt(fit.sigma2))
    np.testing.assert_allclose(np.sqrt(np.diag(fit.vcov)), fit.se)
    text = str(fit)
    for part in ("REML", "school:class", "corr((Intercept), x) | school:class",
                 "groups: school:class, 48, school, 12", "Fixed effects:"):
        assert part in text


# ----------------------------------------------------------------------------- building designs


def test_nesting_expands_to_the_factor_and_the_interaction() -> None:
    data = nested(9)
    outer, inner = random_terms(data, [(["1"], "school/class")])
    assert (outer.factor, inner.factor) == ("school", "school:class")
    assert inner.grouping.n == len(data.groupby(["school", "class"]))
    # rows share an interaction level exactly when they share school and class
    same = inner.grouping.codes[:, None] == inner.grouping.codes
    both = ((data["school"].to_numpy()[:, None] == data["school"].to_numpy())
            & (data["class"].to_numpy()[:, None] == data["class"].to_numpy()))
    assert (same == both).all()
    (by_tuple,) = random_terms(data, [(["1"], ("school", "class"))])
    np.testing.assert_array_equal(by_tuple.grouping.codes, inner.grouping.codes)


def test_effects_put_the_intercept_first() -> None:
    data = nested(9)
    (term,) = random_terms(data, [(["x", "1"], "school")])
    assert term.z_names == ("(Intercept)", "x")
    np.testing.assert_array_equal(term.Z, np.column_stack([np.ones(len(data)), data["x"]]))


def test_multi_design_uses_the_rows_of_the_fixed_design() -> None:
    data = nested(10)
    data.index = data.index * 3 + 7  # labels, not positions
    data.loc[data.index[[2, 5]], "w"] = np.nan
    keep = data["w"].notna().to_numpy()
    fixed = Design(y=data["y"].to_numpy()[keep],
                   X=np.column_stack([np.ones(keep.sum()), data["w"][keep]]),
                   x_names=("(Intercept)", "w"), Z=np.ones((keep.sum(), 1)),
                   z_names=("(Intercept)",), groups=data["school"].to_numpy()[keep],
                   group_labels=np.arange(12), outcome="y", cluster="school",
                   rows=data.index[keep], n_dropped=2)
    design = multi_design(fixed, data, NESTED_SLOPE)
    np.testing.assert_array_equal(design.terms[0].Z[:, 1], data["x"].to_numpy()[keep])
    assert design.n_dropped == 2 and len(design.terms) == 2
    fit = fit_multi(design)
    assert fit.nobs == keep.sum() and fit.n_dropped == 2


def test_fit_arrays_takes_any_level_labels() -> None:
    data = crossed(11)
    X = np.column_stack([np.ones(len(data)), data["x"]])
    by_frame = fit_multi(design_of(data, [(["1"], "rater"), (["1"], "item")], fixed=("x",)))
    by_arrays = fit_arrays(data["y"].to_numpy(), X,
                           [(np.ones(len(data)), "r" + data["rater"].astype(str)),
                            (np.ones((len(data), 1)), data["item"].to_numpy() * 10.0)],
                           x_names=["(Intercept)", "x"])
    assert by_arrays.loglik == pytest.approx(by_frame.loglik, abs=1e-9)
    assert [t.factor for t in by_arrays.terms] == ["g1", "g2"]
    assert by_arrays.terms[1].z_names == ("z1",)


# ----------------------------------------------------------------------------- bad input


def test_missing_grouping_values_name_the_column_and_the_rows() -> None:
    data = nested(12).astype({"class": float})
    data.loc[[3, 8, 9], "class"] = np.nan
    with pytest.raises(DataError, match=r"'class' has 3 missing values"):
        random_terms(data, [(["1"], "school/class")])


@pytest.mark.parametrize(("column", "value", "message"), [
    ("x", np.nan, r"random-effect column 'x' has 1 missing or infinite"),
    ("x", "a", r"random-effect column 'x' has dtype object"),
])
def test_bad_random_effect_columns_raise_data_error(column: str, value: object,
                                                    message: str) -> None:
    data = nested(13).astype({column: object if isinstance(value, str) else float})
    data.loc[4, column] = value
    with pytest.raises(DataError, match=message):
        random_terms(data, NESTED_SLOPE)


@pytest.mark.parametrize(("specs", "message"), [
    ([(["1", "xx"], "school")], r"random-effect column 'xx' is not in the data; did you mean"),
    ([(["1"], "shcool")], r"cluster variable 'shcool' is not in the data"),
    ([([], "school")], "has no effect"),
    ([], "no random-effects term"),
])
def test_bad_term_specifications_raise_data_error(specs: list, message: str) -> None:
    with pytest.raises(DataError, match=message):
        random_terms(nested(14), specs)


def test_a_factor_with_one_level_raises_data_error() -> None:
    data = crossed(15).assign(site=1)
    with pytest.raises(DataError, match=r"grouping factor 'site' has 1 cluster"):
        fit_multi(design_of(data, [(["1"], "rater"), (["1"], "site")]))


def test_more_random_effects_than_rows_in_a_term_raises_data_error() -> None:
    data = nested(16)
    data["pupil"] = np.arange(len(data))
    with pytest.raises(DataError, match=r"number of observations \(\d+\) <= number of random"):
        fit_multi(design_of(data, [(["1"], "pupil"), (["1"], "school")]))


def test_rank_deficient_term_names_its_factor() -> None:
    data = nested(17).assign(x2=lambda d: 2 * d["x"])
    with pytest.raises(DataError, match=r"term for 'school' is rank deficient .* x"):
        fit_multi(design_of(data, [(["1", "x", "x2"], "school"), (["1"], "school:class")]))


def test_duplicate_index_raises_data_error() -> None:
    data = nested(18)
    data.index = np.zeros(len(data), dtype=int)
    fixed = Design(y=data["y"].to_numpy(), X=np.ones((len(data), 1)), x_names=("(Intercept)",),
                   Z=np.ones((len(data), 1)), z_names=("(Intercept)",),
                   groups=data["school"].to_numpy(), group_labels=np.arange(12), outcome="y",
                   cluster="school", rows=data.index, n_dropped=0)
    with pytest.raises(DataError, match="duplicate labels"):
        multi_design(fixed, data, NESTED_SLOPE)
