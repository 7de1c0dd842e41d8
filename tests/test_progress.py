"""``verbose`` means the same everywhere: a line every ``verbose`` iterations, 0 is silent."""

import numpy as np
import pytest
from sklearn.datasets import make_blobs

from clusterlab import (
    ILASDP,
    CrossModalPrototypeClustering,
    DEPICTClustering,
    GroupSparseCommunity,
    SemiSupervisedGMM,
    SinkhornKMeans,
    SphericalKMeans,
)
from clusterlab._progress import progress_printer
from clusterlab.datasets import load_karate_club, make_heterogeneous_mixture


def test_printer_prints_every_verbose_iteration(capsys):
    report = progress_printer(3, "Name", [("objective", ".3g"), ("moves", "d")])
    for n_iter in range(1, 10):
        report(n_iter, 1.0 / n_iter, n_iter)
    lines = capsys.readouterr().out.splitlines()
    assert lines == [
        "[Name] iteration 3: objective 0.333, moves 3",
        "[Name] iteration 6: objective 0.167, moves 6",
        "[Name] iteration 9: objective 0.111, moves 9",
    ]


def test_printer_is_none_when_silent():
    assert progress_printer(0, "Name", [("objective", ".3g")]) is None


def test_printer_refuses_a_value_without_a_name():
    report = progress_printer(1, "Name", [("objective", ".3g")])
    with pytest.raises(ValueError, match=r"shorter|longer"):
        report(1, 1.0, 2.0)


X_BLOBS, _ = make_blobs(n_samples=60, centers=3, n_features=4, random_state=0)
X_K2, _ = make_heterogeneous_mixture("k2", 100, random_state=0)
_ADJACENCY, _ = load_karate_club()
ESTIMATORS = {
    "SinkhornKMeans": lambda v: SinkhornKMeans(3, random_state=0, verbose=v).fit(X_BLOBS),
    "SphericalKMeans": lambda v: SphericalKMeans(3, random_state=0, verbose=v).fit(X_BLOBS),
    "SemiSupervisedGMM": lambda v: SemiSupervisedGMM(3, random_state=0, max_iter=20, verbose=v).fit(
        X_BLOBS
    ),
    "DEPICTClustering": lambda v: DEPICTClustering(3, random_state=0, max_iter=5, verbose=v).fit(
        X_BLOBS
    ),
    "CrossModalPrototypeClustering": lambda v: CrossModalPrototypeClustering(
        3, random_state=0, max_iter=5, verbose=v
    ).fit(X_BLOBS, y=X_BLOBS[:, ::-1]),
    "GroupSparseCommunity": lambda v: GroupSparseCommunity(
        k_max=4, random_state=0, max_iter=20, verbose=v
    ).fit(np.eye(34), adjacency=_ADJACENCY),
    "ILASDP": lambda v: ILASDP(2, random_state=0, max_iter=4, verbose=v).fit(X_K2),
}


@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")  # short runs
@pytest.mark.parametrize("name", ESTIMATORS)
def test_verbose_prints_one_line_every_verbose_iterations(name, capsys):
    ESTIMATORS[name](0)
    assert capsys.readouterr().out == ""
    ESTIMATORS[name](1)
    every_one = [line for line in capsys.readouterr().out.splitlines() if line]
    ESTIMATORS[name](2)
    every_two = [line for line in capsys.readouterr().out.splitlines() if line]
    assert every_one, f"{name} printed nothing with verbose=1"
    assert all(line.startswith(f"[{name}] ") for line in every_one + every_two)
    assert len(every_two) == len(every_one) // 2
