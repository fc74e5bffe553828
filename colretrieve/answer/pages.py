"""The retrieved pages an answer is grounded on, rendered for the generator."""

from __future__ import annotations

import hashlib
import io
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from PIL import Image

from colretrieve.contracts import MultiVectorStore, SearchHit
from colretrieve.rasterize import render_pages, sniff_kind

PAGE_TEXT_CHARS = 1_500
"""At most this much of a page's text layer goes into the prompt."""


@dataclass(frozen=True)
class AnswerPage:
    doc_id: str
    path: str
    title: str
    page: int
    score: float
    image: Image.Image
    text: str

    def image_sha256(self) -> str:
        return hashlib.sha256(png_bytes(self.image)).hexdigest()


def png_bytes(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


def render_page_image(path: str, page: int, dpi: int, max_pixels: int) -> Image.Image:
    """Render one stored page from its source file within a pixel budget."""
    source = Path(path)
    kind = sniff_kind(source)
    return render_pages(source, kind, page, page, dpi, max_pixels)[0].image.convert("RGB")


def answer_pages(
    stores: MultiVectorStore | Sequence[MultiVectorStore],
    hits: list[SearchHit],
    *,
    dpi: int,
    max_pixels: int,
    with_text: bool,
) -> list[AnswerPage]:
    """Render ``hits`` for the generator, resized server-side to ``max_pixels``; a page's
    text comes from the first of ``stores`` that holds the page."""
    stores = list(stores) if isinstance(stores, Sequence) else [stores]
    pages = []
    for hit in hits:
        text = ""
        if with_text:
            info = next(
                (i for s in stores if (i := s.get_page(hit.doc_id, hit.page)) is not None), None
            )
            text = (info.text if info else "")[:PAGE_TEXT_CHARS]
        image = render_page_image(hit.path, hit.page, dpi, max_pixels)
        pages.append(AnswerPage(hit.doc_id, hit.path, hit.title, hit.page, hit.score, image, text))
    return pages
