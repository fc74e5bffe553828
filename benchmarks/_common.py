"""Shared bits of the benchmark scripts: machine description and JSON output."""

from __future__ import annotations

import json
import os
import platform
import resource
from pathlib import Path
from typing import Any

CORPUS = Path(__file__).resolve().parents[2] / "shared" / "corpus"

# Benchmarks print JSON; transformers' weight-loading bars would only clutter the log.
os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")


def machine() -> dict[str, Any]:
    import torch

    return {
        "cpu": platform.processor() or platform.machine(),
        "cores": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "cuda": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
        "python": platform.python_version(),
        "torch": torch.__version__,
    }


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def page_texts() -> dict[str, list[str]]:
    """Each corpus PDF's page texts, as ingest stores them (pypdfium2's text layer)."""
    import pypdfium2 as pdfium

    texts = {}
    for pdf in sorted((CORPUS / "pdfs").glob("*.pdf")):
        document = pdfium.PdfDocument(str(pdf))
        texts[pdf.name] = [page.get_textpage().get_text_range() for page in document]
        document.close()
    return texts


def write_json(path: Path | None, payload: dict[str, Any]) -> None:
    text = json.dumps(payload, indent=2)
    print(text)
    if path:
        path.write_text(text)
