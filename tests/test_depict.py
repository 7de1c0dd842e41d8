"""DEPICT's targets and head: references, inequalities, monotone objective, backends."""

import warnings

import numpy as np
import pytest
from clusterlab.solvers import depict as solver
from scipy.optimize import minimize
from scipy.special import softmax
from sklearn.datasets import make_blobs
from sklearn.decomposition import PCA
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import LogisticRegression
from sklearn.utils.estimator_checks import parametrize_with_checks

from clusterlab import DEPICTClustering, depict_targets
from clusterlab.datasets import load_dataset
from clusterlab.metrics import clustering_accuracy

# -- slow, obviously-correct references ----------------------------------------------


def objective_reference(Q, P):
    """L(Q) = (1/N) sum_ik q log(q / p) + sum_k f log(f K), term by term."""
    n, K = Q.shape
    total = 0.0
    for i in range(n):
        for k in range(K):
            if Q[i, k] > 0:
                total += Q[i, k] * np.log(Q[i, k] / P[i, k]) / n
    for k in range(K):
        f = sum(Q[i, k] for i in range(n)) / n
        if f > 0:
            total += f * np.log(f * K)
    return total


def closed_form_reference(P, power, root):
    """q_ik ∝ p_ik^power / (sum_i' p_i'k)^root, entry by entry."""
    n, K = P.shape
    column = [sum(P[i, k] for i in range(n)) for k in range(K)]
    Q = np.array([[P[i, k] ** power / column[k] ** root for k in range(K)] for i in range(n)])
    return Q / Q.sum(axis=1, keepdims=True)


def minimise_objective(P):
    """The exact target by direct minimisation of L over the logits of Q (L-BFGS)."""
    n, K = P.shape

    def fun(x):  # the reference objective above, written with whole-array operations
        Q = softmax(x.reshape(n, K), axis=1)
        f = Q.mean(axis=0)
        return np.sum(Q * np.log(Q / P)) / n + np.sum(f * np.log(f * K))

    run = minimize(
        fun,
        np.log(P).ravel(),
        method="L-BFGS-B",
        options={"ftol": 1e-15, "gtol": 1e-10, "maxiter": 5000},
    )
    return softmax(run.x.reshape(n, K), axis=1), run.fun


def fixed_point_map(Q, P):
    """normalise_rows(p_ik u_k / f_k(Q))."""
    mapped = P / Q.mean(axis=0)
    return mapped / mapped.sum(axis=1, keepdims=True)


def random_probabilities(n, K, concentration, seed):
    return np.random.default_rng(seed).dirichlet(np.full(K, concentration), size=n)


def L(Q, P):
    return float(solver.target_objective(Q, P))


# -- targets ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def digits_head_proba():
    """A real P: the softmax of a head fitted to k-means labels on digits (PCA-32)."""
    X, _ = load_dataset("digits")
    X = PCA(32, random_state=0).fit_transform(X)
    model = DEPICTClustering(10, target="none", n_init=2, random_state=0).fit(X)
    return model.predict_proba(X)


def test_objective_matches_the_reference():
    P = random_probabilities(30, 4, 1.0, 0)
    Q = random_probabilities(30, 4, 0.5, 1)
    Q[0] = [1.0, 0.0, 0.0, 0.0]  # 0 log 0 = 0
    assert L(Q, P) == pytest.approx(objective_reference(Q, P), rel=1e-12)
    P0 = P.copy()
    P0[1] = [0.0, 0.5, 0.5, 0.0]
    assert L(P0, P0) == pytest.approx(objective_reference(P0, P0), rel=1e-12)
    assert L(Q, P0) == np.inf  # mass where p = 0


@pytest.mark.parametrize(("kind", "power", "root"), [("sqrt", 1, 0.5), ("dec", 2, 1)])
def test_closed_forms_match_the_reference(kind, power, root):
    P = random_probabilities(25, 5, 0.7, 2)
    np.testing.assert_allclose(
        depict_targets(P, kind), closed_form_reference(P, power, root), rtol=1e-12
    )


