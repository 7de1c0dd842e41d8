"""Numerical cores of clusterlab: pure functions over validated arrays.

Installed as ``clusterlab.solvers``. No parameter validation happens here; use the
estimators and functions of :mod:`clusterlab` for checked entry points.
"""
