"""Vectorised predictive mean matching (the donor search of mice's ``matchindex``).

For every target prediction the ``k`` observed rows whose predictions are
nearest are found, and one of them is drawn uniformly, as in mice (van Buuren
2018, sec. 3.4). In sorted order the ``k`` nearest donors of a target form a
contiguous block that starts at most ``k`` places before the target's
insertion point; its start is found by ``k`` vectorised comparisons, so there
is no Python loop over rows. When some donors' predictions are tied, the
donors are shuffled and sorted again, so tied donors are chosen at random
rather than in data order, as mice does (a sort never tells tied values apart,
so after a uniform shuffle their order is uniform whether or not the sort is
stable; the default introsort is about twice as fast as the stable one on
fresh data). Without ties the sorted order is unique and no shuffle is needed,
which saves a third of the donor search on large data (:data:`SHUFFLE_ALWAYS`).
"""

from __future__ import annotations

import numpy as np

#: Up to this many donors they are always shuffled before sorting; above it only when
#: their predictions have ties (found by sorting them first): the shuffle is then
#: the dearest step, and continuous predictions have no ties.
SHUFFLE_ALWAYS = 50_000
#: Above this many targets, they are sorted before the binary search (it then walks
#: the donors in order: fewer cache misses, about 8x faster at 200,000 targets).
SORT_TARGETS = 2000


def match_donors(yhat_donors: np.ndarray, yhat_targets: np.ndarray, donors: int,
                 rng: np.random.Generator) -> np.ndarray:
    """Index of one randomly chosen near donor for each target.

    Parameters
    ----------
    yhat_donors : ndarray, shape (n1,)
        Predictions of the donor (observed) rows; ``n1 >= 1``.
    yhat_targets : ndarray, shape (n0,)
        Predictions of the target (missing) rows.
    donors : int
        Size ``k`` of the donor pool, clipped to ``1 .. n1``.
    rng : numpy.random.Generator

    Returns
    -------
    ndarray of int, shape (n0,)
        Positions in ``yhat_donors``; each drawn uniformly from the ``k``
        donors nearest (in absolute difference) to the target.
    """
    return match_donors_batch(yhat_donors[None], yhat_targets[None], donors, [rng])[0]


def match_donors_batch(yhat_donors: np.ndarray, yhat_targets: np.ndarray, donors: int,
                       rngs: list[np.random.Generator]) -> np.ndarray:
    """:func:`match_donors` for a batch of chains: predictions ``(C, n1)`` and ``(C, n0)``,
    chain ``c`` drawing from ``rngs[c]``; returns ``(C, n0)`` donor positions.

    Chain by chain: the work is a sort per chain, which batching does not speed up.
    """
    n1 = yhat_donors.shape[1]
    k = int(min(max(donors, 1), n1))
    out = np.empty(yhat_targets.shape, dtype=np.intp)
    steps = np.arange(k)
    padded = np.empty(n1 + 2 * k)  # k infinities at each end stand in for the bounds
    padded[:k], padded[n1 + k:] = -np.inf, np.inf
    ranked = padded[k:n1 + k]
    for c, rng in enumerate(rngs):
        order = None if n1 <= SHUFFLE_ALWAYS else np.argsort(yhat_donors[c])
        if order is not None:
            np.take(yhat_donors[c], order, out=ranked)
        if order is None or np.any(ranked[1:] == ranked[:-1]):  # ties: shuffle, then sort
            shuffle = rng.permutation(n1)
            order = shuffle[np.argsort(yhat_donors[c, shuffle])]
            np.take(yhat_donors[c], order, out=ranked)
        targets = yhat_targets[c]
        if len(targets) > SORT_TARGETS:
            sort = np.argsort(targets)
            start = np.empty(len(targets), dtype=np.intp)
            start[sort] = np.searchsorted(ranked, targets[sort])
        else:
            start = np.searchsorted(ranked, targets)
        # Block [s, s + k) beats [s + 1, s + k + 1) unless its left end is farther than
        # the next one on the right (-inf left of the donors: a block starting before
        # them always moves; +inf right of them: a block ending at the last never does);
        # the comparison is monotone in s, so the best start is start - k + #moves.
        shifts = start[:, None] + steps  # (start - k + i) + k: a position in padded
        column = targets[:, None]
        move = column - padded[shifts] > padded[shifts + k] - column
        first = start - k + np.count_nonzero(move, axis=1)
        out[c] = order[first + rng.integers(k, size=len(targets))]
    return out
