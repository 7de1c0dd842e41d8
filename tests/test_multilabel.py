import numpy as np
import pytest

from clusterlab import mlc_loss, mlcd_loss, multilabel_assign
from clusterlab.multilabel import negative_columns


def unit(X):
    return X / np.linalg.norm(X, axis=1, keepdims=True)


def brute_force_topk(X, centers, k):
    """Cosines of every row to every centre, fully sorted (largest first, ties by index)."""
    S = unit(X) @ unit(centers).T
    order = np.array([sorted(range(S.shape[1]), key=lambda j, r=row: (-r[j], j)) for row in S])
    indices = order[:, :k]
    return indices, np.take_along_axis(S, indices, axis=1)


def naive_mlcd(S, positives, negative_mask, scale):
    """``log(1 + A + B + AB)`` with A, B the plain sums of exponentials (overflows for
    large similarities: used where it does not)."""
    total = 0.0
    for i, row in enumerate(scale * S):
        A = sum(np.exp(-row[j]) for j in positives[i])
        B = sum(
            np.exp(row[j]) for j in range(len(row)) if negative_mask[j] and j not in positives[i]
        )
        total += np.log(1 + A + B + A * B)
    return total / len(S)


def naive_mlc(S, positives, scale):
    total = 0.0
    for i, row in enumerate(scale * S):
        negatives = [j for j in range(len(row)) if j not in positives[i]]
        total += np.log(
            1 + sum(np.exp(row[j]) for j in negatives) * sum(np.exp(-row[j]) for j in positives[i])
        )
    return total / len(S)


def similarities_and_targets(n=12, K=30, n_positives=4, seed=0):
    rng = np.random.default_rng(seed)
    S = rng.uniform(-1, 1, size=(n, K))
    positives = np.array([rng.choice(K, n_positives, replace=False) for _ in range(n)])
    return S, positives


@pytest.mark.parametrize("chunk_size", [None, 1, 7])
def test_multilabel_assign_equals_brute_force_topk(backend, chunk_size):
    rng = np.random.default_rng(1)
    X = rng.standard_normal((45, 10)) * rng.uniform(0.5, 3, (45, 1))
    centers = rng.standard_normal((23, 10))
    indices, values = multilabel_assign(
        backend.asarray(X), backend.asarray(centers), k=5, chunk_size=chunk_size
    )
    assert backend.is_own(indices)
    assert backend.is_own(values)
    expected_indices, expected_values = brute_force_topk(X, centers, 5)
    np.testing.assert_array_equal(backend.to_numpy(indices), expected_indices)
    np.testing.assert_allclose(backend.to_numpy(values), expected_values, rtol=1e-12)
    assert str(indices.dtype).endswith("int64")


def test_multilabel_assign_float32_and_large_k():
    rng = np.random.default_rng(2)
    X = rng.standard_normal((300, 16)).astype(np.float32)
    centers = rng.standard_normal((500, 16)).astype(np.float32)
    indices, values = multilabel_assign(X, centers, k=8, chunk_size=64)
    assert values.dtype == np.float32
    S = unit(X.astype(np.float64)) @ unit(centers.astype(np.float64)).T
    expected = np.take_along_axis(S, indices, axis=1)
    np.testing.assert_allclose(values, expected, atol=1e-5)
    assert np.all(np.diff(values, axis=1) <= 0)  # sorted, largest first
    # the k-th value bounds every other centre's cosine (to float32 rounding)
    np.testing.assert_array_less(np.sort(S, axis=1)[:, -9], values[:, -1] + 1e-5)


@pytest.mark.parametrize(
    ("X", "centers", "k", "message"),
    [
        (np.ones((3, 2)), np.ones((2, 3)), 1, "centers have 3 features"),
        (np.ones((3, 2)), np.ones((2, 2)), 3, "k=3 is larger"),
        (np.array([[0.0, 0], [1, 1]]), np.ones((2, 2)), 1, "X has an all-zero row"),
        (np.ones((3, 2)), np.array([[0.0, 0], [1, 1]]), 1, "centers has an all-zero row"),
    ],
)
def test_multilabel_assign_bad_input(X, centers, k, message):
    with pytest.raises(ValueError, match=message):
        multilabel_assign(X, centers, k=k)


@pytest.mark.parametrize("scale", [1.0, 5.0])
def test_mlcd_loss_equals_the_naive_formula_with_every_negative(backend, scale):
    S, positives = similarities_and_targets()
    loss = mlcd_loss(backend.asarray(S), backend.asarray(positives), neg_ratio=1.0, scale=scale)
    expected = naive_mlcd(S, positives, np.ones(S.shape[1], bool), scale)
    assert float(backend.to_numpy(loss)) == pytest.approx(expected, rel=1e-12)