@pytest.mark.parametrize("concentration", [0.2, 1.0, 5.0])
def test_exact_target_is_the_minimiser(concentration):
    P = random_probabilities(24, 3, concentration, 3)
    Q = depict_targets(P)
    Q_ref, value = minimise_objective(P)
    assert L(Q, P) <= value + 1e-12
    np.testing.assert_allclose(Q, Q_ref, atol=2e-5)


@pytest.mark.parametrize(
    ("n", "K", "concentration", "seed"),
    [(400, 6, 1.0, 0), (300, 10, 0.1, 1), (500, 3, 20.0, 2), (200, 8, 0.5, 3)],
)
def test_target_inequalities_on_random_probabilities(n, K, concentration, seed):
    P = random_probabilities(n, K, concentration, seed)
    P[: n // 2] = 0.5 * P[: n // 2] + 0.5 * np.eye(K)[0]  # unbalanced frequencies
    check_targets(P)


def test_target_inequalities_on_a_real_head(digits_head_proba):
    check_targets(digits_head_proba)


def check_targets(P):
    exact = depict_targets(P, "exact")
    np.testing.assert_allclose(exact, fixed_point_map(exact, P), rtol=0, atol=1e-6)
    np.testing.assert_allclose(exact.sum(axis=1), 1.0, rtol=1e-12)
    values = {kind: L(depict_targets(P, kind), P) for kind in ("exact", "sqrt", "dec")}
    values["P"] = L(P, P)
    assert values["exact"] <= values["sqrt"] <= values["P"]
    assert values["exact"] <= values["dec"]
    assert values["exact"] < values["P"]  # the prior moves the targets off P


def test_exact_target_of_balanced_probabilities_is_themselves():
    P = np.kron(np.ones((5, 1)), random_probabilities(4, 4, 1.0, 0))
    P = np.concatenate([P, np.roll(P, 1, axis=1), np.roll(P, 2, axis=1), np.roll(P, 3, 1)])
    np.testing.assert_allclose(P.mean(axis=0), 0.25)
    np.testing.assert_allclose(depict_targets(P), P, atol=1e-12)


def test_exact_target_warns_at_its_cap():
    P = random_probabilities(100, 5, 0.3, 4)
    with pytest.warns(ConvergenceWarning, match="max_iter=2"):
        depict_targets(P, max_iter=2)


@pytest.mark.parametrize(
    ("P", "message"),
    [
        (np.array([[0.5, 0.5], [1.2, -0.2]]), "nonnegative"),
        (np.array([[0.5, 0.6], [0.5, 0.5]]), "sum to 1"),
        (np.array([[np.nan, 1.0], [0.5, 0.5]]), "NaN"),
        (np.array([[1.0, 0.0], [1.0, 0.0]]), "zero for every sample"),
        (np.ones(3) / 3, "2-dimensional"),
    ],
)
def test_bad_probabilities_are_rejected(P, message):
    with pytest.raises(ValueError, match=message):
        depict_targets(P)


def test_bad_kind_is_rejected():
    with pytest.raises(ValueError, match="kind must be one of"):
        depict_targets(np.full((3, 2), 0.5), "softmax")


# -- the softmax regression ----------------------------------------------------------


def test_softmax_gradient_matches_finite_differences():
    rng = np.random.default_rng(0)
    Z, Q = rng.standard_normal((40, 3)), random_probabilities(40, 4, 1.0, 1)
    loss = solver._softmax_loss(Z, Q, 0.3)
    x = rng.standard_normal(16)
    _, grad = loss(x)
    step = 1e-6
    numeric = [(loss(x + step * e)[0] - loss(x - step * e)[0]) / (2 * step) for e in np.eye(16)]
    np.testing.assert_allclose(grad, numeric, rtol=1e-6, atol=1e-9)


def test_softmax_fit_on_hard_labels_matches_scikit_learn():
    X, y = make_blobs(n_samples=150, centers=3, cluster_std=2.0, random_state=0)
    X = (X - X.mean(axis=0)) / 5
    alpha = 0.01
    coef, intercept, _ = solver.fit_softmax(
        X, np.eye(3)[y], np.zeros((3, 2)), np.zeros(3), alpha, max_iter=1000
    )
    # LogisticRegression minimises sum CE + ||W||^2 / (2C): the same fit for C = 1/(N alpha)
    peer = LogisticRegression(C=1 / (150 * alpha), tol=1e-10, max_iter=10_000).fit(X, y)
    P_ours, _ = solver.softmax_proba(X, coef, intercept)
    np.testing.assert_allclose(P_ours, peer.predict_proba(X), atol=1e-5)


# -- the estimator -------------------------------------------------------------------


@parametrize_with_checks([DEPICTClustering(n_clusters=3, n_init=2, random_state=0)])
def test_scikit_learn_compatible(estimator, check):
    check(estimator)


@pytest.fixture(scope="module")
def digits_pca():
    X, y = load_dataset("digits")
    return PCA(32, random_state=0).fit_transform(X), y


@pytest.fixture(scope="module")
def digits_model(digits_pca):
    X, _ = digits_pca
    return DEPICTClustering(10, n_init=2, random_state=0).fit(X)


@pytest.mark.parametrize(("alpha", "data"), [(1e-3, "digits"), (0.0, "blobs"), (1e-2, "blobs")])
def test_exact_objective_never_increases(alpha, data, digits_pca):
    if data == "digits":
        X, _ = digits_pca
    else:
        X, _ = make_blobs(n_samples=300, centers=5, cluster_std=2.5, random_state=1)
    model = DEPICTClustering(
        10 if data == "digits" else 5, alpha=alpha, max_iter=15, n_init=2, random_state=0
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)  # 15 iterations: may stop short
        model.fit(X)
    history = model.objective_history_
    assert len(history) >= 3
    assert np.all(np.diff(history) <= 1e-12 * np.abs(history[:-1]))
    assert history[-1] < history[0]


def test_objective_history_is_the_objective(digits_pca):
    X, _ = digits_pca
    model = DEPICTClustering(10, alpha=1e-3, max_iter=3, n_init=1, random_state=0)
    with pytest.warns(ConvergenceWarning):
        model.fit(X)
    P = model.predict_proba(X)
    Q = depict_targets(P)
    W_model = model._coef
    expected = objective_reference(Q, P) + 0.5 * 1e-3 * np.sum(W_model**2)
    assert model.objective_history_[-1] == pytest.approx(expected, rel=1e-6)


def test_recovers_from_a_collapsed_start_thanks_to_the_prior():
    X, y = make_blobs(n_samples=400, centers=4, cluster_std=1.0, random_state=0)
    rng = np.random.default_rng(0)
    init = y.copy()
    init[rng.permutation(400)[:360]] = 0  # 90% of the points in cluster 0
    assert np.bincount(init).max() >= 0.9 * 400
    model = DEPICTClustering(4, init=init, max_iter=300).fit(X)
    assert model.converged_
    assert clustering_accuracy(y, model.labels_) >= 0.85
    assert np.bincount(model.labels_).max() <= 0.3 * 400
    # without the frequency prior (Q = P), the collapsed start stays collapsed
    without = DEPICTClustering(4, target="none", init=init).fit(X)
    assert np.bincount(without.labels_).max() >= 0.8 * 400


def test_fitted_attributes_and_inference(digits_pca, digits_model):
    X, _ = digits_pca
    model = digits_model
    assert model.labels_.dtype == np.int64
    np.testing.assert_array_equal(model.predict(X), model.labels_)
    P = model.predict_proba(X)
    np.testing.assert_allclose(P.sum(axis=1), 1.0)
    np.testing.assert_allclose(P, softmax(X @ model.coef_.T + model.intercept_, axis=1), atol=1e-10)
    assert model.n_iter_ >= 1
    assert model.converged_
    assert len(model.objective_history_) == model.n_iter_ + 1
    history = model.objective_history_  # the default fit (alpha = 0): never increases
    assert np.all(np.diff(history) <= 1e-12 * np.abs(history[:-1]))
    assert history[-1] < 1e-3 * history[0]  # the exact targets balance the head: J -> 0
    assert model.predict_proba(X.astype(np.float32)).dtype == np.float32


def test_fit_predict_equals_labels():
    X, _ = make_blobs(n_samples=90, centers=3, random_state=0)
    model = DEPICTClustering(3, random_state=0)
    np.testing.assert_array_equal(model.fit_predict(X), model.fit(X).labels_)


def test_not_converged_warns_with_the_numbers():
    X, _ = make_blobs(n_samples=200, centers=4, cluster_std=3.0, random_state=2)
    with pytest.warns(ConvergenceWarning, match=r"max_iter=1 iterations with a mean"):
        DEPICTClustering(4, alpha=1e-2, max_iter=1, tol=1e-12, random_state=0).fit(X)


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"init": np.zeros(5, dtype=int)}, r"shape \(60,\)"),
        ({"init": np.full(60, 7)}, r"lie in \[0, 3\)"),
        ({"n_clusters": 61}, "n_samples=60 should be >= n_clusters=61"),
    ],
)
def test_bad_parameters_are_rejected(params, message):
    X, _ = make_blobs(n_samples=60, centers=3, random_state=0)
    with pytest.raises(ValueError, match=message):
        DEPICTClustering(**{"n_clusters": 3, **params}).fit(X)


