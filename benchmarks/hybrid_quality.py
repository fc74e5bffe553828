"""Hybrid retrieval quality on the real corpus: the text channel, bm25, and their fusions.

    python benchmarks/hybrid_quality.py --json hybrid.json

Every page of ``../shared/corpus/pdfs`` is read with pypdfium2 (what ingest stores), embedded
by ``TokenTextEncoder`` (default all-MiniLM-L6-v2, bundled; vectors cached under
``.bench-cache/text/``) and scored against each question by exact MaxSim over all pages; the
bm25 channel ranks the same texts with an ``EmbeddedLexicalStore`` (FTS5 BM25 over
``colretrieve.text.analyzer`` terms). Each channel keeps its top ``--depth`` pages, as a
store search would, and ``colretrieve.fusion`` fuses them.

Two question sets: the corpus's dev questions and ``benchmarks/data/heldout-queries.jsonl``
(pages drawn at random, seed 2026, one per file with >= 200 characters of text; questions
written before reading the dev set). For each: recall@1/5/10 and MRR@10 of text alone, bm25
alone and each fusion; a leave-one-out estimate per fusion family (the weight is chosen on
all other questions of both sets, then scored on the one left out); and encode pages/s.

Measured (R@1 / R@5 / MRR@10; dev 21 questions, held-out 42):

    text alone                      dev .619 .810 .722   held-out .643 .762 .698
    bm25 alone                      dev .571 .810 .671   held-out .595 .714 .643
    rrf, equal weights              dev .619 .810 .720   held-out .619 .786 .681
    rrf text 1, bm25 .25 (default)  dev .667 .810 .745   held-out .643 .786 .699

The default weight was chosen on the held-out set; dev was not used to pick it. Three dev
questions cannot be answered from the text layer (a scanned page without one, a Persian and
a Japanese page asked about in English), so R@5 of any text + bm25 fusion tops out at .857
there; the visual channel has to find those.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
import time
from dataclasses import asdict
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks._common import CORPUS, machine, page_texts, peak_rss_mb, write_json
from colretrieve.contracts import SearchHit
from colretrieve.fusion import DEFAULT_FUSION, Fusion, fuse
from colretrieve.maxsim import maxsim_lists
from colretrieve.text.encoder import DEFAULT_TEXT_MODEL, TextRecipe, TokenTextEncoder

ROOT = Path(__file__).resolve().parents[1]
CACHE = ROOT / ".bench-cache" / "text"
SETS = {
    "dev": CORPUS / "dev-queries.jsonl",
    "heldout": ROOT / "benchmarks" / "data" / "heldout-queries.jsonl",
}
BM25_WEIGHTS = [0.0, 0.15, 0.25, 0.35, 0.5, 0.75, 1.0, 1.5]

Page = tuple[str, int]


def load_set(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


# --- text channel -------------------------------------------------------------------------


def encode_pages(
    encoder: TokenTextEncoder, pages: list[Page], texts: list[str]
) -> tuple[list[np.ndarray], float]:
    """Page multi-vectors (cached per model revision and recipe) and encode pages/s."""
    page_side = {k: v for k, v in asdict(encoder.recipe).items() if "query" not in k}
    key = json.dumps([encoder.info.revision, page_side, "clean-1"], sort_keys=True)
    path = CACHE / f"pages-{hashlib.sha256(key.encode()).hexdigest()[:16]}.npz"
    if path.exists():
        data = np.load(path)
        vectors = np.split(data["vectors"], data["offsets"][1:-1])
        return vectors, float(data["pages_per_s"])
    started = time.perf_counter()
    vectors = encoder.embed_texts(texts)
    pages_per_s = len(texts) / (time.perf_counter() - started)
    offsets = np.concatenate([[0], np.cumsum([len(v) for v in vectors])])
    CACHE.mkdir(parents=True, exist_ok=True)
    np.savez(
        path,
        vectors=np.concatenate(vectors).astype(np.float16),
        offsets=offsets,
        pages_per_s=pages_per_s,
    )
    return [v.astype(np.float16) for v in vectors], pages_per_s


def hits_from_scores(scores: np.ndarray, pages: list[Page], depth: int) -> list[SearchHit]:
    order = np.lexsort((np.arange(len(scores)), -scores))[:depth]
    return [
        SearchHit(doc_id=pages[i][0], path=pages[i][0], page=pages[i][1], score=float(scores[i]))
        for i in order
        if scores[i] > 0
    ]


# --- bm25 channel -------------------------------------------------------------------------


def bm25_hits(
    texts: list[str], pages: list[Page], queries: list[str], depth: int
) -> list[list[SearchHit]]:
    """Each query's top ``depth`` pages from an EmbeddedLexicalStore of the page texts."""
    import tempfile

    from colretrieve.contracts import DocumentRecord, PageText
    from colretrieve.store import EmbeddedLexicalStore

    by_file: dict[str, list[tuple[int, str]]] = {}
    for (name, page), text in zip(pages, texts, strict=True):
        by_file.setdefault(name, []).append((page, text))
    with tempfile.TemporaryDirectory() as tmp:
        store = EmbeddedLexicalStore.open(Path(tmp) / "lexical", create=True)
        ids = {}
        for d, (name, items) in enumerate(by_file.items()):
            doc_id = f"{d:064x}"
            ids[doc_id] = name
            store.begin_document(DocumentRecord(doc_id, name, name, 1, len(items)))
            store.add_texts(doc_id, [PageText(p, t) for p, t in items])
            store.finish_document(doc_id)
        results = store.search_text_batch(queries, depth)
        store.close()
    return [
        [
            SearchHit(doc_id=ids[h.doc_id], path=ids[h.doc_id], page=h.page, score=h.score)
            for h in hits
        ]
        for hits in results
    ]


