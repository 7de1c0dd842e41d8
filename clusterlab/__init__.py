"""clusterlab: classical and convex clustering solvers behind a scikit-learn API."""

from clusterlab.balanced import (
    SinkhornKMeans,
    SinkhornResult,
    sinkhorn,
    sinkhorn_codes,
    swapped_prediction_loss,
)
from clusterlab.community import GroupSparseCommunity
from clusterlab.contrastive import knn_graph, meta_nodes, ncontrast_loss, pamc_loss
from clusterlab.crossmodal import CrossModalPrototypeClustering
from clusterlab.depict import DEPICTClustering, depict_targets
from clusterlab.mixture import SemiSupervisedGMM, SemiSupervisedKMeans, estimate_n_clusters
from clusterlab.multilabel import mlc_loss, mlcd_loss, multilabel_assign
from clusterlab.ood import PrototypeOODDetector, max_query_score
from clusterlab.sdp import ILASDP, SDPKMeans
from clusterlab.spherical import SphericalKMeans
from clusterlab.transductive import LaplacianKMeans, TransductiveFewShot

__version__ = "0.1.0.dev0"

__all__ = [
    "ILASDP",
    "CrossModalPrototypeClustering",
    "DEPICTClustering",
    "GroupSparseCommunity",
    "LaplacianKMeans",
    "PrototypeOODDetector",
    "SDPKMeans",
    "SemiSupervisedGMM",
    "SemiSupervisedKMeans",
    "SinkhornKMeans",
    "SinkhornResult",
    "SphericalKMeans",
    "TransductiveFewShot",
    "__version__",
    "depict_targets",
    "estimate_n_clusters",
    "knn_graph",
    "max_query_score",
    "meta_nodes",
    "mlc_loss",
    "mlcd_loss",
    "multilabel_assign",
    "ncontrast_loss",
    "pamc_loss",
    "sinkhorn",
    "sinkhorn_codes",
    "swapped_prediction_loss",
]
