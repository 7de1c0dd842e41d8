"""Benchmark clusterlab's Dask paths on a local ``distributed`` cluster of worker processes.

Run from the repository root::

    python benchmarks/distributed.py                # the sizes below (minutes)
    python benchmarks/distributed.py --quick        # tiny sizes, every code path
    python benchmarks/distributed.py --out results.json
    python benchmarks/distributed.py --n-large 2000000   # SwAV codes at 2M x 3000

Cases
-----
``swav``
    SwAV codes (eps = 0.05, 3 iterations) of ``Z @ C.T`` for unit embeddings ``Z``
    (n x 128, float32, generated and persisted on the workers) and unit prototypes ``C``
    (3000 x 128, NumPy): ``sinkhorn_codes(Zd @ C.T)`` on a Dask ``Zd`` against
    ``sinkhorn_codes(Z @ C.T)`` in memory, at n = 200,000 (where the in-memory run fits:
    2.4 GB of scores and 2.4 GB of codes), then the Dask path alone at ``--n-large``
    (default 1,000,000; 2,000,000 x 3000 is 24 GB of float32 scores). Both end with the
    hard labels (each row's largest code), so the codes are formed chunk by chunk and
    only n labels reach the client. ``peak_MB`` is the largest resident-memory growth of
    one worker process during the run (sampled every 5 ms), or of this process for the
    in-memory row; ``max_diff`` the largest difference of the codes from the in-memory
    ones (on the first chunk of rows).
``lloyd``
    Five spherical Lloyd iterations on 400,000 x 64 float32 unit embeddings (512
    directions plus noise), K = 256, from the same initial centres (K distinct samples),
    with the data persisted on the same two workers: ``SphericalKMeans(init=C0,
    max_iter=5, tol=0).fit(Xd)`` then ``labels_.compute()``, against dask-ml's
    ``KMeans(n_clusters=256, init=C0, max_iter=5, tol=0).fit(Xd)`` then
    ``labels_.compute()`` (Euclidean Lloyd on the unit rows: the same assignments, centres
    not renormalised), and the in-memory ``SphericalKMeans`` in this process.
    ``mean_cos``: mean cosine of the samples to their nearest (normalised) final centre.
``workers``
    The Dask rows of both cases again on a one-worker cluster: ``ratio`` is the time on
    one worker over the time on two.

Below the table the script prints the bytes that travel per iteration for ``P``
workers (on paper: the K-length partial sums up and the K potentials down for Sinkhorn,
``16 K P``; the K x d sums and counts up and the centres down for Lloyd) and what they
come to at 100 machines.

Timing: ``time.perf_counter``; every contender runs once untimed first (worker imports,
Numba's cache, first-call set-up), then the best of ``--repeat`` runs. The machine's load
average is recorded before and after.
"""

from __future__ import annotations

import argparse
import os
import sys
import threading
import time
import warnings
from dataclasses import dataclass
from pathlib import Path

_HERE = Path(__file__).resolve().parent
# this file shares its name with the `distributed` package: keep its folder off the path
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != _HERE]
sys.path.insert(0, str(_HERE.parent))

import numpy as np  # noqa: E402

from benchmarks._report import base_metadata, format_table, write_json  # noqa: E402

DEFAULT_OUT = _HERE / "results" / "distributed.json"


@dataclass(frozen=True)
class Sizes:
    n_codes: int
    n_large: int
    K_codes: int
    d_codes: int
    codes_chunk: int
    n_lloyd: int
    d_lloyd: int
    K_lloyd: int
    lloyd_chunk: int
    n_iter: int


FULL = Sizes(200_000, 1_000_000, 3000, 128, 20_000, 400_000, 64, 256, 50_000, 5)
QUICK = Sizes(8_000, 16_000, 200, 32, 2_000, 20_000, 16, 32, 5_000, 5)


# -- memory sampling in a process (run on the workers through Client.run) -------------------

_SAMPLER = {}


def start_sampler(dask_worker=None):
    """Sample this process's resident memory every 5 ms; keep the peak. On a worker
    (``Client.run`` passes ``dask_worker``) the state lives on the worker object, since
    the function itself arrives pickled by value."""
    import psutil

    process = psutil.Process(os.getpid())
    state = {"base": process.memory_info().rss, "stop": False}
    state["peak"] = state["base"]

    def loop():
        while not state["stop"]:
            state["peak"] = max(state["peak"], process.memory_info().rss)
            time.sleep(0.005)

    state["thread"] = threading.Thread(target=loop, daemon=True)
    state["thread"].start()
    if dask_worker is None:
        _SAMPLER["state"] = state
    else:
        dask_worker.clusterlab_memory_sampler = state