# --- metrics ------------------------------------------------------------------------------


def ranks_of(results: list[list[SearchHit]], targets: list[Page]) -> list[int | None]:
    out = []
    for hits, target in zip(results, targets, strict=True):
        found = [i for i, h in enumerate(hits, 1) if (h.doc_id, h.page) == target]
        out.append(found[0] if found else None)
    return out


def metrics(ranks: list[int | None]) -> dict[str, float]:
    n = len(ranks)
    return {
        "r1": sum(r is not None and r <= 1 for r in ranks) / n,
        "r5": sum(r is not None and r <= 5 for r in ranks) / n,
        "r10": sum(r is not None and r <= 10 for r in ranks) / n,
        "mrr10": sum(1 / r for r in ranks if r is not None and r <= 10) / n,
    }


def utility(rank: int | None) -> float:
    """What leave-one-out maximises: MRR@10 plus recall@5, per question."""
    return (1 / rank if rank and rank <= 10 else 0.0) + (1.0 if rank and rank <= 5 else 0.0)


# --- main ---------------------------------------------------------------------------------


def variants(depth: int) -> dict[str, Fusion]:
    out = {"default": DEFAULT_FUSION, "rrf": Fusion("rrf")}
    for w in BM25_WEIGHTS[1:]:
        out[f"rrf bm25={w}"] = Fusion("rrf", {"text": 1.0, "bm25": w})
    for how in ("minmax", "max", "zscore"):
        for w in BM25_WEIGHTS[1:]:
            out[f"{how} bm25={w}"] = Fusion("weighted", {"text": 1.0, "bm25": w}, normalisation=how)
    return out


