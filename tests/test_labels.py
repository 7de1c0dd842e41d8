"""The label contract of the semi-supervised and transductive estimators (clusterlab._labels).

Labels of any one kind (integers, strings, objects) kept in ``classes_``, -1 for unlabeled
samples, a fully labeled ``y``, more labeled classes than clusters, pickling, and the
estimators inside ``Pipeline``, ``GridSearchCV`` and ``cross_val_score``.
"""

import copy
import pickle

import numpy as np
import pytest
from sklearn.base import clone
from sklearn.exceptions import DataConversionWarning
from sklearn.metrics import accuracy_score, make_scorer
from sklearn.model_selection import GridSearchCV, KFold, StratifiedKFold, cross_val_score
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from clusterlab import LaplacianKMeans, SemiSupervisedGMM, SemiSupervisedKMeans, TransductiveFewShot
from clusterlab._labels import class_labels, partial_labels
from clusterlab.metrics import clustering_accuracy

# -- the reading of y --------------------------------------------------------------------


def reference_partial(y):
    """Plain-Python reading: -1 (or "-1" among strings) is unlabeled, classes sorted."""
    marks = [
        (isinstance(v, (int, float, np.integer, np.floating)) and v == -1)
        or (isinstance(v, str) and v == "-1")
        for v in y
    ]
    classes = sorted({v for v, m in zip(y, marks, strict=True) if not m})
    codes = [-1 if m else classes.index(v) for v, m in zip(y, marks, strict=True)]
    return classes, codes


@pytest.mark.parametrize(
    "y",
    [
        np.array([3, -1, 7, 3, -1]),
        np.array([3.0, -1.0, 7.0, 3.0, -1.0]),  # whole floats: integers
        np.array([-5, -1, 2, -5, 9]),  # negative classes other than -1 are classes
        np.array(["cat", "-1", "dog", "cat", "-1"]),  # what NumPy makes of ["cat", -1, ...]
        np.array(["cat", -1, "dog", "cat", -1], dtype=object),  # scikit-learn's convention
        np.array([4, -1, 2, 4, 2], dtype=object),  # object integers: integers
        ["b", "a", "b", "a", "c"],  # every sample labeled
    ],
)
def test_partial_labels_match_the_plain_reading(y):
    partial = partial_labels(y, 5)
    classes, codes = reference_partial(list(np.asarray(y).tolist()))
    assert partial.classes.tolist() == [
        type(c)(c) if isinstance(c, str) else int(c) for c in classes
    ]
    assert partial.codes.tolist() == codes
    assert partial.codes.dtype == np.int64
    assert partial.classes.dtype.kind in ("i", "U", "O")
    if partial.classes.dtype.kind == "i":
        assert partial.classes.dtype == np.int64


def test_nothing_labeled():
    for y in (None, np.full(4, -1), np.array(["-1"] * 4)):
        partial = partial_labels(y, 4)
        assert partial.n_classes == 0
        assert partial.codes.tolist() == [-1] * 4
        assert partial.output_labels([-1, -1, -1]).tolist() == [0, 1, 2]
        assert partial.n_clusters(3) == 3


def test_new_labels_follow_the_classes_type():
    ints = partial_labels([3, 7, -1, -1], 4)
    assert ints.output_labels([1, -1, 0, -1]).tolist() == [7, 8, 3, 9]
    negative = partial_labels([-7, -3, -1], 3)
    assert negative.output_labels([0, 1, -1]).tolist() == [-7, -3, 0]  # never -1
    strings = partial_labels(np.array(["new_0", "zebra", "-1"]), 3)
    out = strings.output_labels([0, -1, 1, -1])
    assert out.tolist() == ["new_0", "new_1", "zebra", "new_2"]  # taken names skipped
    assert out.dtype.kind == "U"
    objects = partial_labels(np.array(["a", -1], dtype=object), 2)
    out = objects.output_labels([0, -1])
    assert out.dtype == object
    assert out.tolist() == ["a", "new_0"]


def test_cluster_count_grows_with_the_classes():
    partial = partial_labels([0, 1, 2, 3, -1, -1], 6)
    assert partial.n_clusters(2) == 4  # more classes than asked: one cluster per class
    assert partial.n_clusters(6) == 6  # two new clusters, from the two unlabeled samples
    with pytest.raises(ValueError, match="3 clusters hold no labeled class but only 2"):
        partial.n_clusters(7)
    assert partial_labels([0, 1, 1], 3).n_clusters(8) == 2  # all labeled: nothing new
    assert partial.cluster_classes(6).tolist() == [0, 1, 2, 3, -1, -1]


