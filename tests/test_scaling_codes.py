"""SwAV's fixed-iteration codes on NumPy: the fused scaling-domain passes against plain
float64 references (the obvious iteration and the log-domain one)."""

import numpy as np
import pytest
from clusterlab.solvers import sinkhorn as solver
from scipy.special import logsumexp

from clusterlab import sinkhorn_codes
from tests.conftest import cosine_scores


def swav_reference(S, eps, n_iter):
    """SwAV's ``distributed_sinkhorn`` written plainly, in float64 and log domain:
    Q = exp(S / eps); per iteration normalise each prototype's column, then each
    sample's row; codes = rows summing to one."""
    log_q = np.asarray(S, dtype=np.float64) / eps
    for _ in range(n_iter):
        log_q = log_q - logsumexp(log_q, axis=0, keepdims=True)  # prototypes
        log_q = log_q - logsumexp(log_q, axis=1, keepdims=True)  # samples
    return np.exp(log_q)


# (n, K): one thread below the parallel threshold of 200,000 entries; the threaded pass
# above it, with blocks of unequal length
SHAPES = [(60, 7), (1003, 300)]


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize(("n", "K"), SHAPES)
@pytest.mark.parametrize("n_iter", [1, 3])
def test_fused_codes_match_the_plain_iteration(n, K, dtype, n_iter):
    S = cosine_scores(n, K, seed=3, dtype=dtype)
    reference = swav_reference(S, 0.05, n_iter)
    atol = 1e-6 if dtype == np.float32 else 1e-13
    for high in (None, float(S.max()) + 0.01):  # per-row shifts; a global bound
        codes = solver._numba_scaling_codes(S, 0.05, n_iter, high)
        assert codes.dtype == dtype
        np.testing.assert_allclose(
            codes, reference, rtol=1e-5 if dtype == np.float32 else 1e-11, atol=atol
        )


@pytest.mark.parametrize(("n", "K"), SHAPES)
def test_rows_with_far_apart_maxima_are_weighted_exactly(n, K):
    """Each row is shifted by its own maximum: the first column sums must weight the rows
    by ``exp((m_i - max S) / eps)``; rows whose scores sit up to 2 below others test it."""
    rng = np.random.default_rng(7)
    S = cosine_scores(n, K, seed=5) + rng.uniform(-2.0, 0.0, size=(n, 1))
    S = np.ascontiguousarray(S.astype(np.float32))
    eps = 0.05 * (n == 60) + 0.06 * (n != 60)  # spread / eps within the float32 range
    assert (S.max() - S.min()) / eps > 40  # most rows' maxima far below the global one
    codes = solver._numba_scaling_codes(S, eps, 3)
    assert codes is not None
    np.testing.assert_allclose(codes, swav_reference(S, eps, 3), rtol=2e-5, atol=1e-6)


def test_public_codes_stay_within_1e_5_of_the_log_domain():
    S = cosine_scores(4000, 500, dim=32, seed=11, dtype=np.float32)
    codes = sinkhorn_codes(S, eps=0.05, n_iter=3)
    log_domain = solver.sinkhorn(S, 0.05, n_iter=3, eps_scaling=False, plan_mass=np.ones(4000)).plan
    assert np.max(np.abs(codes - log_domain)) <= 1e-5
    assert np.max(np.abs(codes - swav_reference(S, 0.05, 3))) <= 1e-5


