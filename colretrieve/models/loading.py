"""Load a colpali-engine retriever and its processor onto a device.

The model class comes from the checkpoint's own config, never from a list of names kept here:
``architectures`` is looked up in ``colpali_engine.models`` (``"ColQwen2"`` -> ``ColQwen2``),
and the processor is the one exported beside that class in its colpali-engine package
(``ColQwen2Processor``, ``ColQwen2_5_Processor``, ``ColGemmaProcessor3``...). A checkpoint
saved as a plain transformers class (``Qwen2VLForConditionalGeneration``) falls back to the
colpali-engine class whose config has the same ``model_type``.
"""

from __future__ import annotations

import inspect
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from colretrieve.contracts import ModelInfo
from colretrieve.errors import InvalidInputError, ModelLoadError
from colretrieve.models.checkpoint import Checkpoint, model_revision, resolve_checkpoint
from colretrieve.torchvision_compat import ensure_torchvision

__all__ = [
    "LoadedModel",
    "colpali_classes",
    "dtype_for",
    "load_model",
    "model_revision",
    "resolve_device",
]

# colpali-engine's multi-vector classes start with "Col"; "Bi*" ones give one vector per input.
_MULTI_VECTOR_PREFIX = "Col"


def resolve_device(device: str) -> Any:
    """``"auto"`` (CUDA when available), ``"cpu"``, ``"cuda"`` or ``"cuda:N"`` as a torch.device."""
    import torch

    text = device.strip().lower()
    if text == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if text == "cpu":
        return torch.device("cpu")
    if text == "cuda" or text.startswith("cuda:"):
        if not torch.cuda.is_available():
            raise InvalidInputError(
                f"device {device!r} requested but CUDA is not available on this machine; "
                "use --device cpu (or auto)"
            )
        index_text = text.partition(":")[2]
        if index_text and (
            not index_text.isdigit() or int(index_text) >= torch.cuda.device_count()
        ):
            raise InvalidInputError(
                f"device {device!r}: there are {torch.cuda.device_count()} CUDA devices"
            )
        return torch.device(text)
    raise InvalidInputError(f"unknown device {device!r}; use auto, cpu, cuda or cuda:N")


def dtype_for(device: Any) -> Any:
    """bfloat16 on CUDA; float32 on CPU, where bfloat16 matmul is ~30x slower."""
    import torch

    return torch.bfloat16 if torch.device(device).type == "cuda" else torch.float32


def _processor_beside(model_cls: type) -> type | None:
    """The retriever processor exported by the colpali-engine package of ``model_cls``."""
    from colpali_engine.utils.processing_utils import BaseVisualRetrieverProcessor

    package = sys.modules.get(model_cls.__module__.rpartition(".")[0])
    found = {
        value
        for value in vars(package).values()
        if isinstance(value, type) and issubclass(value, BaseVisualRetrieverProcessor)
    }
    return found.pop() if len(found) == 1 else None


def colpali_classes(config: dict[str, Any], name: str) -> tuple[str, type, type]:
    """``(architecture, model class, processor class)`` for a model config, or ModelLoadError."""
    ensure_torchvision()
    import colpali_engine.models as colpali_models
    import transformers

    architectures = list(config.get("architectures") or [])
    model_cls: type | None = None
    for arch in architectures:
        candidate = getattr(colpali_models, arch, None)
        if isinstance(candidate, type):
            if not arch.startswith(_MULTI_VECTOR_PREFIX):
                raise ModelLoadError(
                    name, f"architecture {arch!r} is single-vector; colretrieve needs a Col* model"
                )
            model_cls = candidate
            break
    if model_cls is None:
        unknown = [a for a in architectures if not hasattr(transformers, a)]
        if unknown:
            raise ModelLoadError(
                name, f"unsupported architecture {unknown[0]!r} (not a colpali-engine model)"
            )
        model_cls = _by_model_type(config.get("model_type"), colpali_models, name, architectures)
    processor_cls = _processor_beside(model_cls)
    if processor_cls is None:
        raise ModelLoadError(name, f"no colpali-engine processor found for {model_cls.__name__}")
    return model_cls.__name__, model_cls, processor_cls


