import numpy as np
import pytest
from clusterlab.solvers.assignment import round_to_proportions, round_to_sizes, target_sizes
from hypothesis import given, settings
from hypothesis import strategies as st


@settings(deadline=None)
@given(st.integers(1, 500), st.lists(st.floats(0.01, 1.0), min_size=1, max_size=12))
def test_target_sizes_sum_to_n_and_stay_within_one(n, weights):
    proportions = np.array(weights) / np.sum(weights)
    sizes = target_sizes(n, proportions)
    assert sizes.sum() == n
    assert np.all(np.abs(sizes - n * proportions) < 1)


@settings(max_examples=50, deadline=None)
@given(st.integers(1, 60), st.integers(1, 6), st.integers(0, 2**32 - 1))
def test_rounding_meets_sizes_exactly(n, K, seed):
    rng = np.random.default_rng(seed)
    scores = rng.random((n, K))
    sizes = target_sizes(n, np.full(K, 1 / K))
    labels = round_to_sizes(scores, sizes)
    np.testing.assert_array_equal(np.bincount(labels, minlength=K), sizes)


def test_rounding_keeps_the_argmax_when_it_fits():
    scores = np.array([[0.9, 0.1], [0.2, 0.8], [0.7, 0.3], [0.4, 0.6]])
    np.testing.assert_array_equal(round_to_sizes(scores, [2, 2]), [0, 1, 0, 1])


def test_least_confident_sample_moves_when_its_cluster_is_full():
    scores = np.array([[0.9, 0.1], [0.8, 0.2], [0.6, 0.4]])
    np.testing.assert_array_equal(round_to_sizes(scores, [2, 1]), [0, 0, 1])


@settings(max_examples=50, deadline=None)
@given(
    st.integers(1, 60),
    st.lists(st.floats(0.05, 1.0), min_size=1, max_size=6),
    st.integers(0, 2**32 - 1),
)
def test_proportional_rounding_stays_within_one(n, weights, seed):
    proportions = np.array(weights) / np.sum(weights)
    scores = np.random.default_rng(seed).random((n, proportions.size))
    sizes = np.bincount(round_to_proportions(scores, proportions), minlength=proportions.size)
    assert sizes.sum() == n
    assert np.all(np.abs(sizes - n * proportions) < 1)


def test_a_single_sample_gets_its_best_cluster():
    scores = np.array([[0.1, 0.2, 0.9, 0.3]])
    np.testing.assert_array_equal(round_to_proportions(scores, np.full(4, 0.25)), [2])


def test_proportions_must_sum_to_one():
    with pytest.raises(ValueError, match="sum to 1"):
        round_to_proportions(np.zeros((10, 2)), [0.3, 0.3])


def test_spare_places_only_go_to_fractional_clusters():
    # ideal sizes 1, 0.5, 0.5: the spare place must not go to the first cluster
    scores = np.array([[0.9, 0.1, 0.0], [0.8, 0.1, 0.0]])
    sizes = np.bincount(round_to_proportions(scores, [0.5, 0.25, 0.25]), minlength=3)
    np.testing.assert_array_equal(sizes, [1, 1, 0])