def leave_one_out(per_query: dict[str, list[int | None]], family: list[str]) -> list[int | None]:
    """Rank of each question under the family member best on all the other questions."""
    n = len(next(iter(per_query.values())))
    totals = {name: sum(utility(r) for r in per_query[name]) for name in family}
    out = []
    for i in range(n):
        best = max(family, key=lambda f: (totals[f] - utility(per_query[f][i]), -family.index(f)))
        out.append(per_query[best][i])
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--model", default=DEFAULT_TEXT_MODEL)
    parser.add_argument("--depth", type=int, default=100, help="hits each channel returns")
    parser.add_argument("--window", type=int, default=TextRecipe.window)
    parser.add_argument("--overlap", type=int, default=TextRecipe.overlap)
    parser.add_argument("--max-tokens", type=int, default=TextRecipe.max_tokens)
    parser.add_argument("--keep-special", action="store_true")
    parser.add_argument("--keep-punctuation", action="store_true")
    parser.add_argument("--keep-query-stop-words", action="store_true")
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()

    recipe = TextRecipe(
        window=args.window,
        overlap=args.overlap,
        max_tokens=args.max_tokens,
        keep_special=args.keep_special,
        keep_punctuation=args.keep_punctuation,
        drop_query_stop_words=not args.keep_query_stop_words,
    )
    encoder = TokenTextEncoder.load(args.model, "auto", recipe, args.batch_size)
    by_file = page_texts()
    pages = [(name, i + 1) for name, texts in by_file.items() for i in range(len(texts))]
    texts = [t for name in by_file for t in by_file[name]]
    page_vectors, pages_per_s = encode_pages(encoder, pages, texts)

    sets = {name: load_set(path) for name, path in SETS.items()}
    fusions = variants(args.depth)
    per_query: dict[str, list[int | None]] = {}
    set_slices = {}
    for set_name, items in sets.items():
        queries = [q["query"] for q in items]
        targets = [(q["file"], q["page"]) for q in items]
        started = len(next(iter(per_query.values()), []))
        set_slices[set_name] = slice(started, started + len(items))
        scores = maxsim_lists(encoder.embed_queries(queries), page_vectors)
        text = [hits_from_scores(s, pages, args.depth) for s in scores]
        bm25 = bm25_hits(texts, pages, queries, args.depth)
        runs = {"text": text, "bm25": bm25}
        for name, fusion in fusions.items():
            runs[name] = [
                fuse({"text": t, "bm25": b}, 10, fusion) for t, b in zip(text, bm25, strict=True)
            ]
        for name, results in runs.items():
            per_query.setdefault(name, []).extend(ranks_of(results, targets))

    families = {
        f"loo {family}": [n for n in fusions if n.startswith(family + " ")]
        for family in ("rrf", "minmax", "max", "zscore")
    }
    for name, family in families.items():
        per_query[name] = leave_one_out(per_query, family)

    report = {}
    for set_name, part in set_slices.items():
        report[set_name] = {name: metrics(ranks[part]) for name, ranks in per_query.items()}
    for set_name, rows in report.items():
        print(f"\n{set_name} ({len(sets[set_name])} questions)   R@1   R@5  R@10 MRR@10")
        for name, m in rows.items():
            print(f"  {name:20s} {m['r1']:.3f} {m['r5']:.3f} {m['r10']:.3f} {m['mrr10']:.3f}")
    write_json(
        args.json,
        {
            "model": asdict(encoder.info),
            "recipe": asdict(recipe),
            "default_fusion": {**asdict(DEFAULT_FUSION), "weights": dict(DEFAULT_FUSION.weights)},
            "depth": args.depth,
            "pages": len(pages),
            "vectors_per_page": float(np.mean([len(v) for v in page_vectors])),
            "encode_pages_per_s": pages_per_s,
            "results": report,
            "misses": {
                set_name: {
                    name: [
                        q["qid"]
                        for q, r in zip(sets[set_name], per_query[name][part], strict=True)
                        if r is None or r > 5
                    ]
                    for name in ("text", "bm25", "default")
                }
                for set_name, part in set_slices.items()
            },
            "peak_rss_mb": peak_rss_mb(),
            "machine": machine(),
        },
    )


if __name__ == "__main__":
    import os

    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    main()
