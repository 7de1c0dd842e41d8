"""The NIW prior against SciPy's densities.

The marginal likelihood is checked with Bayes' identity (Chib, 1995): for any parameter
value theta, ``log f(X) = log p(X | theta) + log p(theta) - log p(theta | X)``, with the
prior and posterior densities written independently here with ``scipy.stats``.
"""

import numpy as np
import pytest
from clusterlab.solvers.niw import NIWPrior, SetStats
from scipy import optimize, stats


def _prior(cov_type, d, rng):
    """A prior with a non-isotropic scale: an SPD matrix, a vector, a float."""
    A = rng.normal(size=(d, d))
    psi = {"full": A @ A.T + 0.5 * np.eye(d), "diag": rng.uniform(0.3, 2.0, d), "spherical": 0.7}[
        cov_type
    ]
    return NIWPrior(
        mean=rng.normal(size=d),
        kappa=0.3,
        nu=d + 1.5 if cov_type == "full" else 2.5,
        psi=psi,
        covariance_type=cov_type,
    )


def _log_niw(mu, cov, m, kappa, nu, psi_matrix):
    return stats.multivariate_normal(m, cov / kappa).logpdf(mu) + stats.invwishart(
        df=nu, scale=psi_matrix
    ).logpdf(cov)


def _log_nig(mu, var, m, kappa, nu, psi):
    """Per-feature normal / scaled-inverse-chi-square density, 1-D IW(psi, nu)."""
    return stats.norm(m, np.sqrt(var / kappa)).logpdf(mu) + stats.invgamma(
        nu / 2.0, scale=psi / 2.0
    ).logpdf(var)


def _posterior_params(X, prior):
    n = X.shape[0]
    xbar = X.mean(axis=0)
    kappa_n = prior.kappa + n
    m_n = (n * xbar + prior.kappa * prior.mean) / kappa_n
    scatter = (X - xbar).T @ (X - xbar)
    gap = xbar - prior.mean
    psi = prior.psi * np.eye(X.shape[1]) if prior.psi.ndim < 2 else prior.psi
    psi_n = psi + scatter + prior.kappa * n / kappa_n * np.outer(gap, gap)
    return m_n, kappa_n, psi_n


@pytest.mark.parametrize("cov_type", ["full", "diag", "spherical"])
@pytest.mark.parametrize("n", [1, 2, 17])
def test_log_marginal_matches_bayes_identity(cov_type, n):
    rng = np.random.default_rng(n)
    d = 3
    prior = _prior(cov_type, d, rng)
    X = rng.normal(size=(n, d)) * [1.0, 2.0, 0.5] + 3.0
    st = SetStats.from_points(X, np.ones(n), cov_type)
    mu, cov = prior.map_estimate(st)
    mu, cov = mu[0], cov[0]
    m_n, kappa_n, psi_n = _posterior_params(X, prior)
    if cov_type == "full":
        log_lik = stats.multivariate_normal(mu, cov).logpdf(X).sum()
        log_prior = _log_niw(mu, cov, prior.mean, prior.kappa, prior.nu, prior.psi)
        log_post = _log_niw(mu, cov, m_n, kappa_n, prior.nu + n, psi_n)
    elif cov_type == "diag":
        log_lik = stats.norm(mu, np.sqrt(cov)).logpdf(X).sum()
        log_prior = _log_nig(mu, cov, prior.mean, prior.kappa, prior.nu, prior.psi).sum()
        log_post = _log_nig(mu, cov, m_n, kappa_n, prior.nu + n, np.diag(psi_n)).sum()
    else:
        log_lik = stats.norm(mu, np.sqrt(cov)).logpdf(X).sum()
        log_prior = stats.norm(prior.mean, np.sqrt(cov / prior.kappa)).logpdf(mu).sum()
        log_prior += stats.invgamma(prior.nu / 2, scale=prior.psi / 2).logpdf(cov)
        # posterior: mu_d | var ~ N(m_n, var / kappa_n); var ~ IW_1(psi + S', nu + n d)
        pooled = np.trace(psi_n) - (d - 1) * prior.psi
        log_post = stats.norm(m_n, np.sqrt(cov / kappa_n)).logpdf(mu).sum()
        log_post += stats.invgamma((prior.nu + n * d) / 2, scale=pooled / 2).logpdf(cov)
    expected = log_lik + log_prior - log_post
    np.testing.assert_allclose(prior.log_marginal(st)[0], expected, rtol=1e-10)
    # log_density is the prior term of the identity
    np.testing.assert_allclose(
        prior.log_density(mu[None], np.asarray(cov)[None])[0], log_prior, rtol=1e-10
    )


@pytest.mark.parametrize("cov_type", ["full", "diag", "spherical"])
def test_map_estimate_is_the_posterior_mode(cov_type):
    """No small move of the MAP estimate raises log-likelihood + log prior."""
    rng = np.random.default_rng(0)
    d = 2
    prior = _prior(cov_type, d, rng)
    X = rng.normal(size=(9, d))
    w = rng.uniform(0.2, 1.0, size=9)  # soft EM weights
    mu, cov = prior.map_estimate(SetStats.from_points(X, w, cov_type))
    mu, cov = mu[0], cov[0]

    def objective(theta):
        m, c = theta[:d], theta[d:]
        if cov_type == "full":
            chol = np.array([[np.exp(c[0]), 0.0], [c[1], np.exp(c[2])]])
            sigma = chol @ chol.T
            ll = w @ stats.multivariate_normal(m, sigma).logpdf(X)
            return -(ll + prior.log_density(m[None], sigma[None])[0])
        var = np.exp(c)
        ll = (w[:, None] * stats.norm(m, np.sqrt(var)).logpdf(X)).sum()
        var_arg = var[None] if cov_type == "diag" else var
        return -(ll + prior.log_density(m[None], var_arg)[0])

    if cov_type == "full":
        chol = np.linalg.cholesky(cov)
        start = np.r_[mu, np.log(chol[0, 0]), chol[1, 0], np.log(chol[1, 1])]
    else:
        start = np.r_[mu, np.log(np.atleast_1d(cov))]
    found = optimize.minimize(objective, start + 0.1, method="BFGS", options={"gtol": 1e-9})
    assert objective(start) <= found.fun + 1e-8


def test_pooled_stats_equal_stats_of_the_union():
    rng = np.random.default_rng(1)
    A, B = rng.normal(size=(5, 3)), rng.normal(size=(8, 3)) + 2
    wa, wb = rng.uniform(size=5), rng.uniform(size=8)
    for cov_type in ["full", "diag"]:
        both = SetStats.concat(
            [SetStats.from_points(A, wa, cov_type), SetStats.from_points(B, wb, cov_type)]
        )
        pooled = both.pooled(np.array([0]), np.array([1]))
        union = SetStats.from_points(np.vstack([A, B]), np.r_[wa, wb], cov_type)
        np.testing.assert_allclose(pooled.count, union.count)
        np.testing.assert_allclose(pooled.mean, union.mean)
        np.testing.assert_allclose(pooled.scatter, union.scatter)