def stop_sampler(dask_worker=None):
    """Stop sampling; the peak growth over the start, in MB."""
    owner = _SAMPLER if dask_worker is None else dask_worker.__dict__
    state = owner.pop("state" if dask_worker is None else "clusterlab_memory_sampler")
    state["stop"] = True
    state["thread"].join()
    return (state["peak"] - state["base"]) / 2**20


def measured(client, fn, repeat, warmup=True):
    """Best time of ``fn()`` over ``repeat`` runs after an untimed one (``warmup``: True
    for ``fn`` itself, a smaller callable, or False where the workers already ran the
    same code), the peak memory growth of the busiest worker (or of this process
    without a client) during the best run, and the last output."""
    if warmup:
        (fn if warmup is True else warmup)()
    best, peak, out = np.inf, None, None
    for _ in range(repeat):
        out = None
        if client is None:
            start_sampler()
        else:
            client.run(start_sampler)
        start = time.perf_counter()
        out = fn()
        seconds = time.perf_counter() - start
        grown = stop_sampler() if client is None else max(client.run(stop_sampler).values())
        if seconds < best:
            best, peak = seconds, grown
    return best, peak, out


# -- data ---------------------------------------------------------------------------------


def _unit(block):
    return block / np.linalg.norm(block, axis=1, keepdims=True)


def embeddings_on_workers(n, d, chunk, seed):
    """Unit embeddings around 64 directions, generated chunk by chunk on the workers."""
    import dask.array as da

    rng = da.random.default_rng(seed)
    directions = np.random.default_rng(seed).standard_normal((64, d)).astype(np.float32)
    pick = rng.integers(0, 64, size=n, chunks=chunk)
    noise = rng.standard_normal((n, d), chunks=(chunk, d), dtype=np.float32)
    Z = da.map_blocks(
        lambda p, e: _unit(directions[p[:, 0]] + 0.8 * e),
        pick[:, None],
        noise,
        dtype=np.float32,
        chunks=noise.chunks,
    )
    return Z.persist()


def clustered_rows(n, d, n_directions, seed):
    rng = np.random.default_rng(seed)
    directions = rng.standard_normal((n_directions, d))
    X = directions[rng.integers(0, n_directions, n)] + 0.6 * rng.standard_normal((n, d))
    return np.ascontiguousarray(_unit(X).astype(np.float32))


def unit_prototypes(K, d, seed):
    return np.ascontiguousarray(
        _unit(np.random.default_rng(seed).standard_normal((K, d))).astype(np.float32)
    )


def mean_cosine(X, centers):
    from clusterlab.solvers.spherical_kmeans import assign

    C = np.ascontiguousarray(_unit(np.asarray(centers, dtype=np.float64)).astype(X.dtype))
    return float(np.mean(assign(X, C, 1024)[1], dtype=np.float64))


# -- cases --------------------------------------------------------------------------------


def swav_rows(client, sizes, repeat, workers, with_memory):
    """SwAV codes from a Dask Z against the in-memory run (two-worker cluster)."""
    from clusterlab import sinkhorn_codes

    n, K, d = sizes.n_codes, sizes.K_codes, sizes.d_codes
    C = unit_prototypes(K, d, seed=1)
    rows = []
    Zd = embeddings_on_workers(n, d, sizes.codes_chunk, seed=2)

    def dask_run():
        return sinkhorn_codes(Zd @ C.T, 0.05, 3).argmax(axis=1).compute()

    seconds, peak, labels = measured(client, dask_run, repeat)
    base = {"case": "swav", "workers": workers, "n": n, "K": K, "d": d}
    row = {**base, "method": "clusterlab Dask", "seconds": seconds, "peak_MB": peak}
    if with_memory:
        Z = Zd.compute()

        def memory_run():
            return np.argmax(sinkhorn_codes(np.ascontiguousarray(Z @ C.T), 0.05, 3), axis=1)

        mem_seconds, mem_peak, mem_labels = measured(None, memory_run, repeat)
        first = slice(0, sizes.codes_chunk)  # the codes of these rows depend on all rows
        full = sinkhorn_codes(Zd @ C.T, 0.05, 3)[first].compute()
        mem_codes = sinkhorn_codes(np.ascontiguousarray(Z @ C.T), 0.05, 3)[first]
        row["max_diff"] = float(np.max(np.abs(full - mem_codes)))
        row["label_agree"] = float(np.mean(labels == mem_labels))
        rows.append(
            {**base, "method": "clusterlab in memory", "seconds": mem_seconds, "peak_MB": mem_peak}
        )
        row["ratio"] = mem_seconds / seconds
        del Z
    rows.insert(0, row)
    return rows, Zd


