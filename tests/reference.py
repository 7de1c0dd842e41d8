"""Slow, obviously-correct NumPy references the fast code is compared with."""

import numpy as np
from scipy.special import logsumexp


def sinkhorn_log_reference(S, eps, a, b, n_iter):
    """Textbook log-domain Sinkhorn in float64: column update, then row update."""
    S = np.asarray(S, dtype=np.float64)
    f = np.zeros(S.shape[0])
    for _ in range(n_iter):
        g = eps * np.log(b) - eps * logsumexp((S + f[:, None]) / eps, axis=0)
        f = eps * np.log(a) - eps * logsumexp((S + g[None, :]) / eps, axis=1)
    return np.exp((S + f[:, None] + g[None, :]) / eps)
