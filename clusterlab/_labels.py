"""Class labels of the semi-supervised and transductive estimators: one check, one encoding.

:class:`~clusterlab.SemiSupervisedKMeans`, :class:`~clusterlab.SemiSupervisedGMM`,
:class:`~clusterlab.LaplacianKMeans` and :class:`~clusterlab.TransductiveFewShot` read
their ``y`` here, with scikit-learn's semi-supervised conventions
(:class:`~sklearn.semi_supervised.LabelSpreading`,
:class:`~sklearn.semi_supervised.SelfTrainingClassifier`):

- Class labels may be integers, strings or any other values of one kind (an array of
  strings, or an object array of Python objects). The classes are kept, sorted, in the
  estimators' ``classes_``. Whole-number floats (``1.0``) are read as integers; other
  floats are continuous targets, an error (``"Unknown label type"``, as in scikit-learn).
- ``-1`` marks an unlabeled sample (partial labels only): the number ``-1`` in a numeric
  or object array, and also the string ``"-1"`` in an array of strings, which is what
  NumPy makes of ``-1`` in a list such as ``["cat", -1, "dog"]`` (scikit-learn asks for an
  object array there; both work). ``y=None`` labels nothing.
- A fully labeled ``y`` is a valid fit, as in ``LabelSpreading``: nothing is left to
  discover, so the model has one cluster per class. More labeled classes than the
  requested ``n_clusters`` (``n_components``) grow the model to one cluster per class.
  Neither warns: both are what ``Pipeline``, ``GridSearchCV``, ``cross_val_score`` and
  scikit-learn's estimator checks pass (class labels for every sample), and the number
  of clusters fitted is in ``cluster_labels_`` (``component_labels_``).
- Clusters that hold no labeled class get new labels, in the type of the classes:
  integers count up from one past the largest class (from 0 without labels, never
  negative); string classes give the strings ``"new_0"``, ``"new_1"``, ... (a name that
  is already a class is skipped). So ``predict`` returns one dtype: int64 for integer
  classes, the classes' string (or object) dtype otherwise.
"""

from __future__ import annotations

import numbers
import warnings

import numpy as np
from sklearn.exceptions import DataConversionWarning

from clusterlab.solvers._backend import is_array, to_numpy

__all__ = ["UNLABELED", "PartialLabels", "class_labels", "partial_labels"]

UNLABELED = -1
"""The mark of an unlabeled sample in ``y`` (also ``"-1"`` in an array of strings)."""

_NEW_NAME = "new_{}"


class PartialLabels:
    """Partial labels read by :func:`partial_labels`: classes and per-sample codes.

    Attributes
    ----------
    classes : ndarray of shape (n_classes,)
        The labeled classes, sorted: int64 for integer labels, else the strings (or
        objects) of ``y`` in its dtype.
    codes : ndarray of shape (n_samples,), int64
        Index of each sample's class in ``classes``; -1 for unlabeled samples.
    """

    def __init__(self, classes, codes):
        self.classes = classes
        self.codes = codes

    @property
    def n_classes(self):
        return self.classes.shape[0]

    @property
    def all_labeled(self):
        return bool(np.all(self.codes >= 0))

    @property
    def n_unlabeled(self):
        return int(np.count_nonzero(self.codes < 0))

    def n_clusters(self, requested):
        """Clusters to fit for ``requested`` clusters (``n_clusters``, ``n_components``).

        One cluster per labeled class at least: more labeled classes than ``requested``
        grow the model. With every sample labeled there is nothing to discover, and the
        model has one cluster per class. A cluster without a class starts from an
        unlabeled sample: a ValueError says so when there are too few of them.
        """
        n_clusters = self.n_classes if self.all_labeled else max(int(requested), self.n_classes)
        n_new = n_clusters - self.n_classes
        if n_new > self.n_unlabeled:
            raise ValueError(
                f"{n_new} clusters hold no labeled class but only {self.n_unlabeled} samples "
                "are unlabeled (-1); ask for fewer clusters or leave more samples unlabeled."
            )
        return n_clusters

    def cluster_classes(self, n_clusters):
        """Class index held by each of ``n_clusters`` starting clusters: class ``i`` is
        cluster ``i``, and the clusters after the classes hold none (-1)."""
        return np.r_[np.arange(self.n_classes), np.full(n_clusters - self.n_classes, -1)]

    def new_labels(self, count):
        """Labels of ``count`` clusters that hold no labeled class (module docstring)."""
        classes = self.classes
        if not self.n_classes or classes.dtype.kind == "i":
            start = max(int(classes.max()) + 1, 0) if self.n_classes else 0
            return np.arange(start, start + count, dtype=np.int64)
        taken = set(classes.tolist())
        as_bytes = isinstance(classes[0], bytes)
        names, index = [], 0
        while len(names) < count:
            label = _NEW_NAME.format(index)
            label = label.encode() if as_bytes else label
            if label not in taken:
                names.append(label)
            index += 1
        return np.array(names, dtype=object if classes.dtype == object else None)

    def output_labels(self, cluster_class):
        """Label of each cluster: its class (``cluster_class`` indexes ``classes``), or a
        new label for clusters of class -1, numbered in their order."""
        cluster_class = np.asarray(cluster_class, dtype=np.int64)
        held = cluster_class >= 0
        new = self.new_labels(int(np.count_nonzero(~held)))
        dtype = new.dtype
        if self.n_classes and self.classes.dtype.kind in "US" and new.size:
            dtype = np.result_type(self.classes.dtype, new.dtype)  # wide enough for both
        elif self.n_classes:
            dtype = self.classes.dtype
        out = np.empty(cluster_class.shape[0], dtype=dtype)
        out[held] = self.classes[cluster_class[held]]
        out[~held] = new
        return out


