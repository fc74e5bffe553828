"""Turn input files (PDFs and page images) into page images plus their text layer.

Files are recognised by their bytes, never by their name. Everything here is safe to run in
worker processes: functions take paths and plain values and return picklable results.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from PIL import Image

from colretrieve.errors import OcrFailedError, UnreadableDocumentError
from colretrieve.ocr import OCR_MAX_PIXELS, OcrOptions, TextSource, page_text
from colretrieve.text.analyzer import clean_text

SourceKind = Literal["pdf", "image"]

IMAGE_SUFFIXES = frozenset({".png", ".jpg", ".jpeg", ".tif", ".tiff"})
PDF_SUFFIXES = frozenset({".pdf"})
INPUT_SUFFIXES = IMAGE_SUFFIXES | PDF_SUFFIXES

# The PDF spec caps a page side at 14,400 user units (200 inches); anything beyond, or a
# sliver thinner than 1/200 of its length, is not a page a model can read.
MAX_PAGE_SIDE_PT = 14_400.0
MAX_ASPECT_RATIO = 200.0
# Refuse decoding image files beyond this many pixels (decompression bombs).
MAX_IMAGE_FILE_PIXELS = 200_000_000

_MAGIC: tuple[tuple[bytes, SourceKind], ...] = (
    (b"\x89PNG\r\n\x1a\n", "image"),
    (b"\xff\xd8\xff", "image"),
    (b"II*\x00", "image"),
    (b"MM\x00*", "image"),
)


@dataclass(frozen=True)
class SourceInfo:
    """What a quick look at a file tells: enough to plan its ingest."""

    path: Path
    kind: SourceKind
    sha256: str
    size_bytes: int
    page_count: int
    title: str


@dataclass(frozen=True)
class RenderedPage:
    page: int
    """1-based page number."""
    image: Image.Image | None
    """None when rendered with ``images=False``."""
    text: str
    width: int
    height: int
    text_source: TextSource = "layer"
    """``layer`` (the PDF's text), ``ocr`` (Tesseract's reading) or ``none`` (no text)."""
    ocr_error: str = ""
    """Why OCR failed on this page, if it did; the page is kept without OCR text."""


def sniff_kind(path: Path) -> SourceKind:
    """Classify a file by its first bytes; raise UnreadableDocumentError if unsupported."""
    try:
        with path.open("rb") as handle:
            head = handle.read(1024)
    except OSError as error:
        raise UnreadableDocumentError(path, f"cannot read file ({error.strerror})") from error
    if not head:
        raise UnreadableDocumentError(path, "file is empty")
    # PDF readers accept a header anywhere in the first 1 KiB.
    if b"%PDF-" in head:
        return "pdf"
    for magic, kind in _MAGIC:
        if head.startswith(magic):
            return kind
    claimed = "a PDF" if path.suffix.lower() in PDF_SUFFIXES else "a PDF or page image"
    raise UnreadableDocumentError(path, f"content is not {claimed} (unrecognised file header)")


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while chunk := handle.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def inspect_source(path: Path) -> SourceInfo:
    """Hash a file, check it opens and count its pages. Raises UnreadableDocumentError."""
    kind = sniff_kind(path)
    try:
        sha256 = file_sha256(path)
        size = path.stat().st_size
    except OSError as error:
        raise UnreadableDocumentError(path, f"cannot read file ({error.strerror})") from error
    if kind == "image":
        image = _open_image(path)
        _check_size(path, 1, float(image.width), float(image.height), max_side=None)
        return SourceInfo(path, kind, sha256, size, 1, path.stem)
    with _open_pdf(path) as pdf:
        count = len(pdf)
        if count == 0:
            raise UnreadableDocumentError(path, "PDF has no pages")
        for index in range(count):
            width, height = pdf.get_page_size(index)
            _check_size(path, index + 1, width, height, max_side=MAX_PAGE_SIDE_PT)
        title = (pdf.get_metadata_dict().get("Title") or "").strip() or path.stem
    return SourceInfo(path, kind, sha256, size, count, title)


def render_pages(
    path: Path,
    kind: SourceKind,
    first: int,
    last: int,
    dpi: int,
    max_pixels: int,
    ocr: OcrOptions | None = None,
    images: bool = True,
) -> list[RenderedPage]:
    """Render pages ``first..last`` (1-based, inclusive) at ``dpi``, capped at ``max_pixels``.

    With ``ocr``, pages without a text layer get Tesseract's text (see ``colretrieve.ocr``).
    With ``images=False`` PDF pages are not rasterized (``image`` is None, the size is what
    the rendering would have been) unless OCR needs them: the text channels need no pixels.
    """
    if kind == "image":
        return [_image_page(path, max_pixels, ocr)]
    pages = []
    with _open_pdf(path) as pdf:
        for number in range(first, last + 1):
            pages.append(_render_pdf_page(pdf, path, number, dpi, max_pixels, ocr, images))
    return pages


def iter_pages(
    path: Path,
    dpi: int = 144,
    max_pixels: int = 4_000_000,
    start: int = 1,
    ocr: OcrOptions | None = None,
) -> Iterator[RenderedPage]:
    """Render a whole file page by page, in this process (the simple, sequential path)."""
    info = inspect_source(path)
    for number in range(start, info.page_count + 1):
        yield from render_pages(path, info.kind, number, number, dpi, max_pixels, ocr)


def scale_for(width_pt: float, height_pt: float, dpi: int, max_pixels: int) -> float:
    """Render scale (pixels per point) for a page: ``dpi`` unless that exceeds the pixel cap."""
    scale = dpi / 72.0
    pixels = width_pt * height_pt * scale * scale
    if pixels > max_pixels:
        scale *= (max_pixels / pixels) ** 0.5
        # The renderer rounds each side up; shrink until the rounded size fits too.
        while math.ceil(width_pt * scale) * math.ceil(height_pt * scale) > max_pixels:
            scale *= 0.995
    return scale


def _check_size(path: Path, page: int, width: float, height: float, max_side: float | None) -> None:
    if width <= 0 or height <= 0:
        raise UnreadableDocumentError(path, f"page {page} has no area ({width:g} x {height:g})")
    if max(width, height) / min(width, height) > MAX_ASPECT_RATIO:
        raise UnreadableDocumentError(
            path, f"page {page} has an absurd shape ({width:g} x {height:g})"
        )
    if max_side is not None and max(width, height) > max_side:
        raise UnreadableDocumentError(
            path, f"page {page} is absurdly large ({width:g} x {height:g} pt)"
        )


def _open_pdf(path: Path):  # -> pypdfium2.PdfDocument, closed by its context manager
    import pypdfium2 as pdfium

    try:
        return pdfium.PdfDocument(str(path))
    except pdfium.PdfiumError as error:
        message = str(error)
        if "password" in message.lower():
            raise UnreadableDocumentError(path, "PDF is encrypted (password required)") from error
        raise UnreadableDocumentError(path, f"PDF is damaged or not a PDF ({message})") from error


def _render_pdf_page(
    pdf,
    path: Path,
    number: int,
    dpi: int,
    max_pixels: int,
    ocr: OcrOptions | None,
    images: bool = True,
) -> RenderedPage:
    import pypdfium2 as pdfium

    page = pdf[number - 1]
    try:
        width_pt, height_pt = page.get_size()
        scale = scale_for(width_pt, height_pt, dpi, max_pixels)
        image = page.render(scale=scale).to_pil().convert("RGB") if images else None
        size = image.size if image else (math.ceil(width_pt * scale), math.ceil(height_pt * scale))
        text_page = page.get_textpage()
        try:
            layer = _clean_text(text_page.get_text_bounded())
        finally:
            text_page.close()

        def ocr_image() -> tuple[Image.Image, float]:
            # Tesseract reads small print best near 300 dpi; the model's render is coarser.
            ocr_scale = scale_for(width_pt, height_pt, ocr.dpi, OCR_MAX_PIXELS) if ocr else 0
            if image is not None and ocr_scale <= scale * 1.01:
                return image, scale * 72
            ocr_scale = max(ocr_scale, scale)
            try:
                return page.render(scale=ocr_scale, grayscale=True).to_pil(), ocr_scale * 72
            except pdfium.PdfiumError as error:
                raise OcrFailedError(f"cannot render the page for OCR ({error})") from error

        text, source, ocr_error = page_text(layer, ocr_image, ocr)
    except pdfium.PdfiumError as error:
        raise UnreadableDocumentError(
            path, f"page {number} cannot be rendered ({error})"
        ) from error
    finally:
        page.close()
    return RenderedPage(number, image, text, *size, source, ocr_error)


def _open_image(path: Path) -> Image.Image:
    try:
        image = Image.open(path)
        if image.width * image.height > MAX_IMAGE_FILE_PIXELS:
            raise UnreadableDocumentError(
                path, f"image is absurdly large ({image.width} x {image.height} pixels)"
            )
        image.load()
    except (OSError, Image.DecompressionBombError, SyntaxError) as error:
        raise UnreadableDocumentError(path, f"image cannot be decoded ({error})") from error
    return image


def _image_page(path: Path, max_pixels: int, ocr: OcrOptions | None) -> RenderedPage:
    original = _open_image(path)
    dpi = _image_dpi(original)
    original = original.convert("RGB")
    image = _fit(original, max_pixels)

    def ocr_image() -> tuple[Image.Image, float | None]:
        # The file's own resolution (a scan's), not the model's downscaled copy.
        fitted = _fit(original, OCR_MAX_PIXELS)
        return fitted, dpi * fitted.width / original.width if dpi else None

    text, source, ocr_error = page_text("", ocr_image, ocr)
    return RenderedPage(1, image, text, image.width, image.height, source, ocr_error)


def _fit(image: Image.Image, max_pixels: int) -> Image.Image:
    if image.width * image.height <= max_pixels:
        return image
    factor = (max_pixels / (image.width * image.height)) ** 0.5
    size = (max(1, int(image.width * factor)), max(1, int(image.height * factor)))
    return image.resize(size, Image.Resampling.LANCZOS)


def _image_dpi(image: Image.Image) -> float | None:
    """The resolution an image file declares, if plausible for a scan."""
    try:
        dpi = float(image.info.get("dpi", (0, 0))[0])
    except (TypeError, ValueError, IndexError):
        return None
    return dpi if 70 <= dpi <= 2400 else None


def _clean_text(text: str) -> str:
    # pdfium ends lines with \r\n, may emit NULs for unmapped glyphs and marks hyphenated
    # line breaks inside words.
    return clean_text(text.replace("\r\n", "\n").replace("\x00", "")).strip()
