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


def bound_update_reference(unary, W, lam, clamp, *, tol=1e-6, max_iter=1000):
    """Bound iterations written out with dense NumPy (the definition in solvers/bound.py).

    Returns the final assignments and the energy of every iterate.
    """
    W = np.asarray(W.todense() if hasattr(W, "todense") else W)
    labeled = clamp >= 0

    def clamped_softmax(logits):
        Z = np.exp(logits - logits.max(axis=1, keepdims=True))
        Z /= Z.sum(axis=1, keepdims=True)
        Z[labeled] = np.eye(unary.shape[1])[clamp[labeled]]
        return Z

    def energy(Z):
        entropy = np.sum(Z * np.log(np.where(Z > 0, Z, 1.0)))
        return np.sum(unary * Z) + entropy - 0.5 * lam * np.sum(Z * (W @ Z))

    Z = clamped_softmax(-unary)
    history = [energy(Z)]
    for _ in range(max_iter):
        Z_next = clamped_softmax(-unary + lam * (W @ Z))
        history.append(energy(Z_next))
        if abs(history[-1] - history[-2]) <= tol * abs(history[-2]):
            return Z_next, np.array(history)
        Z = Z_next
    return Z, np.array(history)
