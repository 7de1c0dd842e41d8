"""MaxQuery scores, the prototype OOD detector and the OOD metrics, against brute force."""

import numpy as np
import pytest
from clusterlab.solvers import prototype_ood as _po
from sklearn.covariance import EmpiricalCovariance
from sklearn.decomposition import PCA
from sklearn.model_selection import train_test_split
from sklearn.utils.estimator_checks import parametrize_with_checks

from clusterlab.datasets import load_dataset
from clusterlab.metrics import OODScore, aupr, auroc, evaluate_ood, fpr_at_tpr
from clusterlab.ood import PrototypeOODDetector, max_query_score

# -- brute-force references ------------------------------------------------------------


def reference_auroc(s_in, s_out):
    """P(in > out) + P(in == out) / 2 over all pairs."""
    wins = (s_in[:, None] > s_out[None, :]).sum() + 0.5 * (s_in[:, None] == s_out[None, :]).sum()
    return wins / (s_in.size * s_out.size)


def reference_aupr(s_in, s_out):
    """sum over distinct thresholds (decreasing) of (R_k - R_{k-1}) P_k, accepting >= t."""
    total, previous_recall = 0.0, 0.0
    for t in sorted(set(s_in.tolist()) | set(s_out.tolist()), reverse=True):
        tp, fp = (s_in >= t).sum(), (s_out >= t).sum()
        recall = tp / s_in.size
        if tp + fp:
            total += (recall - previous_recall) * tp / (tp + fp)
        previous_recall = recall
    return total


def reference_fpr(s_in, s_out, tpr):
    """The smallest FPR over all thresholds t (scores) with TPR(t) >= tpr."""
    candidates = [
        np.mean(s_out >= t) for t in np.concatenate([s_in, s_out]) if np.mean(s_in >= t) >= tpr
    ]
    return min(candidates)


def reference_max_query(X, centers, affinity, normalize, temperature):
    """One sample and one prototype at a time, in float64."""
    X, centers = np.asarray(X, np.float64), np.asarray(centers, np.float64)
    out = np.empty(X.shape[0])
    for i, x in enumerate(X):
        a = np.empty(centers.shape[0])
        for n, c in enumerate(centers):
            a[n] = x @ c
            if affinity == "cosine":
                nx = np.sqrt(x @ x)
                a[n] = 0.0 if nx == 0 else a[n] / (nx * np.sqrt(c @ c))
        if normalize == "none":
            out[i] = a.max()
        else:
            e = np.exp((a - a.max()) / temperature)
            out[i] = (e / e.sum()).max()
    return out


def scores_with_ties(seed, n_in, n_out):
    rng = np.random.default_rng(seed)
    s_in = np.round(rng.normal(1.0, 1.0, n_in), 1)  # rounding makes ties within and across
    s_out = np.round(rng.normal(0.0, 1.0, n_out), 1)
    return s_in, s_out


# -- metrics -----------------------------------------------------------------------------


@pytest.mark.parametrize(("seed", "n_in", "n_out"), [(0, 50, 70), (1, 200, 30), (2, 7, 5)])
def test_metrics_match_brute_force(seed, n_in, n_out):
    s_in, s_out = scores_with_ties(seed, n_in, n_out)
    y = np.r_[np.ones(n_in), np.zeros(n_out)]
    s = np.r_[s_in, s_out]
    assert auroc(y, s) == pytest.approx(reference_auroc(s_in, s_out), abs=1e-12)
    assert aupr(y, s) == pytest.approx(reference_aupr(s_in, s_out), abs=1e-12)
    for tpr in (0.5, 0.8, 0.95, 1.0):
        assert fpr_at_tpr(y, s, tpr=tpr) == pytest.approx(reference_fpr(s_in, s_out, tpr))
    score = evaluate_ood(s_in, s_out)
    assert score == OODScore(auroc(y, s), aupr(y, s), fpr_at_tpr(y, s))


def test_fpr95_does_not_interpolate_between_thresholds():
    # 10 inliers: TPR steps by 0.1, so 95 % needs all ten; the threshold is then the lowest
    # inlier score, 0.05, and the three outliers above it count
    s_in = np.arange(10, 0, -1) / 10 - 0.05
    s_out = np.array([0.9, 0.3, 0.1, 0.0, -1.0])
    assert evaluate_ood(s_in, s_out).fpr95 == pytest.approx(0.6)
    assert fpr_at_tpr(np.r_[np.ones(10), np.zeros(5)], np.r_[s_in, s_out], tpr=0.9) == 0.4


