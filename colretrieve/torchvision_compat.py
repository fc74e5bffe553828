"""Make PyPI's torchvision importable beside the CPU-only torch wheel.

PyPI ships torchvision 0.28.0 built against CUDA torch. Beside the CPU torch 2.13.0 wheel its
compiled ops library does not load, so ``import torchvision`` dies in
``_meta_registrations.py`` with ``operator torchvision::nms does not exist`` — and
transformers' Qwen2-VL image processor imports torchvision. Only the fake (meta) kernels of
``nms``/``qnms`` are registered eagerly; declaring those two schemas first lets the import
finish. Image transforms (what we use) are pure PyTorch and work; calling the detection ops
themselves would still fail, which colretrieve never does.

The patch acts only when that exact import error happens: with a matching CUDA or CPU
torchvision build it does nothing.
"""

from __future__ import annotations

import sys

import torch

_MISSING_OP = "operator torchvision::nms does not exist"
_SCHEMAS = (
    "nms(Tensor dets, Tensor scores, float iou_threshold) -> Tensor",
    "qnms(Tensor dets, Tensor scores, float iou_threshold) -> Tensor",
)
_library: torch.library.Library | None = None  # kept alive: dropping it undefines the ops


def ensure_torchvision() -> bool:
    """Import torchvision, patching the missing op schemas if needed; return True if patched."""
    global _library
    try:
        import torchvision
    except RuntimeError as error:
        if _MISSING_OP not in str(error):
            raise
    else:
        return False
    # Forget the half-imported package so the retry starts clean.
    for name in [m for m in sys.modules if m == "torchvision" or m.startswith("torchvision.")]:
        del sys.modules[name]
    _library = torch.library.Library("torchvision", "DEF")
    for schema in _SCHEMAS:
        _library.define(schema)
    import torchvision  # noqa: F401

    return True
