"""Every use of scikit-learn's private helpers goes through here.

They have moved between releases; when one moves again, this is the only file to change.
"""

from sklearn.base import _fit_context
from sklearn.utils._param_validation import Interval, StrOptions
from sklearn.utils.validation import validate_data  # a method of BaseEstimator before 1.6

__all__ = ["Interval", "StrOptions", "_fit_context", "validate_data"]