def test_tied_inlier_and_outlier_are_accepted_together():
    s_in, s_out = np.array([1.0, 0.5]), np.array([0.5, 0.0])
    score = evaluate_ood(s_in, s_out)
    assert score.fpr95 == 0.5
    assert score.auroc == pytest.approx(0.875)  # the tied pair counts one half


def test_label_conventions_agree():
    s_in, s_out = scores_with_ties(3, 40, 40)
    s = np.r_[s_in, s_out]
    ones = np.r_[np.ones(40, int), np.zeros(40, int)]
    for y in (ones, 2 * ones - 1, ones.astype(bool), ones.astype(float)):
        assert auroc(y, s) == auroc(ones, s)
        assert aupr(y, s) == aupr(ones, s)
        assert fpr_at_tpr(y, s) == fpr_at_tpr(ones, s)


def test_separated_and_reversed_scores():
    s_in, s_out = np.linspace(1, 2, 30), np.linspace(-1, 0, 20)
    separated = evaluate_ood(s_in, s_out)
    assert (separated.auroc, separated.fpr95) == (1.0, 0.0)
    assert separated.aupr == pytest.approx(1.0, abs=1e-15)  # a sum of 30 precisions of 1
    reversed_score = evaluate_ood(-s_in, -s_out)
    assert reversed_score.auroc == 0.0
    assert reversed_score.fpr95 == 1.0
    y = np.r_[np.ones(30), np.zeros(20)]
    s_in, s_out = scores_with_ties(4, 30, 20)
    s = np.r_[s_in, s_out]
    assert auroc(y, -s) == pytest.approx(1 - auroc(y, s))


def test_metrics_take_tensors():
    torch = pytest.importorskip("torch")
    s_in, s_out = scores_with_ties(5, 30, 20)
    expected = evaluate_ood(s_in, s_out)
    assert evaluate_ood(torch.as_tensor(s_in), torch.as_tensor(s_out)) == expected
    y = np.r_[np.ones(30), np.zeros(20)]
    s = np.r_[s_in, s_out]
    assert auroc(torch.as_tensor(y), torch.as_tensor(s)) == expected.auroc


@pytest.mark.parametrize(
    ("y", "s", "message"),
    [
        ([1, 1, 1], [0.1, 0.2, 0.3], "both in-distribution"),
        ([1, 0, 2], [0.1, 0.2, 0.3], "got 2"),
        ([1, 0, -1], [0.1, 0.2, 0.3], "mixes 0 and -1"),
        (["a", "b"], [0.1, 0.2], "dtype"),
        ([1, 0], [0.1, np.nan], "NaN"),
        ([1, 0, 1], [0.1, 0.2], "same length"),
    ],
)
def test_metrics_bad_input(y, s, message):
    with pytest.raises(ValueError, match=message):
        auroc(y, s)


@pytest.mark.parametrize("tpr", [0.0, 1.5, -0.1, True, "0.95"])
def test_fpr_at_tpr_rejects_bad_rates(tpr):
    with pytest.raises(ValueError, match="tpr must be"):
        fpr_at_tpr([1, 0], [1.0, 0.0], tpr=tpr)


def test_evaluate_ood_rejects_empty_parts():
    with pytest.raises(ValueError, match="scores_out must be a non-empty"):
        evaluate_ood([1.0, 2.0], [])


# -- max_query_score ---------------------------------------------------------------------


def embeddings(n=60, d=6, K=5, seed=0, dtype=np.float64):
    rng = np.random.default_rng(seed)
    return rng.standard_normal((n, d)).astype(dtype), rng.standard_normal((K, d)).astype(dtype)


@pytest.mark.parametrize("affinity", ["cosine", "dot"])
@pytest.mark.parametrize(
    ("normalize", "temperature"), [("none", 0.1), ("softmax", 0.05), ("softmax", 1.0)]
)
def test_max_query_score_matches_reference(affinity, normalize, temperature):
    X, C = embeddings()
    got = max_query_score(X, C, affinity=affinity, normalize=normalize, temperature=temperature)
    expected = reference_max_query(X, C, affinity, normalize, temperature)
    np.testing.assert_allclose(got, expected, rtol=1e-12, atol=1e-14)


