"""The certified lower bound of the Peng–Wei SDP, rank escalation, and iLA-SDP warm starts."""

import re
import warnings

import cvxpy as cp
import numpy as np
import pytest
from clusterlab.solvers.sdp.certificate import _cross_cluster_n, peng_wei_lower_bound, slack_bound
from clusterlab.solvers.sdp.likelihood import ila_sdp
from clusterlab.solvers.sdp.signed import solve_signed
from sklearn.exceptions import ConvergenceWarning
from sklearn.metrics import adjusted_rand_score

from clusterlab.datasets import make_isotropic_mixture
from clusterlab.sdp import SDPKMeans


def _sdp_optimum(X, K, **solve):
    """The K-means cost of the Peng–Wei SDP optimum by a direct cvxpy model (by default
    Clarabel, an interior-point solver: accurate to about 1e-8 at these sizes)."""
    Xc = X - X.mean(axis=0)
    n = X.shape[0]
    Z = cp.Variable((n, n), PSD=True)
    problem = cp.Problem(
        cp.Maximize(cp.trace(Xc @ Xc.T @ Z)), [Z >= 0, cp.sum(Z, axis=1) == 1, cp.trace(Z) == K]
    )
    problem.solve(**(solve or {"solver": "CLARABEL"}))
    assert problem.status == cp.OPTIMAL
    return float(np.sum(Xc**2) - problem.value)


def _blobs(n, p, K, separation, seed):
    rng = np.random.default_rng(seed)
    y = np.arange(n) % K
    centres = np.zeros((K, p))
    centres[np.arange(K), np.arange(K)] = np.sqrt(separation / 2)
    return centres[y] + rng.standard_normal((n, p)), y


# --- eq. (2) of the certificate against a slow reference -------------------------------


def test_the_bound_formula_holds_for_any_multipliers_and_feasible_z():
    """LB(y, N) = 1^T y + t lambda_min(C - sym(y) - N) is below <C, Z> for every feasible Z
    and every (y, N >= 0): checked with random y, random partitions and their mixtures."""
    rng = np.random.default_rng(0)
    n, K = 24, 3
    W = rng.standard_normal((n, 4))
    C = -(W @ W.T)
    labels = np.arange(n) % K
    for _ in range(20):
        y = rng.normal(scale=3.0, size=n)
        masks = [labels == k for k in range(K)]
        N = _cross_cluster_n(C - 0.5 * (y[:, None] + y[None, :]), masks)
        assert np.all(N >= 0)
        assert np.allclose(N, N.T)
        bound = y.sum() + K * np.linalg.eigvalsh(C - 0.5 * (y[:, None] + y[None, :]) - N)[0]
        for _ in range(5):  # convex combinations of partition matrices are feasible
            weights = rng.dirichlet(np.ones(3))
            Z = sum(
                w * sum(np.outer(part == k, part == k) / np.sum(part == k) for k in range(K))
                for w, part in zip(weights, [rng.permutation(labels) for _ in weights], strict=True)
            )
            assert bound <= np.sum(C * Z) + 1e-9


