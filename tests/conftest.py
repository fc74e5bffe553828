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
