"""Statistical recovery experiments for the SDP clustering methods.

- :func:`exact_recovery_threshold`: Chen & Yang's sharp threshold ``Θ²`` for exact
  recovery of equal-size spherical Gaussian clusters.
- :func:`phase_transition` (experiment 1): the probability of exact recovery of the
  Peng–Wei SDP, K-means and EM against the squared centre separation in units of ``Θ²``.
- :func:`heterogeneous` (experiment 2): the mis-clustering error of K-means, the SDP, EM and
  iLA-SDP on mixtures whose clusters have different covariances.

Both experiments return a result with ``format_table()`` and ``save(out_dir)`` (CSV, JSON
and, with matplotlib installed, a PNG plot); ``clusterlab recovery`` runs them from the
command line. Both take ``n_jobs`` (fits run at once through joblib, on a Dask cluster
inside ``joblib.parallel_config(backend="dask")``): every seed is drawn before the first
fit, so the tables do not depend on it.
"""

from clusterlab.experiments.heterogeneous import HeterogeneousResult, heterogeneous
from clusterlab.experiments.phase_transition import (
    PhaseTransitionResult,
    phase_transition,
    recovery_crossing,
)
from clusterlab.experiments.threshold import exact_recovery_threshold

__all__ = [
    "HeterogeneousResult",
    "PhaseTransitionResult",
    "exact_recovery_threshold",
    "heterogeneous",
    "phase_transition",
    "recovery_crossing",
]
