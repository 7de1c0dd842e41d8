"""The clustering methods the recovery experiments compare, by name.

Each method is a function ``(X, n_clusters, seed, sdp_solver) -> labels``. Warnings raised
while fitting (a ``ConvergenceWarning`` of EM, say) are counted by :func:`run_method`
rather than raised, so that one non-converged fit among hundreds does not stop an
experiment; the counts are part of the results.
"""

from __future__ import annotations

import time
import warnings

import numpy as np
from sklearn.cluster import KMeans
from sklearn.mixture import GaussianMixture

from clusterlab.metrics import misclustering_error


def _sdp(X, n_clusters, seed, sdp_solver):
    from clusterlab.sdp import SDPKMeans

    # the labels are scored against the truth: no certificate or rank escalation needed
    model = SDPKMeans(n_clusters, solver=sdp_solver, gap_tol=np.inf, random_state=seed)
    return model.fit(X).labels_


def _ila_sdp(X, n_clusters, seed, sdp_solver):
    from clusterlab.sdp import ILASDP

    model = ILASDP(n_clusters, covariance_type="full", solver=sdp_solver, random_state=seed)
    return model.fit(X).labels_


def _kmeans(X, n_clusters, seed, sdp_solver):
    return KMeans(n_clusters, n_init=10, random_state=seed).fit(X).labels_


def _em(covariance_type, init_params):
    def fit(X, n_clusters, seed, sdp_solver):
        model = GaussianMixture(
            n_clusters,
            covariance_type=covariance_type,
            init_params=init_params,
            random_state=seed,
        )
        return model.fit(X).predict(X)

    return fit


# name -> (description, fit function)
METHODS = {
    "sdp": ("Peng-Wei SDP (SDPKMeans)", _sdp),
    "kmeans": ("k-means (scikit-learn KMeans, n_init=10)", _kmeans),
    "em": ("EM, full covariances, k-means init (GaussianMixture)", _em("full", "kmeans")),
    "em-spherical": (
        "EM, spherical covariances, k-means init (GaussianMixture)",
        _em("spherical", "kmeans"),
    ),
    "em-random": (
        "EM, full covariances, random responsibilities (GaussianMixture)",
        _em("full", "random"),
    ),
    "ila-sdp": ("iLA-SDP, full covariances, SDP init (ILASDP)", _ila_sdp),
}


def check_methods(methods):
    """The method names as a tuple, each known, none repeated."""
    if isinstance(methods, str):
        methods = (methods,)
    methods = tuple(methods)
    if not methods:
        raise ValueError("methods is empty: name at least one of " + ", ".join(METHODS) + ".")
    unknown = [name for name in methods if name not in METHODS]
    if unknown:
        raise ValueError(
            f"Unknown method(s) {', '.join(map(repr, unknown))}; choose among {', '.join(METHODS)}."
        )
    if len(set(methods)) != len(methods):
        raise ValueError(f"methods has repeated names: {list(methods)}.")
    return methods


def check_sdp_solver(sdp_solver):
    if sdp_solver not in ("auto", "cvxpy", "lowrank"):
        raise ValueError(f"sdp_solver must be 'auto', 'cvxpy' or 'lowrank', got {sdp_solver!r}.")
    return sdp_solver


def run_method(name, X, y, n_clusters, seed, sdp_solver):
    """Fit one method: its mis-clustering error, seconds, and the warnings it raised."""
    fit = METHODS[name][1]
    start = time.perf_counter()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        labels = fit(X, n_clusters, seed, sdp_solver)
    seconds = time.perf_counter() - start
    return {
        "error": misclustering_error(y, labels),
        "seconds": seconds,
        "warnings": len(caught),
        "first_warning": f"{caught[0].category.__name__}: {caught[0].message}" if caught else "",
    }
