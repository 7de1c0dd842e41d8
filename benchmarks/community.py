"""Community detection with the number of communities found, against Louvain and spectral.

Run from the repository root::

    python benchmarks/community.py            # 5 seeds, SBM of 1,000 nodes
    python benchmarks/community.py --quick    # 2 seeds, SBM of 400 nodes
    python benchmarks/community.py --out results.json

Graphs (all but the SBM are real):

- ``sbm``: :func:`clusterlab.datasets.make_attributed_sbm`, 4 communities, ``p_in``
  0.1 (quick: 400 nodes) or 0.04 (1,000 nodes), ``p_out`` a tenth of it, 16 features
  with centres 2 noise standard deviations apart (new graph per seed);
- ``karate``: Zachary's karate club (networkx), truth the two clubs after the split;
  features the identity (the graph has no node attributes: ``Â X`` is then each node's
  normalised neighbourhood, so the readout learns from the graph alone and presupposes
  no embedding dimension);
- ``digits``: scikit-learn's 1,797 digits, features PCA-32 of the standardised pixels,
  graph the symmetrised 10-NN graph of those features, truth the 10 digit classes;
- ``lesmis``: the Les Misérables co-appearance graph (networkx, 77 nodes, weighted),
  identity features, no ground truth: K and modularity only.

Methods:

- ``GroupSparseCommunity`` (``k_max=16``), with the default ``beta`` (0.03) and with
  ``beta=0.01``: K found by group sparsity (the useful ``beta`` falls as the number of
  communities grows; see ``docs/user_guide/community.rst``), and with ``n_hops=2``
  (features averaged twice over the graph, standing in for DAG's GNN encoder);
- Louvain (``networkx.community.louvain_communities``, resolution 1): K found by
  modularity;
- spectral clustering (``sklearn.cluster.SpectralClustering(affinity="precomputed")``)
  with K from the largest eigengap of the normalised Laplacian (K in 2..16), and with the
  true K where there is one;
- "one community": every node together, to show that EDGE rewards under-segmentation
  (it scores ``2(1 - c) / (2 - c)``, ``c`` the share of inter-community edges).

Reported per graph and method: K found, NMI, EDGE (:func:`clusterlab.metrics.edge_f1_score`)
and modularity (networkx), means over the seeds and each seed's value, and the mean fit
time (``time.perf_counter``; every method runs once untimed first). A sweep over
``beta`` shows that the number found does not grow with it. The table is printed and
written as JSON to ``--out``.
"""

from __future__ import annotations

import argparse
import sys
import time
import warnings
from pathlib import Path

import networkx as nx
import numpy as np
import scipy.sparse as sp
from clusterlab.solvers.graph import knn_affinity
from scipy.sparse.csgraph import laplacian
from scipy.sparse.linalg import eigsh
from sklearn.cluster import SpectralClustering
from sklearn.decomposition import PCA
from sklearn.preprocessing import StandardScaler

from clusterlab import GroupSparseCommunity
from clusterlab.datasets import load_dataset, make_attributed_sbm
from clusterlab.metrics import edge_f1_score, normalized_mutual_info_score

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from benchmarks._report import base_metadata, format_table, write_json

DEFAULT_OUT = Path(__file__).resolve().parent / "results" / "community.json"
SEEDS = (0, 1, 2, 3, 4)
BETAS = (0.003, 0.01, 0.02, 0.03, 0.04, 0.06)
K_MAX = 16
LOW_BETA = 0.01  # for graphs with many communities (see the docs page)


# -- graphs -----------------------------------------------------------------------------


def sbm_graph(seed, quick):
    n, p_in = (400, 0.1) if quick else (1000, 0.04)
    X, A, y = make_attributed_sbm(n, 4, p_in, p_in / 10, 16, random_state=seed)
    return X, A, y


def karate_graph(seed, quick):
    graph = nx.karate_club_graph()
    A = sp.csr_matrix(nx.to_scipy_sparse_array(graph, nodelist=range(34), weight=None), dtype=float)
    y = np.array([graph.nodes[i]["club"] == "Officer" for i in range(34)], dtype=int)
    return np.eye(34), A, y


