"""mice's predictor-matrix codes, as an enum, and what each means."""

from __future__ import annotations

from enum import IntEnum


class Code(IntEnum):
    """How a predictor enters the imputation model of a target (mice's codes).

    An :class:`~enum.IntEnum`: plans and specs store the plain integers.
    """

    CLUSTER = -2
    UNUSED = 0
    FIXED = 1
    RANDOM = 2
    FIXED_MEAN = 3
    RANDOM_MEAN = 4

    @property
    def meaning(self) -> str:
        """One line on what the code does."""
        return _MEANINGS[self]

    @property
    def with_mean(self) -> bool:
        """The predictor's cluster mean enters too (codes 3 and 4)."""
        return self in (Code.FIXED_MEAN, Code.RANDOM_MEAN)

    @property
    def random(self) -> bool:
        """The predictor has a random slope (codes 2 and 4)."""
        return self in (Code.RANDOM, Code.RANDOM_MEAN)


_MEANINGS = {Code.CLUSTER: "cluster variable", Code.UNUSED: "not used",
             Code.FIXED: "fixed effect", Code.RANDOM: "fixed + random effect",
             Code.FIXED_MEAN: "fixed effect + cluster mean",
             Code.RANDOM_MEAN: "fixed effect + cluster mean + random slope"}

#: mice's predictor-matrix codes and what they mean, as a plain dict.
CODES: dict[int, str] = {int(c): c.meaning for c in Code}