def swav_large_row(client, sizes, repeat):
    from clusterlab import sinkhorn_codes

    n, K, d = sizes.n_large, sizes.K_codes, sizes.d_codes
    C = unit_prototypes(K, d, seed=1)
    Zd = embeddings_on_workers(n, d, sizes.codes_chunk, seed=3)

    def dask_run():
        return sinkhorn_codes(Zd @ C.T, 0.05, 3).argmax(axis=1).compute()

    # the workers ran this code path in the smaller swav case just before
    seconds, peak, _ = measured(client, dask_run, max(1, repeat - 1), warmup=False)
    return {
        "case": "swav",
        "method": "clusterlab Dask",
        "workers": 2,
        "n": n,
        "K": K,
        "d": d,
        "seconds": seconds,
        "peak_MB": peak,
    }


def lloyd_rows(client, sizes, repeat, workers, X, C0, with_peers):
    import dask.array as da
    from sklearn.exceptions import ConvergenceWarning

    from clusterlab import SphericalKMeans

    n, d, K = X.shape[0], X.shape[1], C0.shape[0]
    Xd = da.from_array(X, chunks=(sizes.lloyd_chunk, d)).persist()
    base = {"case": "lloyd", "workers": workers, "n": n, "K": K, "d": d}

    def ours():
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)  # tol=0: all iterations
            model = SphericalKMeans(K, init=C0, max_iter=sizes.n_iter, tol=0.0).fit(Xd)
        return model, model.labels_.compute()

    seconds, peak, (model, labels) = measured(client, ours, repeat)
    rows = [
        {
            **base,
            "method": "clusterlab SphericalKMeans (Dask)",
            "seconds": seconds,
            "peak_MB": peak,
            "mean_cos": 1.0 - model.inertia_ / n,
            "n_iter": model.n_iter_,
        }
    ]
    if not with_peers:
        return rows
    from dask_ml.cluster import KMeans

    def peer():
        km = KMeans(n_clusters=K, init=C0, max_iter=sizes.n_iter, tol=0.0, random_state=0).fit(Xd)
        return km, np.asarray(km.labels_.compute())

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        peer_seconds, peer_peak, (km, peer_labels) = measured(client, peer, repeat)
    rows.append(
        {
            **base,
            "method": "dask-ml KMeans",
            "seconds": peer_seconds,
            "peak_MB": peer_peak,
            "mean_cos": mean_cosine(X, km.cluster_centers_),
            "n_iter": int(km.n_iter_),
            "label_agree": float(np.mean(peer_labels == labels)),
        }
    )

    def in_memory():
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            return SphericalKMeans(K, init=C0, max_iter=sizes.n_iter, tol=0.0).fit(X)

    mem_seconds, mem_peak, memory_model = measured(None, in_memory, repeat)
    rows.append(
        {
            **base,
            "method": "clusterlab SphericalKMeans (in memory)",
            "seconds": mem_seconds,
            "peak_MB": mem_peak,
            "mean_cos": 1.0 - memory_model.inertia_ / n,
            "n_iter": memory_model.n_iter_,
            "label_agree": float(np.mean(memory_model.labels_ == labels)),
        }
    )
    for row in rows:
        row["ratio"] = row["seconds"] / seconds
    return rows


def cluster(n_workers):
    from distributed import Client, LocalCluster

    local = LocalCluster(
        n_workers=n_workers,
        threads_per_worker=1,
        processes=True,
        host="127.0.0.1",
        dashboard_address=None,
        memory_limit="8GiB",
    )
    return local, Client(local)


def communication(K_codes, K_lloyd, d_lloyd):
    """Bytes per iteration on paper, for 2 and 100 workers."""
    lines = []
    for P in (2, 100):
        sinkhorn = 16 * K_codes * P
        lloyd = (8 * K_lloyd * d_lloyd + 8 * K_lloyd) * P + 4 * K_lloyd * d_lloyd * P
        lines.append(
            {
                "workers": P,
                "sinkhorn_bytes": sinkhorn,
                "lloyd_bytes": lloyd,
                "sinkhorn_ms_at_10Gbps": sinkhorn * 8 / 10e9 * 1e3,
                "lloyd_ms_at_10Gbps": lloyd * 8 / 10e9 * 1e3,
            }
        )
    return lines


