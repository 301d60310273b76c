"""The units the LMM fitter works in: centred and scaled ``X`` and ``y``, and the way back.

The profiled deviance is computed from cross-products of ``[Z X y]``. With ``y`` near ``1e9
± 1`` (or ``5 + 1e-10 e``) the cross-product ``y'y`` keeps none of the digits of the spread
of ``y``, and with ``x`` near ``1e8 + N(0, 1)`` the columns ``1`` and ``x`` are parallel to 16
digits; the factorisations then fail or call the design rank deficient. The fitter
therefore works with

    ``y* = (y - c) / s_y`` and ``X* = X A``, i.e. ``x*_j = (x_j - mu_j) / s_j``,

where ``c`` and ``mu_j`` are means when ``X`` has an intercept (a column of ones, kept as
it is: ``mu = 0``, ``s = 1`` there) and 0 otherwise, and ``s_y``, ``s_j`` are root mean
squares after centring, rounded to powers of two so that scaling is exact in floating
point (it may then be applied to the cross-products instead of the data). ``Z`` is not
changed here. The two-level LMM fitter scales its cross-products (:func:`centring`,
:func:`working_units`); the multi-term LMM fitter and, for ``X``, the logistic GLMM fitter
scale the data (:func:`working_arrays`).

The model is equivariant under this change of units. With ``beta*``, ``sigma*^2``,
``b*`` fitted on ``(y*, X*)`` and ``e_0`` the unit vector of the intercept:

* ``beta = s_y A beta* + c e_0``, ``Var(beta) = s_y^2 A Var(beta*) A'``;
* ``sigma^2 = s_y^2 sigma*^2``, ``b = s_y b*``, and ``theta`` (relative to ``sigma``)
  is unchanged;
* ML: ``log L = log L* - n log s_y``, the Jacobian of ``y -> y*``;
* REML: lme4's criterion contains ``log|X' V^-1 X|``, which changes with the units of
  ``X`` by ``2 log|det A|``, and ``log|det A| = -sum_j log s_j`` (``A`` is diagonal
  but for the intercept's row); so ``log L_R = log L_R* - (n - p) log s_y - sum_j log
  s_j``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from ..errors import DataError
from .design import Design

__all__ = ["WorkingUnits", "centring", "working_arrays", "working_units"]

_MIN_SQUARE, _MAX_SQUARE = 2.0 ** -1000, 2.0 ** 1000
"""The range of mean squares of a centred column that the fitter accepts: beyond it,
cross-products of the data underflow or overflow."""

_EPS = float(np.finfo(float).eps)


@dataclass(frozen=True, eq=False)
class WorkingUnits:
    """The affine change of units of ``X`` and ``y`` and the map of estimates back.

    Attributes
    ----------
    x_shift, x_scale : numpy.ndarray, shape (p,)
        ``mu`` and ``s`` (0 and 1 for the intercept column).
    y_shift, y_scale : float
        ``c`` and ``s_y``.
    intercept : int or None
        The column of ``X`` that is all ones, if any.
    """

    x_shift: np.ndarray
    x_scale: np.ndarray
    y_shift: float
    y_scale: float
    intercept: int | None

    @property
    def x_map(self) -> np.ndarray:
        """``A``, shape ``(p, p)``, with ``X* = X A``: ``diag(1 / s)`` less ``mu / s`` in the
        intercept's row. Coefficients ``beta*`` of ``X*`` are ``beta = A beta*`` of ``X``."""
        a = np.diag(1.0 / self.x_scale)
        if self.intercept is not None:
            a[self.intercept] -= self.x_shift / self.x_scale
        return a

    def fixef(self, beta: np.ndarray, vcov: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Fixed effects and their covariance matrix in the original units."""
        a = self.x_map
        out = self.y_scale * beta / self.x_scale
        if self.intercept is not None:
            out[self.intercept] = self.y_scale * beta[self.intercept] + self.y_shift - (
                self.x_shift @ out)
        return out, self.y_scale ** 2 * (a @ vcov @ a.T)

    def deviance_offset(self, nobs: int, reml: bool) -> float:
        """What turns lme4's ML or REML deviance in working units into that in the original
        units: ``2 n log s_y`` (ML) or ``2 (n - p) log s_y + 2 sum_j log s_j`` (REML)."""
        if not reml:
            return 2.0 * nobs * math.log(self.y_scale)
        logs = [math.log(s) for s in self.x_scale.tolist()]
        return 2.0 * (nobs - len(logs)) * math.log(self.y_scale) + 2.0 * math.fsum(logs)


def centring(X: np.ndarray, sums: np.ndarray) -> tuple[np.ndarray, int | None]:
    """The shifts ``(mu, c)`` of the columns of ``[X y]`` and the intercept column of ``X``.

    Parameters
    ----------
    X : numpy.ndarray, shape (n, p)
    sums : numpy.ndarray, shape (p + 1,)
        The column sums of ``[X y]``.

    Returns
    -------
    shift : numpy.ndarray, shape (p + 1,)
        The column means when ``X`` has a column of ones (0 for that column), else 0.
    intercept : int or None
        The first column of ``X`` that is all ones.
    """
    n = X.shape[0]
    for j in np.flatnonzero(X[0] == 1.0):
        if sums[j] == n and (X[:, j] == 1.0).all():
            shift = sums / n
            shift[j] = 0.0
            return shift, int(j)
    return np.zeros_like(sums), None


def working_arrays(design: Design) -> tuple[WorkingUnits, np.ndarray, np.ndarray]:
    """``X`` and ``y`` of ``design`` in working units, and the units.

    The fitters that work with the data rather than with their cross-products (the
    multi-term LMM, the logistic GLMM for ``X``) use this; centring and then scaling by
    powers of two is exact but for the rounding of the centring.

    Returns
    -------
    units : WorkingUnits
    X : numpy.ndarray, shape (n, p)
        ``X*``.
    y : numpy.ndarray, shape (n,)
        ``y*``.

    Raises
    ------
    DataError
        As :func:`working_units`.
    """
    n, p = design.X.shape
    xy = np.column_stack([design.X, design.y])
    shift, intercept = centring(design.X, np.ones(n) @ xy)
    xy -= shift
    with np.errstate(over="ignore", under="ignore"):  # out-of-range data: see working_units
        mean_squares = np.einsum("ij,ij->j", xy, xy) / n
    units = working_units(design, shift, intercept, mean_squares)
    xy /= np.concatenate([units.x_scale, [units.y_scale]])
    return units, xy[:, :p], xy[:, p]


def working_units(design: Design, shift: np.ndarray, intercept: int | None,
                  mean_squares: np.ndarray) -> WorkingUnits:
    """The working units, given the shifts and the mean squares of the shifted ``[X y]``.

    The scales are ``2^floor(e / 2)`` for mean squares in ``[2^(e - 1), 2^e)``:
    the root mean squares in working units lie in ``[2^-0.5, 2^0.5)``.

    Raises
    ------
    DataError
        A column of ``X`` other than the intercept is constant (aliased with it),
        or the spread of a column of ``[X y]`` lies outside ``2^-500 .. 2^500``
        (about ``1e-150 .. 1e150``), where its squares leave the floating-point range.
    """
    p = shift.shape[0] - 1
    squares, shifts = mean_squares.tolist(), shift.tolist()  # p + 1 numbers: plain floats
    # a constant column centres to the rounding error of its mean, up to n eps |mean|
    rounding = design.y.shape[0] * _EPS
    if not all(_MIN_SQUARE <= v <= _MAX_SQUARE and math.sqrt(v) > rounding * abs(c)
               for v, c in zip(squares, shifts, strict=True)):
        _check_magnitudes(design, intercept, squares)
    scale = [math.ldexp(1.0, math.frexp(v)[1] // 2) for v in squares]  # 1 for a zero square
    return WorkingUnits(x_shift=shift[:p], x_scale=np.array(scale[:p]), y_shift=shifts[p],
                        y_scale=scale[p], intercept=intercept)


def _check_magnitudes(design: Design, intercept: int | None, squares: list[float]) -> None:
    """Raise for the constant (but not all-zero) columns of ``[X y]`` when ``X`` has an
    intercept, and for the others whose mean square ``squares`` is out of range; all-zero
    columns are left to the rank check."""
    constant, extreme = [], []
    names = (*design.x_names, design.outcome)
    for j, square in enumerate(squares):
        values = design.X[:, j] if j < len(design.x_names) else design.y
        if (values == values[0]).all():
            if values[0] != 0.0 and intercept is not None and j != intercept:
                constant.append(names[j])
        elif not _MIN_SQUARE <= square <= _MAX_SQUARE:
            extreme.append(names[j])
    if constant:
        raise DataError(f"fixed-effects design X is rank deficient: columns {', '.join(constant)}"
                        " are constant, i.e. multiples of the intercept: drop them")
    if extreme:
        raise DataError(f"cannot fit {', '.join(repr(e) for e in extreme)}: the spread of its "
                        "values (root mean square after centring) must lie between 1e-150 and "
                        "1e150; rescale it")
