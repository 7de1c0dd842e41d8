"""The README's code runs as written, on real data, so that it cannot drift.

Each ```python block runs in order in one namespace. The placeholders a reader brings
(``embeddings``, ``scores``, ``z``, ``prototypes``, ``X_std``, PyTorch ``z_a``/``z_b``) are
filled in from bundled real data first; the comments' numbers are then checked.
"""

import re
import warnings
from pathlib import Path

import numpy as np
import pytest

from clusterlab.datasets import load_dataset

README = Path(__file__).resolve().parents[1] / "README.md"
BLOCKS = re.findall(r"```python\n(.*?)```", README.read_text(), flags=re.DOTALL)


def _placeholders():
    """What the README's reader is assumed to hold, made from digits and wine."""
    embeddings, _ = load_dataset("digits", preprocessing="l2")
    rng = np.random.default_rng(0)
    prototypes = embeddings[rng.choice(embeddings.shape[0], 30, replace=False)]
    z = embeddings[:256]
    X_std, _ = load_dataset("wine", preprocessing="standardize")
    return {
        "embeddings": embeddings,
        "z": z,
        "prototypes": prototypes,
        "scores": z @ prototypes.T,
        "scores_a": z @ prototypes.T,
        "scores_b": embeddings[256:512] @ prototypes.T,
        "X_std": X_std,
    }


def _torch_placeholders(namespace):
    torch = pytest.importorskip("torch")
    z = torch.as_tensor(namespace["embeddings"][:256], dtype=torch.float32)
    namespace.update(
        z_a=z,
        z_b=z.flip(0),
        prototypes=torch.as_tensor(
            namespace["prototypes"],
            dtype=torch.float32,
        ).requires_grad_(),
    )


def test_readme_has_the_blocks_this_test_knows():
    assert len(BLOCKS) == 8
    assert sum("import torch" in block for block in BLOCKS) == 1
    assert "import dask" in BLOCKS[-1]


@pytest.mark.slow  # the few-shot block solves 10,000 tasks as the README shows
def test_readme_code_runs_and_its_numbers_hold():
    from clusterlab.metrics import clustering_accuracy

    namespace = _placeholders()
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the README's calls must run without a warning
        for block in (block for block in BLOCKS if "import torch" not in block):
            exec(compile(block, str(README), "exec"), namespace)
            if "SinkhornKMeans(n_clusters=10" in block:
                model, y = namespace["model"], namespace["y"]
                assert round(clustering_accuracy(y, model.labels_), 2) == 0.79
                assert set(np.bincount(model.labels_).tolist()) <= {179, 180}
            if "SemiSupervisedGMM" in block:
                # K starts at 20 and is found by split/merge: within one of the 10 digits
                assert abs(namespace["gmm"].n_components_ - 10) <= 1
            if "sinkhorn(scores" in block:
                assert namespace["result"].converged
            if "TransductiveFewShot" in block:
                results = namespace["fewshot"].calibration_results_
                assert results["lam"][results["selected"]] == [namespace["fewshot"].lam_]
            if "import dask" in block:
                n_samples = namespace["embeddings"].shape[0]
                assert namespace["codes"].shape == (n_samples, 30)
                assert namespace["labels"].shape == (n_samples,)
        _torch_placeholders(namespace)
        (torch_block,) = [block for block in BLOCKS if "import torch" in block]
        exec(compile(torch_block, str(README), "exec"), namespace)
    assert namespace["prototypes"].grad is not None
