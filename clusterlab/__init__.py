"""clusterlab: classical and convex clustering solvers behind a scikit-learn API."""

from clusterlab.balanced import (
    SinkhornKMeans,
    SinkhornResult,
    sinkhorn,
    sinkhorn_codes,
    swapped_prediction_loss,
)
from clusterlab.mixture import SemiSupervisedGMM, SemiSupervisedKMeans, estimate_n_clusters
from clusterlab.sdp import ILASDP, SDPKMeans
from clusterlab.transductive import LaplacianKMeans, TransductiveFewShot

__version__ = "0.1.0.dev0"

__all__ = [
    "ILASDP",
    "LaplacianKMeans",
    "SDPKMeans",
    "SemiSupervisedGMM",
    "SemiSupervisedKMeans",
    "SinkhornKMeans",
    "SinkhornResult",
    "TransductiveFewShot",
    "__version__",
    "estimate_n_clusters",
    "sinkhorn",
    "sinkhorn_codes",
    "swapped_prediction_loss",
]
