"""OCR of pages without a text layer: Tesseract when installed, and ingest carrying on without.

Tests that need a real Tesseract skip without it; the fallbacks are exercised with a
nonexistent binary path and with small shell scripts standing in for a broken Tesseract.
"""

from __future__ import annotations

import shutil
import sqlite3
import stat
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageDraw, ImageFont

from colretrieve.channels.writers import VisualWriter
from colretrieve.contracts import DocumentRecord, PageInput
from colretrieve.errors import OcrUnavailableError
from colretrieve.ingest import ingest_file
from colretrieve.ocr import OcrOptions, clean_ocr_text, page_text
from colretrieve.rasterize import render_pages
from colretrieve.settings import Settings
from colretrieve.store import EmbeddedStore
from indexer.pipeline import IngestOptions, ingest
from tests.bad_inputs import SMALL_PDF
from tests.store_corpus import MODEL, unit_rows

needs_tesseract = pytest.mark.skipif(
    shutil.which("tesseract") is None,
    reason="Tesseract is not installed (apt-get install tesseract-ocr)",
)
LINES = ("Quarterly revenue grew", "invoice number 4711", "shipping container harbour")
WORDS = ("Quarterly", "revenue", "invoice", "4711", "shipping", "container", "harbour")
MISSING = "/nonexistent/bin/tesseract"


