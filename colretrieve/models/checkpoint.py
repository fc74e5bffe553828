"""Find a checkpoint on disk and say which colpali-engine classes load it.

A name is either a local folder or a Hugging Face hub id. Offline is the normal case: a hub id
resolves to its snapshot in the local HF cache, and one that is not cached fails at once with
a message that says how to point ``--model`` at a folder instead. The hub is only contacted
when it is reachable and ``HF_HUB_OFFLINE`` is not set.

Hub checkpoints such as ``vidore/colqwen2-v1.0`` are PEFT adapters: they hold
``adapter_config.json`` (naming ``base_model_name_or_path``) and no ``config.json``. The
architecture then comes from the base model's config; transformers' ``from_pretrained`` on the
adapter folder loads the base and applies the adapter itself when peft is installed.
"""

from __future__ import annotations

import hashlib
import json
import os
import socket
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from colretrieve.errors import ModelLoadError

CONFIG_NAME = "config.json"
ADAPTER_CONFIG_NAME = "adapter_config.json"
WEIGHT_SUFFIXES = (".safetensors", ".bin", ".pt", ".pth", ".gguf")
FINGERPRINT_EDGE_BYTES = 1 << 20
# Hub files worth fetching when online: configs, weights, tokenizer and templates.
HUB_PATTERNS = ["*.json", "*.safetensors", "*.jinja", "*.txt", "*.model"]
_TRUE = {"1", "true", "yes", "on"}


@dataclass(frozen=True)
class Checkpoint:
    """A checkpoint resolved to local folders."""

    name: str
    folder: Path
    config: dict[str, Any]
    """The model config (the base model's for an adapter)."""
    revision: str
    base_folder: Path | None = None
    """The base model's folder when ``folder`` holds a PEFT adapter."""
    local_files_only: bool = True


def offline_requested() -> bool:
    return any(
        os.environ.get(var, "").strip().lower() in _TRUE
        for var in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE")
    )


def hub_reachable(timeout: float = 2.0) -> bool:
    """One TCP connect to the hub endpoint: cheap, and it never waits on HTTP retries."""
    endpoint = urlparse(os.environ.get("HF_ENDPOINT", "https://huggingface.co"))
    port = endpoint.port or (443 if endpoint.scheme == "https" else 80)
    try:
        with socket.create_connection((endpoint.hostname or "", port), timeout=timeout):
            return True
    except OSError:
        return False


def _looks_like_path(name: str) -> bool:
    return (
        os.path.isabs(name)
        or name.startswith((".", "~"))
        or name.count("/") > 1
        or "\\" in name
        or os.path.exists(name)
    )


def locate(name: str, local_files_only: bool | None = None) -> tuple[Path, bool]:
    """Return ``(folder, local_files_only)`` for a folder or a hub id, or raise ModelLoadError."""
    if _looks_like_path(name):
        folder = Path(name).expanduser()
        if not folder.is_dir():
            raise ModelLoadError(name, f"no folder {str(folder)!r}")
        return folder.resolve(), True
    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import HFValidationError

    if local_files_only is None:
        local_files_only = offline_requested() or not hub_reachable()
    try:
        folder = snapshot_download(
            name, local_files_only=local_files_only, allow_patterns=HUB_PATTERNS
        )
    except HFValidationError as error:
        raise ModelLoadError(name, f"not a folder and not a valid hub id ({error})") from None
    except Exception as error:  # many hub error types; all mean "cannot get it now"
        where = "in the local Hugging Face cache (offline)" if local_files_only else "on the hub"
        raise ModelLoadError(name, f"not found {where}: {type(error).__name__}") from None
    return Path(folder), local_files_only


def _read_json(path: Path, name: str) -> dict[str, Any]:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as error:
        raise ModelLoadError(name, f"cannot read {path.name}: {error}") from None


def _hub_commit(folder: Path) -> str | None:
    """The commit hash when ``folder`` is a snapshot in the HF cache (``.../snapshots/<hash>``)."""
    if folder.parent.name == "snapshots" and folder.parent.parent.name.startswith("models--"):
        return folder.name
    return None


def fingerprint(folder: Path) -> str:
    """sha256 over the config files' bytes and each weight file's name, size and ends.

    Reading only the first and last MiB keeps this cheap on multi-GB weights while still
    changing whenever a file is replaced.
    """
    digest = hashlib.sha256()
    files = sorted(
        p
        for p in folder.rglob("*")
        if p.is_file() and not any(part.startswith(".") for part in p.relative_to(folder).parts)
    )
    for path in files:
        rel = path.relative_to(folder).as_posix()
        if path.suffix == ".json":
            digest.update(f"json {rel}\0".encode())
            digest.update(path.read_bytes())
        elif path.name.endswith(WEIGHT_SUFFIXES):
            size = path.stat().st_size
            digest.update(f"weights {rel} {size}\0".encode())
            with path.open("rb") as handle:
                digest.update(handle.read(FINGERPRINT_EDGE_BYTES))
                if size > FINGERPRINT_EDGE_BYTES:
                    handle.seek(max(size - FINGERPRINT_EDGE_BYTES, FINGERPRINT_EDGE_BYTES))
                    digest.update(handle.read())
    return digest.hexdigest()


def model_revision(name_or_dir: str | Path) -> str:
    """Hub commit hash for a cached hub checkpoint, else a fingerprint of the folder."""
    folder, _ = locate(str(name_or_dir))
    return _hub_commit(folder) or fingerprint(folder)


def resolve_checkpoint(name: str) -> Checkpoint:
    """Locate ``name`` (and the base model of an adapter) and read the model config."""
    folder, local_only = locate(name)
    revision = _hub_commit(folder) or fingerprint(folder)
    if (folder / CONFIG_NAME).is_file():
        config = _read_json(folder / CONFIG_NAME, name)
        return Checkpoint(name, folder, config, revision, local_files_only=local_only)
    if not (folder / ADAPTER_CONFIG_NAME).is_file():
        raise ModelLoadError(
            name, f"{folder} holds neither {CONFIG_NAME} nor {ADAPTER_CONFIG_NAME}"
        )
    adapter = _read_json(folder / ADAPTER_CONFIG_NAME, name)
    base_name = adapter.get("base_model_name_or_path")
    if not base_name:
        raise ModelLoadError(name, f"{ADAPTER_CONFIG_NAME} names no base_model_name_or_path")
    base_folder, _ = locate(str(base_name), local_files_only=local_only)
    if not (base_folder / CONFIG_NAME).is_file():
        raise ModelLoadError(name, f"its base model {base_name!r} has no {CONFIG_NAME}")
    config = _read_json(base_folder / CONFIG_NAME, name)
    return Checkpoint(name, folder, config, revision, base_folder, local_only)