def test_mlcd_loss_samples_the_negative_columns():
    S, positives = similarities_and_targets(K=60, seed=3)
    mask = negative_columns(60, 0.25, random_state=7)
    assert mask.sum() == 15
    expected = naive_mlcd(S, positives, mask, 2.0)
    assert mlcd_loss(S, positives, neg_ratio=0.25, scale=2.0, random_state=7) == pytest.approx(
        expected, rel=1e-12
    )
    full = naive_mlcd(S, positives, np.ones(60, bool), 2.0)
    assert expected < full  # fewer negatives, smaller loss
    draws = {mlcd_loss(S, positives, neg_ratio=0.25, random_state=seed) for seed in range(5)}
    assert len(draws) > 1  # redrawn at each call


def test_mlc_loss_equals_the_naive_formula(backend):
    S, positives = similarities_and_targets(seed=4)
    for scale in (1.0, 3.0):
        loss = mlc_loss(backend.asarray(S), backend.asarray(positives), scale=scale)
        assert float(backend.to_numpy(loss)) == pytest.approx(
            naive_mlc(S, positives, scale), rel=1e-12
        )


def test_losses_stay_finite_at_scale_64_with_large_similarities():
    S, positives = similarities_and_targets(seed=5)
    S = 10.0 * S  # s up to 640: every plain exponential overflows
    loss = mlcd_loss(S, positives, neg_ratio=1.0, scale=64.0)
    # log(1 + A) + log(1 + B) by NumPy's logaddexp, per row
    s = 64.0 * S
    expected = 0.0
    for i in range(len(s)):
        negatives = np.setdiff1d(np.arange(s.shape[1]), positives[i])
        expected += np.logaddexp.reduce(np.r_[0.0, -s[i, positives[i]]])
        expected += np.logaddexp.reduce(np.r_[0.0, s[i, negatives]])
    assert np.isfinite(loss)
    assert loss == pytest.approx(expected / len(s), rel=1e-12)
    assert np.isfinite(mlc_loss(S, positives, scale=64.0))


@pytest.mark.parametrize("which", ["mlcd", "mlc"])
def test_torch_gradient_matches_finite_differences(which):
    torch = pytest.importorskip("torch")
    S, positives = similarities_and_targets(n=5, K=12, n_positives=3, seed=6)
    S_t = torch.tensor(S, requires_grad=True)
    targets = torch.tensor(positives)
    if which == "mlcd":

        def f(s):
            return mlcd_loss(s, targets, neg_ratio=0.5, scale=4.0, random_state=3)
    else:

        def f(s):
            return mlc_loss(s, targets, scale=4.0)

    assert torch.autograd.gradcheck(f, (S_t,), eps=1e-6, atol=1e-6)
    loss = f(S_t)
    loss.backward()
    assert S_t.grad is not None
    assert torch.all(torch.isfinite(S_t.grad))


def test_torch_float32_loss_keeps_dtype_and_graph():
    torch = pytest.importorskip("torch")
    S, positives = similarities_and_targets(seed=8)
    S_t = torch.tensor(S, dtype=torch.float32, requires_grad=True)
    loss = mlcd_loss(S_t, positives, scale=32.0, random_state=0)  # NumPy targets are moved
    assert loss.dtype == torch.float32
    assert loss.requires_grad


@pytest.mark.parametrize(
    ("positives", "kwargs", "message"),
    [
        (np.array([[0, 31]] * 12), {}, r"index the 30 columns"),
        (np.array([[-1, 2]] * 12), {}, r"index the 30 columns"),
        (np.array([[2, 2]] * 12), {}, "repeat a column"),
        (np.array([[0.0, 1.0]] * 12), {}, "integer array of shape"),
        (np.array([[0, 1]] * 11), {}, "integer array of shape"),
        (np.tile(np.arange(30), (12, 1)), {}, "between 1 and 29 positives"),
        (np.array([[0, 1]] * 12), {"neg_ratio": 0.0}, "neg_ratio"),
        (np.array([[0, 1]] * 12), {"scale": -1.0}, "scale"),
    ],
)
def test_loss_bad_input(positives, kwargs, message):
    S, _ = similarities_and_targets()
    with pytest.raises(ValueError, match=message):
        mlcd_loss(S, positives, **kwargs)
