"""Fast search at scale: our p50/p95 and recall@10 against exhaustive MaxSim, in one run.

    python benchmarks/search_scale.py --pages 25000 --queries 40 --json out.json

Generates a synthetic corpus straight into an embedded index (cached under
``.bench-cache/``): pages of 650-850 unit vectors, about half near-duplicates of a few
shared background patches, the rest words from two of many topics (pages sharing a topic
are hard negatives) plus page-specific detail. A query is ~20 tokens: noisy copies of
detail and words of a known target page plus a few generic tokens. The exhaustive
reference is exact MaxSim over every page (``mode="exact"``).
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

from benchmarks._common import machine, peak_rss_mb, write_json
from colretrieve.contracts import DocumentRecord, ModelInfo, PageInput
from colretrieve.store import EmbeddedStore, SearchOptions

DIM = 128
CACHE = Path(__file__).resolve().parents[1] / ".bench-cache"
MODEL = ModelInfo("synthetic", "s" * 40, "Synthetic", DIM)
BATCH = 256  # pages per add_pages call (one document of 256 pages)


def _unit(rows: np.ndarray) -> np.ndarray:
    return rows / np.linalg.norm(rows, axis=1, keepdims=True)


class Synthetic:
    def __init__(self, pages: int, seed: int = 0) -> None:
        rng = np.random.default_rng(seed)
        self.seed = seed
        self.n_topics = max(50, pages // 40)
        self.background = _unit(rng.standard_normal((12, DIM), dtype=np.float32))
        centers = rng.standard_normal((self.n_topics, 1, DIM), dtype=np.float32)
        words = rng.standard_normal((self.n_topics, 48, DIM), dtype=np.float32)
        self.words = _unit((0.8 * centers + 0.6 * words).reshape(-1, DIM)).reshape(
            self.n_topics, 48, DIM
        )

    def batch(self, index: int) -> list[np.ndarray]:
        """The pages of batch ``index`` (BATCH pages), deterministic."""
        rng = np.random.default_rng((self.seed, index))
        pages = []
        for _ in range(BATCH):
            n = int(rng.integers(650, 851))
            n_bg = int(n * rng.uniform(0.45, 0.65))
            n_detail = 40
            n_words = n - n_bg - n_detail
            bg = self.background[rng.integers(0, len(self.background), n_bg)]
            topics = rng.integers(0, self.n_topics, 2)
            words = self.words[topics[rng.integers(0, 2, n_words)], rng.integers(0, 48, n_words)]
            detail = self.words[topics[0], rng.integers(0, 48, n_detail)]
            noise = rng.standard_normal((n, DIM), dtype=np.float32)
            rows = np.concatenate([bg, words, detail])
            # Noise norms: background 0.1, words 0.5 (cos ~0.9 to the word), detail 1.5.
            scale = np.concatenate(
                [np.full(n_bg, 0.1), np.full(n_words, 0.5), np.full(n_detail, 1.5)]
            ).astype(np.float32)
            page = _unit(rows + scale[:, None] * noise / np.sqrt(DIM))
            pages.append(rng.permutation(page).astype(np.float32))
        return pages

    def query(self, page: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """~20 tokens: noisy copies of the page's rows (detail-rich) plus generic ones."""
        n = int(rng.integers(16, 25))
        # Rows far from every background patch are content; prefer them.
        content = np.flatnonzero((page @ self.background.T).max(axis=1) < 0.9)
        picked = page[rng.choice(content, size=n - 3, replace=False)]
        generic = self.background[rng.integers(0, len(self.background), 3)]
        rows = np.concatenate([picked, generic])
        noise = rng.standard_normal(rows.shape, dtype=np.float32) / np.sqrt(DIM)
        return _unit(rows + 0.7 * noise).astype(np.float32)


