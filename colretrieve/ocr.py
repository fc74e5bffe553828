"""Text for scanned pages: run the Tesseract binary on a page image.

Optional by design: with ``mode="auto"`` (the default) pages are OCRed only when the
``tesseract`` binary is installed (Debian: ``apt-get install tesseract-ocr``), and ingest
carries on without text when it is not. ``mode="require"`` makes a missing binary or
language an error at the start of a run; ``mode="off"`` never runs it.

Tesseract runs as a subprocess fed through stdin and read from stdout: no temporary files,
no Python binding, a timeout per page. OCR failing on one page never fails its file: the
page keeps no text and the reason travels back on the rendered page, to be logged by the
process that stores it.
"""

from __future__ import annotations

import functools
import io
import logging
import os
import re
import shutil
import subprocess
from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Literal, Protocol

from PIL import Image

from colretrieve.errors import OcrFailedError, OcrUnavailableError

if TYPE_CHECKING:
    from colretrieve.settings import Settings

OcrMode = Literal["auto", "off", "require"]
TextSource = Literal["layer", "ocr", "none"]
"""Where a page's stored text came from: the PDF's text layer, OCR, or nowhere (no text)."""

MIN_LAYER_CHARS = 16
"""A text layer with fewer non-space characters than this (a stray page number on a scan)
does not count as one: the page is OCRed, and keeps the layer if OCR finds less."""
OCR_MAX_PIXELS = 24_000_000
"""Cap on the image handed to Tesseract: A3 at 300 dpi is 17.4 MP."""
LANGUAGE = re.compile(r"[A-Za-z0-9_]+")

log = logging.getLogger("colretrieve.ocr")


@dataclass(frozen=True)
class OcrOptions:
    """How ingest OCRs pages without a text layer. Plain values: it crosses to workers."""

    mode: OcrMode = "auto"
    languages: str = "eng"
    """Tesseract language codes joined by ``+`` (``eng+deu``); each needs its traineddata."""
    tesseract: str = "tesseract"
    """The binary: a name looked up on PATH, or a path."""
    dpi: int = 300
    """Resolution of the image OCRed (PDF pages are re-rendered if indexed at less)."""
    timeout: float = 60.0
    """Seconds Tesseract may spend on one page before it is killed."""

    @classmethod
    def from_settings(cls, settings: Settings) -> OcrOptions:
        return cls(
            mode=settings.ocr,
            languages=settings.ocr_languages,
            tesseract=settings.ocr_tesseract,
            dpi=settings.ocr_dpi,
            timeout=settings.ocr_timeout,
        )

    @property
    def enabled(self) -> bool:
        return self.mode != "off"

    def resolved(self) -> OcrOptions:
        """Check once, before a run, that OCR can work; return the options the run uses.

        ``tesseract`` becomes the binary's full path and ``languages`` the installed subset.
        When OCR cannot run, ``auto`` logs why and returns ``mode="off"``; ``require`` raises
        :class:`OcrUnavailableError`.
        """
        if not self.enabled:
            return self
        try:
            binary = find_tesseract(self.tesseract)
            if binary is None:
                raise OcrUnavailableError(self.tesseract, f"{self.tesseract!r} was not found")
            wanted = split_languages(self.languages)
            installed = installed_languages(binary)
            usable = [lang for lang in wanted if lang in installed]
            missing = [lang for lang in wanted if lang not in installed]
            if missing and (self.mode == "require" or not usable):
                raise OcrUnavailableError(
                    binary,
                    f"Tesseract at {binary} lacks language data for {'+'.join(missing)} "
                    f"(installed: {', '.join(sorted(installed)) or 'none'})",
                )
        except OcrUnavailableError as error:
            if self.mode == "require":
                raise
            log.info("OCR off for this run: %s", error.reason)
            return replace(self, mode="off")
        if missing:
            log.warning("OCR without %s: no Tesseract language data for it", "+".join(missing))
        return replace(self, tesseract=binary, languages="+".join(usable))


def split_languages(languages: str) -> list[str]:
    """``"eng+deu"`` or ``"eng, deu"`` -> ``["eng", "deu"]``; ValueError on anything else."""
    parts = [part.strip() for part in re.split(r"[+,\s]+", languages) if part.strip()]
    if not parts or not all(LANGUAGE.fullmatch(part) for part in parts):
        raise ValueError(
            f"OCR languages are Tesseract codes like eng or eng+deu; got {languages!r}"
        )
    return parts


