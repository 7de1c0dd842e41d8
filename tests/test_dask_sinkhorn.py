"""Sinkhorn and SwAV codes on row-chunked Dask arrays, against the in-memory NumPy path.

Graph logic runs on the synchronous scheduler; end-to-end equality on the two-process
``dask_client`` cluster of conftest.
"""

import numpy as np
import pytest

da = pytest.importorskip("dask.array")
dask = pytest.importorskip("dask")
from clusterlab.solvers._dask import (  # noqa: E402
    check_dask_matrix,
    is_dask_array,
    map_row_blocks,
    reduce_row_blocks,
    row_chunked,
    shared,
)
from dask.callbacks import Callback  # noqa: E402

from benchmarks.peers import swav_sinkhorn_numpy  # noqa: E402
from clusterlab import sinkhorn, sinkhorn_codes  # noqa: E402


def embeddings(n, K, d=16, seed=0, dtype=np.float32):
    """Unit embeddings around a few centres and unit prototypes."""
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((8, d))
    Z = centres[rng.integers(0, 8, n)] + 0.5 * rng.standard_normal((n, d))
    Z /= np.linalg.norm(Z, axis=1, keepdims=True)
    C = rng.standard_normal((K, d))
    C /= np.linalg.norm(C, axis=1, keepdims=True)
    return Z.astype(dtype), C.astype(dtype)


@pytest.fixture
def synchronous():
    with dask.config.set(scheduler="synchronous"):
        yield


class LargestResult(Callback):
    """Records the largest number of rows of any 2-D task result with ``width`` columns."""

    def __init__(self, width):
        super().__init__()
        self.width = width
        self.rows = 0
        self.tasks = 0

    def _posttask(self, key, result, dsk, state, worker_id):
        self.tasks += 1
        if isinstance(result, np.ndarray) and result.ndim == 2 and result.shape[1] == self.width:
            self.rows = max(self.rows, result.shape[0])


# -- helpers of solvers/_dask.py ----------------------------------------------------------


def test_helpers(synchronous):
    assert not is_dask_array(np.ones((2, 2)))
    X = np.arange(60.0).reshape(20, 3)
    Xd = da.from_array(X, chunks=(6, 2))
    assert is_dask_array(Xd)
    assert row_chunked(Xd).chunks == ((6, 6, 6, 2), (3,))
    total, count = reduce_row_blocks(
        lambda b: (b.sum(axis=0), b.shape[0]), Xd, split_every=2
    ).compute()
    np.testing.assert_allclose(total, X.sum(axis=0))
    assert count == 20
    mapped = map_row_blocks(
        lambda b, w: b @ w, Xd, shared(np.array([1.0, 2.0, 3.0])), dtype=np.float64
    )
    assert mapped.chunks == ((6, 6, 6, 2),)
    np.testing.assert_allclose(mapped.compute(), X @ [1.0, 2.0, 3.0])
    assert check_dask_matrix(da.from_array(np.ones((4, 2), dtype=np.int32))).dtype == np.float64
    with pytest.raises(ValueError, match="2-D"):
        check_dask_matrix(da.ones(5))
    unknown = Xd[Xd[:, 0] > 10]
    with pytest.raises(ValueError, match="compute_chunk_sizes"):
        row_chunked(unknown)


# -- codes and plans, synchronous scheduler -------------------------------------------


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize(("eps", "n_iter"), [(0.05, 3), (0.03, 10)])
def test_codes_match_in_memory_and_swav(synchronous, dtype, eps, n_iter):
    Z, C = embeddings(900, 40, dtype=dtype)
    S = np.ascontiguousarray(Z @ C.T)
    expected = sinkhorn_codes(S, eps, n_iter)
    codes = sinkhorn_codes(da.from_array(S, chunks=(250, 40)), eps, n_iter)
    assert is_dask_array(codes)
    assert codes.dtype == dtype
    assert codes.chunks == ((250, 250, 250, 150), (40,))
    got = codes.compute()
    atol = 1e-5 if dtype == np.float32 else 1e-12
    np.testing.assert_allclose(got, expected, atol=atol, rtol=0)
    # against SwAV's own normalisations, in float64
    np.testing.assert_allclose(
        got, swav_sinkhorn_numpy(S.astype(np.float64), eps, n_iter), atol=10 * atol, rtol=0
    )


