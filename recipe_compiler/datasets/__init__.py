"""Bundled data sets."""

from __future__ import annotations

from importlib import resources

import pandas as pd

from .fimd import FIMD_7_10, BookExample, fimd_example

__all__ = ["FIMD_7_10", "BookExample", "fimd_example", "load_brandsma"]


def load_brandsma() -> pd.DataFrame:
    """Load the ``brandsma`` data: 4106 pupils in 216 schools, 14 columns.

    The data of Snijders and Bosker (2012), chapters 4-5, as distributed with
    the R package mice 3.15.0 and used in FIMD section 7.10. Written from R with
    ``write.csv(brandsma, row.names = FALSE, na = "")``.

    Returns
    -------
    pandas.DataFrame
        Columns ``sch`` (school id), ``pup``, ``iqv``, ``iqp``, ``sex``, ``ses``,
        ``min``, ``rpg``, ``lpr``, ``lpo``, ``apr``, ``apo``, ``den`` (1-4, level 2)
        and ``ssi`` (level 2). Missing values are NaN; complete integer columns
        are ``int64``, incomplete integer-coded ones ``float64`` holding whole
        numbers.
    """
    with resources.files(__package__).joinpath("brandsma.csv").open("r") as fh:
        return pd.read_csv(fh)
