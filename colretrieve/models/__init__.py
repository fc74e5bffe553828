"""Page embedders backed by colpali-engine retrievers, and tiny test checkpoints.

Names are imported on first use so that ``import colretrieve.models`` stays cheap: torch,
transformers and colpali-engine load only when an embedder or a tiny model is asked for.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from colretrieve.models.embedder import ColpaliEmbedder
    from colretrieve.models.loading import resolve_device
    from colretrieve.models.tiny import TinyModelPaths, make_tiny_models

__all__ = ["ColpaliEmbedder", "TinyModelPaths", "make_tiny_models", "resolve_device"]

_HOMES = {
    "ColpaliEmbedder": "colretrieve.models.embedder",
    "TinyModelPaths": "colretrieve.models.tiny",
    "make_tiny_models": "colretrieve.models.tiny",
    "resolve_device": "colretrieve.models.loading",
}


def __getattr__(name: str) -> Any:
    if name in _HOMES:
        return getattr(import_module(_HOMES[name]), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
