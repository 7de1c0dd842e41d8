import numpy as np
import pytest


def cosine_scores(n, K, dim=16, n_groups=8, seed=0, dtype=np.float64):
    """Cosine scores of L2-normalised clustered features against normalised prototypes."""
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((n_groups, dim))
    X = centres[rng.integers(0, n_groups, n)] + 0.5 * rng.standard_normal((n, dim))
    X /= np.linalg.norm(X, axis=1, keepdims=True)
    C = rng.standard_normal((K, dim))
    C /= np.linalg.norm(C, axis=1, keepdims=True)
    return np.ascontiguousarray((X @ C.T).astype(dtype))


@pytest.fixture
def scores():
    return cosine_scores(120, 7)
