"""bm25 stores on the reference corpus: text extraction, add_texts pages/s, search latency.

Page texts come from the PDFs' text layers (pypdfium2); each PDF is one document, stored in
batches of 8 pages. Queries are page-derived: 8 distinct terms sampled from a random page
(a question-sized bag of words), plus a few fixed natural-language questions.

    python benchmarks/bm25_corpus.py --json out.json
"""

from __future__ import annotations

import argparse
import hashlib
import platform
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from _common import CORPUS, peak_rss_mb, write_json

from colretrieve.contracts import DocumentRecord, PageText
from colretrieve.store.lexical import EmbeddedLexicalStore
from colretrieve.store.qdrant_lexical import QdrantLexicalStore
from colretrieve.text.analyzer import terms

QUESTIONS = [
    "What is the total amount due on the invoice?",
    "energy tariff standing charge per day",
    "Which table lists the results for 2019?",
    "How is the annual report audited?",
]


def extract(folder: Path) -> list[tuple[Path, list[str]]]:
    import pypdfium2 as pdfium

    docs = []
    for pdf in sorted(folder.glob("*.pdf")):
        document = pdfium.PdfDocument(str(pdf))
        docs.append((pdf, [page.get_textpage().get_text_range() for page in document]))
        document.close()
    return docs


def fill(store, docs: list[tuple[Path, list[str]]], batch: int) -> float:
    started = time.perf_counter()
    for path, texts in docs:
        record = DocumentRecord(
            doc_id=hashlib.sha256(path.read_bytes()).hexdigest(),
            path=str(path),
            title=path.stem,
            size_bytes=path.stat().st_size,
            total_pages=len(texts),
        )
        store.begin_document(record)
        for first in range(0, len(texts), batch):
            chunk = [PageText(first + i + 1, t) for i, t in enumerate(texts[first : first + batch])]
            store.add_texts(record.doc_id, chunk)
        store.finish_document(record.doc_id)
    return time.perf_counter() - started


def timed_searches(store, queries: list[str], k: int) -> tuple[list[float], list[list]]:
    times, results = [], []
    for query in queries:
        started = time.perf_counter()
        results.append(store.search_text(query, k))
        times.append((time.perf_counter() - started) * 1000)
    return times, results


def summary(times: list[float]) -> dict[str, float]:
    ordered = sorted(times)
    return {
        "median_ms": round(statistics.median(ordered), 3),
        "p95_ms": round(ordered[int(0.95 * (len(ordered) - 1))], 3),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--pdfs", type=Path, default=CORPUS / "pdfs")
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument("--k", type=int, default=10)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()

    started = time.perf_counter()
    docs = extract(args.pdfs)
    extract_s = time.perf_counter() - started
    pages = [text for _, texts in docs for text in texts]
    page_terms = [terms(text) for text in pages]
    rng = random.Random(0)
    queries = list(QUESTIONS)
    while len(queries) < args.queries:
        bag = list(dict.fromkeys(rng.choice(page_terms)))
        if len(bag) >= 8:
            queries.append(" ".join(rng.sample(bag, 8)))

    results: dict[str, dict] = {}
    tops = {}
    with tempfile.TemporaryDirectory() as folder:
        for name, opener in (
            ("embedded", lambda: EmbeddedLexicalStore.open(Path(folder) / "e", create=True)),
            (
                "qdrant-local",
                lambda: QdrantLexicalStore.open(path=Path(folder) / "q", create=True),
            ),
        ):
            with opener() as store:
                fill_s = fill(store, docs, args.batch)
                timed_searches(store, queries[:5], args.k)  # warm caches
                times, found = timed_searches(store, queries, args.k)
                tops[name] = [[(h.doc_id, h.page) for h in hits] for hits in found]
                results[name] = {
                    "add_texts_pages_per_s": round(len(pages) / fill_s, 1),
                    "fill_s": round(fill_s, 2),
                    "search": summary(times),
                    "bytes_on_disk": store.stats().bytes_on_disk,
                }
    agree1 = sum(
        a[:1] == b[:1] for a, b in zip(tops["embedded"], tops["qdrant-local"], strict=True)
    )
    overlap10 = statistics.mean(
        len(set(a) & set(b)) / max(1, len(a))
        for a, b in zip(tops["embedded"], tops["qdrant-local"], strict=True)
    )
    write_json(
        args.json,
        {
            "benchmark": "bm25_corpus",
            "machine": {
                "cpu": platform.processor() or platform.machine(),
                "python": platform.python_version(),
            },
            "documents": len(docs),
            "pages": len(pages),
            "mean_terms_per_page": round(statistics.mean(len(t) for t in page_terms), 1),
            "text_extraction_s": round(extract_s, 2),
            "queries": len(queries),
            "k": args.k,
            "backends": results,
            "top1_agreement": round(agree1 / len(queries), 3),
            "top10_overlap": round(overlap10, 3),
            "peak_rss_mb": round(peak_rss_mb(), 1),
        },
    )


if __name__ == "__main__":
    main()