def test_certificate_value_is_its_own_formula():
    rng = np.random.default_rng(1)
    X, y = _blobs(30, 3, 3, 12.0, seed=1)
    W = (X - X.mean(axis=0)) / 3.0
    C = -(W @ W.T)
    multipliers = rng.normal(size=30)
    cert = peng_wei_lower_bound(C, 3, y, multipliers)
    N = _cross_cluster_n(C - 0.5 * (cert.y[:, None] + cert.y[None, :]), [y == k for k in range(3)])
    lowest = np.linalg.eigvalsh(C - 0.5 * (cert.y[:, None] + cert.y[None, :]) - N)[0]
    np.testing.assert_allclose(cert.min_eigenvalue, lowest, rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(cert.lower_bound, cert.y.sum() + 3 * lowest, rtol=1e-12)


# --- the estimator's bound against cvxpy -----------------------------------------------


@pytest.mark.parametrize(
    ("seed", "separation"), [(0, 1.5), (1, 0.6), (2, 0.3), (3, 1.0), (4, 0.15)]
)
def test_lower_bound_never_exceeds_the_sdp_optimum(seed, separation):
    """Separated and unseparated instances (relative to the recovery threshold): a bound
    above the optimum would be a bug; the low-rank objective is at or above it."""
    X, _ = make_isotropic_mixture(36, 3, 3, separation, random_state=seed)
    optimum = _sdp_optimum(X, 3)
    model = SDPKMeans(3, solver="lowrank", gap_tol=np.inf, random_state=seed).fit(X)
    slack = 1e-6 * optimum  # the interior-point solver's and the factor's tolerances
    assert model.lower_bound_ <= optimum + slack
    assert model.objective_ >= optimum - slack
    with warnings.catch_warnings():  # SCS at its default tolerance may say "inaccurate"
        warnings.simplefilter("ignore", ConvergenceWarning)
        exact = SDPKMeans(3, solver="cvxpy", random_state=seed).fit(X)
    # any multipliers give a valid bound: SCS's duals (to 1e-5) too
    assert exact.lower_bound_ <= optimum + slack


def test_gap_closes_on_separated_data():
    X, y = make_isotropic_mixture(150, 5, 3, 1.5, random_state=3)  # 1.5 x threshold
    with warnings.catch_warnings():
        warnings.simplefilter("error", ConvergenceWarning)
        model = SDPKMeans(3, solver="lowrank", random_state=0).fit(X)
    assert model.objective_ - model.lower_bound_ <= 1e-5 * model.objective_
    assert adjusted_rand_score(y, model.labels_) == 1.0
    assert model.rank_ == 6  # no escalation needed


def _normalised_cost(X):
    Xc = X - X.mean(axis=0)
    total = float(np.sum(Xc**2))
    W = Xc / np.sqrt(total / X.shape[0])
    return W, total, total / X.shape[0]  # K-means cost = total + unit * <-W W^T, Z>


def test_slack_bound_holds_for_any_dual_point():
    """Eq. (2) at arbitrary (y, N), N even with negative or asymmetric entries (clipped and
    symmetrised inside): never above the optimum."""
    X, _ = make_isotropic_mixture(24, 3, 3, 0.3, random_state=7)
    W, total, unit = _normalised_cost(X)
    optimum = _sdp_optimum(X, 3)
    rng = np.random.default_rng(7)
    for scale in (0.1, 1.0, 10.0):
        y = rng.normal(scale=scale, size=24)
        N = rng.normal(scale=scale, size=(24, 24))
        bound = total + unit * slack_bound(-(W @ W.T), 3, y, N).lower_bound
        assert bound <= optimum + 1e-7 * optimum


def test_signed_solver_reaches_the_doubly_nonnegative_optimum():
    """Below the threshold the optimum is not completely positive of low rank: the signed
    factor reaches it, and its multipliers certify it (the dual side of the gap closes)."""
    X, _ = make_isotropic_mixture(24, 3, 3, 0.3, random_state=7)
    W, total, unit = _normalised_cost(X)
    optimum = _sdp_optimum(X, 3)
    rng = np.random.default_rng(0)
    start = rng.standard_normal((24, 9))
    start *= np.sqrt(3) / np.linalg.norm(start)
    run = solve_signed(W, 3, start, np.zeros(24), tol=1e-7, max_iter=50000)
    objective = total + unit * run.objective
    bound = (
        total
        + unit * slack_bound(-(W @ W.T), 3, run.row_multipliers, run.entry_multipliers).lower_bound
    )
    assert run.primal_infeasibility <= 1e-5
    assert run.negative_mass <= 1e-5
    assert abs(objective - optimum) <= 1e-4 * optimum
    assert bound <= optimum + 1e-7 * optimum
    assert optimum - bound <= 1e-4 * optimum


def test_escalation_tightens_the_certified_gap():
    """Below the threshold the nonnegative factor's own multipliers give a loose bound
    (tens of units here); the signed escalation's give one within 1e-4 relative of the
    optimum, still below it."""
    X, _ = make_isotropic_mixture(36, 3, 3, 0.15, random_state=4)
    optimum = _sdp_optimum(X, 3)
    with pytest.warns(ConvergenceWarning, match="certified gap"):
        fixed = SDPKMeans(3, solver="lowrank", max_rank=6, random_state=0).fit(X)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)  # the primal may stay above
        grown = SDPKMeans(3, solver="lowrank", random_state=0).fit(X)
    slack = 1e-7 * optimum
    assert fixed.lower_bound_ <= optimum + slack
    assert grown.lower_bound_ <= optimum + slack
    assert optimum - grown.lower_bound_ <= 1e-4 * optimum
    assert optimum - grown.lower_bound_ < 0.01 * (optimum - fixed.lower_bound_)
    assert grown.objective_ >= optimum - 1e-6 * optimum  # feasible: never below


