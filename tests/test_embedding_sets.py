"""The committed embedding sets of benchmarks/embedding_sets.py load and are well formed."""

import numpy as np
import pytest

from benchmarks import embedding_sets
from benchmarks.embedding_sets import (
    EMBEDDING_SETS,
    NORMALISED_SETS,
    embedding_set_meta,
    load_embedding_set,
)

# sets exported from the same documents in the same order by two models
SAME_DOCUMENTS = [("bbc_news_minilm", "bbc_news_glove"), ("wiki_vital_minilm", "wiki_vital_glove")]


@pytest.mark.parametrize("name", sorted(EMBEDDING_SETS))
def test_embedding_set_is_well_formed(name):
    X, y, class_names = load_embedding_set(name)
    meta = embedding_set_meta(name)
    assert X.dtype == np.float32
    assert X.flags.c_contiguous
    assert X.ndim == 2
    assert X.shape == (meta["n"], meta["d"])
    assert np.isfinite(X).all()
    # almost no constant dimension (all-MiniLM-L6-v2 has 3 dead ones, ~1e-33 everywhere;
    # EfficientNet-Lite0 has ReLU6 channels that no MNIST digit activates, 44 of 1280)
    # and no duplicated rows en masse (BBC News itself repeats ~5% of its articles)
    n_constant = int((X.std(axis=0) <= 1e-6).sum())
    assert n_constant <= (0.05 * X.shape[1] if name == "mnist_effnet_lite0" else 3)
    assert len(np.unique(X, axis=0)) > 0.94 * len(X)
    assert y.dtype == np.int64
    assert y.shape == (X.shape[0],)
    assert len(class_names) == meta["n_classes"] >= 2
    assert len(set(class_names)) == len(class_names)
    assert all(isinstance(c, str) and c for c in class_names)
    # every label 0..C-1 is used
    np.testing.assert_array_equal(np.unique(y), np.arange(len(class_names)))
    assert meta["name"] == name
    assert meta["packages"]  # provenance recorded


@pytest.mark.parametrize("name", sorted(NORMALISED_SETS))
def test_normalised_sets_have_unit_rows(name):
    X, _, _ = load_embedding_set(name)
    # float16 storage rounds each coordinate to ~5e-4 relative
    tol = 2e-3 if embedding_set_meta(name)["stored_dtype"] == "float16" else 1e-5
    np.testing.assert_allclose(np.linalg.norm(X, axis=1), 1.0, atol=tol)


@pytest.mark.parametrize("name", ["pbmc68k_pca50", "mnist_effnet_lite0"])
def test_unnormalised_set_is_not_unit_norm(name):
    # PCA scores and pooled CNN features are not normalised, so the NORMALISED_SETS
    # test is not vacuous
    assert name not in NORMALISED_SETS
    X, _, _ = load_embedding_set(name)
    assert np.abs(np.linalg.norm(X, axis=1) - 1).max() > 1


@pytest.mark.parametrize(("first", "second"), SAME_DOCUMENTS)
def test_sets_of_the_same_documents_share_labels(first, second):
    _, y1, names1 = load_embedding_set(first)
    _, y2, names2 = load_embedding_set(second)
    np.testing.assert_array_equal(y1, y2)
    assert names1 == names2


def test_pbmc_labels_are_the_scanpy_cell_types():
    _, y, class_names = load_embedding_set("pbmc68k_pca50")
    sizes = dict(zip(class_names, np.bincount(y).tolist(), strict=True))
    # scanpy's pbmc68k_reduced: 700 cells, bulk_labels of very unequal sizes
    assert sum(sizes.values()) == 700
    assert sizes["Dendritic"] == max(sizes.values())
    assert min(sizes.values()) < 20


