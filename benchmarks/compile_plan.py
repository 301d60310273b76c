"""Time ``rc.compile`` of the FIMD section 7.10.7 model on the brandsma data.

Run from the repository root, with the package installed (``pip install -e .``) or on
the path::

    PYTHONPATH=. python3 benchmarks/compile_plan.py [--repeat 50]

Prints the median wall time of one compile in milliseconds (target: well under 100 ms).
"""

from __future__ import annotations

import argparse
import statistics
import time

import recipe_compiler as rc

F7107 = ("lpo ~ iqv*ses + cm(iqv)*cm(ses) + iqv*cm(iqv) + iqv*cm(ses) + ses*cm(iqv) "
         "+ ses*cm(ses) + (1 + ses + iqv | sch)")
OPTIONS = {"interactions": "implied", "centering": "none", "random_slopes": "means_only"}


def time_compile(repeat: int = 50) -> list[float]:
    """Wall times (seconds) of ``repeat`` compiles of the 7.10.7 model, after one warm-up.

    Parameters
    ----------
    repeat : int
        Number of timed compiles.

    Returns
    -------
    list of float
    """
    data = rc.datasets.load_brandsma()
    rc.compile(F7107, data, **OPTIONS)
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        rc.compile(F7107, data, **OPTIONS)
        times.append(time.perf_counter() - start)
    return times


def main() -> None:
    """Print the median compile time in milliseconds."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=50)
    args = parser.parse_args()
    times = time_compile(args.repeat)
    print(f"rc.compile FIMD 7.10.7 on brandsma: median {statistics.median(times) * 1e3:.2f} ms "
          f"over {args.repeat} runs (min {min(times) * 1e3:.2f} ms)")


if __name__ == "__main__":
    main()
