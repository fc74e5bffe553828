"""Qdrant backend in qdrant-client's local mode: upsert pages/s, query latency, reopen time.

Seeded random unit vectors with ColQwen2's page shape (768 x 128 by default); search speed
does not depend on the values. Local mode is pure Python: these figures say what tests and
tiny indexes cost, not what a Qdrant server does (see docs/qdrant.md).

    python benchmarks/qdrant_local.py --pages 100 --json out.json
"""

from __future__ import annotations

import argparse
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from _common import peak_rss_mb, write_json

from colretrieve.contracts import DocumentRecord, ModelInfo, PageInput
from colretrieve.store import EmbeddedStore
from colretrieve.store.qdrant import QdrantStore


def unit_rows(rng: np.random.Generator, n: int, dim: int) -> np.ndarray:
    rows = rng.normal(size=(n, dim)).astype(np.float32)
    return rows / np.linalg.norm(rows, axis=1, keepdims=True)


def fill(store, pages: list[np.ndarray], model: ModelInfo, per_doc: int, batch: int) -> float:
    """Ingest ``pages`` as documents of ``per_doc`` pages; return seconds."""
    started = time.perf_counter()
    store.bind_model(model)
    for d, first in enumerate(range(0, len(pages), per_doc)):
        chunk = pages[first : first + per_doc]
        record = DocumentRecord(f"{d:064x}", f"bench/{d:05d}.pdf", str(d), 1, len(chunk))
        store.begin_document(record)
        for b in range(0, len(chunk), batch):
            inputs = [PageInput(b + i + 1, v) for i, v in enumerate(chunk[b : b + batch])]
            store.add_pages(record.doc_id, inputs)
        store.finish_document(record.doc_id)
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pages", type=int, default=100)
    parser.add_argument("--vectors", type=int, default=768, help="vectors per page")
    parser.add_argument("--dim", type=int, default=128)
    parser.add_argument("--queries", type=int, default=5)
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()

    rng = np.random.default_rng(0)
    pages = [unit_rows(rng, args.vectors, args.dim) for _ in range(args.pages)]
    queries = [unit_rows(rng, 20, args.dim) for _ in range(args.queries)]
    model = ModelInfo("bench", "0" * 40, "ColQwen2", args.dim)
    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        stores = {
            "qdrant-local": lambda: QdrantStore.open(path=Path(tmp) / "q", create=True),
            "embedded": lambda: EmbeddedStore.open(Path(tmp) / "e", create=True),
        }
        for name, make in stores.items():
            with make() as store:
                seconds = fill(store, pages, model, per_doc=10, batch=4)
                store.search(queries[0], 10)  # warm-up
                latencies = []
                for query in queries:
                    started = time.perf_counter()
                    store.search(query, 10)
                    latencies.append(time.perf_counter() - started)
            started = time.perf_counter()
            (
                QdrantStore.open(path=Path(tmp) / "q")
                if name == "qdrant-local"
                else EmbeddedStore.open(Path(tmp) / "e")
            ).close()
            results[name] = {
                "upsert_pages_per_s": round(args.pages / seconds, 2),
                "query_ms_median": round(1000 * statistics.median(latencies), 1),
                "query_ms_max": round(1000 * max(latencies), 1),
                "reopen_s": round(time.perf_counter() - started, 2),
            }
    write_json(
        args.json,
        {
            "benchmark": "qdrant_local",
            "pages": args.pages,
            "vectors_per_page": args.vectors,
            "dim": args.dim,
            "k": 10,
            "query_tokens": 20,
            "results": results,
            "peak_rss_mb": round(peak_rss_mb()),
            "machine": {
                "cpu": platform.processor() or platform.machine(),
                "python": platform.python_version(),
            },
            "note": "qdrant-client local mode (pure Python), not a Qdrant server",
        },
    )


if __name__ == "__main__":
    main()
