"""The fast search path against the exact reference, and its first-stage bookkeeping."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from colretrieve.contracts import DocumentRecord, ModelInfo, PageInput, SearchFilter
from colretrieve.store import EmbeddedStore, SearchOptions
from colretrieve.store.fast import FirstStage, approximate_scores
from tests.store_corpus import MODEL, doc_id_for, make_corpus, make_queries
from tests.test_store_conformance import ingest

DIM = 48
SEEDED_MODEL = ModelInfo("test/seeded", "c" * 40, "ColQwen2", DIM)


def _unit(rows: np.ndarray) -> np.ndarray:
    return (rows / np.linalg.norm(rows, axis=1, keepdims=True)).astype(np.float32)


def seeded_corpus(n_docs: int = 40, pages: int = 15, seed: int = 0):
    """Pages like the benchmark's: shared background, topic words, page-specific detail."""
    rng = np.random.default_rng(seed)
    background = _unit(rng.standard_normal((6, DIM)))
    words = _unit(rng.standard_normal((30, 1, DIM)) + 0.8 * rng.standard_normal((30, 16, DIM)))
    docs = []
    for d in range(n_docs):
        vectors = []
        for _ in range(pages):
            n = int(rng.integers(60, 100))
            topics = rng.integers(0, 30, 2)
            rows = np.concatenate(
                [
                    background[rng.integers(0, 6, n // 2)],
                    words[topics[rng.integers(0, 2, n - n // 2)], rng.integers(0, 16, n - n // 2)],
                ]
            )
            vectors.append(_unit(rows + 0.08 * rng.standard_normal(rows.shape)))
        record = DocumentRecord(doc_id_for(f"seeded-{d}"), f"d/{d:03d}.pdf", str(d), 1, pages)
        docs.append((record, vectors))
    return docs


def _store(path: Path, docs, options: SearchOptions) -> EmbeddedStore:
    store = EmbeddedStore.open(path, create=True, search=options)
    store.bind_model(SEEDED_MODEL)
    for record, vectors in docs:
        store.begin_document(record)
        for first in range(0, len(vectors), 4):  # ingest's small per-batch segments
            batch = vectors[first : first + 4]
            store.add_pages(
                record.doc_id, [PageInput(first + i + 1, v) for i, v in enumerate(batch)]
            )
        store.finish_document(record.doc_id)
    return store


def _key(hits):
    return [(h.doc_id, h.page) for h in hits]


def test_full_depth_fast_equals_exact(tmp_path: Path) -> None:
    store = EmbeddedStore.open(
        tmp_path / "i",
        create=True,
        search=SearchOptions(mode="fast", candidates=10_000, min_pages=1),
    )
    store.bind_model(MODEL)
    corpus = make_corpus()
    ingest(store, corpus)
    report = store.compact()
    assert report.segments_sketched >= 1 and store.first_stage_bytes() > 0
    # A document added after compaction has no sketch: it is scored exactly, not missed.
    extra = make_corpus(seed=3, n_docs=1)[0]
    ingest(store, [extra])
    store.delete_documents([corpus[1].record.doc_id])
    exact = SearchOptions(mode="exact")
    fast = store.search_options
    filters = [None, SearchFilter(path_prefix="letters/"), SearchFilter(tags=frozenset({"red"}))]
    for filter_ in filters:
        queries = [*make_queries(n=3), extra.pages[1][:5]]
        got = store.search_batch(queries, 10, filter_)
        store.search_options = exact
        want = store.search_batch(queries, 10, filter_)
        store.search_options = fast
        for g, w in zip(got, want, strict=True):
            assert _key(g) == _key(w)
            np.testing.assert_allclose([h.score for h in g], [h.score for h in w], atol=1e-4)
    assert _key(store.search(extra.pages[1][:5], 1)) == [(extra.record.doc_id, 2)]
    store.close()


def test_default_depth_recall_floor(tmp_path: Path) -> None:
    """600 pages, 32 candidates (5% of the corpus): measured recall@10 vs exact >= 0.9."""
    docs = seeded_corpus()
    store = _store(tmp_path / "i", docs, SearchOptions(mode="fast", candidates=32, min_pages=64))
    store.compact()
    rng = np.random.default_rng(7)
    recalls, targets = [], []
    for _ in range(20):
        record, vectors = docs[rng.integers(len(docs))]
        page = int(rng.integers(len(vectors)))
        rows = vectors[page][rng.choice(len(vectors[page]), 12, replace=False)]
        query = _unit(rows + 0.1 * rng.standard_normal(rows.shape))
        store.search_options = SearchOptions(mode="fast", candidates=32, min_pages=64)
        got = {(h.doc_id, h.page) for h in store.search(query, 10)}
        store.search_options = SearchOptions(mode="exact")
        want = {(h.doc_id, h.page) for h in store.search(query, 10)}
        recalls.append(len(got & want) / 10)
        targets.append((record.doc_id, page + 1) in got)
    assert np.mean(recalls) >= 0.9, np.mean(recalls)
    assert np.mean(targets) >= 0.9
    store.close()


def test_approximate_scores_match_brute_force() -> None:
    rng = np.random.default_rng(0)
    n_cells, n_pages = 50, 30
    codes = [np.unique(rng.integers(0, n_cells, 8)) for _ in range(n_pages)]
    pairs = sorted((c, p) for p, cs in enumerate(codes) for c in cs)
    starts = np.searchsorted([c for c, _ in pairs], np.arange(n_cells + 1))
    stage = FirstStage(
        cells=torch.zeros(n_cells, 4),
        covered=np.ones(n_pages, dtype=bool),
        starts=starts.astype(np.int64),
        postings=np.array([p for _, p in pairs], dtype=np.int32),
    )
    cell_scores = torch.from_numpy(rng.standard_normal((5, n_cells)).astype(np.float32))
    probe = 12
    got = approximate_scores(stage, cell_scores, probe).numpy()
    s = cell_scores.numpy()
    want = np.zeros(n_pages)
    for t in range(5):
        probed = np.argsort(-s[t])[:probe]
        floor = s[t, probed].min()
        for p in range(n_pages):
            hits = [s[t, c] for c in codes[p] if c in probed]
            want[p] += max(hits) if hits else floor
    np.testing.assert_allclose(got, want, rtol=1e-5)


def test_first_stage_files_are_crash_safe(tmp_path: Path) -> None:
    docs = seeded_corpus(n_docs=6, pages=4)
    store = _store(tmp_path / "i", docs, SearchOptions(mode="fast", min_pages=1))
    store.compact()
    folder = tmp_path / "i" / "segments"
    # Files a crash could leave: an uncommitted sketch, codebook and temporary file.
    junk = (
        "seg-000999.npy.c000001.sketch.npz",
        "codebook-000009.npz",
        "x.sketch.npz.tmp",
        "postings-000099.bin",
        "postings-000100.bin.tmp",
    )
    for name in junk:
        (folder / name).write_bytes(b"junk")
    before = store.search(docs[0][1][0][:5], 5)
    store.close()
    reader = EmbeddedStore.open(tmp_path / "i", read_only=True)
    assert reader.first_stage_bytes() > 0
    assert _key(reader.search(docs[0][1][0][:5], 5)) == _key(before)
    reader.close()
    store = EmbeddedStore.open(tmp_path / "i")
    names = set(p.name for p in folder.iterdir())
    assert not names & set(junk)
    assert not any(n.endswith(".tmp") for n in names)
    assert sum(n.startswith("postings-") for n in names) == 1
    # Deleting everything leaves no stale candidates; compaction drops their sketches.
    store.delete_documents([record.doc_id for record, _ in docs])
    assert store.search(docs[0][1][0][:5], 5) == []
    store.compact()
    assert not any(n.endswith(".sketch.npz") for n in (p.name for p in folder.iterdir()))
    store.close()


def test_options_are_validated() -> None:
    from colretrieve.errors import InvalidInputError

    for bad in ({"mode": "approx"}, {"candidates": 0}, {"probe": True}):
        with pytest.raises(InvalidInputError):
            SearchOptions(**bad)


def test_exact_mode_compact_builds_no_first_stage(tmp_path: Path) -> None:
    from colretrieve.settings import Settings

    assert SearchOptions().mode == "fast" and Settings().search_mode == "fast"
    assert Settings().search_options() == SearchOptions()
    docs = seeded_corpus(n_docs=6, pages=4)
    store = _store(tmp_path / "i", docs, SearchOptions(mode="exact", min_pages=1))
    assert store.compact().segments_sketched == 0
    assert store.first_stage_bytes() == 0
    assert not any(p.name.endswith(".sketch.npz") for p in (tmp_path / "i" / "segments").iterdir())
    store.close()


def test_batch_equals_single_searches(tmp_path: Path) -> None:
    """A batch runs its queries on threads; each query's hits are its own, at any depth."""
    docs = seeded_corpus(n_docs=20, pages=10)
    store = _store(tmp_path / "i", docs, SearchOptions(mode="fast", candidates=16, min_pages=32))
    store.compact()
    assert store.first_stage_bytes() > 0
    rng = np.random.default_rng(3)
    queries = [
        _unit(vectors[0][rng.choice(len(vectors[0]), 8, replace=False)]) for _, vectors in docs[:7]
    ]
    batch = store.search_batch(queries, 5)
    for query, hits in zip(queries, batch, strict=True):
        single = store.search(query, 5)
        assert _key(hits) == _key(single)
        assert [h.score for h in hits] == [h.score for h in single]
    store.close()


def test_fast_path_reports_first_stage_and_rerank_timings(tmp_path: Path) -> None:
    from colretrieve.search import search

    options = SearchOptions(mode="fast", candidates=8, min_pages=1)
    store = _store(tmp_path / "fast", seeded_corpus(n_docs=6, pages=4), options)
    store.compact()
    query = store.page_vectors(store.documents()[0].doc_id, 1)[:12]
    result = search(store, query, 5)
    assert {"score", "first_stage", "rerank"} <= set(result.timings_ms)
    assert result.timings_ms["first_stage"] + result.timings_ms["rerank"] <= (
        result.timings_ms["score"] + 1e-6
    )
    exact = _store(tmp_path / "exact", seeded_corpus(n_docs=6, pages=4), SearchOptions("exact"))
    assert set(search(exact, query, 5).timings_ms) == {"score"}


def _sketch_stage(store: EmbeddedStore):
    """The first stage rebuilt from the sketch files, as before postings files existed."""
    from colretrieve.store.fast import build_first_stage
    from colretrieve.store.search import load_catalog
    from colretrieve.store.sketch import read_codebook, read_sketch
    from colretrieve.store.sketch_build import current_codebook, sketch_records

    catalog = load_catalog(store._connection)
    codebook_id, record, _ = current_codebook(store._connection)
    codebook = read_codebook(store._segments, codebook_id, record)
    sketches = {
        segment_id: read_sketch(store._segments, sketch)
        for segment_id, (cid, sketch) in sketch_records(store._connection).items()
        if cid == codebook_id and segment_id in catalog.segments
    }
    return build_first_stage(catalog, codebook, sketches)


def _cell_sets(stage) -> list[list[int]]:
    return [
        sorted(stage.postings[stage.starts[c] : stage.starts[c + 1]].tolist())
        for c in range(len(stage.starts) - 1)
    ]


def test_postings_file_equals_the_sketches(tmp_path: Path) -> None:
    """The memory-mapped postings file gives the same first stage as the sketches, as
    written and after deletes and additions moved every catalog position."""
    docs = seeded_corpus(n_docs=12, pages=6)
    store = _store(tmp_path / "i", docs[:10], SearchOptions(mode="fast", min_pages=1))
    store.compact()
    names = [p.name for p in (tmp_path / "i" / "segments").iterdir()]
    assert sum(n.startswith("postings-") and n.endswith(".bin") for n in names) == 1
    _, stage = store._current_catalog()
    assert isinstance(stage.postings, np.memmap)  # used as stored: the catalog is unchanged
    want = _sketch_stage(store)
    np.testing.assert_array_equal(stage.covered, want.covered)
    np.testing.assert_array_equal(stage.starts, want.starts)
    assert _cell_sets(stage) == _cell_sets(want)
    # Delete a document that sorts early (shifts every later position), add two new ones
    # (uncovered until the next compact): the file's entries are remapped, not rebuilt.
    first = sorted(record.doc_id for record, _ in docs[:10])[0]
    store.delete_documents([first])
    for record, vectors in docs[10:]:
        store.begin_document(record)
        store.add_pages(record.doc_id, [PageInput(i + 1, v) for i, v in enumerate(vectors)])
        store.finish_document(record.doc_id)
    catalog, stage = store._current_catalog()
    assert not isinstance(stage.postings, np.memmap)
    want = _sketch_stage(store)
    np.testing.assert_array_equal(stage.covered, want.covered)
    assert stage.covered.sum() == len(catalog.page_doc) - 2 * 6
    assert _cell_sets(stage) == _cell_sets(want)
    # Fast at full depth still equals exact (remapped postings, unsketched pages).
    rng = np.random.default_rng(5)
    queries = [_unit(docs[i][1][2][rng.choice(40, 8, replace=False)]) for i in (1, 5, 11)]
    store.search_options = SearchOptions(mode="fast", candidates=10_000, min_pages=1)
    got = store.search_batch(queries, 10)
    store.search_options = SearchOptions(mode="exact")
    assert [_key(g) for g in got] == [_key(w) for w in store.search_batch(queries, 10)]
    # The next compact writes a new file for the new catalog and drops the old one.
    store.search_options = SearchOptions(mode="fast", min_pages=1)
    store.compact()
    _, stage = store._current_catalog()
    assert isinstance(stage.postings, np.memmap) and stage.covered.all()
    names = [p.name for p in (tmp_path / "i" / "segments").iterdir()]
    assert [n for n in names if n.startswith("postings-")] == ["postings-000002.bin"]
    store.close()


def test_corrupt_postings_file_is_never_served(tmp_path: Path) -> None:
    from colretrieve.errors import IndexCorruptError

    docs = seeded_corpus(n_docs=6, pages=4)
    store = _store(tmp_path / "i", docs, SearchOptions(mode="fast", min_pages=1))
    store.compact()
    query = docs[0][1][0][:5]
    want = _key(store.search(query, 5))
    store.close()
    (path,) = (tmp_path / "i" / "segments").glob("postings-*.bin")
    payload = bytearray(path.read_bytes())
    payload[-3] ^= 0xFF  # a flipped bit in the postings: same size, bad checksum
    path.write_bytes(bytes(payload))
    reader = EmbeddedStore.open(tmp_path / "i", read_only=True)
    with pytest.raises(IndexCorruptError):
        reader.search(query, 5)
    reader.close()
    path.unlink()
    reader = EmbeddedStore.open(tmp_path / "i", read_only=True)
    with pytest.raises(IndexCorruptError):
        reader.search(query, 5)
    # Exact mode never reads the first stage.
    reader.search_options = SearchOptions(mode="exact")
    assert _key(reader.search(query, 5)) == want
    reader.close()


def test_fine_cells_follow_the_quantisation_error() -> None:
    from colretrieve.store.sketch import (
        FINE_MAX,
        MAX_CELLS,
        MAX_SAMPLE_TOKENS,
        SAMPLE_PER_CELL,
        SAMPLE_TOKENS,
        fine_budget,
        sample_size,
        train_codebook,
    )

    members = np.array([50_000, 4_000, 4_000, 4_000, 160, 3])
    error = np.array([5.0, 900.0, 600.0, 300.0, 40.0, 1.0])
    budget = fine_budget(members, error, 600)
    assert (budget >= 1).all() and (
        budget <= np.clip(members // SAMPLE_PER_CELL, 1, FINE_MAX)
    ).all()
    assert budget.sum() <= 600 + len(members)
    assert budget[1] > budget[2] > budget[3] > budget[0]  # error, not size, decides
    assert budget[4] == 10  # capped by its members
    assert sample_size(0) == SAMPLE_TOKENS and sample_size(10**12) == MAX_SAMPLE_TOKENS
    assert sample_size(40_000_000) == 40_000_000 // 32
    # A sample that is half copies of 3 patches: few cells go to the patches.
    rng = np.random.default_rng(0)
    patches = _unit(rng.standard_normal((3, DIM)))
    copies = _unit(patches[rng.integers(0, 3, 8_000)] + 0.01 * rng.standard_normal((8_000, DIM)))
    spread = _unit(rng.standard_normal((8_000, DIM)))
    codebook = train_codebook(np.concatenate([copies, spread]), 1)
    assert codebook.n_cells <= min(MAX_CELLS, 16_000 // SAMPLE_PER_CELL + len(codebook.coarse))
    near_patch = ((codebook.fine @ patches.T).max(axis=1) > 0.9).sum()
    assert near_patch <= 0.1 * codebook.n_cells, (near_patch, codebook.n_cells)


def test_failed_sketching_leaves_no_files(tmp_path: Path, monkeypatch) -> None:
    """A compact() that fails while sketching (segments run on worker threads) commits
    nothing and leaves no codebook, sketch or postings file behind."""
    from colretrieve.store import sketch_build

    docs = seeded_corpus(n_docs=6, pages=4)
    store = _store(tmp_path / "i", docs, SearchOptions(mode="fast", min_pages=1))
    real = sketch_build.segment_sketches
    calls = []

    def flaky(codebook, vectors, starts, lengths):
        calls.append(1)
        if len(calls) == 3:
            raise OSError("disk full")
        return real(codebook, vectors, starts, lengths)

    monkeypatch.setattr(sketch_build, "segment_sketches", flaky)
    with pytest.raises(OSError):
        store.compact(merge_below_bytes=0)  # keep the 6 segments: 6 sketch tasks
    names = [p.name for p in (tmp_path / "i" / "segments").iterdir()]
    assert not [n for n in names if not n.startswith("seg-") or "sketch" in n], names
    assert store.first_stage_bytes() == 0
    query = docs[0][1][0][:5]
    assert _key(store.search(query, 3))[0] == (docs[0][0].doc_id, 1)
    monkeypatch.setattr(sketch_build, "segment_sketches", real)
    assert len(calls) == 6  # every task ran to its end before the error was raised
    assert store.compact(merge_below_bytes=0).segments_sketched == 6
    assert store.first_stage_bytes() > 0
    store.close()