def build(path: Path, pages: int, synthetic: Synthetic) -> dict:
    """Create the index (if not cached); return its build figures."""
    done = path / "bench.json"
    if done.exists():
        return json.loads(done.read_text())
    if path.exists():
        import shutil

        shutil.rmtree(path)
    for stale in path.parent.glob(f"{path.name}-truth-*.npy"):
        stale.unlink()
    store = EmbeddedStore.open(path, create=True, search=SearchOptions(mode="fast"))
    store.bind_model(MODEL)
    add_s = generate_s = 0.0
    started = time.perf_counter()
    for b in range(pages // BATCH):
        t = time.perf_counter()
        vectors = synthetic.batch(b)
        generate_s += time.perf_counter() - t
        record = DocumentRecord(
            f"{b:064x}",
            f"docs/{b // 16:04d}/{b:06d}.pdf",
            str(b),
            1,
            BATCH,
            tags=("even",) if b % 2 == 0 else (),
        )
        t = time.perf_counter()
        store.begin_document(record)
        store.add_pages(record.doc_id, [PageInput(i + 1, v) for i, v in enumerate(vectors)])
        store.finish_document(record.doc_id)
        add_s += time.perf_counter() - t
        if b % 20 == 0:
            print(
                f"  batch {b}/{pages // BATCH}: add {BATCH * (b + 1) / add_s:.0f} pages/s",
                flush=True,
            )
    t = time.perf_counter()
    report = store.compact()
    compact_s = time.perf_counter() - t
    store.close()
    figures = {
        "add_pages_per_s": (pages // BATCH) * BATCH / add_s,
        "generate_s": generate_s,
        "compact_and_sketch_s": compact_s,
        "build_s": time.perf_counter() - started - generate_s,
        "segments_sketched": report.segments_sketched,
    }
    done.write_text(json.dumps(figures))
    return figures


def resketch(path: Path, min_pages: int = SearchOptions().min_pages) -> dict:
    """Forget the first stage, time compact() without it (exact mode), then with it."""
    from colretrieve.store.schema import transaction

    store = EmbeddedStore.open(path, search=SearchOptions(mode="exact"))
    with transaction(store._connection):
        store._connection.execute("DELETE FROM meta WHERE key IN ('codebook', 'postings')")
        store._connection.execute("DELETE FROM sketches")
    t = time.perf_counter()
    store.compact()
    exact_s = time.perf_counter() - t
    store.search_options = SearchOptions(mode="fast", min_pages=min_pages)
    t = time.perf_counter()
    report = store.compact()
    fast_s = time.perf_counter() - t
    store.close()
    return {
        "compact_exact_mode_s": exact_s,
        "compact_fast_mode_train_and_sketch_s": fast_s,
        "segments_sketched": report.segments_sketched,
    }


def exhaustive_scores(store: EmbeddedStore, queries: list[np.ndarray]) -> np.ndarray:
    """(n_queries, n_pages) exact scores by catalog position, one pass over the vectors."""
    import torch

    from colretrieve.store.search import _pieces

    catalog, _ = store._current_catalog()
    scores = np.empty((len(queries), len(catalog.page_doc)), dtype=np.float32)
    tokens = torch.from_numpy(np.concatenate(queries))
    bounds = np.cumsum([0] + [len(q) for q in queries])
    for segment_id, record in catalog.segments.items():
        positions = np.flatnonzero(catalog.page_segment == segment_id)
        order = positions[np.argsort(catalog.page_row[positions])]
        vectors = store._reader.vectors(record)
        starts, lengths = catalog.page_row[order], catalog.page_len[order]
        for row_a, row_b, offsets, take, dest in _pieces(starts, lengths):
            block = torch.from_numpy(np.array(vectors[row_a:row_b])).float()
            sims = (block @ tokens.T).numpy()
            per_unit = np.maximum.reduceat(sims, offsets[:-1], axis=0)[take]
            for q in range(len(queries)):
                scores[q, order[dest]] = per_unit[:, bounds[q] : bounds[q + 1]].sum(axis=1)
    return scores


def measure(store, queries, targets, exact_top, position, candidates) -> dict:
    """p50/p95, batch and filtered latency, recall@10 vs exhaustive of the current options."""
    from colretrieve.contracts import SearchFilter

    store.search(queries[0], 10)  # warm
    latencies, recalls, target_hits = [], [], []
    for q, query in enumerate(queries):
        t = time.perf_counter()
        hits = store.search(query, 10)
        latencies.append((time.perf_counter() - t) * 1000)
        got = {position[(h.doc_id, h.page)] for h in hits}
        recalls.append(len(got & exact_top[q]) / 10)
        target_hits.append(int(targets[q]) in got)
    t = time.perf_counter()
    store.search_batch(queries, 10)
    batch_ms = (time.perf_counter() - t) * 1000 / len(queries)
    filt_t = time.perf_counter()
    store.search(queries[0], 10, SearchFilter(tags=frozenset({"even"})))
    filtered_ms = (time.perf_counter() - filt_t) * 1000

    return {
        "candidates": candidates,
        "p50_ms": float(np.percentile(latencies, 50)),
        "p95_ms": float(np.percentile(latencies, 95)),
        "batch_ms_per_query": batch_ms,
        "filtered_ms": filtered_ms,
        "recall_at_10": float(np.mean(recalls)),
        "target_recall_at_10": float(np.mean(target_hits)),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--pages", type=int, default=25_000)
    parser.add_argument("--queries", type=int, default=40)
    parser.add_argument(
        "--exhaustive-timed",
        type=int,
        default=3,
        help="queries timed through the store's exact mode",
    )
    parser.add_argument(
        "--candidates",
        type=int,
        nargs="+",
        default=[SearchOptions().candidates],
        help="rerank depths to measure against the same exhaustive truth (one row each)",
    )
    parser.add_argument("--probe", type=int, default=SearchOptions().probe)
    parser.add_argument(
        "--resketch",
        action="store_true",
        help="drop the cached index's codebook and sketches, then time compact() in exact "
        "mode (no first stage) and in fast mode (train + sketch with the current code)",
    )
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    pages = (args.pages // BATCH) * BATCH
    synthetic = Synthetic(pages)
    path = CACHE / f"synthetic-{pages}"
    figures = build(path, pages, synthetic)
    if args.resketch:
        figures = {**figures, **resketch(path)}

    options = SearchOptions(mode="fast", candidates=args.candidates[0], probe=args.probe)
    t = time.perf_counter()
    store = EmbeddedStore.open(path, read_only=True, search=options)
    open_s = time.perf_counter() - t
    t = time.perf_counter()
    catalog, stage = store._current_catalog()
    load_s = time.perf_counter() - t
    n = len(catalog.page_doc)
    rng = np.random.default_rng(123)
    targets = rng.choice(n, size=args.queries, replace=False)
    queries = [
        synthetic.query(
            store.page_vectors(catalog.doc_ids[catalog.page_doc[p]], int(catalog.page_no[p])), rng
        )
        for p in targets
    ]
    # Opening a second instance and searching once: what a fresh process pays (page cache
    # warm: the postings file was just written or read).
    # The first search also checksums every segment its candidates live in (segments are
    # verified on first map), which at 25K+ pages means nearly all of them.
    t = time.perf_counter()
    fresh = EmbeddedStore.open(path, read_only=True, search=options)
    fresh._current_catalog()
    fresh_stage_s = time.perf_counter() - t
    fresh.search(queries[0], 10)
    open_and_first_search_s = time.perf_counter() - t
    fresh.close()
    t = time.perf_counter()
    truth_file = path.with_name(f"{path.name}-truth-{len(queries)}.npy")
    cached = truth_file.exists()
    if cached:
        truth = np.load(truth_file)
    else:
        truth = exhaustive_scores(store, queries)
        np.save(truth_file, truth)
    truth_s = time.perf_counter() - t
    exact_top = [set(np.argsort(-row, kind="stable")[:10].tolist()) for row in truth]
    position = {
        (catalog.doc_ids[catalog.page_doc[i]], int(catalog.page_no[i])): i for i in range(n)
    }

    rows = []
    for candidates in args.candidates:
        store.search_options = SearchOptions(mode="fast", candidates=candidates, probe=args.probe)
        rows.append(measure(store, queries, targets, exact_top, position, candidates))
    store.search_options = SearchOptions(mode="exact")
    exhaustive = []
    for query in queries[: args.exhaustive_timed]:
        t = time.perf_counter()
        store.search(query, 10)
        exhaustive.append((time.perf_counter() - t) * 1000)
    exhaustive_target = np.mean([int(t) in s for t, s in zip(targets, exact_top, strict=True)])
    exhaustive_p50 = float(np.median(exhaustive))
    for row in rows:
        row["speedup"] = exhaustive_p50 / row["p50_ms"]
    result = {
        "pages": n,
        "queries": len(queries),
        "probe": options.probe,
        "rows": rows,
        "exhaustive_p50_ms": exhaustive_p50,
        "exhaustive_timed_queries": len(exhaustive),
        "exhaustive_batched_s_per_query": None if cached else truth_s / len(queries),
        "exhaustive_target_recall_at_10": float(exhaustive_target),
        "open_s": open_s,
        "first_search_load_s": load_s,
        "open_and_first_stage_s": fresh_stage_s,
        "open_and_first_search_s": open_and_first_search_s,
        "n_cells": stage.cells.shape[0] if stage else 0,
        "first_stage_bytes_per_page": stage.resident_bytes / n if stage else 0,
        "disk_bytes": store.stats().bytes_on_disk,
        "peak_rss_mb": peak_rss_mb(),
        **figures,
        "machine": machine(),
        "note": "2 shared CPU cores; other jobs ran alongside, timings are noisy",
    }
    store.close()
    write_json(args.json, result)


if __name__ == "__main__":
    os.environ.setdefault("OMP_NUM_THREADS", "2")
    main()