def test_softmax_of_far_apart_affinities_does_not_overflow():
    X, C = embeddings()
    got = max_query_score(100 * X, C, affinity="dot", normalize="softmax", temperature=1e-3)
    assert np.all(np.isfinite(got))
    np.testing.assert_allclose(got, 1.0)  # hard assignments


@pytest.mark.parametrize("affinity", ["cosine", "dot"])
@pytest.mark.parametrize("normalize", ["none", "softmax"])
def test_max_query_score_on_every_backend(backend, affinity, normalize):
    for dtype in (np.float64, np.float32):
        X, C = embeddings(dtype=dtype)
        expected = max_query_score(X, C, affinity=affinity, normalize=normalize)
        got = max_query_score(
            backend.asarray(X), backend.asarray(C), affinity=affinity, normalize=normalize
        )
        assert backend.is_own(got)
        assert backend.to_numpy(got).dtype == dtype
        np.testing.assert_allclose(
            backend.to_numpy(got), expected, rtol=1e-5 if dtype == np.float32 else 1e-12
        )
        # NumPy prototypes are moved to the samples' namespace and device
        moved = max_query_score(backend.asarray(X), C, affinity=affinity, normalize=normalize)
        assert backend.is_own(moved)
        np.testing.assert_allclose(backend.to_numpy(moved), backend.to_numpy(got))


def test_blocks_give_the_unblocked_scores():
    X, C = embeddings(n=53)
    for normalize in ("none", "softmax"):
        whole = _po.max_query(
            X, C / np.linalg.norm(C, axis=1, keepdims=True), normalize=normalize, temperature=0.1
        )
        blocked = _po.max_query(
            X,
            C / np.linalg.norm(C, axis=1, keepdims=True),
            normalize=normalize,
            temperature=0.1,
            block_rows=7,
        )
        np.testing.assert_allclose(blocked, whole, rtol=1e-15)


def test_gradients_on_torch_match_finite_differences():
    torch = pytest.importorskip("torch")
    X, C = embeddings(n=8, d=4, K=3)
    for affinity in ("cosine", "dot"):
        for normalize in ("none", "softmax"):
            Xt = torch.tensor(X, requires_grad=True)
            Ct = torch.tensor(C, requires_grad=True)

            def score(A, B, affinity=affinity, normalize=normalize):
                return max_query_score(
                    A, B, affinity=affinity, normalize=normalize, temperature=0.5
                )

            assert torch.autograd.gradcheck(score, (Xt, Ct))


def test_zero_sample_has_cosine_zero_and_zero_prototype_is_rejected():
    X, C = embeddings()
    X[3] = 0.0
    assert max_query_score(X, C)[3] == 0.0
    assert max_query_score(X, C, normalize="softmax")[3] == pytest.approx(1 / C.shape[0])
    C[1] = 0.0
    with pytest.raises(ValueError, match="centers has an all-zero row"):
        max_query_score(X, C)
    assert np.isfinite(max_query_score(X, C, affinity="dot")).all()


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"centers": np.ones((3, 4))}, "centers have 4 features but X has 6"),
        ({"affinity": "euclidean"}, "affinity must be one of"),
        ({"normalize": "sigmoid"}, "normalize must be one of"),
        ({"temperature": 0.0}, "temperature must be a positive number"),
        ({"X": np.full((2, 6), np.nan)}, "X contains NaN"),
    ],
)
def test_max_query_score_bad_input(kwargs, message):
    X, C = embeddings()
    arguments = {"X": X, "centers": C, **kwargs}
    X, C = arguments.pop("X"), arguments.pop("centers")
    with pytest.raises(ValueError, match=message):
        max_query_score(X, C, **arguments)


# -- PrototypeOODDetector -----------------------------------------------------------------


EXPECTED_FAILED_CHECKS = {
    "check_estimators_dtypes": (
        "its integer data (3 * uniform(20, 5) cast to int) has all-zero rows; a zero "
        "vector has no direction, and fit rejects it as SphericalKMeans does (the float "
        "dtypes are tested in this file)"
    ),
}


