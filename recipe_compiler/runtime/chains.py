"""Running m independent chains, in this process or on any Executor.

Each chain gets its own child of ``numpy.random.SeedSequence(seed)``, so the
result does not depend on where or in which order chains run: ``n_jobs=1``,
a process pool, or a Dask/Ray ``concurrent.futures.Executor`` give the same
imputations. The chains are split into one contiguous batch per worker; a
batch runs in lockstep (:func:`~.gibbs.run_batch`), and the problem is sent
once per batch, not once per chain.
"""

from __future__ import annotations

import itertools
import os
import sys
from collections.abc import Callable
from concurrent.futures import FIRST_EXCEPTION, Executor, Future, ProcessPoolExecutor, wait

import numpy as np

from ..errors import OptionError
from .gibbs import ChainResult, run_batch
from .problem import Problem


def chain_seeds(seed: int | np.random.SeedSequence | None, m: int) -> list[np.random.SeedSequence]:
    """The m chains' seeds: children of one SeedSequence."""
    root = seed if isinstance(seed, np.random.SeedSequence) else np.random.SeedSequence(seed)
    return root.spawn(m)


def available_cpus() -> int:
    """The CPUs this process may run on (its affinity mask where the OS has one)."""
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1  # pragma: no cover - platforms without affinity masks


def worker_count(n_jobs: object, m: int) -> int:
    """The processes to start for ``m`` chains: ``min(n_jobs, m, available_cpus())``.

    Parameters
    ----------
    n_jobs : int
        A positive number of processes, or joblib's convention for negative
        values: ``-1`` all CPUs, ``-2`` all but one, ``-k`` all but ``k - 1``
        (at least one).
    m : int
        Number of chains (at least 1).

    Raises
    ------
    OptionError
        ``n_jobs`` is 0, not an integer, or a bool.
    """
    if isinstance(n_jobs, bool) or not isinstance(n_jobs, (int, np.integer)) or n_jobs == 0:
        raise OptionError(f"n_jobs={n_jobs!r} is not valid; use a positive integer (number of "
                          "processes), -1 for all CPUs or -k for all but k - 1")
    cpus = available_cpus()
    wanted = int(n_jobs) if n_jobs > 0 else max(cpus + 1 + int(n_jobs), 1)
    return max(min(wanted, m, cpus), 1)


#: A batch: ``batch(problem, maxit, seeds, donors, on_iteration) -> list[ChainResult]``.
BatchFunction = Callable[..., list[ChainResult]]


def run_chains(problem: Problem | object, *, m: int, maxit: int,
               seed: int | np.random.SeedSequence | None, donors: int = 5, n_jobs: int = 1,
               executor: Executor | None = None, progress: bool = False,
               batch: BatchFunction | None = None) -> list[ChainResult]:
    """Run m chains and return their results in chain order.

    Parameters
    ----------
    problem : Problem
        What ``batch`` runs on (the model-based sampler passes its own problem).
    m, maxit : int
    seed : int, SeedSequence or None
    donors : int
    n_jobs : int
        Processes to use when no ``executor`` is given, capped by
        :func:`worker_count` at ``m`` and the available CPUs (one: this process).
    executor : concurrent.futures.Executor, optional
        Where to run the chains (takes precedence over ``n_jobs``): one task per
        worker of the executor (:func:`executor_workers`), each a batch of chains.
    progress : bool
        Show a progress bar on stderr (needs tqdm; silently plain otherwise).
    batch : callable, optional
        Runs a batch of chains (in lockstep) in one worker; ``None``: the FCS
        batch :func:`~.gibbs.run_batch`.
    """
    run: BatchFunction = run_batch if batch is None else batch
    seeds = chain_seeds(seed, m)
    workers = worker_count(n_jobs, m) if executor is None else executor_workers(executor, m)
    bar = _progress_bar(m * max(maxit, 1) if executor is None and workers == 1 else m, progress)
    try:
        if executor is None and workers == 1:
            out = run(problem, maxit, seeds, donors, (lambda: bar(1)) if maxit else None)
            if not maxit:
                bar(m)
            return out
        batches = split(seeds, workers)
        if executor is not None:
            return _collect(executor, run, problem, maxit, batches, donors, bar, cancel=True)
        pool = ProcessPoolExecutor(max_workers=workers)
        try:
            return _collect(pool, run, problem, maxit, batches, donors, bar, cancel=False)
        except BaseException:
            _stop(pool)
            raise
        finally:
            pool.shutdown(wait=True)
    finally:
        bar(0)


def split(seeds: list[np.random.SeedSequence], parts: int) -> list[list[np.random.SeedSequence]]:
    """``seeds`` in ``parts`` contiguous batches of near-equal size (none empty)."""
    parts = max(min(parts, len(seeds)), 1)
    bounds = np.linspace(0, len(seeds), parts + 1).round().astype(int)
    return [seeds[a:b] for a, b in itertools.pairwise(bounds)]


def executor_workers(executor: Executor, m: int) -> int:
    """How many batches to submit to ``executor``: its worker count where it tells
    (``_max_workers`` of the standard library's pools, the workers' threads of a
    Dask ``ClientExecutor``), else one batch per chain; at most ``m``."""
    count = getattr(executor, "_max_workers", None)
    client = getattr(executor, "_client", None)
    if count is None and client is not None and callable(getattr(client, "nthreads", None)):
        count = sum(client.nthreads().values())
    return max(min(int(count) if count else m, m), 1)


def _collect(executor: Executor, batch: BatchFunction, problem: Problem | object, maxit: int,
             batches: list[list[np.random.SeedSequence]], donors: int,
             bar: Callable[[int], None], cancel: bool) -> list[ChainResult]:
    """Submit one task per batch and return the chains' results in chain order.

    The first batch to fail (or a KeyboardInterrupt while waiting) raises at
    once; with ``cancel``, the batches not yet started are then cancelled.
    """
    futures = [executor.submit(batch, problem, maxit, b, donors) for b in batches]
    sizes = {id(f): len(b) for f, b in zip(futures, batches, strict=True)}
    try:
        if all(isinstance(f, Future) for f in futures):
            pending: set[Future[list[ChainResult]]] = set(futures)
            while pending:
                done, pending = wait(pending, return_when=FIRST_EXCEPTION)
                for f in done:
                    f.result()  # raises the batch's error without waiting for the others
                    bar(sizes[id(f)])
            return [r for f in futures for r in f.result()]
        out = []
        for f in futures:
            out.extend(f.result())
            bar(sizes[id(f)])
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