@functools.lru_cache(maxsize=16)
def find_tesseract(name: str) -> str | None:
    """Full path of an executable ``name`` (a PATH name or a path), or None."""
    return shutil.which(os.path.expanduser(name))


@functools.lru_cache(maxsize=16)
def installed_languages(binary: str) -> frozenset[str]:
    """Languages Tesseract at ``binary`` has data for (``tesseract --list-langs``)."""
    try:
        result = subprocess.run(
            [binary, "--list-langs"], capture_output=True, timeout=30, check=False
        )
    except (OSError, subprocess.TimeoutExpired) as error:
        raise OcrUnavailableError(binary, f"{binary} --list-langs failed ({error})") from error
    lines = result.stdout.decode("utf-8", "replace").splitlines()
    # The first line is a header: List of available languages in "...":
    return frozenset(line.strip() for line in lines[1:] if LANGUAGE.fullmatch(line.strip()))


def ocr_image(image: Image.Image, options: OcrOptions, dpi: float | None = None) -> str:
    """Text Tesseract reads in ``image``; raises OcrFailedError.

    ``dpi`` tells Tesseract the scan resolution (it estimates one when None).
    """
    binary = find_tesseract(options.tesseract)
    if binary is None:
        raise OcrFailedError(f"Tesseract binary {options.tesseract!r} not found")
    buffer = io.BytesIO()
    image.convert("L").save(buffer, format="PPM")  # 8-bit PGM: no encoding cost
    command = [binary, "stdin", "stdout", "-l", options.languages]
    if dpi is not None and dpi >= 70:
        command += ["--dpi", str(round(dpi))]
    # Ingest already runs one worker process per core: one thread per Tesseract.
    env = {**os.environ, "OMP_THREAD_LIMIT": "1"}
    try:
        result = subprocess.run(
            command,
            input=buffer.getvalue(),
            capture_output=True,
            timeout=options.timeout,
            env=env,
            check=False,
        )
    except subprocess.TimeoutExpired as error:  # run() has killed and reaped it
        raise OcrFailedError(f"Tesseract took over {options.timeout:g} s") from error
    except OSError as error:
        raise OcrFailedError(f"cannot run {binary} ({error.strerror or error})") from error
    if result.returncode != 0:
        stderr = result.stderr.decode("utf-8", "replace").strip().splitlines()
        detail = stderr[-1] if stderr else "no message"
        raise OcrFailedError(f"Tesseract exited with status {result.returncode}: {detail}")
    return clean_ocr_text(result.stdout.decode("utf-8", "replace"))


def clean_ocr_text(text: str) -> str:
    """Drop Tesseract's trailing form feed and runs of blank lines."""
    text = text.replace("\x0c", "\n").replace("\r\n", "\n")
    return re.sub(r"\n\s*\n+", "\n\n", text).strip()


def content_chars(text: str) -> int:
    return sum(1 for char in text if not char.isspace())


def page_text(
    layer: str,
    image: Callable[[], tuple[Image.Image, float | None]],
    options: OcrOptions | None,
) -> tuple[str, TextSource, str]:
    """A page's (text, text_source, ocr_error) from its text layer, OCRing when it has none.

    ``image`` is called only when OCR runs; it returns the image to read and its DPI.
    OCR runs when ``options`` enable it, Tesseract is found, and the layer has fewer than
    ``MIN_LAYER_CHARS`` non-space characters. A page OCRed to nothing (a blank scan) is
    ``"ocr"`` with empty text; ``"none"`` means no text layer and no OCR result.
    """
    layer_chars = content_chars(layer)
    fallback: TextSource = "layer" if layer_chars else "none"
    if (
        options is None
        or not options.enabled
        or layer_chars >= MIN_LAYER_CHARS
        or find_tesseract(options.tesseract) is None  # absent: carry on without it
    ):
        return layer, fallback, ""
    try:
        picture, dpi = image()
        text = ocr_image(picture, options, dpi)
    except OcrFailedError as error:
        return layer, fallback, error.message
    if layer_chars and content_chars(text) <= layer_chars:
        return layer, "layer", ""
    return text, "ocr", ""


class _OcrReport(Protocol):
    page: int
    ocr_error: str


def log_ocr_failures(path: object, pages: Iterable[_OcrReport]) -> None:
    """Log each page whose OCR failed (called where pages are stored, not in workers)."""
    for page in pages:
        if page.ocr_error:
            log.warning("%s page %d stored without text: %s", path, page.page, page.ocr_error)
