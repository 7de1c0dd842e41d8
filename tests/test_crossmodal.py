"""CrossModalPrototypeClustering (MGCA's swapped prototype head): a NumPy reference of the
iteration, balance, one view against both, backends, the estimator contract, bad input."""

import numpy as np
import pytest
from clusterlab.solvers import crossmodal as _cm
from sklearn.datasets import load_digits
from sklearn.metrics import adjusted_rand_score
from sklearn.utils.estimator_checks import parametrize_with_checks

from clusterlab import CrossModalPrototypeClustering


@parametrize_with_checks([CrossModalPrototypeClustering(n_clusters=3, random_state=0)])
def test_scikit_learn_compatible(estimator, check):
    check(estimator)


# -- a slow, plain NumPy reference ---------------------------------------------------------


def swav_codes_reference(S, eps, n_iter):
    """SwAV's ``distributed_sinkhorn`` transcribed line by line (one process)."""
    Q = np.exp(S / eps).T  # K x n
    Q /= Q.sum()
    K, n = Q.shape
    for _ in range(n_iter):
        Q /= Q.sum(axis=1, keepdims=True)
        Q /= K
        Q /= Q.sum(axis=0, keepdims=True)
        Q /= n
    return (Q * n).T


def unit(V):
    return V / np.linalg.norm(V, axis=1, keepdims=True)


def reference_iteration(X, Y, Cx, Cy, eps, n_iter):
    """One Gauss-Seidel iteration, written out: codes of Y, prototypes of X from them,
    codes of X, prototypes of Y from those, codes of Y again; and the objective."""
    Qy = swav_codes_reference(Y @ Cy.T, eps, n_iter)
    Cx_new = np.array([unit((Qy[:, k] @ X)[None])[0] for k in range(Cx.shape[0])])
    Qx = swav_codes_reference(X @ Cx_new.T, eps, n_iter)
    Cy_new = np.array([unit((Qx[:, k] @ Y)[None])[0] for k in range(Cy.shape[0])])
    Qy_new = swav_codes_reference(Y @ Cy_new.T, eps, n_iter)
    n = X.shape[0]
    objective = -sum(
        Qy_new[i, k] * (X[i] @ Cx_new[k]) + Qx[i, k] * (Y[i] @ Cy_new[k])
        for i in range(n)
        for k in range(Cx.shape[0])
    ) / (2 * n)
    return Cx_new, Cy_new, Qx, Qy_new, objective


def paired_views(n_per=30, k=3, noise=0.35, seed=0, dims=(4, 6)):
    """Two views of ``k`` groups: each view sees the group through its own directions."""
    rng = np.random.default_rng(seed)
    truth = np.repeat(np.arange(k), n_per)
    views = []
    for d in dims:
        directions = rng.standard_normal((k, d))
        views.append(directions[truth] + noise * rng.standard_normal((truth.size, d)))
    return views[0], views[1], truth