def partial_labels(y, n_samples, *, name="y"):
    """Read partial labels: ``y`` with -1 for unlabeled samples, or None (nothing labeled).

    ``y`` may be array-like or an array of any library (copied to the host: labels are
    small). See the module docstring for the conventions.

    Returns
    -------
    PartialLabels

    Examples
    --------
    >>> import numpy as np
    >>> from clusterlab._labels import partial_labels
    >>> partial = partial_labels(np.array(["cat", -1, "dog", "cat"], dtype=object), 4)
    >>> partial.classes.tolist(), partial.codes.tolist()
    (['cat', 'dog'], [0, -1, 1, 0])
    >>> partial.output_labels([0, 1, -1]).tolist()  # a third cluster holds no class
    ['cat', 'dog', 'new_0']
    >>> partial_labels([3, -1, 7], 3).output_labels([0, 1, -1]).tolist()
    [3, 7, 8]
    """
    if y is None:
        return PartialLabels(np.empty(0, dtype=np.int64), np.full(n_samples, -1, dtype=np.int64))
    y = _as_1d(y, n_samples, name, column=False)
    unlabeled = _unlabeled_mask(y)
    values = _labels_of_one_kind(y[~unlabeled], name)
    classes, codes = np.unique(values, return_inverse=True)
    out = np.full(n_samples, -1, dtype=np.int64)
    out[~unlabeled] = codes.reshape(-1)
    return PartialLabels(classes, out)


def class_labels(y, n_samples, *, name="y"):
    """Read the labels of fully labeled samples (a classifier's ``y``; -1 is a class).

    A column vector of shape (n_samples, 1) is accepted with a
    :class:`~sklearn.exceptions.DataConversionWarning`, as scikit-learn's classifiers do.

    Returns
    -------
    classes : ndarray of shape (n_classes,)
        Sorted; int64 for integer labels, else in ``y``'s dtype.
    codes : ndarray of shape (n_samples,), int64
        Index of each sample's class in ``classes``.
    """
    if y is None:
        raise ValueError(
            f"This estimator requires y to be passed, but the target y is None ({name}: "
            "the class of every sample)."
        )
    y = _as_1d(y, n_samples, name, column=True)
    classes, codes = np.unique(_labels_of_one_kind(y, name), return_inverse=True)
    return classes, codes.reshape(-1).astype(np.int64, copy=False)


def _as_1d(y, n_samples, name, *, column):
    if is_array(y) and not isinstance(y, np.ndarray):
        y = to_numpy(y)
    y = np.asarray(y)
    if column and y.ndim == 2 and y.shape[1] == 1:
        warnings.warn(
            f"A column-vector {name} was passed when a 1d array was expected; it is "
            "read as a 1d array.",
            DataConversionWarning,
            stacklevel=4,
        )
        y = y[:, 0]
    if y.ndim != 1 or y.shape[0] != n_samples:
        raise ValueError(f"{name} must be a 1-D array of length {n_samples}, got shape {y.shape}.")
    return y


def _is_unlabeled_mark(value):
    if isinstance(value, (str, bytes)):
        return value in ("-1", b"-1")
    return isinstance(value, numbers.Real) and not isinstance(value, bool) and value == -1


def _unlabeled_mask(y):
    kind = y.dtype.kind
    if kind in "iuf":
        return y == UNLABELED
    if kind == "U":
        return y == "-1"
    if kind == "S":
        return y == b"-1"
    if kind == "O":
        return np.fromiter((_is_unlabeled_mark(v) for v in y), dtype=bool, count=y.shape[0])
    return np.zeros(y.shape[0], dtype=bool)  # booleans: every sample labeled


def _labels_of_one_kind(values, name):
    """Class labels as int64 (integers, bools, whole floats), strings, or objects of one
    kind; anything else is a ``ValueError``."""
    kind = values.dtype.kind
    if kind in "biu":
        return values.astype(np.int64)
    if kind == "f":
        return _whole_numbers(values, name)
    if kind in "US":
        return values
    if kind != "O":
        raise ValueError(
            f"Unknown label type: {name} has dtype {values.dtype}; class labels must be "
            "integers or strings (-1 for unlabeled samples)."
        )
    items = values.tolist()
    if all(isinstance(v, numbers.Real) for v in items):
        return (
            _whole_numbers(np.asarray(items, dtype=np.float64), name)
            if any(not isinstance(v, numbers.Integral) for v in items)
            else np.asarray(items, dtype=np.int64).reshape(-1)
        )
    if all(isinstance(v, str) for v in items) or all(isinstance(v, bytes) for v in items):
        return values
    kinds = sorted({type(v).__name__ for v in items})
    if any(v is None for v in items):
        raise ValueError(
            f"{name} holds None; mark unlabeled samples with -1 (labels must be defined)."
        )
    raise ValueError(
        f"Unknown label type: {name} mixes labels of types {kinds}; class labels must be "
        "all integers or all strings (-1 for unlabeled samples)."
    )


def _whole_numbers(values, name):
    if not np.all(np.isfinite(values)):
        raise ValueError(f"{name} contains NaN or infinity; mark unlabeled samples with -1.")
    if np.any(values != np.round(values)):
        raise ValueError(
            f"Unknown label type: {name} holds non-integer numbers (a continuous target); "
            "class labels must be integers or strings (-1 for unlabeled samples)."
        )
    return values.astype(np.int64)