def digits_graph(seed, quick):
    X, y = load_dataset("digits")
    X = PCA(32, random_state=0).fit_transform(StandardScaler().fit_transform(X))
    A = knn_affinity(X, 10).affinity
    A.data[:] = 1.0  # binary: an edge in either direction
    return X, A, y


def lesmis_graph(seed, quick):
    graph = nx.les_miserables_graph()
    nodes = sorted(graph.nodes)
    A = sp.csr_matrix(nx.to_scipy_sparse_array(graph, nodelist=nodes, weight="weight"), dtype=float)
    return np.eye(len(nodes)), A, None


GRAPHS = {"sbm": sbm_graph, "karate": karate_graph, "digits": digits_graph, "lesmis": lesmis_graph}
FIXED = {"karate", "digits", "lesmis"}  # the same graph for every seed


# -- methods ----------------------------------------------------------------------------


def ours(X, A, seed, beta=None, n_hops=1):
    params = {"n_hops": n_hops} if beta is None else {"beta": beta, "n_hops": n_hops}
    return (
        GroupSparseCommunity(k_max=K_MAX, random_state=seed, **params).fit(X, adjacency=A).labels_
    )


def louvain(X, A, seed):
    graph = nx.from_scipy_sparse_array(A)
    labels = np.empty(A.shape[0], dtype=np.int64)
    for k, members in enumerate(nx.community.louvain_communities(graph, seed=seed)):
        labels[list(members)] = k
    return labels


def eigengap_k(A, k_max=K_MAX):
    """K in 2..k_max with the largest gap between consecutive eigenvalues of the
    normalised Laplacian ``I - D^-1/2 A D^-1/2`` (its k_max + 1 smallest, from the
    largest of the normalised adjacency)."""
    n = A.shape[0]
    L = laplacian(sp.csr_matrix(A), normed=True)
    if n <= 200:
        values = np.linalg.eigvalsh(L.toarray())[: k_max + 1]
    else:
        shifted = sp.identity(n, format="csr") - L
        top = eigsh(shifted, k=k_max + 1, which="LA", v0=np.ones(n), return_eigenvectors=False)
        values = np.sort(1.0 - top)
    gaps = np.diff(values)  # gaps[k - 1] = lambda_k - lambda_(k-1), 0-based lambdas
    return int(np.argmax(gaps[1:k_max]) + 2)


def spectral(X, A, seed, k):
    model = SpectralClustering(
        n_clusters=k, affinity="precomputed", random_state=seed, assign_labels="cluster_qr"
    )
    return model.fit_predict(A)


def methods(graph_name, y):
    out = {
        "GroupSparseCommunity": ours,
        f"GroupSparseCommunity b={LOW_BETA}": lambda X, A, seed: ours(X, A, seed, LOW_BETA),
        "GroupSparseCommunity 2 hops": lambda X, A, seed: ours(X, A, seed, n_hops=2),
        "Louvain (networkx)": louvain,
        "spectral, eigengap K": lambda X, A, seed: spectral(X, A, seed, eigengap_k(A)),
    }
    if y is not None:
        true_k = int(np.unique(y).shape[0])
        out[f"spectral, true K={true_k}"] = lambda X, A, seed: spectral(X, A, seed, true_k)
    out["one community"] = lambda X, A, seed: np.zeros(A.shape[0], dtype=np.int64)
    return out


# -- measuring --------------------------------------------------------------------------


def fit_timed(method, X, A, seed):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        start = time.perf_counter()
        labels = np.asarray(method(X, A, seed))
        seconds = time.perf_counter() - start
    return labels, seconds, sorted({str(w.message).split(":")[0][:60] for w in caught})


def modularity(A, labels):
    graph = nx.from_scipy_sparse_array(A)
    groups = [set(np.flatnonzero(labels == k).tolist()) for k in np.unique(labels)]
    return float(nx.community.modularity(graph, groups, weight="weight"))