@parametrize_with_checks(
    [PrototypeOODDetector(n_prototypes=3, random_state=0)],
    expected_failed_checks=lambda _: EXPECTED_FAILED_CHECKS,
)
def test_scikit_learn_compatible(estimator, check):
    check(estimator)


def labelled_blobs(seed=0, n_per_class=40, d=5):
    rng = np.random.default_rng(seed)
    means = 4 * np.eye(d)[:3]
    X = np.concatenate([rng.normal(m, 1.0, (n_per_class, d)) for m in means])
    y = np.repeat(np.array(["ant", "bee", "cow"]), n_per_class)
    return X, y


def test_prototypes_are_spherical_kmeans_fixed_points_per_class():
    X, y = labelled_blobs()
    detector = PrototypeOODDetector(n_prototypes=4, random_state=0, tol=0).fit(X, y)
    assert detector.classes_.tolist() == ["ant", "bee", "cow"]
    assert detector.n_prototypes_.tolist() == [4, 4, 4]
    assert detector.prototype_classes_.tolist() == ["ant"] * 4 + ["bee"] * 4 + ["cow"] * 4
    np.testing.assert_allclose(np.linalg.norm(detector.cluster_centers_, axis=1), 1.0)
    unit = X / np.linalg.norm(X, axis=1, keepdims=True)
    for cls in detector.classes_:
        protos = detector.cluster_centers_[detector.prototype_classes_ == cls]
        members = unit[y == cls]
        nearest = np.argmax(members @ protos.T, axis=1)
        for k in range(protos.shape[0]):  # each prototype: normalised sum of its samples
            total = members[nearest == k].sum(axis=0)
            np.testing.assert_allclose(protos[k], total / np.linalg.norm(total), atol=1e-8)


def test_scores_are_the_largest_cosine_to_any_prototype():
    X, y = labelled_blobs(1)
    X_new, _ = labelled_blobs(2)
    for normalize in ("none", "softmax"):
        detector = PrototypeOODDetector(
            n_prototypes=3, normalize=normalize, temperature=0.2, random_state=0
        ).fit(X, y)
        expected = reference_max_query(X_new, detector.cluster_centers_, "cosine", normalize, 0.2)
        np.testing.assert_allclose(detector.score_samples(X_new), expected, rtol=1e-12)
        np.testing.assert_allclose(
            detector.decision_function(X_new), expected - detector.offset_, rtol=1e-12, atol=1e-15
        )


def test_offset_sets_the_training_outlier_fraction():
    X, y = labelled_blobs(3, n_per_class=100)
    for contamination in (0.05, 0.1, 0.3):
        detector = PrototypeOODDetector(
            n_prototypes=5, contamination=contamination, random_state=0
        ).fit(X, y)
        predicted = detector.predict(X)
        assert set(np.unique(predicted).tolist()) == {-1, 1}
        # 300 distinct training scores: the quantile falls between two of them
        assert np.sum(predicted == -1) == int(np.ceil(contamination * (300 - 1)))
        np.testing.assert_array_equal(predicted == 1, detector.decision_function(X) >= 0)


def test_small_and_duplicated_classes_keep_their_samples_as_prototypes():
    X, y = labelled_blobs(4)
    X = np.concatenate([X, [[0.0, 0, 0, 0, 3]], 10 * [[0.0, 0, 0, 2, 2]] + 5 * [[0.0, 0, 1, 0, 0]]])
    y = np.concatenate([y, ["dog"], 15 * ["eel"]])
    detector = PrototypeOODDetector(n_prototypes=3, random_state=0).fit(X, y)
    assert detector.n_prototypes_.tolist() == [3, 3, 3, 1, 2]
    np.testing.assert_allclose(
        detector.cluster_centers_[detector.prototype_classes_ == "dog"], [[0, 0, 0, 0, 1]]
    )
    eel = detector.cluster_centers_[detector.prototype_classes_ == "eel"]
    expected = np.array([[0, 0, 0, 1, 1] / np.sqrt(2), [0, 0, 1, 0, 0]])
    np.testing.assert_allclose(eel[np.argsort(-eel[:, 3])], expected, atol=1e-15)
    assert detector.score_samples([[0.0, 0, 0, 0, 5]])[0] == pytest.approx(1.0)