@pytest.mark.slow
def test_issue_case_reaches_the_optimum_or_reports_the_gap():
    """120 points, 3 clusters, squared centre distance 1.4 (below the threshold): the
    default fit is certified within ``gap_tol`` (1e-3 relative) of the SDP optimum, so it
    does not warn, and both sides of the certificate hold against SCS."""
    X, _ = make_isotropic_mixture(120, 2, 3, 1.4, relative=False, random_state=0)
    # SCS at 1e-7 (Clarabel's interior point is far slower at n = 120)
    optimum = _sdp_optimum(X, 3, solver="SCS", eps_abs=1e-7, eps_rel=1e-7, max_iters=10**6)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        model = SDPKMeans(3, solver="lowrank", random_state=0).fit(X)
    assert model.lower_bound_ <= optimum + 1e-6 * optimum
    assert optimum - model.lower_bound_ <= 2e-3 * optimum
    assert model.objective_ >= optimum - 1e-6 * optimum
    assert model.objective_ - model.lower_bound_ <= 1e-3 * model.objective_
    assert not [w for w in caught if w.category is ConvergenceWarning]


def test_gap_warning_carries_the_numbers():
    X, _ = make_isotropic_mixture(60, 2, 3, 0.2, random_state=0)
    with pytest.warns(ConvergenceWarning) as record:  # a tolerance tighter than the default
        model = SDPKMeans(3, solver="lowrank", gap_tol=1e-5, random_state=0).fit(X)
    text = str(record[0].message)
    gap = float(re.search(r"certified gap of ([0-9.e+-]+)", text).group(1))
    objective = float(re.search(r"objective_ (-?[0-9][0-9.e+-]*[0-9])", text).group(1))
    bound = float(re.search(r"lower_bound_ (-?[0-9][0-9.e+-]*[0-9])", text).group(1))
    np.testing.assert_allclose(gap, model.objective_ - model.lower_bound_, rtol=1e-3)
    np.testing.assert_allclose(objective, model.objective_, rtol=1e-7)
    np.testing.assert_allclose(bound, model.lower_bound_, rtol=1e-7)


# --- iLA-SDP warm starts -----------------------------------------------------------------


@pytest.mark.parametrize("solver", ["lowrank", "cvxpy"])
def test_ila_sdp_warm_start_matches_cold_solves(solver):
    rng = np.random.default_rng(5)
    n = 40 if solver == "cvxpy" else 100
    y = (np.arange(n) >= n // 2).astype(int)
    X = np.where(
        y[:, None] == 0, rng.normal(0.0, 0.5, (n, 2)), rng.normal([2.5, 0.0], [0.5, 3.0], (n, 2))
    )
    start = (X[:, 0] > 1.25).astype(np.int64)
    runs = [
        ila_sdp(
            X,
            start,
            2,
            ridge=0.01,
            solver=solver,
            rng=np.random.default_rng(0),
            warm_start=warm,
            tol=1e-6,
            lowrank_options={"ftol": 1e-10},
        )
        for warm in (True, False)
    ]
    warm, cold = runs
    assert adjusted_rand_score(warm.labels, cold.labels) == 1.0
    np.testing.assert_allclose(warm.objective_history[-1], cold.objective_history[-1], rtol=1e-3)
    for run in runs:
        assert np.all(np.diff(run.objective_history) <= 0)