@pytest.mark.parametrize(
    ("y", "message"),
    [
        ([0.5, 1.0, -1.0], "Unknown label type"),
        ([np.nan, 1.0, -1.0], "NaN"),
        (np.array([None, "a", -1], dtype=object), "None"),
        (np.array(["a", 2, -1], dtype=object), "mixes labels of types"),
        (np.array([1j, 2j, -1]), "Unknown label type"),
        (np.zeros((3, 2)), "1-D array of length 3"),
        ([0, 1], "1-D array of length 3"),
    ],
)
def test_bad_labels_are_clear_errors(y, message):
    with pytest.raises(ValueError, match=message):
        partial_labels(y, 3)


def test_class_labels_of_a_classifier():
    classes, codes = class_labels([-1, 5, -1, 2], 4)  # -1 is an ordinary class here
    assert classes.tolist() == [-1, 2, 5]
    assert codes.tolist() == [0, 2, 0, 1]
    with pytest.warns(DataConversionWarning, match="column-vector"):
        classes, codes = class_labels(np.array([["b"], ["a"]]), 2)
    assert classes.tolist() == ["a", "b"]
    with pytest.raises(ValueError, match="requires y to be passed"):
        class_labels(None, 2)
    with pytest.raises(ValueError, match="Unknown label type"):
        class_labels([0.25, 1.0], 2)


def test_labels_of_another_library_are_read_on_the_host():
    torch = pytest.importorskip("torch")
    partial = partial_labels(torch.tensor([4, -1, 2]), 3)
    assert partial.classes.tolist() == [2, 4]
    assert partial.codes.tolist() == [1, -1, 0]


# -- the estimators ----------------------------------------------------------------------

MAKERS = {
    "SemiSupervisedKMeans": lambda k: SemiSupervisedKMeans(k, n_init=3, random_state=0),
    "SemiSupervisedGMM": lambda k: SemiSupervisedGMM(k, random_state=0),
    "LaplacianKMeans": lambda k: LaplacianKMeans(k, random_state=0),
}


