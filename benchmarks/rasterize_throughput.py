"""Rasterize pages/s over a folder of PDFs: one process vs the ingest worker pool.

python benchmarks/rasterize_throughput.py [--folder DIR] [--dpi 144] [--workers 2]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from _common import CORPUS, machine, write_json

from colretrieve.rasterize import inspect_source, render_pages
from indexer.ordered import ordered_map
from indexer.workers import RenderPool, render


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--folder", type=Path, default=CORPUS / "pdfs")
    parser.add_argument("--dpi", type=int, default=144)
    parser.add_argument("--max-pixels", type=int, default=4_000_000)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()

    sources = [inspect_source(p) for p in sorted(args.folder.glob("*.pdf"))]
    pages = sum(s.page_count for s in sources)

    started = time.perf_counter()
    for source in sources:
        render_pages(source.path, "pdf", 1, source.page_count, args.dpi, args.max_pixels)
    single = time.perf_counter() - started

    tasks = [
        (s.path, (s.path, "pdf", first, min(first + 3, s.page_count), args.dpi, args.max_pixels))
        for s in sources
        for first in range(1, s.page_count + 1, 4)
    ]
    pool = RenderPool(args.workers)
    pool.submit(len, ()).result()  # start the workers before timing
    started = time.perf_counter()
    rendered = sum(len(r.pages) for _, r in ordered_map(pool, render, tasks, 2 * args.workers + 2))
    pooled = time.perf_counter() - started
    pool.shutdown()
    assert rendered == pages

    write_json(
        args.json,
        {
            "benchmark": "rasterize_throughput",
            "machine": machine(),
            "files": len(sources),
            "pages": pages,
            "dpi": args.dpi,
            "single_process_pages_per_s": round(pages / single, 1),
            "pool_workers": args.workers,
            "pool_pages_per_s": round(pages / pooled, 1),
            "pool_speedup": round(single / pooled, 2),
        },
    )


if __name__ == "__main__":
    main()