def _by_model_type(
    model_type: str | None, colpali_models: Any, name: str, architectures: list[str]
) -> type:
    matches = [
        value
        for attr, value in vars(colpali_models).items()
        if attr.startswith(_MULTI_VECTOR_PREFIX)
        and isinstance(value, type)
        and getattr(getattr(value, "config_class", None), "model_type", None) == model_type
    ]
    if model_type is None or len(matches) != 1:
        found = f"architectures {architectures}, model_type {model_type!r}"
        raise ModelLoadError(name, f"no colpali-engine retriever matches ({found})")
    return matches[0]


def accepts_visual_budget(processor_cls: type) -> bool:
    """True when the processor's ``from_pretrained`` applies ``max_num_visual_tokens``."""
    try:
        return "max_num_visual_tokens" in inspect.getsource(processor_cls.from_pretrained)
    except (OSError, TypeError):
        return False


def _drop_pixel_attribute(processor: Any) -> None:
    # colpali-engine sets both image_processor.size["longest_edge"] and a ``max_pixels``
    # attribute; transformers 5 passes the attribute to every call and warns it is deprecated.
    image_processor = getattr(processor, "image_processor", None)
    size = getattr(image_processor, "size", None)
    max_pixels = vars(image_processor).get("max_pixels") if image_processor is not None else None
    if max_pixels is not None and getattr(size, "longest_edge", None) == max_pixels:
        del image_processor.max_pixels


@dataclass
class LoadedModel:
    model: Any
    processor: Any
    info: ModelInfo
    device: Any
    checkpoint: Checkpoint


def _load_processor(processor_cls: type, checkpoint: Checkpoint, kwargs: dict[str, Any]) -> Any:
    # An adapter repo normally ships the processor files; otherwise use the base model's.
    folders = [checkpoint.folder, checkpoint.base_folder]
    errors = []
    for folder in (f for f in folders if f is not None):
        try:
            return processor_cls.from_pretrained(str(folder), **kwargs)
        except (OSError, ValueError, TypeError) as error:
            errors.append(f"{folder}: {error}")
    raise ModelLoadError(checkpoint.name, "cannot load its processor: " + "; ".join(errors))


def load_model(name: str, device: str = "auto", max_visual_tokens: int | None = 768) -> LoadedModel:
    """Load the retriever named by ``name`` in eval mode on ``device``, with its processor."""
    if max_visual_tokens is not None and max_visual_tokens < 1:
        raise InvalidInputError(f"max_visual_tokens must be >= 1; got {max_visual_tokens}")
    torch_device = resolve_device(device)
    checkpoint = resolve_checkpoint(name)
    architecture, model_cls, processor_cls = colpali_classes(checkpoint.config, name)
    try:
        model, loading = model_cls.from_pretrained(
            str(checkpoint.folder),
            dtype=dtype_for(torch_device),
            local_files_only=checkpoint.local_files_only,
            output_loading_info=True,
        )
    except (OSError, ValueError, RuntimeError, ImportError) as error:
        raise ModelLoadError(name, f"{type(error).__name__}: {error}") from None
    # transformers fills missing weights with random ones and only logs it; a Qwen2-VL chat
    # model read as ColQwen2 would embed with a random projection. (An adapter's loading
    # info describes the adapter only, so this check covers full checkpoints.)
    missing = list(loading.get("missing_keys") or [])
    if missing and checkpoint.base_folder is None:
        raise ModelLoadError(
            name,
            f"{len(missing)} {architecture} weights are missing from the checkpoint (e.g. "
            f"{sorted(missing)[0]!r}); is it a retriever checkpoint?",
        )
    model = model.to(torch_device).eval()

    processor_kwargs: dict[str, Any] = {"local_files_only": checkpoint.local_files_only}
    budget = max_visual_tokens if accepts_visual_budget(processor_cls) else None
    if budget is not None:
        processor_kwargs["max_num_visual_tokens"] = budget
    processor = _load_processor(processor_cls, checkpoint, processor_kwargs)
    _drop_pixel_attribute(processor)

    dim = getattr(model, "dim", None)
    if not isinstance(dim, int):
        projection = getattr(model, "custom_text_proj", None)
        dim = getattr(projection, "out_features", None)
    if not isinstance(dim, int):
        raise ModelLoadError(name, f"cannot tell the output dimension of {architecture}")
    info = ModelInfo(
        # A folder is recorded absolute, so `colretrieve search` finds it from any directory.
        name=str(Path(name).resolve()) if Path(name).is_dir() else name,
        revision=checkpoint.revision,
        architecture=architecture,
        dim=dim,
        max_visual_tokens=budget,
    )
    return LoadedModel(model, processor, info, torch_device, checkpoint)
