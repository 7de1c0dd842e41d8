"""The sharp threshold for exact recovery by the Peng–Wei SDP (Chen & Yang, 2021)."""

from __future__ import annotations

import math

from clusterlab._validation import check_count, check_positive

__all__ = ["exact_recovery_threshold"]


def exact_recovery_threshold(n, p, n_clusters, sigma=1.0):
    """Chen & Yang's threshold ``Θ²`` on the minimum squared distance between centres.

    For ``n`` samples in ``n_clusters`` equal-size clusters with noise ``N(0, σ² I_p)``,
    the SDP relaxation of K-means recovers the partition exactly with high probability when
    the minimum squared centre separation exceeds ``(1 + α) Θ²``, and no method (not even
    the maximum-likelihood estimator) does below ``(1 - α) Θ²`` (Chen & Yang, "Cutoff for
    exact recovery of Gaussian mixture models", IEEE Trans. Inf. Theory 67(6), 2021), where

    ``Θ² = 4 σ² (1 + sqrt(1 + K p / (n log n))) log n``.

    Parameters
    ----------
    n : int
        Number of samples, at least 2 (``log n`` must be positive).
    p : int
        Number of features, at least 1.
    n_clusters : int
        Number of clusters ``K``, between 2 and ``n``.
    sigma : float
        Noise standard deviation per coordinate, positive.

    Returns
    -------
    float
        ``Θ²``, a squared distance in the units of the data.

    Examples
    --------
    >>> import math
    >>> from clusterlab.experiments import exact_recovery_threshold
    >>> theta2 = exact_recovery_threshold(100, 2, 2)  # n = 100 points in R^2, K = 2, sigma = 1
    >>> hand = 4 * (1 + math.sqrt(1 + 2 * 2 / (100 * math.log(100)))) * math.log(100)
    >>> round(theta2, 4), math.isclose(theta2, hand)
    (36.9212, True)

    With few features per sample ``Θ² ≈ 8 σ² log n``; high dimension raises it:

    >>> round(exact_recovery_threshold(200, 1000, 4, sigma=0.5) / (8 * 0.25 * math.log(200)), 3)
    1.593
    """
    n = check_count(n, "n", minimum=2)
    p = check_count(p, "p")
    n_clusters = check_count(n_clusters, "n_clusters", minimum=2)
    if n_clusters > n:
        raise ValueError(f"n_clusters={n_clusters} must not exceed the number of samples n={n}.")
    sigma = check_positive(sigma, "sigma")
    log_n = math.log(n)
    return 4.0 * sigma**2 * (1.0 + math.sqrt(1.0 + n_clusters * p / (n * log_n))) * log_n