# -- backends ------------------------------------------------------------------------


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("kind", ["exact", "sqrt", "dec"])
def test_targets_on_every_backend(backend, dtype, kind):
    P = random_probabilities(200, 6, 0.5, 5).astype(dtype)
    expected = depict_targets(P.astype(np.float64), kind)
    Q = depict_targets(backend.asarray(P), kind)
    assert backend.is_own(Q)
    assert Q.dtype == backend.asarray(P).dtype
    assert tuple(Q.shape) == P.shape
    atol = 1e-6 if dtype == np.float32 else 1e-12
    np.testing.assert_allclose(backend.to_numpy(Q), expected, atol=atol)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_predict_proba_on_every_backend(backend, dtype, digits_pca, digits_model):
    X, _ = digits_pca
    model = digits_model
    Xb = backend.asarray(X.astype(dtype))
    P = model.predict_proba(Xb)
    assert backend.is_own(P)
    assert P.dtype == Xb.dtype
    atol = 1e-4 if dtype == np.float32 else 1e-10
    np.testing.assert_allclose(backend.to_numpy(P), model.predict_proba(X), atol=atol)
    labels = model.predict(Xb)
    assert backend.is_own(labels)
    agree = np.mean(backend.to_numpy(labels) == model.labels_)
    assert agree >= (0.995 if dtype == np.float32 else 1.0)


