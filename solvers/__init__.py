"""Numerical cores of clusterlab: pure functions over arrays.

Installed as ``clusterlab.solvers``. The caller validates: parameters, dtypes and
contiguity, NaN and inf, label encodings are checked by the estimators and functions of
:mod:`clusterlab`, the entry points to use. A solver raises only on what its own
arguments or arithmetic reveal: an argument inconsistent with another (rows that do not
split into the stated problems, an unknown kind), distances or energies that overflow the
floating-point range, a first iterate that is not finite.

NumPy input runs Numba kernels; other array-API arrays (PyTorch, CuPy) run code written
against the standard, through :mod:`._backend`.
"""