def test_lazy_product_keeps_scores_chunked(synchronous):
    """Codes of ``Z @ C.T``: no task ever holds more than a chunk of rows of n x K."""
    Z, C = embeddings(2000, 30, d=8)
    expected = sinkhorn_codes(np.ascontiguousarray(Z @ C.T), 0.05, 3)
    Zd = da.from_array(Z, chunks=(300, 8))
    watch = LargestResult(width=30)
    got = np.empty_like(expected)
    with watch:
        codes = sinkhorn_codes(Zd @ C.T, 0.05, 3)
        da.store(codes, got)  # chunk by chunk: no task gathers the codes either
    assert watch.tasks > 0
    assert 0 < watch.rows <= 300
    assert max(codes.chunks[0]) <= 300
    np.testing.assert_allclose(got, expected, atol=1e-5, rtol=0)


class TaskNames(Callback):
    """Counts the tasks run, by the name before the token of their key."""

    def __init__(self):
        super().__init__()
        self.counts = {}

    def _pretask(self, key, dsk, state):
        name = (key[0] if isinstance(key, tuple) else key).split("-")[0]
        self.counts[name] = self.counts.get(name, 0) + 1


@pytest.mark.parametrize("n_iter", [1, 3])
def test_swav_codes_read_lazy_scores_n_iter_plus_one_times(synchronous, n_iter):
    """The input check forms the first column update, the last row update is the codes
    pass: each chunk's product is computed n_iter + 1 times, codes included."""
    Z, C = embeddings(400, 6, d=8, seed=3)
    Zd = da.from_array(Z, chunks=(100, 8))
    counter = TaskNames()
    out = np.empty((400, 6), dtype=np.float32)
    with counter:
        da.store(sinkhorn_codes(Zd @ C.T, 0.5, n_iter), out)
    assert counter.counts["matmul"] == 4 * (n_iter + 1)
    np.testing.assert_allclose(
        out, sinkhorn_codes(np.ascontiguousarray(Z @ C.T), 0.5, n_iter), atol=1e-6
    )


def test_column_chunked_scores_are_rechunked(synchronous):
    Z, C = embeddings(600, 24)
    S = np.ascontiguousarray(Z @ C.T)
    codes = sinkhorn_codes(da.from_array(S, chunks=(200, 7)), 0.05, 3)
    assert codes.chunks[1] == (24,)
    np.testing.assert_allclose(codes.compute(), sinkhorn_codes(S, 0.05, 3), atol=1e-5)


def test_hard_codes_and_tolerance_mode(synchronous):
    Z, C = embeddings(700, 12, dtype=np.float64)
    S = np.ascontiguousarray(Z @ C.T)
    Sd = da.from_array(S, chunks=(128, 12))
    hard = sinkhorn_codes(Sd, 0.05, 10, hard=True).compute()
    np.testing.assert_array_equal(hard, sinkhorn_codes(S, 0.05, 10, hard=True))
    assert np.all(hard.sum(axis=1) == 1)
    tight = sinkhorn_codes(Sd, 0.05, None, tol=1e-8).compute()
    np.testing.assert_allclose(tight, sinkhorn_codes(S, 0.05, None, tol=1e-8), atol=1e-9)
    np.testing.assert_allclose(tight.sum(axis=0), 700 / 12, rtol=1e-7)


@pytest.mark.parametrize("eps_scaling", [True, False])
def test_sinkhorn_with_marginals_matches_in_memory(synchronous, eps_scaling):
    Z, C = embeddings(300, 9, dtype=np.float64, seed=2)
    S = np.ascontiguousarray(Z @ C.T)
    rng = np.random.default_rng(1)
    a = rng.uniform(1, 2, 300)
    a /= a.sum()
    b = rng.uniform(1, 3, 9)
    b /= b.sum()
    expected = sinkhorn(S, 0.1, a, b, tol=1e-8, eps_scaling=eps_scaling)
    for a_in in (a, da.from_array(a, chunks=120)):
        result = sinkhorn(
            da.from_array(S, chunks=(120, 9)), 0.1, a_in, b, tol=1e-8, eps_scaling=eps_scaling
        )
        assert result.converged
        assert result.n_iter == expected.n_iter
        assert is_dask_array(result.plan)
        assert is_dask_array(result.f)
        plan = result.plan.compute()
        np.testing.assert_allclose(plan, expected.plan, atol=1e-12)
        np.testing.assert_allclose(plan.sum(axis=1), a, rtol=1e-9)
        np.testing.assert_allclose(plan.sum(axis=0), b, rtol=1e-7)
        np.testing.assert_allclose(result.f.compute(), expected.f, atol=1e-9)
        np.testing.assert_allclose(result.g, expected.g, atol=1e-9)
        np.testing.assert_allclose(
            result.error_history, expected.error_history, rtol=1e-4, atol=1e-12
        )
    # a warm start from the converged potentials converges at once
    warm = sinkhorn(da.from_array(S, chunks=(120, 9)), 0.1, a, b, tol=1e-7, init=expected.g)
    assert warm.n_iter == 1


