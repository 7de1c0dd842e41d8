"""Normal-inverse-Wishart prior for Gaussian components: MAP estimates and evidence.

A component's mean and covariance get the conjugate prior ``mu | Sigma ~ N(m, Sigma /
kappa)``, ``Sigma ~ IW(Psi, nu)``. The scale ``Psi`` may be any symmetric positive
definite matrix (a float ``psi`` stands for ``psi I``). Everything here works from
weighted sufficient statistics of a batch of point sets, so soft EM counts, hard member
sets and pooled (merged) sets are treated alike.

Three covariance structures share one family (``d`` is the number of features):

- ``"full"``: one ``d``-dimensional inverse-Wishart with scale matrix ``Psi``.
- ``"diag"``: an independent one-dimensional inverse-Wishart (a scaled inverse-chi-square)
  per feature ``j``, with scale ``Psi_j`` (a vector of positive scales).
- ``"spherical"``: one variance shared by every feature, with a one-dimensional
  inverse-Wishart prior of scale ``Psi`` (a positive float).

With posterior parameters ``kappa_N = kappa + N``, ``nu_N = nu + N`` and
``Psi_N = Psi + S + kappa N / kappa_N (xbar - m)(xbar - m)^T`` (``S`` the scatter about the
set's mean), the MAP (joint posterior mode) is ``mu = (N xbar + kappa m) / kappa_N`` and
``Sigma = Psi_N / (nu_N + d + 2)``, and the log marginal likelihood of a set is::

    log f(X) = -N d/2 log(pi) + log Gamma_d(nu_N / 2) - log Gamma_d(nu / 2)
               + nu/2 log|Psi| - nu_N/2 log|Psi_N| + d/2 log(kappa / kappa_N)

(Murphy, "Conjugate Bayesian analysis of the Gaussian distribution", 2007, eq. 234). For
``"diag"`` it is the sum of the one-dimensional formula over features; for ``"spherical"``
the shared variance sees ``N d`` scalar residuals, so ``nu_N = nu + N d``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.special import gammaln

__all__ = ["COVARIANCE_TYPES", "NIWPrior", "SetStats"]

COVARIANCE_TYPES = ("full", "diag", "spherical")

_LOG_PI = np.log(np.pi)
_LOG_2PI = np.log(2.0 * np.pi)


def _log_multigamma(a, dim):
    """``log Gamma_dim(a)`` for an array ``a`` (the multivariate gamma function)."""
    a = np.asarray(a, dtype=np.float64)
    j = np.arange(dim, dtype=np.float64)
    return dim * (dim - 1) / 4.0 * _LOG_PI + gammaln(a[..., None] - j / 2.0).sum(axis=-1)


@dataclass
class SetStats:
    """Weighted sufficient statistics of a batch of point sets.

    Attributes
    ----------
    count : ndarray of shape (n_sets,)
        Total weight ``N`` of each set.
    mean : ndarray of shape (n_sets, n_features)
        Weighted mean (any value where ``count`` is 0).
    scatter : ndarray
        Weighted scatter about the mean: ``(n_sets, d, d)`` for "full", ``(n_sets, d)``
        (its diagonal) for "diag" and "spherical".
    """

    count: np.ndarray
    mean: np.ndarray
    scatter: np.ndarray

    @classmethod
    def from_points(cls, X, weights, covariance_type):
        """Statistics of one set: the rows of ``X`` weighted by ``weights``."""
        X = np.asarray(X, dtype=np.float64)
        weights = np.asarray(weights, dtype=np.float64)
        count = weights.sum()
        mean = weights @ X / count if count > 0 else np.zeros(X.shape[1])
        centred = X - mean
        if covariance_type == "full":
            scatter = (centred * weights[:, None]).T @ centred
        else:
            scatter = weights @ (centred * centred)
        return cls(np.array([count]), mean[None], scatter[None])

    def take(self, index):
        """The statistics of the sets ``index`` (an integer array or slice)."""
        return SetStats(self.count[index], self.mean[index], self.scatter[index])

    @staticmethod
    def concat(parts):
        return SetStats(
            np.concatenate([p.count for p in parts]),
            np.concatenate([p.mean for p in parts]),
            np.concatenate([p.scatter for p in parts]),
        )

    def pooled(self, first, second):
        """Statistics of the unions ``first[j] | second[j]`` (index arrays).

        The pooled mean is weighted by the counts and the scatter gains the between-set
        term ``N1 N2 / N (xbar1 - xbar2)(xbar1 - xbar2)^T``.
        """
        n1, n2 = self.count[first], self.count[second]
        count = n1 + n2
        mean = (n1[:, None] * self.mean[first] + n2[:, None] * self.mean[second]) / count[:, None]
        gap = self.mean[first] - self.mean[second]
        factor = n1 * n2 / count
        if self.scatter.ndim == 3:
            between = factor[:, None, None] * gap[:, :, None] * gap[:, None, :]
        else:
            between = factor[:, None] * gap * gap
        return SetStats(count, mean, self.scatter[first] + self.scatter[second] + between)


@dataclass(frozen=True)
class NIWPrior:
    """Conjugate prior shared by every component.

    Parameters
    ----------
    mean : ndarray of shape (n_features,)
        Prior mean ``m`` (the data mean by default in the estimators).
    kappa : float
        Pseudo-count of the mean prior.
    nu : float
        Degrees of freedom of the inverse-Wishart; must exceed ``d - 1`` where ``d`` is
        the covariance block size (``n_features`` for "full", 1 otherwise).
    psi : float or ndarray
        Scale ``Psi``: for "full" any symmetric positive definite (d, d) matrix (not
        necessarily diagonal), for "diag" a (d,) positive vector, for "spherical" a
        positive float; a float is read as ``psi * I`` for every type.
    covariance_type : {"full", "diag", "spherical"}
    """

    mean: np.ndarray
    kappa: float
    nu: float
    psi: float | np.ndarray
    covariance_type: str

    def __post_init__(self):
        d = self.mean.shape[0]
        psi = np.asarray(self.psi, dtype=np.float64)
        if self.covariance_type == "full":
            psi = psi * np.eye(d) if psi.ndim == 0 else psi
            logdet = np.linalg.slogdet(psi)[1]
        elif self.covariance_type == "diag":
            psi = np.broadcast_to(psi, (d,)).copy()
            logdet = np.log(psi).sum()
        else:
            logdet = np.log(psi)
        object.__setattr__(self, "psi", psi)
        object.__setattr__(self, "_log_det_psi", float(logdet))

    @property
    def n_features(self):
        return self.mean.shape[0]

    def _posterior_scale(self, stats):
        """``Psi_N`` per set: (n, d, d) for "full", (n, d) per feature otherwise."""
        kappa_n = self.kappa + stats.count
        shrink = self.kappa * stats.count / kappa_n
        gap = stats.mean - self.mean
        if self.covariance_type == "full":
            return (
                self.psi + stats.scatter + shrink[:, None, None] * gap[:, :, None] * gap[:, None, :]
            )
        if self.covariance_type == "diag":
            return self.psi + stats.scatter + shrink[:, None] * gap * gap
        # spherical: psi plus the residuals pooled over features
        return self.psi + (stats.scatter + shrink[:, None] * gap * gap).sum(axis=1)

    def map_estimate(self, stats):
        """Posterior-mode means and covariances of each set.

        Returns
        -------
        means : ndarray of shape (n_sets, d)
        covariances : ndarray of shape (n_sets, d, d), (n_sets, d) or (n_sets,)
        """
        count = stats.count
        means = (count[:, None] * stats.mean + self.kappa * self.mean) / (self.kappa + count)[
            :, None
        ]
        scale = self._posterior_scale(stats)
        d = self.n_features
        if self.covariance_type == "full":
            return means, scale / (self.nu + count + d + 2)[:, None, None]
        if self.covariance_type == "diag":
            return means, scale / (self.nu + count + 3)[:, None]
        # spherical: one variance sees N d residuals and d mean coordinates
        return means, scale / (self.nu + count * d + d + 2)

    def log_marginal(self, stats):
        """Log marginal likelihood ``log f(X)`` of each set (module docstring)."""
        count = stats.count
        d = self.n_features
        kappa_term = d / 2.0 * np.log(self.kappa / (self.kappa + count))
        scale = self._posterior_scale(stats)
        if self.covariance_type == "full":
            nu_n = self.nu + count
            _, logdet_n = np.linalg.slogdet(scale)
            return (
                -count * d / 2.0 * _LOG_PI
                + _log_multigamma(nu_n / 2.0, d)
                - _log_multigamma(self.nu / 2.0, d)
                + self.nu / 2.0 * self._log_det_psi
                - nu_n / 2.0 * logdet_n
                + kappa_term
            )
        if self.covariance_type == "diag":
            nu_n = self.nu + count
            return (
                -count * d / 2.0 * _LOG_PI
                + d * (gammaln(nu_n / 2.0) - gammaln(self.nu / 2.0))
                + self.nu / 2.0 * self._log_det_psi
                - nu_n / 2.0 * np.log(scale).sum(axis=1)
                + kappa_term
            )
        nu_n = self.nu + count * d
        return (
            -count * d / 2.0 * _LOG_PI
            + gammaln(nu_n / 2.0)
            - gammaln(self.nu / 2.0)
            + self.nu / 2.0 * self._log_det_psi
            - nu_n / 2.0 * np.log(scale)
            + kappa_term
        )

    def log_density(self, means, covariances):
        """Log prior density ``log N(mu | m, Sigma / kappa) + log IW(Sigma | Psi, nu)``.

        ``covariances`` has the shape of :meth:`map_estimate`'s output; returns one value
        per component.
        """
        d = self.n_features
        gap = means - self.mean
        if self.covariance_type == "full":
            chol = np.linalg.cholesky(covariances)
            logdet = 2.0 * np.log(np.diagonal(chol, axis1=1, axis2=2)).sum(axis=1)
            inv = np.linalg.inv(covariances)
            maha = np.einsum("ki,kij,kj->k", gap, inv, gap)
            trace = np.einsum("ij,kji->k", self.psi, inv)
            log_normal = -0.5 * (d * (_LOG_2PI - np.log(self.kappa)) + logdet + self.kappa * maha)
            log_iw = (
                self.nu / 2.0 * self._log_det_psi
                - self.nu * d / 2.0 * np.log(2.0)
                - _log_multigamma(self.nu / 2.0, d)
                - (self.nu + d + 1) / 2.0 * logdet
                - 0.5 * trace
            )
            return log_normal + log_iw
        if self.covariance_type == "diag":
            variances = covariances
        else:
            variances = np.repeat(covariances[:, None], d, axis=1)
        log_normal = -0.5 * (
            _LOG_2PI - np.log(self.kappa) + np.log(variances) + self.kappa * gap * gap / variances
        ).sum(axis=1)
        if self.covariance_type == "diag":
            log_iw = _log_inverse_gamma(variances, self.psi, self.nu).sum(axis=1)
        else:
            log_iw = _log_inverse_gamma(covariances, self.psi, self.nu)
        return log_normal + log_iw


def _log_inverse_gamma(variance, psi, nu):
    """One-dimensional ``log IW(variance | psi, nu)``."""
    return (
        nu / 2.0 * np.log(psi / 2.0)
        - gammaln(nu / 2.0)
        - (nu / 2.0 + 1.0) * np.log(variance)
        - psi / (2.0 * variance)
    )