def compare(graph_name, seeds, quick):
    make = GRAPHS[graph_name]
    X, A, y = make(seeds[0], quick)
    rows = []
    for name, method in methods(graph_name, y).items():
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            method(X, A, seeds[0])  # warm-up: Numba's compile and imports off the clock
        per_seed = {"k": [], "nmi": [], "edge": [], "modularity": [], "seconds": []}
        notes = set()
        for seed in seeds:
            if graph_name not in FIXED:
                X, A, y = make(seed, quick)
            labels, seconds, messages = fit_timed(method, X, A, seed)
            per_seed["k"].append(int(np.unique(labels).shape[0]))
            per_seed["nmi"].append(
                None if y is None else float(normalized_mutual_info_score(y, labels))
            )
            per_seed["edge"].append(None if y is None else edge_f1_score(A, y, labels))
            per_seed["modularity"].append(modularity(A, labels))
            per_seed["seconds"].append(seconds)
            notes.update(messages)

        def mean(key, values=per_seed):
            return None if values[key][0] is None else float(np.mean(values[key]))

        rows.append(
            {
                "graph": graph_name,
                "n_nodes": int(A.shape[0]),
                "true_k": None if y is None else int(np.unique(y).shape[0]),
                "method": name,
                "seeds": list(seeds),
                **{f"{k}_per_seed": v for k, v in per_seed.items()},
                "k_mean": mean("k"),
                "k_min": min(per_seed["k"]),
                "k_max": max(per_seed["k"]),
                "nmi": mean("nmi"),
                "edge": mean("edge"),
                "modularity": mean("modularity"),
                "seconds": mean("seconds"),
                "note": "; ".join(sorted(notes)),
            }
        )
    return rows


def beta_sweep(graph_name, seeds, quick):
    """Communities found by GroupSparseCommunity for each beta, per seed."""
    rows = []
    for seed in seeds:
        X, A, _ = GRAPHS[graph_name](seed, quick)
        counts = []
        for beta in BETAS:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # the largest beta switches all off
                counts.append(int(np.unique(ours(X, A, seed, beta)).shape[0]))
        rows.append(
            {
                "graph": graph_name,
                "method": "beta sweep",
                "seed": seed,
                "betas": list(BETAS),
                "k_found": counts,
                "non_increasing": counts == sorted(counts, reverse=True),
            }
        )
    return rows


# -- output -----------------------------------------------------------------------------


def _k_cell(row):
    if row["k_min"] == row["k_max"]:
        return str(row["k_min"])
    return f"{row['k_mean']:.1f} ({row['k_min']}-{row['k_max']})"


COLUMNS = [
    ("graph", 7, "{}"),
    ("true K", 6, lambda r: "" if r["true_k"] is None else str(r["true_k"])),
    ("method", 28, "{}"),
    ("K found", 12, _k_cell),
    ("nmi", 6, "{:.3f}"),
    ("edge", 6, "{:.3f}"),
    ("modularity", 10, "{:.3f}"),
    ("seconds", 0, "{:.3f}"),
]


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="2 seeds, SBM of 400 nodes")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="JSON output path")
    args = parser.parse_args(argv)
    seeds = SEEDS[:2] if args.quick else SEEDS
    start = time.perf_counter()
    rows, sweeps = [], []
    for graph_name in GRAPHS:
        print(f"{graph_name} ...", file=sys.stderr, flush=True)
        rows += compare(graph_name, seeds, args.quick)
    for graph_name in ("sbm", "karate"):
        sweeps += beta_sweep(graph_name, seeds, args.quick)
    meta = {
        **base_metadata(args.quick),
        "networkx": nx.__version__,
        "seeds": list(seeds),
        "k_max": K_MAX,
        "estimator": GroupSparseCommunity().get_params(),
        "timing": "mean wall time per seed after an untimed warm-up run",
        "total_seconds": time.perf_counter() - start,
    }
    print(format_table(rows, COLUMNS))
    print("\nK found by GroupSparseCommunity for beta = " + ", ".join(map(str, BETAS)))
    for row in sweeps:
        print(
            f"  {row['graph']:7} seed {row['seed']}: {row['k_found']}"
            f"{'' if row['non_increasing'] else '  (grows!)'}"
        )
    notes = [f"{r['graph']} {r['method']}: {r['note']}" for r in rows if r["note"]]
    if notes:
        print("\nwarnings:\n" + "\n".join(notes))
    print(f"\ntotal {meta['total_seconds']:.0f} s, {meta['cpu_count']} CPUs")
    write_json(args.out, rows + sweeps, meta)
    print(f"wrote {args.out}")
    return rows + sweeps


if __name__ == "__main__":
    main()