@pytest.mark.parametrize(("n", "K"), SHAPES)
def test_global_and_per_row_shifts_agree(n, K):
    """With the range given (global shift) and without (per-row shifts, the range found
    in the first pass): the same codes up to float32 rounding."""
    S = cosine_scores(n, K, seed=2, dtype=np.float32)
    given = solver.scaling_codes(S, 0.05, 3, score_range=(float(S.min()), float(S.max())))
    found = solver.scaling_codes(S, 0.05, 3)
    np.testing.assert_allclose(given, found, rtol=2e-6, atol=1e-7)
    reference = swav_reference(S, 0.05, 3)
    np.testing.assert_allclose(given, reference, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize(("n", "K"), SHAPES)
@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_non_finite_scores_give_none(n, K, bad):
    S = cosine_scores(n, K, seed=1, dtype=np.float32)
    S[n // 2, K - 1] = bad
    assert solver._numba_scaling_codes(S, 0.05, 3) is None


def test_too_wide_a_range_gives_none_after_the_pass():
    S = cosine_scores(200, 30, seed=4, dtype=np.float32)
    S[0, 0] = 10.0  # spread / eps ~ 220: beyond the float32 scaling domain
    assert solver._numba_scaling_codes(S, 0.05, 3) is None
    assert solver.scaling_codes(S, 0.05, 3) is None
    codes = sinkhorn_codes(S, eps=0.05, n_iter=3)  # the log-domain path
    np.testing.assert_allclose(codes, swav_reference(S, 0.05, 3), rtol=1e-4, atol=1e-6)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("n_chunks", [1, 7])
def test_score_extrema_in_one_pass(dtype, n_chunks):
    from clusterlab.solvers._scaling_kernels import score_extrema

    S = cosine_scores(301, 17, seed=9, dtype=dtype) - 0.25
    assert score_extrema(S, n_chunks) == (float(S.max()), float(S.min()))
    for bad in (np.nan, np.inf, -np.inf):
        T = S.copy()
        T[150, 3] = bad
        high, low = score_extrema(T, n_chunks)
        assert not (np.isfinite(high) and np.isfinite(low))
    T = S.copy()
    T[5, 5] = -np.nan  # a NaN with the sign bit set
    assert not np.all(np.isfinite(score_extrema(T, n_chunks)))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize(("n", "K"), SHAPES)
def test_first_pass_measures_the_range_for_the_callers_check(n, K, dtype):
    """Without a range given, the solver's first pass finds ``(min, max)`` itself and
    hands it to ``check_range``; the codes are those of the plain iteration."""
    S = cosine_scores(n, K, seed=6, dtype=dtype) - 0.3
    seen = []
    codes, result = solver.sinkhorn_codes(S, 0.05, 3, check_range=lambda *r: seen.append(r))
    assert seen == [(float(S.min()), float(S.max()))]
    assert result is None  # the scaling domain ran
    log_domain = solver.sinkhorn(S, 0.05, n_iter=3, eps_scaling=False, plan_mass=np.ones(n)).plan
    rtol = 1e-5 if dtype == np.float32 else 1e-11
    np.testing.assert_allclose(codes, log_domain, rtol=rtol, atol=1e-7)
    np.testing.assert_allclose(codes, swav_reference(S, 0.05, 3), rtol=rtol, atol=1e-7)


@pytest.mark.parametrize(("n", "K"), SHAPES)
@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_the_check_sees_non_finite_scores_and_can_reject_them(n, K, bad):
    S = cosine_scores(n, K, seed=1, dtype=np.float32)
    S[n - 1, 0] = bad

    def reject(low, high):
        assert np.isnan(low)
        assert np.isnan(high)
        raise ValueError("scores contains NaN or infinity.")

    with pytest.raises(ValueError, match="NaN or infinity"):
        solver.sinkhorn_codes(S, 0.05, 3, check_range=reject)


def test_a_range_too_wide_is_reported_and_falls_back_to_the_log_domain():
    S = cosine_scores(200, 30, seed=4, dtype=np.float32)
    S[3, 7] = 10.0  # spread / eps ~ 220: beyond the float32 scaling domain
    seen = []
    codes, result = solver.sinkhorn_codes(S, 0.05, 3, check_range=lambda *r: seen.append(r))
    assert seen == [(float(S.min()), 10.0)]
    assert result is not None  # the log-domain iteration ran
    assert result.n_iter == 3
    np.testing.assert_allclose(codes, swav_reference(S, 0.05, 3), rtol=1e-4, atol=1e-6)
