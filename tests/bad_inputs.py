"""Builders of the broken inputs ingest must report and skip (used by several test files)."""

from __future__ import annotations

import os
from pathlib import Path

from pypdf import PdfReader, PdfWriter

CORPUS = Path(__file__).resolve().parents[2] / "shared" / "corpus"
SMALL_PDF = CORPUS / "pdfs" / "pymupdf__irs-form-7004.pdf"


def make_bad_inputs(folder: Path) -> dict[str, str]:
    """Write one file per failure mode into ``folder``; return file name -> expected reason."""
    folder.mkdir(parents=True, exist_ok=True)
    writer = PdfWriter(clone_from=PdfReader(SMALL_PDF))
    writer.encrypt("secret")
    writer.write(folder / "encrypted.pdf")
    data = SMALL_PDF.read_bytes()
    (folder / "truncated.pdf").write_bytes(data[: len(data) // 3])
    (folder / "garbage.pdf").write_bytes(b"%PDF-1.4\n" + os.urandom(4000))
    (folder / "empty.pdf").write_bytes(b"")
    (folder / "notes.pdf").write_text("these are notes, not a PDF")
    (folder / "corrupt.png").write_bytes(b"\x89PNG\r\n\x1a\n" + os.urandom(200))
    sliver = PdfWriter()
    sliver.add_blank_page(width=100_000, height=10)
    sliver.write(folder / "sliver.pdf")
    giant = PdfWriter()
    giant.add_blank_page(width=20_000, height=20_000)
    giant.write(folder / "giant.pdf")
    (folder / "dangling.pdf").symlink_to(folder / "does-not-exist.pdf")
    return {
        "encrypted.pdf": "encrypted",
        "truncated.pdf": "damaged",
        "garbage.pdf": "damaged",
        "empty.pdf": "empty",
        "notes.pdf": "not a PDF",
        "corrupt.png": "cannot be decoded",
        "sliver.pdf": "absurd shape",
        "giant.pdf": "absurdly large",
        "dangling.pdf": "cannot read",
    }