def test_without_labels_all_samples_form_one_class():
    X, y = labelled_blobs(5)
    detector = PrototypeOODDetector(n_prototypes=3, random_state=0).fit(X)
    assert detector.classes_.tolist() == [0]
    assert detector.cluster_centers_.shape == (3, X.shape[1])
    labelled = PrototypeOODDetector(n_prototypes=1, random_state=0).fit(X, y)
    assert labelled.cluster_centers_.shape == (3, X.shape[1])


def test_integer_labels_and_float32_are_kept():
    X, y = labelled_blobs(6)
    codes = np.unique(y, return_inverse=True)[1] * 10 - 1  # -1, 9, 19: -1 is a class here
    detector = PrototypeOODDetector(n_prototypes=2, random_state=0).fit(X.astype(np.float32), codes)
    assert detector.classes_.tolist() == [-1, 9, 19]
    assert detector.cluster_centers_.dtype == np.float32
    assert detector.score_samples(X.astype(np.float32)).dtype == np.float32


def test_detector_on_every_backend(backend):
    X, y = labelled_blobs(7)
    X_new, _ = labelled_blobs(8)
    detector = PrototypeOODDetector(n_prototypes=3, random_state=0).fit(X, y)
    for method in ("score_samples", "decision_function", "predict"):
        expected = getattr(detector, method)(X_new)
        got = getattr(detector, method)(backend.asarray(X_new))
        assert backend.is_own(got)
        np.testing.assert_allclose(backend.to_numpy(got), expected, rtol=1e-12)
    assert backend.to_numpy(detector.predict(backend.asarray(X_new))).dtype == np.int64
    # fitting on the backend's arrays copies them to the host: the same prototypes
    on_backend = PrototypeOODDetector(n_prototypes=3, random_state=0).fit(
        backend.asarray(X), backend.asarray(np.unique(y, return_inverse=True)[1])
    )
    assert isinstance(on_backend.cluster_centers_, np.ndarray)
    np.testing.assert_allclose(on_backend.cluster_centers_, detector.cluster_centers_)


def test_fit_does_not_modify_its_input():
    X, y = labelled_blobs(9)
    kept = X.copy()
    PrototypeOODDetector(random_state=0).fit(X, y)
    np.testing.assert_array_equal(X, kept)


@pytest.mark.parametrize(
    ("X", "y", "message"),
    [
        (np.r_[np.ones((3, 2)), np.zeros((1, 2))], None, "all-zero row"),
        (np.ones((4, 2)), [0, 1, 0], "y has 3 labels but X has 4"),
        (np.ones((4, 2)), [0.5, 1.5, 0.1, 0.2], "continuous"),
        (np.ones((4, 2)), [0, 1, np.nan, 1], "NaN"),
    ],
)
def test_detector_bad_input(X, y, message):
    with pytest.raises(ValueError, match=message):
        PrototypeOODDetector().fit(X, y)


def test_digits_beats_class_conditional_mahalanobis():
    # the benchmark's protocol on one split: PCA-32 on the inlier training part, L2 rows
    X, y = load_dataset("digits")
    inlier = y <= 6
    X_train, X_test, y_train, _ = train_test_split(
        X[inlier], y[inlier], test_size=0.3, stratify=y[inlier], random_state=0
    )
    pca = PCA(32, random_state=0).fit(X_train)

    def features(A):
        Z = pca.transform(A)
        return Z / np.linalg.norm(Z, axis=1, keepdims=True)

    F_train, F_in, F_out = features(X_train), features(X_test), features(X[~inlier])
    detector = PrototypeOODDetector(n_prototypes=10, random_state=0).fit(F_train, y_train)
    ours = evaluate_ood(detector.score_samples(F_in), detector.score_samples(F_out))
    means = np.stack([F_train[y_train == c].mean(axis=0) for c in range(7)])
    cov = EmpiricalCovariance(assume_centered=True).fit(F_train - means[y_train])

    def mahalanobis(A):
        return -np.min([cov.mahalanobis(A - m) for m in means], axis=0)

    theirs = evaluate_ood(mahalanobis(F_in), mahalanobis(F_out))
    assert ours.auroc > theirs.auroc
    assert ours.fpr95 < theirs.fpr95
    single = PrototypeOODDetector(n_prototypes=1, random_state=0).fit(F_train, y_train)
    assert evaluate_ood(single.score_samples(F_in), single.score_samples(F_out)).auroc < ours.auroc