def four_blobs(seed=0, n=40):
    """Four well-separated blobs; half of blobs 0 and 1 labeled 3 and 7, the rest -1."""
    rng = np.random.default_rng(seed)
    centres = np.array([[0, 0], [6, 0], [0, 6], [6, 6]], dtype=float)
    X = np.vstack([rng.normal(c, 0.5, (n, 2)) for c in centres])
    truth = np.repeat(np.arange(4), n)
    y = np.full(4 * n, -1)
    y[: n // 2] = 3
    y[n : n + n // 2] = 7
    return X, y, truth


def cluster_labels(model):
    return (
        getattr(model, "cluster_labels_", None)
        if not hasattr(model, "component_labels_")
        else model.component_labels_
    )


@pytest.mark.parametrize("name", MAKERS)
def test_string_labels_give_the_integer_partition(name):
    """Same class order (3 < 7, "cat" < "dog"): the same fit, labels renamed."""
    X, y, _ = four_blobs()
    by_int = MAKERS[name](4).fit(X, y)
    rename = {3: "cat", 7: "dog", 8: "new_0", 9: "new_1"}
    assert sorted(np.unique(by_int.labels_).tolist()) == [3, 7, 8, 9]
    for y_str in (
        np.array([rename.get(v, -1) for v in y], dtype=object),
        np.array([rename.get(v, "-1") for v in y]),
    ):
        model = MAKERS[name](4).fit(X, y_str)
        assert model.classes_.tolist() == ["cat", "dog"]
        expected = np.array([rename[v] for v in by_int.labels_.tolist()])
        assert model.labels_.tolist() == expected.tolist()
        assert model.labels_.dtype == cluster_labels(model).dtype  # wide enough for new_*
        assert model.labels_.dtype.kind == model.classes_.dtype.kind
        X_new = np.random.default_rng(1).uniform(-1, 7, (30, 2))
        predicted = model.predict(X_new)
        assert predicted.dtype == model.labels_.dtype
        assert predicted.tolist() == [rename[v] for v in by_int.predict(X_new).tolist()]
        restored = pickle.loads(pickle.dumps(model))
        assert restored.classes_.tolist() == ["cat", "dog"]
        np.testing.assert_array_equal(restored.predict(X_new), predicted)


def nearest_class_mean(X_train, y_train, X_new):
    classes = sorted(set(y_train.tolist()))
    means = np.array([X_train[y_train == c].mean(axis=0) for c in classes])
    nearest = [int(np.argmin(((x - means) ** 2).sum(axis=1))) for x in X_new]
    return [classes[i] for i in nearest]


@pytest.mark.parametrize("name", MAKERS)
def test_fully_labeled_y_fits_one_cluster_per_class(name):
    """Every sample labeled, more classes (4) than asked (2): one cluster per class,
    labels_ is y, and predictions of new points follow the classes."""
    X, _, truth = four_blobs()
    y = np.array(["north-west", "north-east", "south-west", "south-east"])[truth]
    model = MAKERS[name](2).fit(X, y)
    assert model.classes_.tolist() == sorted(set(y.tolist()))
    assert sorted(cluster_labels(model).tolist()) == model.classes_.tolist()
    assert model.labels_.tolist() == y.tolist()
    X_new = np.random.default_rng(2).normal(0, 1.0, (40, 2)) + X[::4]
    assert model.predict(X_new).tolist() == nearest_class_mean(X, y, X_new)
    if name == "SemiSupervisedGMM":
        assert model.n_components_ == 4
        assert model.concentration_ is None  # no split/merge: nothing left to discover


@pytest.mark.parametrize("name", MAKERS)
def test_more_labeled_classes_than_clusters_grow_the_model(name):
    """Four classes labeled (half of each blob), n_clusters=2: four clusters, and the
    unlabeled half of each blob joins its class."""
    X, _, truth = four_blobs(seed=3)
    y = np.where(np.arange(truth.shape[0]) % 2 == 0, truth + 10, -1)
    model = MAKERS[name](2).fit(X, y)
    assert model.classes_.tolist() == [10, 11, 12, 13]
    assert sorted(cluster_labels(model).tolist()) == [10, 11, 12, 13]
    assert model.labels_.tolist() == (truth + 10).tolist()
    # a fifth, unlabeled blob and n_clusters=5: one new cluster, labeled 14, finds it
    X5 = np.vstack([X, np.random.default_rng(5).normal(12.0, 0.5, (40, 2))])
    y5 = np.r_[truth + 10, np.full(40, -1)]
    grown = MAKERS[name](5)
    if name == "SemiSupervisedGMM":
        grown.set_params(split_merge=False)  # K fixed: the count is what is tested
    grown.fit(X5, y5)
    assert sorted(cluster_labels(grown).tolist()) == [10, 11, 12, 13, 14]
    assert grown.labels_.tolist() == (truth + 10).tolist() + [14] * 40


def test_laplacian_kmeans_labels_on_a_tensor_stay_with_their_kind():
    torch = pytest.importorskip("torch")
    X, y, _ = four_blobs()
    numeric = LaplacianKMeans(4, random_state=0).fit(torch.as_tensor(X), y)
    assert isinstance(numeric.labels_, torch.Tensor)
    assert isinstance(numeric.predict(torch.as_tensor(X)), torch.Tensor)
    y_str = np.array(["a" if v == 3 else "b" if v == 7 else "-1" for v in y])
    strings = LaplacianKMeans(4, random_state=0).fit(torch.as_tensor(X), y_str)
    assert isinstance(strings.labels_, np.ndarray)  # strings cannot live on a device
    mapping = dict(
        zip(numeric.cluster_labels_.tolist(), strings.cluster_labels_.tolist(), strict=True)
    )
    assert strings.predict(torch.as_tensor(X)).tolist() == [
        mapping[v] for v in numeric.predict(torch.as_tensor(X)).tolist()
    ]


@pytest.mark.parametrize("name", ["SemiSupervisedKMeans", "SemiSupervisedGMM"])
def test_mixture_string_predictions_on_a_tensor(name):
    torch = pytest.importorskip("torch")
    X, y, _ = four_blobs()
    y_str = np.array(["a" if v == 3 else "b" if v == 7 else "-1" for v in y])
    model = MAKERS[name](4).fit(X, y_str)
    predicted = model.predict(torch.as_tensor(X))
    assert isinstance(predicted, np.ndarray)
    np.testing.assert_array_equal(predicted, model.predict(X))


# -- transductive few-shot ---------------------------------------------------------------


def fewshot_task(seed=0, n_way=3, n_shot=5, n_query=10, dim=8):
    rng = np.random.default_rng(seed)
    centres = 3.0 * rng.standard_normal((n_way, dim))
    support = np.repeat(centres, n_shot, axis=0) + rng.standard_normal((n_way * n_shot, dim))
    queries = np.repeat(centres, n_query, axis=0) + rng.standard_normal((n_way * n_query, dim))
    return support, np.repeat(np.arange(n_way), n_shot), queries


@pytest.mark.parametrize("names", [["ant", "bee", "cow"], [b"ant", b"bee", b"cow"]])
def test_fewshot_string_labels_are_the_integer_predictions_renamed(names):
    support, y, queries = fewshot_task()
    by_int = TransductiveFewShot().fit(support, y)
    for y_named in (np.array(names)[y], np.array(names, dtype=object)[y]):
        model = TransductiveFewShot().fit(support, y_named)
        assert model.classes_.tolist() == names
        predicted = model.predict(queries)
        assert predicted.tolist() == [names[i] for i in by_int.predict(queries).tolist()]
        np.testing.assert_array_equal(model.predict_proba(queries), by_int.predict_proba(queries))
        restored = pickle.loads(pickle.dumps(model))
        np.testing.assert_array_equal(restored.predict(queries), predicted)


def test_predictions_write_no_state():
    """predict, predict_proba, score_samples and score leave the fitted estimator as it
    was (scikit-learn's check_dict_unchanged, here with string labels too)."""
    X, y, _ = four_blobs()
    y_str = np.array(["a" if v == 3 else "b" if v == 7 else "-1" for v in y])
    support, y_support, queries = fewshot_task()
    fitted = [MAKERS[name](4).fit(X, y_str) for name in MAKERS]
    fitted.append(TransductiveFewShot().fit(support, np.array(["x", "y", "z"])[y_support]))
    for model in fitted:
        data = queries if isinstance(model, TransductiveFewShot) else X
        before = copy.deepcopy(model.__dict__)
        for method in ("predict", "predict_proba", "score_samples"):
            if hasattr(model, method):
                getattr(model, method)(data)
        if hasattr(model, "score"):
            if isinstance(model, TransductiveFewShot):
                model.score(data, np.array(["x", "y", "z"]).repeat(10))
            else:
                model.score(data)
        assert model.__dict__.keys() == before.keys(), type(model).__name__
        for key, value in before.items():
            assert_same(model.__dict__[key], value, f"{type(model).__name__}.{key}")


def assert_same(a, b, where):
    """Equal values, looking into containers, arrays and objects' attributes."""
    assert type(a) is type(b), where
    if isinstance(a, np.ndarray):
        np.testing.assert_array_equal(a, b, err_msg=where)
    elif isinstance(a, dict):
        assert a.keys() == b.keys(), where
        for key in a:
            assert_same(a[key], b[key], f"{where}[{key!r}]")
    elif isinstance(a, (list, tuple)):
        assert len(a) == len(b), where
        for i, (u, v) in enumerate(zip(a, b, strict=True)):
            assert_same(u, v, f"{where}[{i}]")
    elif hasattr(a, "__dict__") and not isinstance(a, type):
        assert_same(vars(a), vars(b), where)
    else:
        assert a == b or (a != a and b != b), where  # NaN equals NaN here


# -- Pipeline, GridSearchCV, cross_val_score ---------------------------------------------


def labeled_clustering_accuracy(y_true, y_pred):
    """Clustering accuracy on the labeled samples of a fold (-1: unlabeled)."""
    labeled = np.array([not (isinstance(v, (int, np.integer)) and v == -1) for v in y_true])
    return clustering_accuracy(np.asarray(y_true)[labeled], np.asarray(y_pred)[labeled])


def manual_cv_scores(estimator, X, y, cv, score):
    """The cross-validation loop written out: clone, fit on the train fold, score."""
    scores = []
    for train, test in cv.split(X, y):
        model = clone(estimator).fit(X[train], y[train])
        scores.append(score(y[test], model.predict(X[test])))
    return np.array(scores)


@pytest.mark.parametrize("name", MAKERS)
def test_clusterers_in_pipeline_gridsearch_and_cross_val_score(name):
    X, _, truth = four_blobs(seed=4, n=30)
    X = X * [1.0, 100.0]  # badly scaled: the pipeline's scaler matters
    y = np.array(list("abcd"), dtype=object)[truth]  # scikit-learn's convention: an
    y[np.random.default_rng(0).random(truth.shape[0]) < 0.5] = -1  # object array, -1
    pipe = make_pipeline(StandardScaler(), MAKERS[name](4))
    cv = KFold(3, shuffle=True, random_state=0)
    scorer = make_scorer(labeled_clustering_accuracy)
    scores = cross_val_score(pipe, X, y, cv=cv, scoring=scorer)
    expected = manual_cv_scores(pipe, X, y, cv, labeled_clustering_accuracy)
    np.testing.assert_allclose(scores, expected)
    assert scores.min() > 0.9
    step = pipe.steps[-1][0]
    param = f"{step}__n_components" if name == "SemiSupervisedGMM" else f"{step}__n_clusters"
    search = GridSearchCV(pipe, {param: [2, 4]}, cv=cv, scoring=scorer).fit(X, y)
    for k, mean in zip(
        search.cv_results_[f"param_{param}"], search.cv_results_["mean_test_score"], strict=True
    ):
        reference = manual_cv_scores(
            pipe.set_params(**{param: k}), X, y, cv, labeled_clustering_accuracy
        )
        np.testing.assert_allclose(mean, reference.mean())
    assert search.best_estimator_.predict(X).shape == (X.shape[0],)


def test_fewshot_in_pipeline_gridsearch_and_cross_val_score():
    support, y, _ = fewshot_task(seed=5, n_shot=20, n_query=0)
    names = np.array(["ant", "bee", "cow"])[y]
    pipe = make_pipeline(StandardScaler(), TransductiveFewShot())
    cv = StratifiedKFold(3, shuffle=True, random_state=0)
    scores = cross_val_score(pipe, support, names, cv=cv, scoring="accuracy")
    np.testing.assert_allclose(scores, manual_cv_scores(pipe, support, names, cv, accuracy_score))
    assert scores.min() > 0.9
    grid = {"transductivefewshot__lam": [0.0, 0.7]}
    search = GridSearchCV(pipe, grid, cv=cv, scoring="accuracy").fit(support, names)
    for lam, mean in zip(
        search.cv_results_["param_transductivefewshot__lam"],
        search.cv_results_["mean_test_score"],
        strict=True,
    ):
        reference = manual_cv_scores(
            pipe.set_params(transductivefewshot__lam=lam), support, names, cv, accuracy_score
        )
        np.testing.assert_allclose(mean, reference.mean())
    assert set(search.predict(support).tolist()) <= {"ant", "bee", "cow"}


@pytest.mark.parametrize("name", MAKERS)
@pytest.mark.parametrize("kind", ["integers", "strings"])
def test_predictions_on_other_libraries_keep_the_labels(name, kind, backend):
    """Integer labels come back in the input's library and device; strings cannot live
    on a device and come back as a NumPy array. Either way, the NumPy predictions."""
    X, y, _ = four_blobs()
    if kind == "strings":
        y = np.array(["a" if v == 3 else "b" if v == 7 else "-1" for v in y])
    model = MAKERS[name](4).fit(X, y)
    predicted = model.predict(backend.asarray(X))
    if kind == "integers":
        assert backend.is_own(predicted)
    else:
        assert isinstance(predicted, np.ndarray)
    np.testing.assert_array_equal(backend.to_numpy(predicted), model.predict(X))


def test_fewshot_tasks_take_the_labels_fit_takes():
    """predict_tasks with string labels is fit(...).predict(...) task by task, and the
    integer predictions renamed."""
    rng = np.random.default_rng(6)
    support, queries = rng.normal(size=(4, 6, 5)), rng.normal(size=(4, 9, 5))
    y = np.tile(np.repeat(np.arange(3), 2), (4, 1))
    names = np.array(["ant", "bee", "cow"])
    model = TransductiveFewShot()
    by_int = model.predict_tasks(support, y, queries)
    for y_named in (names[y], names.astype(object)[y]):
        predicted = model.predict_tasks(support, y_named, queries)
        assert predicted.tolist() == names[by_int].tolist()
        for t in range(4):
            single = TransductiveFewShot().fit(support[t], y_named[t]).predict(queries[t])
            assert single.tolist() == predicted[t].tolist()
        proba, classes = model.predict_proba_tasks(support, y_named, queries)
        assert classes.tolist() == [names.tolist()] * 4
        np.testing.assert_array_equal(proba, model.predict_proba_tasks(support, y, queries)[0])