def test_one_iteration_matches_the_numpy_reference():
    X, Y, _ = paired_views(seed=1)
    Xu, Yu = unit(X), unit(Y)
    rng = np.random.default_rng(2)
    Cx, Cy = unit(rng.standard_normal((5, 4))), unit(rng.standard_normal((5, 6)))
    run = _cm.single_run(Xu, Yu, Cx, Cy, eps=0.1, n_sinkhorn_iter=3, max_iter=1, tol=0.0)
    Cx_ref, Cy_ref, Qx_ref, Qy_ref, objective_ref = reference_iteration(Xu, Yu, Cx, Cy, 0.1, 3)
    np.testing.assert_allclose(run.centers_x, Cx_ref, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(run.centers_y, Cy_ref, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(run.codes_x, Qx_ref, rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(run.codes_y, Qy_ref, rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(run.objective_history, [objective_ref], rtol=1e-10)
    assert run.n_iter == 1
    assert not run.converged


def test_estimator_prototypes_follow_the_reference_from_a_given_start():
    X, Y, _ = paired_views(seed=3)
    rng = np.random.default_rng(4)
    Cx, Cy = rng.standard_normal((3, 4)), rng.standard_normal((3, 6))
    model = CrossModalPrototypeClustering(3, init=(Cx, Cy), max_iter=2, tol=0.0)
    with pytest.warns(Warning, match="without reaching tol"):
        model.fit(X, Y)
    Cx1, Cy1, *_ = reference_iteration(unit(X), unit(Y), unit(Cx), unit(Cy), 0.05, 3)
    Cx2, Cy2, *_ = reference_iteration(unit(X), unit(Y), Cx1, Cy1, 0.05, 3)
    np.testing.assert_allclose(model.cluster_centers_x_, Cx2, rtol=1e-8, atol=1e-10)
    np.testing.assert_allclose(model.cluster_centers_y_, Cy2, rtol=1e-8, atol=1e-10)
    np.testing.assert_allclose(model.cluster_centers_, np.hstack([Cx2, Cy2]), atol=1e-10)


def test_simultaneous_swapped_updates_split_into_two_chains():
    """Why the iteration is Gauss-Seidel: updating both views from the previous codes
    makes C_x(t+2) a function of C_x(t) alone, so the two interleaved chains can end in
    a 2-cycle. The Gauss-Seidel iteration from the same start converges."""
    X, Y, _ = paired_views(n_per=40, k=4, noise=0.8, seed=5)
    Xu, Yu = unit(X), unit(Y)
    rng = np.random.default_rng(0)
    index = rng.choice(Xu.shape[0], 4, replace=False)
    Cx, Cy = Xu[index], Yu[index[::-1]]  # the two views start from different pairings
    run = _cm.single_run(Xu, Yu, Cx, Cy, eps=0.05, n_sinkhorn_iter=3, max_iter=200, tol=1e-10)
    assert run.converged
    Cx_j, Cy_j = Cx, Cy
    for _ in range(100):
        Qx, Qy = _cm.codes(Xu, Cx_j, 0.05, 3), _cm.codes(Yu, Cy_j, 0.05, 3)
        Cx_j, Cy_j = unit(Qy.T @ Xu), unit(Qx.T @ Yu)
    Qx, Qy = _cm.codes(Xu, Cx_j, 0.05, 3), _cm.codes(Yu, Cy_j, 0.05, 3)
    one_step = np.sum((unit(Qy.T @ Xu) - Cx_j) ** 2)
    assert one_step > 1e-3  # the simultaneous update still jumps after 100 iterations


# -- behaviour -------------------------------------------------------------------------------


def test_labels_are_balanced_and_recover_the_groups():
    X, Y, truth = paired_views(n_per=31, k=4, seed=6)
    model = CrossModalPrototypeClustering(4, n_init=3, random_state=0).fit(X, Y)
    sizes = np.bincount(model.labels_, minlength=4)
    assert np.all(np.abs(sizes - X.shape[0] / 4) < 1)
    assert adjusted_rand_score(truth, model.labels_) == 1.0
    assert model.converged_
    assert model.n_views_ == 2
    assert model.code_agreement_ > 0.95  # 3-iteration codes: a boundary sample may differ
    np.testing.assert_allclose(np.linalg.norm(model.cluster_centers_x_, axis=1), 1.0)
    np.testing.assert_allclose(np.linalg.norm(model.cluster_centers_y_, axis=1), 1.0)


def test_balanced_labels_on_unbalanced_evidence():
    """Labels hold n/K samples each even when the nearest prototypes are lopsided."""
    X, Y, _ = paired_views(n_per=25, k=3, seed=7)
    X = np.vstack([X, X[:25] + 0.01])  # group 0 twice as large in both views
    Y = np.vstack([Y, Y[:25] + 0.01])
    model = CrossModalPrototypeClustering(4, random_state=0).fit(X, Y)
    sizes = np.bincount(model.labels_, minlength=4)
    np.testing.assert_array_equal(np.sort(sizes), [25, 25, 25, 25])
    balanced = model.predict(X, Y, balanced=True)
    np.testing.assert_array_equal(np.sort(np.bincount(balanced, minlength=4)), [25] * 4)


def test_predict_from_one_view_or_both():
    X, Y, truth = paired_views(n_per=30, k=3, noise=0.8, seed=8)
    model = CrossModalPrototypeClustering(3, n_init=2, random_state=0).fit(X, Y)
    Xu, Yu = unit(X), unit(Y)
    Sx, Sy = Xu @ model.cluster_centers_x_.T, Yu @ model.cluster_centers_y_.T
    np.testing.assert_array_equal(model.predict(X), Sx.argmax(axis=1))
    np.testing.assert_array_equal(model.predict(None, Y), Sy.argmax(axis=1))
    np.testing.assert_array_equal(model.predict(X, Y), (Sx + Sy).argmax(axis=1))
    # the combined score is the cosine of the concatenated rows, up to the factor 2
    joint = np.hstack([Xu, Yu]) @ model.cluster_centers_.T
    np.testing.assert_allclose(joint, Sx + Sy, atol=1e-12)
    # noisy views disagree on some samples; both together are at least as good as either
    one = [
        adjusted_rand_score(truth, model.predict(X)),
        adjusted_rand_score(truth, model.predict(None, Y)),
    ]
    assert adjusted_rand_score(truth, model.predict(X, Y)) >= max(one) - 0.02
    assert np.mean(model.predict(X) == model.predict(None, Y)) > 0.6


def test_transform_is_the_softmax_of_the_scores():
    X, Y, _ = paired_views(seed=9)
    model = CrossModalPrototypeClustering(3, tau=0.3, random_state=0).fit(X, Y)
    S = unit(X) @ model.cluster_centers_x_.T + unit(Y) @ model.cluster_centers_y_.T
    expected = np.exp(S / 0.3) / np.exp(S / 0.3).sum(axis=1, keepdims=True)
    np.testing.assert_allclose(model.transform(X, Y), expected, rtol=1e-12)
    np.testing.assert_array_equal(model.transform(X).argmax(axis=1), model.predict(X))
    np.testing.assert_allclose(model.fit_transform(X, Y), expected, rtol=1e-12)


@pytest.mark.parametrize("second", [None, "labels"])
def test_one_view_fit(second):
    """y=None, or a 1-D y (scikit-learn's target), fits X alone: balanced spherical
    k-means with SwAV's codes."""
    X, _, truth = paired_views(n_per=20, k=3, seed=10)
    y = None if second is None else truth
    model = CrossModalPrototypeClustering(3, tol=1e-14, random_state=0).fit(X, y)
    assert model.n_views_ == 1
    assert model.cluster_centers_y_ is None
    assert model.code_agreement_ is None
    assert model.n_features_y_in_ is None
    np.testing.assert_array_equal(model.cluster_centers_, model.cluster_centers_x_)
    np.testing.assert_array_equal(np.bincount(model.labels_), [20, 20, 20])
    assert adjusted_rand_score(truth, model.labels_) == 1.0
    # each prototype is the direction of its own codes' samples at the fixed point
    codes = _cm.codes(unit(X), model.cluster_centers_x_, 0.05, 3)
    np.testing.assert_allclose(unit(codes.T @ unit(X)), model.cluster_centers_x_, atol=1e-6)
    with pytest.raises(ValueError, match="fitted on X alone"):
        model.predict(X, X)


def test_objective_nearly_decreases_and_n_init_picks_the_lowest():
    X, Y, _ = paired_views(n_per=40, k=5, noise=0.9, seed=11)
    runs = [CrossModalPrototypeClustering(5, random_state=s).fit(X, Y) for s in range(4)]
    for model in runs:
        history = model.objective_history_
        assert history[-1] <= history[0]
        assert model.objective_ == history[-1]
    rng = np.random.RandomState(0)
    starts = [
        CrossModalPrototypeClustering(5, random_state=rng).fit(X, Y).objective_ for _ in range(3)
    ]
    best = CrossModalPrototypeClustering(5, n_init=3, random_state=0).fit(X, Y)
    assert best.objective_ == pytest.approx(min(starts), abs=1e-12)


def test_digits_halves_beat_single_view_kmeans():
    """Real data: left and right halves of the digits (columns 0-3 and 4-7), each
    centred and L2-normalised; ARI above the better half's k-means."""
    from sklearn.cluster import KMeans

    digits = load_digits()
    n = digits.target.size

    def prepare(V):
        V = V - V.mean(axis=0)
        return V / np.linalg.norm(V, axis=1, keepdims=True)

    left = prepare(digits.images[:, :, :4].reshape(n, -1))
    right = prepare(digits.images[:, :, 4:].reshape(n, -1))
    model = CrossModalPrototypeClustering(10, n_init=3, random_state=0).fit(left, right)
    ours = adjusted_rand_score(digits.target, model.labels_)
    kmeans = max(
        adjusted_rand_score(digits.target, KMeans(10, n_init=3, random_state=0).fit_predict(view))
        for view in (left, right)
    )
    assert ours >= kmeans + 0.05
    assert model.converged_
    sizes = np.bincount(model.labels_)
    assert np.all(np.abs(sizes - n / 10) <= 0.1 * n / 10)
    assert 0.5 < model.code_agreement_ < 1.0


def test_zero_rows_score_nothing_and_the_other_view_decides():
    X, Y, _ = paired_views(n_per=20, k=3, seed=12)
    model = CrossModalPrototypeClustering(3, random_state=0).fit(X, Y)
    X_missing = X.copy()
    X_missing[:5] = 0.0
    np.testing.assert_array_equal(model.predict(X_missing, Y)[:5], model.predict(None, Y)[:5])
    np.testing.assert_allclose(model.transform(X_missing[:5]), 1 / 3)


def test_float32_is_kept():
    X, Y, _ = paired_views(seed=13)
    model = CrossModalPrototypeClustering(3, random_state=0).fit(
        X.astype(np.float32),
        Y.astype(np.float64),  # y follows X's dtype
    )
    assert model.cluster_centers_x_.dtype == np.float32
    assert model.cluster_centers_y_.dtype == np.float32
    assert model.transform(X, Y).dtype == np.float32


# -- backends ---------------------------------------------------------------------------------


def test_backends_fit_predict_transform(backend):
    X, Y, _ = paired_views(n_per=25, k=3, noise=0.6, seed=14)
    reference = CrossModalPrototypeClustering(3, random_state=0).fit(X, Y)
    Xb, Yb = backend.asarray(X), backend.asarray(Y)
    model = CrossModalPrototypeClustering(3, random_state=0).fit(Xb, Yb)
    for attribute in ("labels_", "cluster_centers_x_", "cluster_centers_y_", "cluster_centers_"):
        assert backend.is_own(getattr(model, attribute)), attribute
    np.testing.assert_array_equal(backend.to_numpy(model.labels_), reference.labels_)
    # the codes take the scaling domain off NumPy: differences of 1e-5 build up
    np.testing.assert_allclose(
        backend.to_numpy(model.cluster_centers_x_), reference.cluster_centers_x_, atol=1e-4
    )
    # a NumPy-fitted model on this backend's arrays: results of this kind
    for args in ((Xb,), (None, Yb), (Xb, Yb)):
        labels = reference.predict(*args)
        assert backend.is_own(labels)
        numpy_args = tuple(None if a is None else backend.to_numpy(a) for a in args)
        np.testing.assert_array_equal(backend.to_numpy(labels), reference.predict(*numpy_args))
        codes = reference.transform(*args)
        assert backend.is_own(codes)
        np.testing.assert_allclose(
            backend.to_numpy(codes), reference.transform(*numpy_args), rtol=1e-6, atol=1e-12
        )
    balanced = reference.predict(Xb, Yb, balanced=True)
    assert backend.is_own(balanced)
    np.testing.assert_array_equal(np.bincount(backend.to_numpy(balanced)), [25, 25, 25])


# -- bad input ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("params", "X", "Y", "message"),
    [
        ({"n_clusters": 5}, np.ones((3, 2)), np.ones((3, 2)), "n_samples=3 should be >= n_"),
        ({"n_clusters": 2}, np.eye(4), np.eye(3), "paired row by row"),
        ({"n_clusters": 2}, np.eye(4), np.ones((4, 2, 1)), "2-D array"),
        ({"n_clusters": 2}, np.eye(4), np.array([[np.nan] * 2] * 4), "NaN"),
        ({"n_clusters": 2, "init": np.eye(2)}, np.eye(4), np.eye(4), "a pair"),
        ({"n_clusters": 2, "init": (np.eye(2), np.eye(2))}, np.eye(4), np.eye(4), "init"),
        ({"n_clusters": 2, "init": (np.eye(2, 4), np.eye(2, 4))}, np.eye(4), None, "one array"),
    ],
)
def test_bad_input(params, X, Y, message):
    with pytest.raises(ValueError, match=message):
        CrossModalPrototypeClustering(**params).fit(X, Y)


def test_bad_input_at_predict():
    X, Y, _ = paired_views(seed=15)
    model = CrossModalPrototypeClustering(3, random_state=0).fit(X, Y)
    with pytest.raises(ValueError, match="at least one view"):
        model.predict(None)
    with pytest.raises(ValueError, match="expecting 6 features"):
        model.predict(X, Y[:, :5])
    with pytest.raises(ValueError, match="paired row by row"):
        model.predict(X, Y[:-1])
    with pytest.raises(ValueError, match="NaN"):
        model.transform(None, np.full_like(Y, np.nan))
