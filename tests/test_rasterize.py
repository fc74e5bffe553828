from pathlib import Path

import pytest
from PIL import Image

from colretrieve.errors import UnreadableDocumentError
from colretrieve.rasterize import inspect_source, iter_pages, render_pages, scale_for
from indexer.discover import discover_inputs
from tests.bad_inputs import CORPUS, SMALL_PDF, make_bad_inputs


def test_pdf_pages_render_with_text_layer():
    source = inspect_source(SMALL_PDF)
    assert source.kind == "pdf"
    assert source.page_count == 1
    assert len(source.sha256) == 64
    (page,) = render_pages(SMALL_PDF, "pdf", 1, 1, dpi=144, max_pixels=4_000_000)
    # Letter size at 144 dpi: 612 x 792 pt * 2.
    assert (page.width, page.height) == (1224, 1584)
    assert page.image.mode == "RGB"
    assert "7004" in page.text


def test_pixel_cap_lowers_resolution_of_large_pages():
    (page,) = render_pages(SMALL_PDF, "pdf", 1, 1, dpi=300, max_pixels=500_000)
    assert page.width * page.height <= 500_000
    assert page.width * page.height > 450_000
    assert scale_for(612, 792, 72, 10_000_000) == 1.0


def test_scanned_page_has_no_text_but_renders():
    path = CORPUS / "pdfs" / "docling__scanned-ocr-test.pdf"
    pages = list(iter_pages(path, dpi=72))
    assert pages and all(p.image.width > 0 for p in pages)


def test_page_images_are_taken_by_content(tmp_path: Path):
    image_path = tmp_path / "scan.jpeg"
    Image.new("RGB", (3000, 2000), "white").save(image_path)
    source = inspect_source(image_path)
    assert (source.kind, source.page_count) == ("image", 1)
    (page,) = render_pages(image_path, "image", 1, 1, dpi=144, max_pixels=1_000_000)
    assert page.width * page.height <= 1_000_000
    assert page.width / page.height == pytest.approx(1.5, rel=0.01)


@pytest.fixture(scope="module")
def bad_folder(tmp_path_factory) -> tuple[Path, dict[str, str]]:
    folder = tmp_path_factory.mktemp("bad")
    return folder, make_bad_inputs(folder)


def test_every_bad_input_is_refused_with_its_reason(bad_folder):
    folder, expected = bad_folder
    for name, reason in expected.items():
        with pytest.raises(UnreadableDocumentError) as raised:
            inspect_source(folder / name)
        assert reason in raised.value.reason, (name, raised.value.reason)
        assert raised.value.path == folder / name


def test_discovery_walks_folders_and_reports_missing_paths(tmp_path: Path, bad_folder):
    folder, expected = bad_folder
    (folder / "readme.txt").write_text("ignored in a folder walk")
    files, missing = discover_inputs([folder, tmp_path / "nope", SMALL_PDF, SMALL_PDF])
    names = [f.name for f in files]
    assert set(expected) <= set(names)
    assert "readme.txt" not in names
    assert names.count(SMALL_PDF.name) == 1
    assert [m.path for m in missing] == [tmp_path / "nope"]


def test_explicit_files_are_taken_whatever_their_extension(tmp_path: Path):
    odd = tmp_path / "report.bin"
    odd.write_bytes(SMALL_PDF.read_bytes())
    files, _ = discover_inputs([odd])
    assert files == [odd.absolute()]
    assert inspect_source(odd).kind == "pdf"
