"""Progress lines of long runs: what ``verbose`` means in every estimator and function.

``verbose=0`` prints nothing; ``verbose=v > 0`` prints one line every ``v`` iterations
(sweeps, steps), flushed, in the form ``[Name] iteration 12: objective 3.5e+02, ...``.
"""

__all__ = ["progress_printer"]


def progress_printer(verbose, label, fields, *, unit="iteration"):
    """A callback ``report(n_iter, *values)`` printing every ``verbose``-th iteration, or
    None when ``verbose`` is 0 (the solvers then skip the call).

    ``fields`` pairs each value with its name and format, e.g.
    ``[("objective", ".6g"), ("centre shift", ".3e")]``; a format of ``"d"`` prints an
    integer.
    """
    if not verbose:
        return None
    every = max(1, int(verbose))

    def report(n_iter, *values):
        if n_iter % every:
            return
        parts = ", ".join(
            f"{name} {value:{spec}}" for (name, spec), value in zip(fields, values, strict=True)
        )
        print(f"[{label}] {unit} {n_iter}: {parts}", flush=True)

    return report