def test_verbose_prints_progress(synchronous, capsys):
    Z, C = embeddings(200, 5, dtype=np.float64)
    sinkhorn(da.from_array(Z @ C.T, chunks=(64, 5)), 0.1, tol=1e-6, verbose=1)
    assert "[sinkhorn] iteration 1: marginal error" in capsys.readouterr().out


def test_bad_dask_input_is_rejected(synchronous):
    S = np.random.default_rng(0).uniform(size=(40, 4))
    bad = S.copy()
    bad[3, 1] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        sinkhorn_codes(da.from_array(bad, chunks=10))
    with pytest.raises(ValueError, match="2-D"):
        sinkhorn_codes(da.ones(10))
    with pytest.raises(ValueError, match="eps"):
        sinkhorn_codes(da.from_array(S, chunks=10), eps=-1.0)
    with pytest.raises(ValueError, match="summing to 1"):
        sinkhorn(da.from_array(S, chunks=10), 0.1, a=da.ones(40, chunks=10))
    with pytest.raises(ValueError, match="init"):
        sinkhorn(da.from_array(S, chunks=10), 0.1, init=np.zeros(3))


# -- on worker processes ------------------------------------------------------------------


@pytest.mark.slow  # a fresh cluster's workers import clusterlab: seconds on a busy machine
def test_codes_on_a_cluster(dask_client):
    Z, C = embeddings(6000, 50, d=16, seed=5)
    expected = sinkhorn_codes(np.ascontiguousarray(Z @ C.T), 0.05, 3)
    Zd = da.from_array(Z, chunks=(1000, 16)).persist()
    codes = sinkhorn_codes(Zd @ C.T, 0.05, 3)
    np.testing.assert_allclose(codes.compute(), expected, atol=1e-5, rtol=0)


def _unit_clustered(pick, noise, centres):
    Z = centres[pick[:, 0]] + 0.5 * noise
    return Z / np.linalg.norm(Z, axis=1, keepdims=True)


@pytest.mark.slow
def test_swav_codes_40k_by_500_on_two_workers(dask_client):
    """The issue's check: 40,000 x 500 float32, materialised and as a lazy Z @ C.T.

    The embeddings are generated on the workers (a 40 MB NumPy array would travel inside
    the graph), and brought back once for the in-memory reference."""
    n, d, K, chunk = 40_000, 64, 500, 5000
    rng = da.random.default_rng(7)
    centres = np.random.default_rng(7).standard_normal((8, d)).astype(np.float32)
    pick = rng.integers(0, 8, size=(n, 1), chunks=(chunk, 1))
    noise = rng.standard_normal((n, d), chunks=(chunk, d), dtype=np.float32)
    Zd = da.map_blocks(
        _unit_clustered, pick, noise, centres, dtype=np.float32, chunks=noise.chunks
    ).persist()
    C = embeddings(K, K, d=d, seed=8)[1]
    Z = Zd.compute()
    expected = sinkhorn_codes(np.ascontiguousarray(Z @ C.T), 0.05, 3)
    Sd = (Zd @ C.T).persist()  # the scores held by the workers, chunk by chunk
    codes = sinkhorn_codes(Sd, 0.05, 3)
    assert codes.dtype == np.float32
    assert codes.chunks == ((chunk,) * 8, (K,))
    np.testing.assert_allclose(codes.compute(), expected, atol=1e-5, rtol=0)
    lazy = sinkhorn_codes(Zd @ C.T, 0.05, 3)
    assert lazy.chunks == ((chunk,) * 8, (K,))
    np.testing.assert_allclose(lazy.compute(), expected, atol=1e-5, rtol=0)
