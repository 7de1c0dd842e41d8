"""Running an experiment's fits one after another, in parallel, or on a Dask cluster.

An experiment draws every seed up front and lists its fits as tasks; :func:`run_tasks`
runs them through joblib and yields each result with its task's index as it finishes,
so the experiment files it where it belongs: the tables do not depend on the order in
which fits finish, nor on where they ran. ``n_jobs`` follows joblib (None: one at a time
in this process, unless a ``joblib.parallel_config`` context says otherwise); inside
``joblib.parallel_config(backend="dask")`` (a ``distributed.Client`` connected) the fits
run on the Dask cluster's workers.
"""

from __future__ import annotations

from numbers import Integral


def check_n_jobs(n_jobs):
    """``n_jobs``: None, a positive integer or -1 (every CPU)."""
    if n_jobs is None:
        return None
    if (
        isinstance(n_jobs, bool)
        or not isinstance(n_jobs, Integral)
        or not (n_jobs >= 1 or n_jobs == -1)
    ):
        raise ValueError(
            f"n_jobs must be None, a positive integer or -1 (every CPU), got {n_jobs!r}."
        )
    return int(n_jobs)


def _indexed(index, function, task):
    return index, function(*task)


def run_tasks(function, tasks, *, n_jobs=None):
    """``function(*task)`` for every task; yields ``(index, result)`` as each finishes.

    One at a time in this process (``n_jobs`` None or 1, no joblib context), the results
    come in task order, each as soon as it is computed; in parallel, in the order they
    finish. ``function`` must be picklable (a module-level function) for the parallel
    backends.
    """
    from joblib import Parallel, delayed

    jobs = (delayed(_indexed)(index, function, task) for index, task in enumerate(tasks))
    try:
        parallel = Parallel(n_jobs=n_jobs, return_as="generator_unordered")
    except ValueError:  # a backend that returns lists only (multiprocessing)
        parallel = Parallel(n_jobs=n_jobs)
    yield from parallel(jobs)