def scan_image(lines: tuple[str, ...] = LINES, dpi: int = 200) -> Image.Image:
    """A letter-size 'scan': black text (about 14 pt) on white, no text layer anywhere."""
    image = Image.new("L", (int(8.5 * dpi), 11 * dpi), 255)
    draw = ImageDraw.Draw(image)
    font = ImageFont.load_default(size=round(dpi * 14 / 72))
    for row, line in enumerate(lines):
        draw.text((dpi, dpi + row * dpi // 2), line, fill=0, font=font)
    return image


def scanned_pdf(folder: Path, name: str = "scan.pdf", pages: int = 1) -> Path:
    """An image-only PDF, as a scanner writes it."""
    path = folder / name
    images = [scan_image() for _ in range(pages)]
    images[0].save(path, "PDF", resolution=200, save_all=True, append_images=images[1:])
    return path


def fake_tesseract(folder: Path, body: str) -> str:
    """A shell script in Tesseract's place; it answers --list-langs like the real one."""
    path = folder / "tesseract"
    path.write_text(
        "#!/bin/sh\n"
        'if [ "$1" = "--list-langs" ]; then echo "List of available languages:"; echo eng;'
        " exit 0; fi\n" + body + "\n"
    )
    path.chmod(path.stat().st_mode | stat.S_IXUSR)
    return str(path)


@needs_tesseract
def test_scanned_pdf_page_gets_ocr_text(tmp_path: Path) -> None:
    path = scanned_pdf(tmp_path)
    (page,) = render_pages(path, "pdf", 1, 1, dpi=72, max_pixels=4_000_000, ocr=OcrOptions())
    assert page.text_source == "ocr" and page.ocr_error == ""
    for word in WORDS:
        assert word in page.text
    assert page.width == 612  # the model's image stays at its own dpi; OCR read a 300 dpi one


@needs_tesseract
def test_page_image_file_gets_ocr_text(tmp_path: Path) -> None:
    path = tmp_path / "scan.png"
    scan_image().save(path, dpi=(200, 200))
    (page,) = render_pages(path, "image", 1, 1, dpi=144, max_pixels=1_000_000, ocr=OcrOptions())
    assert page.text_source == "ocr"
    assert all(word in page.text for word in WORDS)


def test_text_layer_pages_keep_the_layer(tmp_path: Path) -> None:
    # A Tesseract that fails if run at all: a page with a text layer must not run it.
    broken = fake_tesseract(tmp_path, "exit 7")
    (page,) = render_pages(SMALL_PDF, "pdf", 1, 1, 72, 4_000_000, OcrOptions(tesseract=broken))
    assert (page.text_source, page.ocr_error) == ("layer", "")
    assert "7004" in page.text


def test_ocr_off_leaves_scans_without_text(tmp_path: Path) -> None:
    path = scanned_pdf(tmp_path)
    for ocr in (None, OcrOptions(mode="off")):
        (page,) = render_pages(path, "pdf", 1, 1, 72, 4_000_000, ocr)
        assert (page.text, page.text_source, page.ocr_error) == ("", "none", "")


def test_missing_tesseract_carries_on_without_text(tmp_path: Path) -> None:
    path = scanned_pdf(tmp_path)
    ocr = OcrOptions(tesseract=MISSING)
    (page,) = render_pages(path, "pdf", 1, 1, 72, 4_000_000, ocr)
    assert (page.text, page.text_source, page.ocr_error) == ("", "none", "")
    assert ocr.resolved().mode == "off"
    with pytest.raises(OcrUnavailableError, match="apt-get install tesseract-ocr") as raised:
        OcrOptions(mode="require", tesseract=MISSING).resolved()
    assert raised.value.code == "ocr_unavailable"


def test_missing_language_is_dropped_or_refused(tmp_path: Path) -> None:
    script = fake_tesseract(tmp_path, "echo hello")
    resolved = OcrOptions(languages="eng+xyz", tesseract=script).resolved()
    assert (resolved.mode, resolved.languages, resolved.tesseract) == ("auto", "eng", script)
    assert OcrOptions(languages="xyz", tesseract=script).resolved().mode == "off"
    with pytest.raises(OcrUnavailableError, match="xyz"):
        OcrOptions(mode="require", languages="eng+xyz", tesseract=script).resolved()


def test_failing_ocr_keeps_the_page_and_says_why(tmp_path: Path) -> None:
    path = scanned_pdf(tmp_path, pages=2)
    crashing = fake_tesseract(tmp_path, "echo 'Error: leptonica cannot read' >&2; exit 1")
    pages = render_pages(path, "pdf", 1, 2, 72, 4_000_000, OcrOptions(tesseract=crashing))
    assert [p.text_source for p in pages] == ["none", "none"]
    assert "status 1: Error: leptonica cannot read" in pages[0].ocr_error


def test_slow_ocr_is_stopped(tmp_path: Path) -> None:
    slow = fake_tesseract(tmp_path, "exec sleep 30")
    options = OcrOptions(tesseract=slow, timeout=0.5)
    text, source, error = page_text("", lambda: (scan_image(dpi=72), 72.0), options)
    assert (text, source) == ("", "none") and "over 0.5 s" in error


def test_a_stray_layer_character_still_gets_ocr(tmp_path: Path) -> None:
    script = fake_tesseract(tmp_path, "cat >/dev/null; printf 'Scanned page text here\\n\\f'")
    image = (scan_image(dpi=72), 72.0)
    options = OcrOptions(tesseract=script)
    assert page_text("12", lambda: image, options) == ("Scanned page text here", "ocr", "")
    # OCR finding less than a short layer keeps the layer.
    (tmp_path / "short").mkdir()
    short = fake_tesseract(tmp_path / "short", "cat >/dev/null; echo 'Page 1'")
    layer = "Page 12 of 40"
    assert page_text(layer, lambda: image, OcrOptions(tesseract=short)) == (layer, "layer", "")
    assert clean_ocr_text("a\n\n\n\nb\n\x0c") == "a\n\nb"


def test_settings_reach_the_ingest_options() -> None:
    settings = Settings(ocr="require", ocr_languages="eng, deu", ocr_dpi=200)
    options = IngestOptions.from_settings(settings)
    assert options.ocr == OcrOptions("require", "eng+deu", "tesseract", 200, 60.0)
    with pytest.raises(ValueError, match="Tesseract codes"):
        Settings(ocr_languages="-c foo")


def test_ingest_fails_fast_when_ocr_is_required_but_missing(tmp_path: Path, tiny_embedder):
    options = IngestOptions(workers=1, ocr=OcrOptions(mode="require", tesseract=MISSING))
    with EmbeddedStore.open(tmp_path / "index", create=True) as store:
        with pytest.raises(OcrUnavailableError):
            ingest([scanned_pdf(tmp_path)], {"visual": VisualWriter(store, tiny_embedder)}, options)
        assert store.documents() == []


@needs_tesseract
def test_ingest_records_where_the_text_came_from(tmp_path: Path, tiny_embedder) -> None:
    docs = tmp_path / "docs"
    docs.mkdir()
    scan = scanned_pdf(docs)
    shutil.copy(SMALL_PDF, docs / "form.pdf")
    with EmbeddedStore.open(tmp_path / "index", create=True) as store:
        report = ingest(
            [docs], {"visual": VisualWriter(store, tiny_embedder)}, IngestOptions(workers=1, dpi=72)
        )
        assert report.exit_code == 0
        by_name = {Path(d.path).name: d.doc_id for d in store.documents()}
        scanned = store.get_page(by_name[scan.name], 1)
        assert scanned.text_source == "ocr" and "invoice" in scanned.text
        assert store.get_page(by_name["form.pdf"], 1).text_source == "layer"


def test_ocr_failure_is_logged_and_the_file_indexed(tmp_path: Path, tiny_embedder, caplog):
    crashing = fake_tesseract(tmp_path, "echo 'Error: out of memory' >&2; exit 1")
    scan = scanned_pdf(tmp_path)
    with EmbeddedStore.open(tmp_path / "index", create=True) as store:
        plan = ingest_file(
            {"visual": VisualWriter(store, tiny_embedder)},
            scan,
            dpi=72,
            ocr=OcrOptions(tesseract=crashing),
        )
        page = store.get_page(plan.record.doc_id, 1)
        assert (page.text, page.text_source) == ("", "none")
        assert store.get_document(plan.record.doc_id).complete
    assert "scan.pdf page 1 stored without text: OCR failed: Tesseract exited" in caplog.text


def _one_page_index(root: Path, source: str) -> str:
    record = DocumentRecord("d" * 64, "/docs/a.pdf", "a", 1, 1)
    with EmbeddedStore.open(root, create=True) as store:
        store.bind_model(MODEL)
        store.begin_document(record)
        vectors = unit_rows(np.random.default_rng(0), 8)
        store.add_pages(record.doc_id, [PageInput(1, vectors, "read by OCR", 10, 20, source)])
        store.finish_document(record.doc_id)
    return record.doc_id


def test_embedded_store_keeps_text_source(tmp_path: Path) -> None:
    doc_id = _one_page_index(tmp_path / "index", "ocr")
    for read_only in (False, True):
        with EmbeddedStore.open(tmp_path / "index", read_only=read_only) as store:
            page = store.get_page(doc_id, 1)
            assert (page.text, page.text_source) == ("read by OCR", "ocr")


def test_index_from_before_the_column_opens_and_migrates(tmp_path: Path) -> None:
    root = tmp_path / "index"
    doc_id = _one_page_index(root, "ocr")
    with sqlite3.connect(root / "index.sqlite") as connection:  # as older versions wrote it
        connection.execute("ALTER TABLE pages DROP COLUMN text_source")
    with EmbeddedStore.open(root, read_only=True) as store:  # read-only: no migration
        assert store.get_page(doc_id, 1).text_source == "layer"
    with EmbeddedStore.open(root) as store:  # a writable open adds the column
        assert store.get_page(doc_id, 1).text_source == "layer"
    with sqlite3.connect(root / "index.sqlite") as connection:
        columns = [row[1] for row in connection.execute("PRAGMA table_info(pages)")]
    assert columns[-1] == "text_source"
