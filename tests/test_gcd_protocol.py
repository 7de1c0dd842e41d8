"""The GCD protocol on scikit-learn's digits (PCA-32): the number of classes and accuracy.

Old classes 0-4 with half their samples labeled; everything else unlabeled. The full table
(raw features too, starting K of 5, and mnist_5k) comes from ``benchmarks/gcd.py``; this
test asserts the settings where the estimate is on target (docs/user_guide/gcd.rst).
"""

import warnings

import numpy as np
import pytest

from benchmarks.gcd import OLD_CLASSES, TRUE_K, features
from clusterlab.datasets import make_gcd_split
from clusterlab.metrics import gcd_accuracy
from clusterlab.mixture import SemiSupervisedGMM, SemiSupervisedKMeans

SEEDS = (0, 1, 2, 3, 4)


@pytest.fixture(scope="module")
def digits_pca():
    return features("digits", 32)


@pytest.mark.parametrize("start_k", [20, 40])
def test_digits_pca32_finds_ten_classes_and_beats_kmeans_given_k(digits_pca, start_k):
    X, y = digits_pca
    ks, gmm_all, kmeans_all = [], [], []
    for seed in SEEDS:
        split = make_gcd_split(y, OLD_CLASSES, labeled_fraction=0.5, random_state=seed)
        free = split.unlabeled_mask
        with warnings.catch_warnings():
            warnings.simplefilter("error")  # must converge
            gmm = SemiSupervisedGMM(n_components=start_k, random_state=seed)
            gmm.fit(X, split.y_partial)
        kmeans = SemiSupervisedKMeans(TRUE_K, random_state=seed).fit(X, split.y_partial)
        ks.append(gmm.n_components_)
        gmm_all.append(gcd_accuracy(y[free], gmm.labels_[free], split.old_mask[free]).all)
        kmeans_all.append(gcd_accuracy(y[free], kmeans.labels_[free], split.old_mask[free]).all)
        # labeled classes keep their ids; the samples labeled c are predicted c
        labeled = ~free
        np.testing.assert_array_equal(gmm.labels_[labeled], split.y_partial[labeled])
    assert all(abs(k - TRUE_K) <= 1 for k in ks), ks
    assert np.mean(gmm_all) >= np.mean(kmeans_all), (gmm_all, kmeans_all)
