"""Index open time and search latency on the shared corpus, with the tiny model.

Builds (or reuses) a tiny-model index of ``../shared/corpus/pdfs`` and times, in one run:
opening the index, encoding each dev query, and exact MaxSim scoring over every page. The
tiny model's encode time is not ColQwen2's (see ingest_throughput.py for that); the scoring
cost depends only on the page and token counts, which are real.

    python benchmarks/corpus_search.py [--index DIR] [--repeat 5] [--json OUT]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from _common import CORPUS, machine, peak_rss_mb, write_json

from colretrieve.channels.writers import VisualWriter
from colretrieve.evaluation import load_queries
from colretrieve.index import Index
from colretrieve.models import ColpaliEmbedder, make_tiny_models
from colretrieve.store import EmbeddedStore
from indexer.pipeline import IngestOptions, ingest


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(fraction * (len(ordered) - 1)))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--index", type=Path, help="Existing tiny-model index to reuse.")
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="colretrieve-corpus-"))
    embedder = ColpaliEmbedder.load(str(make_tiny_models(work / "tiny").colqwen2), device="cpu")
    ingest_s = None
    index_dir = args.index
    if index_dir is None:
        index_dir = work / "index"
        with EmbeddedStore.open(index_dir, create=True) as store:
            report = ingest(
                [CORPUS / "pdfs"], {"visual": VisualWriter(store, embedder)}, IngestOptions()
            )
        ingest_s = report.seconds
        pages_per_s = report.pages_embedded / report.seconds

    opens = []
    for _ in range(args.repeat):
        started = time.perf_counter()
        Index.open(index_dir, read_only=True).close()
        opens.append(time.perf_counter() - started)

    queries = [q.query for q in load_queries(CORPUS / "dev-queries.jsonl")]
    encode_ms, score_ms, total_ms = [], [], []
    with Index.open(index_dir, read_only=True, embedder=embedder) as index:
        stats = index.stats()
        index.search_timed(queries[0], 10)  # first read verifies segment checksums
        for _ in range(args.repeat):
            for query in queries:
                started = time.perf_counter()
                result = index.search_timed(query, 10)
                total_ms.append((time.perf_counter() - started) * 1000)
                encode_ms.append(result.timings_ms["encode"])
                score_ms.append(result.timings_ms["score"])

    payload = {
        "benchmark": "corpus_search",
        "machine": machine(),
        "pages": stats.pages,
        "documents": stats.documents,
        "vectors": stats.vectors,
        "bytes_on_disk": stats.bytes_on_disk,
        "open_p50_s": round(statistics.median(opens), 4),
        "queries_timed": len(total_ms),
        "search_p50_ms": round(statistics.median(total_ms), 1),
        "search_p95_ms": round(percentile(total_ms, 0.95), 1),
        "score_p50_ms": round(statistics.median(score_ms), 1),
        "encode_p50_ms_tiny_model": round(statistics.median(encode_ms), 1),
        "peak_rss_mb": round(peak_rss_mb()),
    }
    if ingest_s is not None:
        payload["tiny_ingest_s"] = round(ingest_s, 1)
        payload["tiny_ingest_pages_per_s"] = round(pages_per_s, 2)
    write_json(args.json, payload)


if __name__ == "__main__":
    main()
