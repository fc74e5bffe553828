"""OCR pages/s and word recall of scanned pages at several OCR resolutions (one process).

python benchmarks/ocr_pages.py [--pages 4] [--point-size 10] [--ocr-dpi 150 200 300]

Pages are 'scans' made here: the text layer of a real corpus PDF typeset as black text on a
white letter-size image (300 dpi, ``--point-size``), saved as an image-only PDF. Each OCR
resolution renders and OCRs every page through ``render_pages`` (the worker code path) at
the model's 144 dpi; recall is the share of the source's words found in the OCR text.
Needs Tesseract (``apt-get install tesseract-ocr``).
"""

from __future__ import annotations

import argparse
import re
import shutil
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from _common import CORPUS, machine, write_json
from PIL import Image, ImageDraw, ImageFont

from colretrieve.ocr import OcrOptions, installed_languages
from colretrieve.rasterize import iter_pages, render_pages

SOURCE = CORPUS / "pdfs" / "pdfplumber__earth-science-ch1.pdf"
SCAN_DPI = 300


def source_lines() -> list[str]:
    text = "\n".join(page.text for page in iter_pages(SOURCE, dpi=36))
    return [line.strip() for line in text.splitlines() if len(line.strip()) > 3]


def typeset(lines: list[str], pages: int, point_size: int) -> tuple[list[Image.Image], list[str]]:
    """Wrap ``lines`` onto ``pages`` letter pages; return the images and each page's text."""
    font = ImageFont.load_default(size=round(SCAN_DPI * point_size / 72))
    width, height, margin = int(8.5 * SCAN_DPI), 11 * SCAN_DPI, SCAN_DPI
    step = round(SCAN_DPI * point_size / 72 * 1.35)
    images, texts = [], []
    source = iter(lines)
    for _ in range(pages):
        image = Image.new("L", (width, height), 255)
        draw = ImageDraw.Draw(image)
        y, written = margin, []
        while y + step < height - margin:
            line = next(source, None)
            if line is None:
                break
            while draw.textlength(line, font=font) > width - 2 * margin:
                line = line.rsplit(" ", 1)[0]
            draw.text((margin, y), line, fill=0, font=font)
            written.append(line)
            y += step
        images.append(image)
        texts.append("\n".join(written))
    return images, texts


def words(text: str) -> list[str]:
    return re.findall(r"[a-z0-9]{3,}", text.lower())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--pages", type=int, default=4)
    parser.add_argument("--point-size", type=int, default=10)
    parser.add_argument("--ocr-dpi", type=int, nargs="+", default=[150, 200, 300])
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    binary = shutil.which("tesseract")
    if binary is None:
        sys.exit("needs Tesseract: apt-get install tesseract-ocr")

    images, truths = typeset(source_lines(), args.pages, args.point_size)
    runs = []
    with tempfile.TemporaryDirectory() as folder:
        scan = Path(folder) / "scan.pdf"
        images[0].save(scan, "PDF", resolution=SCAN_DPI, save_all=True, append_images=images[1:])
        started = time.perf_counter()
        render_pages(scan, "pdf", 1, args.pages, 144, 4_000_000)
        render_only = time.perf_counter() - started
        for dpi in args.ocr_dpi:
            started = time.perf_counter()
            pages = render_pages(scan, "pdf", 1, args.pages, 144, 4_000_000, OcrOptions(dpi=dpi))
            seconds = time.perf_counter() - started
            pairs = zip(truths, pages, strict=True)
            found = sum(len(set(words(t)) & set(words(p.text))) for t, p in pairs)
            total = sum(len(set(words(t))) for t in truths)
            runs.append(
                {
                    "ocr_dpi": dpi,
                    "pages_per_s": round(args.pages / seconds, 3),
                    "seconds_per_page": round(seconds / args.pages, 3),
                    "word_recall": round(found / total, 4),
                    "sources": sorted({p.text_source for p in pages}),
                }
            )
    write_json(
        args.json,
        {
            "benchmark": "ocr_pages",
            "pages": args.pages,
            "point_size": args.point_size,
            "scan_dpi": SCAN_DPI,
            "render_only_pages_per_s": round(args.pages / render_only, 3),
            "runs": runs,
            "tesseract": binary,
            "languages": sorted(installed_languages(binary)),
            "machine": machine(),
        },
    )


if __name__ == "__main__":
    main()