def test_image_set_is_a_stratified_sample_of_mnist_5k():
    from clusterlab.datasets import load_dataset

    X, y, class_names = load_embedding_set("mnist_effnet_lite0")
    meta = embedding_set_meta("mnist_effnet_lite0")
    assert meta["modality"] == "image"
    assert class_names == [str(d) for d in range(10)]
    # 200 digits of each class, rows of mnist_5k in file order, labels = their digits
    np.testing.assert_array_equal(np.bincount(y), np.full(10, 200))
    rows = np.asarray(meta["rows"])
    assert rows.shape == y.shape
    assert np.all(np.diff(rows) > 0)
    _, digits = load_dataset("mnist_5k")
    np.testing.assert_array_equal(digits[rows], y)
    # the pooled features follow ReLU6: every entry in [0, 6], most channels used
    assert X.min() >= 0.0
    assert X.max() <= 6.0
    assert (X.std(axis=0) > 1e-3).mean() > 0.5


def test_image_sample_matches_the_exporter():
    from benchmarks.export_embeddings import MNIST_PER_CLASS, _mnist_sample

    images, digits, rows = _mnist_sample()
    assert images.dtype == np.uint8
    assert images.shape == (10 * MNIST_PER_CLASS, 28, 28)
    np.testing.assert_array_equal(rows, embedding_set_meta("mnist_effnet_lite0")["rows"])
    np.testing.assert_array_equal(digits, load_embedding_set("mnist_effnet_lite0")[1])


def test_text_exporter_writes_corpus_and_encoder(tmp_path, monkeypatch):
    from benchmarks import export_embeddings

    def read():
        return ["a b", "c d", "e f"], ["y", "x", "y"], {"pkg": "1.0"}

    def encode(texts):
        X = np.arange(2 * len(texts), dtype=np.float32).reshape(len(texts), 2) + 1
        return X, {"model": "fake", "packages_model": {"model-pkg": "2.0"}}

    spec = {"read": read, "source": "src", "labels": "lab", "text": "all"}
    monkeypatch.setitem(export_embeddings._TEXT_CORPORA, "toy", spec)
    monkeypatch.setitem(export_embeddings._TEXT_ENCODERS, "fake", encode)
    monkeypatch.setattr(export_embeddings, "DATA_DIR", tmp_path)
    path = export_embeddings._export_text("toy", "fake", dtype=np.float16)
    assert path == tmp_path / "toy_fake.npz"
    monkeypatch.setattr(embedding_sets, "DATA_DIR", tmp_path)
    monkeypatch.setitem(embedding_sets.EMBEDDING_SETS, "toy_fake", "a toy set")
    X, y, class_names = load_embedding_set("toy_fake")
    np.testing.assert_array_equal(X, [[1, 2], [3, 4], [5, 6]])
    np.testing.assert_array_equal(y, [1, 0, 1])
    assert class_names == ["x", "y"]
    meta = embedding_set_meta("toy_fake")
    assert meta["packages"] == {"pkg": "1.0", "model-pkg": "2.0"}
    assert meta["stored_dtype"] == "float16"
    assert meta["preprocessing"] == "whitespace collapsed; all"
    assert (meta["model"], meta["source"], meta["labels"]) == ("fake", "src", "lab")
    assert "subsample" not in meta


def test_unknown_set_is_a_clear_error():
    with pytest.raises(ValueError, match=r"unknown embedding set 'nope'.*pbmc68k_pca50"):
        load_embedding_set("nope")


def test_missing_file_names_the_export_command(tmp_path, monkeypatch):
    monkeypatch.setattr(embedding_sets, "DATA_DIR", tmp_path)
    with pytest.raises(FileNotFoundError, match=r"export_embeddings\.py bbc_news_minilm"):
        load_embedding_set("bbc_news_minilm")


def test_export_script_lists_every_set(capsys):
    from benchmarks import export_embeddings

    assert set(export_embeddings.EXPORTERS) == set(EMBEDDING_SETS)
    assert export_embeddings.main(["--list"]) == 0
    out = capsys.readouterr().out
    assert all(f"{name}:" in out for name in EMBEDDING_SETS)


def test_label_encoding_is_sorted_and_dense():
    from benchmarks.export_embeddings import _encode_labels

    y, names = _encode_labels(["b", "a", "c", "a"])
    assert names == ["a", "b", "c"]
    np.testing.assert_array_equal(y, [1, 0, 2, 0])
    y, names = _encode_labels(["b", "a"], class_names=["b", "a"])
    np.testing.assert_array_equal(y, [0, 1])
