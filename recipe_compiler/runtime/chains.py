"""Running m independent chains, in this process or on any Executor.

Each chain gets its own child of ``numpy.random.SeedSequence(seed)``, so the
result does not depend on where or in which order chains run: ``n_jobs=1``,
a process pool, or a Dask/Ray ``concurrent.futures.Executor`` give the same
imputations.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from concurrent.futures import FIRST_EXCEPTION, Executor, Future, ProcessPoolExecutor, wait

import numpy as np

from .gibbs import ChainResult, run_chain
from .problem import Problem


def chain_seeds(seed: int | np.random.SeedSequence | None, m: int) -> list[np.random.SeedSequence]:
    """The m chains' seeds: children of one SeedSequence."""
    root = seed if isinstance(seed, np.random.SeedSequence) else np.random.SeedSequence(seed)
    return root.spawn(m)


def run_chains(problem: Problem, *, m: int, maxit: int,
               seed: int | np.random.SeedSequence | None, donors: int = 5, n_jobs: int = 1,
               executor: Executor | None = None, progress: bool = False) -> list[ChainResult]:
    """Run m chains and return their results in chain order.

    Parameters
    ----------
    problem : Problem
    m, maxit : int
    seed : int, SeedSequence or None
    donors : int
    n_jobs : int
        Processes to use when no ``executor`` is given (1: this process).
    executor : concurrent.futures.Executor, optional
        Where to run the chains (takes precedence over ``n_jobs``).
    progress : bool
        Show a progress bar on stderr (needs tqdm; silently plain otherwise).
    """
    seeds = chain_seeds(seed, m)
    bar = _progress_bar(m * max(maxit, 1) if executor is None and n_jobs == 1 else m, progress)
    try:
        if executor is None and n_jobs == 1:
            tick = (lambda: bar(1)) if maxit else None
            out = []
            for s in seeds:
                out.append(run_chain(problem, maxit, s, donors, tick))
                if not maxit:
                    bar(1)
            return out
        if executor is not None:
            return _collect(executor, problem, maxit, seeds, donors, bar, cancel=True)
        pool = ProcessPoolExecutor(max_workers=n_jobs)
        try:
            return _collect(pool, problem, maxit, seeds, donors, bar, cancel=False)
        except BaseException:
            _stop(pool)
            raise
        finally:
            pool.shutdown(wait=True)
    finally:
        bar(0)


def _collect(executor: Executor, problem: Problem, maxit: int,
             seeds: list[np.random.SeedSequence], donors: int,
             bar: Callable[[int], None], cancel: bool) -> list[ChainResult]:
    """Submit the chains and return their results in chain order.

    The first chain to fail (or a KeyboardInterrupt while waiting) raises at
    once; with ``cancel``, the chains not yet started are then cancelled.
    """
    futures = [executor.submit(run_chain, problem, maxit, s, donors) for s in seeds]
    try:
        if all(isinstance(f, Future) for f in futures):
            pending: set[Future[ChainResult]] = set(futures)
            while pending:
                done, pending = wait(pending, return_when=FIRST_EXCEPTION)
                for f in done:
                    f.result()  # raises the chain's error without waiting for the others
                    bar(1)
            return [f.result() for f in futures]
        out = []
        for f in futures:
            out.append(f.result())
            bar(1)
        return out
    except BaseException:
        if cancel:
            for f in futures:
                f.cancel()
        raise


def _stop(pool: ProcessPoolExecutor) -> None:
    """Cancel the queued chains and terminate the running ones after an error or interrupt.

    Best effort, through the pool's private attributes (there is no public API
    to stop running work): the pool's manager thread joins the terminated
    workers, so no process is left behind.
    """
    workers = list((getattr(pool, "_processes", None) or {}).values())
    manager = getattr(pool, "_executor_manager_thread", None)
    pool.shutdown(wait=False, cancel_futures=True)
    for w in workers:
        if w.exitcode is None:
            w.terminate()
    if manager is not None:
        manager.join()


def _progress_bar(total: int, enabled: bool) -> Callable[[int], None]:
    """``bar(k)`` advances by k; ``bar(0)`` closes. A no-op when disabled."""
    if not enabled:
        return lambda k: None
    try:
        from tqdm import tqdm
    except ImportError:  # pragma: no cover - tqdm is an optional extra
        return lambda k: None
    t = tqdm(total=total, desc="imputing", file=sys.stderr, leave=False)

    def bar(k: int) -> None:
        if k:
            t.update(k)
        else:
            t.close()

    return bar