def test_fit_on_a_tensor_equals_fit_on_numpy():
    torch = pytest.importorskip("torch")
    X, _ = make_blobs(n_samples=200, centers=4, cluster_std=2.0, random_state=3)
    ours = DEPICTClustering(4, n_init=1, random_state=0).fit(torch.as_tensor(X))
    reference = DEPICTClustering(4, n_init=1, random_state=0).fit(X)
    np.testing.assert_array_equal(ours.labels_, reference.labels_)
    np.testing.assert_allclose(ours.coef_, reference.coef_)


def test_torch_predict_proba_is_differentiable_and_targets_are_detached():
    torch = pytest.importorskip("torch")
    X, _ = make_blobs(n_samples=120, centers=3, cluster_std=2.0, random_state=0)
    model = DEPICTClustering(3, random_state=0).fit(X)
    Xt = torch.tensor(X, requires_grad=True)
    P = model.predict_proba(Xt)
    assert P.requires_grad
    chosen = torch.as_tensor(model.labels_)
    loss = -torch.log(P[torch.arange(120), chosen]).sum()
    loss.backward()
    # d/dx of -log p_c = (p - e_c) @ coef
    P_np = model.predict_proba(X)
    expected = (P_np - np.eye(3)[model.labels_]) @ model.coef_
    np.testing.assert_allclose(Xt.grad.numpy(), expected, rtol=1e-8, atol=1e-12)
    Q = depict_targets(P)
    assert not Q.requires_grad
