"""What a text checkpoint adds on top of its transformer: a ColBERT head and its markers.

Three layouts are recognised, all read from files beside the weights:

* sentence-transformers / pylate: ``modules.json`` lists ``Dense`` modules (``1_Dense/``...),
  each a folder with ``config.json`` (``in_features``, ``out_features``, ``bias``,
  ``activation_function``) and its weights; ``config_sentence_transformers.json`` may name the
  query/document prefixes and the query length that pylate expands with ``[MASK]`` tokens;
* stanford-colbert (``HF_ColBERT``): a ``linear`` layer stored with the encoder's weights, and
  ``artifact.metadata`` naming the query/document marker tokens and ``query_maxlen``;
* anything else: no head, the encoder's last hidden states are the token vectors.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from colretrieve.errors import InvalidInputError

_DENSE_TYPES = ("sentence_transformers.models.Dense", "pylate.models.Dense")
_ACTIVATIONS = {"identity", "tanh"}


@dataclass(frozen=True)
class ColbertStyle:
    """How a ColBERT-trained checkpoint expects its inputs (absent for plain encoders)."""

    query_prefix: str | None = None
    """Marker token inserted after [CLS] in queries (``[unused0]`` / ``[Q]``)."""
    document_prefix: str | None = None
    query_length: int | None = None
    """Queries are padded with [MASK] to this many tokens, and the expansions are kept."""


@dataclass(frozen=True)
class Head:
    """Linear layers (with their activations) applied to the last hidden states, in order."""

    layers: tuple[tuple[Any, str], ...]
    """``(torch.nn.Linear, activation)`` pairs; activation is ``identity`` or ``tanh``."""
    style: ColbertStyle | None

    @property
    def out_features(self) -> int | None:
        return int(self.layers[-1][0].out_features) if self.layers else None

    def to(self, device: Any, dtype: Any) -> Head:
        for linear, _ in self.layers:
            linear.to(device=device, dtype=dtype)
        return self

    def __call__(self, hidden: Any) -> Any:
        for linear, activation in self.layers:
            hidden = linear(hidden)
            if activation == "tanh":
                hidden = hidden.tanh()
        return hidden


def _read_json(path: Path) -> Any:
    return json.loads(path.read_text(encoding="utf-8"))


def _load_tensors(folder: Path) -> dict[str, Any]:
    """Every tensor in the folder's weight files (safetensors preferred, else .bin)."""
    import torch
    from safetensors.torch import load_file

    tensors: dict[str, Any] = {}
    files = sorted(folder.glob("*.safetensors")) or sorted(folder.glob("*.bin"))
    for path in files:
        if path.suffix == ".safetensors":
            tensors.update(load_file(str(path)))
        else:
            tensors.update(torch.load(str(path), map_location="cpu", weights_only=True))
    return tensors


def _linear(weight: Any, bias: Any | None) -> Any:
    import torch

    layer = torch.nn.Linear(weight.shape[1], weight.shape[0], bias=bias is not None)
    with torch.no_grad():
        layer.weight.copy_(weight)
        if bias is not None:
            layer.bias.copy_(bias)
    return layer.eval()


def _activation(name: str | None, where: Path) -> str:
    short = (name or "identity").rpartition(".")[2].lower()
    if short not in _ACTIVATIONS:
        raise InvalidInputError(f"{where}: unsupported Dense activation {name!r}")
    return short


def _dense_folders(folder: Path) -> list[Path]:
    modules = folder / "modules.json"
    if modules.is_file():
        return [
            folder / m["path"]
            for m in _read_json(modules)
            if str(m.get("type", "")).startswith(_DENSE_TYPES)
        ]
    return sorted(p for p in folder.glob("*_Dense") if (p / "config.json").is_file())


def _st_style(folder: Path) -> ColbertStyle | None:
    path = folder / "config_sentence_transformers.json"
    config = _read_json(path) if path.is_file() else {}
    if "query_length" not in config and "query_prefix" not in config:
        return None
    return ColbertStyle(
        query_prefix=config.get("query_prefix") or None,
        document_prefix=config.get("document_prefix") or None,
        query_length=config.get("query_length"),
    )


def _stanford_style(folder: Path) -> ColbertStyle:
    path = folder / "artifact.metadata"
    meta = _read_json(path) if path.is_file() else {}
    return ColbertStyle(
        query_prefix=meta.get("query_token_id", "[unused0]"),
        document_prefix=meta.get("doc_token_id", "[unused1]"),
        query_length=meta.get("query_maxlen", 32),
    )


def load_head(folder: Path, config: dict[str, Any]) -> Head | None:
    """The checkpoint's projection head, or None for a plain encoder."""
    dense = _dense_folders(folder)
    if dense:
        layers = []
        for sub in dense:
            dense_config = _read_json(sub / "config.json")
            tensors = _load_tensors(sub)
            weight = tensors.get("linear.weight")
            if weight is None:
                raise InvalidInputError(f"{sub}: no linear.weight in the Dense module")
            activation = _activation(dense_config.get("activation_function"), sub)
            layers.append((_linear(weight, tensors.get("linear.bias")), activation))
        style = _st_style(folder) or ColbertStyle()
        return Head(tuple(layers), style)
    if "HF_ColBERT" in (config.get("architectures") or []):
        weight = _load_tensors(folder).get("linear.weight")
        if weight is None:
            raise InvalidInputError(f"{folder}: HF_ColBERT checkpoint without linear.weight")
        return Head(((_linear(weight, None), "identity"),), _stanford_style(folder))
    return None
