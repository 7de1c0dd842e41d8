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
    # almost no constant dimension (all-MiniLM-L6-v2 has 3 dead ones, ~1e-33 everywhere)
    # and no duplicated rows en masse (BBC News itself repeats ~5% of its articles)
    assert (X.std(axis=0) > 1e-6).sum() >= X.shape[1] - 3
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


def test_unnormalised_set_is_not_unit_norm():
    # the PCA scores are not normalised, so the NORMALISED_SETS test is not vacuous
    X, _, _ = load_embedding_set("pbmc68k_pca50")
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