COLUMNS = [
    ("case", 6, "{}"),
    ("method", 38, "{}"),
    ("workers", 7, "{}"),
    ("n", 9, "{}"),
    ("K", 5, "{}"),
    ("seconds", 8, "{:.2f}"),
    ("peak_MB", 8, lambda r: "" if r.get("peak_MB") is None else f"{r['peak_MB']:.0f}"),
    ("ratio", 6, lambda r: "" if r.get("ratio") is None else f"{r['ratio']:.2f}"),
    ("mean_cos", 8, lambda r: "" if r.get("mean_cos") is None else f"{r['mean_cos']:.5f}"),
    (
        "max_diff / agree",
        0,
        lambda r: " ".join(
            s
            for s in (
                "" if r.get("max_diff") is None else f"{r['max_diff']:.1e}",
                "" if r.get("label_agree") is None else f"{r['label_agree']:.4f}",
            )
            if s
        ),
    ),
]


def run(sizes, repeat, cases):
    rows, one = [], []
    X = clustered_rows(sizes.n_lloyd, sizes.d_lloyd, 512 if sizes.n_lloyd > 10**5 else 64, seed=4)
    C0 = X[np.random.default_rng(5).choice(X.shape[0], sizes.K_lloyd, replace=False)].copy()
    local, client = cluster(2)
    try:
        if "swav" in cases:
            print("swav, 2 workers ...", file=sys.stderr, flush=True)
            rows += swav_rows(client, sizes, repeat, 2, with_memory=True)[0]
        if "lloyd" in cases:
            print("lloyd, 2 workers ...", file=sys.stderr, flush=True)
            rows += lloyd_rows(client, sizes, repeat, 2, X, C0, with_peers=True)
        if "swav" in cases and sizes.n_large:
            print(f"swav at n={sizes.n_large}, 2 workers ...", file=sys.stderr, flush=True)
            rows.append(swav_large_row(client, sizes, repeat))
    finally:
        client.close()
        local.close()
    if "workers" in cases:
        local, client = cluster(1)
        try:
            print("1 worker ...", file=sys.stderr, flush=True)
            if "swav" in cases:
                one += swav_rows(client, sizes, repeat, 1, with_memory=False)[0]
            if "lloyd" in cases:
                one += lloyd_rows(client, sizes, repeat, 1, X, C0, with_peers=False)
        finally:
            client.close()
            local.close()
    for row in one:
        two = next(
            r
            for r in rows
            if r["case"] == row["case"]
            and r["workers"] == 2
            and r["method"] == row["method"]
            and r["n"] == row["n"]
        )
        row["ratio"] = row["seconds"] / two["seconds"]
        row["case"] = "workers"
    return rows + one


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="tiny sizes (smoke test)")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="JSON output path")
    parser.add_argument("--repeat", type=int, default=None, help="timed runs per contender")
    parser.add_argument(
        "--n-large", type=int, default=None, help="rows of the Dask-only SwAV run (0: skip)"
    )
    parser.add_argument(
        "--n-codes",
        type=int,
        default=None,
        help="rows of the SwAV run compared with the in-memory one",
    )
    parser.add_argument(
        "--cases",
        default="swav,lloyd,workers",
        help="comma-separated subset of swav, lloyd, workers",
    )
    args = parser.parse_args(argv)
    sizes = QUICK if args.quick else FULL
    for name, value in (("n_large", args.n_large), ("n_codes", args.n_codes)):
        if value is not None:
            sizes = Sizes(**{**sizes.__dict__, name: value})
    repeat = args.repeat or (1 if args.quick else 2)
    n_large = sizes.n_large
    load_before = os.getloadavg()
    rows = run(sizes, repeat, set(args.cases.split(",")))
    meta = base_metadata(args.quick)
    meta.update(
        {
            "sizes": sizes.__dict__,
            "n_large": n_large,
            "repeat": repeat,
            "load_average_before": load_before,
            "load_average_after": os.getloadavg(),
            "communication": communication(sizes.K_codes, sizes.K_lloyd, sizes.d_lloyd),
        }
    )
    import dask
    import distributed

    meta["dask"], meta["distributed"] = dask.__version__, distributed.__version__
    print(format_table(rows, COLUMNS))
    print("\nbytes per iteration (on paper):")
    for line in meta["communication"]:
        print(
            f"  P={line['workers']:>3}: Sinkhorn {line['sinkhorn_bytes'] / 1e6:.3f} MB "
            f"(K={sizes.K_codes}; {line['sinkhorn_ms_at_10Gbps']:.2f} ms at 10 Gb/s), "
            f"Lloyd {line['lloyd_bytes'] / 1e6:.2f} MB (K={sizes.K_lloyd}, "
            f"d={sizes.d_lloyd}; {line['lloyd_ms_at_10Gbps']:.2f} ms at 10 Gb/s)"
        )
    print(
        f"load average {load_before} before, {meta['load_average_after']} after; "
        f"{meta['cpu_count']} CPUs, dask {meta['dask']}"
    )
    write_json(args.out, rows, meta)
    print(f"wrote {args.out}")
    return rows


if __name__ == "__main__":
    main()
