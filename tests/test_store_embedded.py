"""Embedded-store specifics: persistence, corruption, locking, compaction, crash safety."""

from __future__ import annotations

import os
import random
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from colretrieve.contracts import SearchFilter, SearchHit
from colretrieve.errors import (
    IndexCorruptError,
    IndexLockedError,
    IndexNotFoundError,
    InvalidInputError,
)
from colretrieve.store import EmbeddedStore, open_store
from colretrieve.store import search as search_module
from colretrieve.store.sketch_build import referenced_files
from tests.store_corpus import MODEL, crash_doc, make_corpus, make_queries
from tests.test_store_conformance import assert_matches, ingest, reference

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def built(tmp_path: Path) -> Path:
    """An index of the 60-page corpus, closed."""
    index = tmp_path / "index"
    with EmbeddedStore.open(index, create=True) as store:
        store.bind_model(MODEL)
        ingest(store, make_corpus())
    return index


def segment_files(index: Path) -> list[Path]:
    return sorted((index / "segments").glob("seg-*.npy"))


def test_missing_index(tmp_path: Path) -> None:
    with pytest.raises(IndexNotFoundError):
        EmbeddedStore.open(tmp_path / "nothing")
    with pytest.raises(IndexNotFoundError):
        EmbeddedStore.open(tmp_path / "nothing", read_only=True)
    assert not (tmp_path / "nothing").exists()


def test_persists_across_reopen(built: Path) -> None:
    corpus = make_corpus()
    with open_store(built) as store:
        assert store.model == MODEL
        query = make_queries()[0]
        assert_matches(store.search(query, 10), reference(corpus, query, 10))
        assert store.stats().pages == 60
        assert store.verify() == len(segment_files(built))
    with open_store(built, read_only=True) as reader:
        assert len(reader.documents()) == 12
        with pytest.raises(InvalidInputError):
            reader.delete_documents([corpus[0].record.doc_id])


def test_orphan_segments_are_removed_on_writable_open(built: Path) -> None:
    folder = built / "segments"
    (folder / "seg-999999.npy").write_bytes(b"half a segment")
    (folder / "seg-999998.npy.tmp").write_bytes(b"unrenamed")
    with open_store(built, read_only=True):
        assert (folder / "seg-999999.npy").exists()  # readers never delete
    with open_store(built) as store:
        assert not (folder / "seg-999999.npy").exists()
        assert not (folder / "seg-999998.npy.tmp").exists()
        assert store.search(make_queries()[0], 3)


def test_truncated_segment_refuses_to_open(built: Path) -> None:
    victim = segment_files(built)[3]
    os.truncate(victim, victim.stat().st_size - 7)
    for read_only in (False, True):
        with pytest.raises(IndexCorruptError):
            open_store(built, read_only=read_only)
    victim.unlink()
    with pytest.raises(IndexCorruptError, match="missing"):
        open_store(built)


def test_bit_flip_is_detected_before_serving(built: Path) -> None:
    victim = segment_files(built)[5]
    data = bytearray(victim.read_bytes())
    data[-10] ^= 0x10
    victim.write_bytes(bytes(data))
    store = open_store(built)  # same size: the cheap open check passes
    query = make_queries()[0]
    with pytest.raises(IndexCorruptError, match="checksum"):
        store.search(query, 5)
    with pytest.raises(IndexCorruptError):
        store.search(query, 5)  # a failed check is not cached as verified
    with pytest.raises(IndexCorruptError):
        store.verify()
    # Searches that never touch the damaged segment still work.
    corpus = make_corpus()
    clean = corpus[0].record.doc_id
    hits = store.search(query, 3, SearchFilter(doc_ids=frozenset({clean})))
    assert_matches(hits, reference(corpus[:1], query, 3))
    store.close()


def test_single_writer_many_readers(built: Path) -> None:
    writer = open_store(built)
    with pytest.raises(IndexLockedError):
        open_store(built)
    reader = open_store(built, read_only=True)
    query = make_queries()[0]
    before = reader.search(query, 100)
    assert len(before) == 60
    extra = make_corpus(seed=4, n_docs=1)[0]
    writer.begin_document(extra.record)
    writer.add_pages(extra.record.doc_id, extra.inputs())
    assert len(reader.search(query, 100)) == 60  # not committed as complete yet
    writer.finish_document(extra.record.doc_id)
    assert len(reader.search(query, 100)) == 65  # the reader sees the new commit
    # Compaction unlinks files the reader's cached catalog still names; it must cope.
    writer.delete_documents([d.record.doc_id for d in make_corpus()[:6]])
    writer.compact(min_dead_fraction=0.0)
    assert len(reader.search(query, 100)) == 35
    writer.close()
    open_store(built).close()  # the lock went with the writer
    reader.close()


def test_compaction_preserves_results_and_shrinks_disk(built: Path, monkeypatch) -> None:
    corpus = make_corpus()
    gone = {corpus[i].record.doc_id for i in (0, 1, 4, 9)}
    kept = [d for d in corpus if d.record.doc_id not in gone]
    with open_store(built) as store:
        store.delete_documents(sorted(gone))
        queries = make_queries()
        before = store.search_batch(queries, 15)
        size_before = store.stats().bytes_on_disk
        report = store.compact()
        assert report.segments_written == 1 and report.bytes_freed > 0
        assert len(segment_files(built)) == 1
        assert_same_hits(store.search_batch(queries, 15), before)
        assert store.stats().bytes_on_disk < size_before
        # One mixed segment: filtered searches score runs and gapped spans of it.
        monkeypatch.setattr(search_module, "BLOCK_ROWS", 500)  # force several blocks
        for filter_ in (
            SearchFilter(tags=frozenset({"red"})),
            SearchFilter(doc_ids=frozenset({kept[0].record.doc_id, kept[-1].record.doc_id})),
            SearchFilter(path_prefix="reports/"),
            None,
        ):
            expected = [d for d in kept if filter_ is None or _admits(filter_, d.record)]
            for query in queries[:2]:
                assert_matches(store.search(query, 20, filter_), reference(expected, query, 20))
        assert store.verify() == 1
    with open_store(built) as store:
        assert_same_hits(store.search_batch(queries, 15), before)


def assert_same_hits(got: list[list[SearchHit]], want: list[list[SearchHit]]) -> None:
    """Same pages in the same order; scores equal up to float32 summation order."""
    for got_hits, want_hits in zip(got, want, strict=True):
        assert [(h.doc_id, h.page, h.path) for h in got_hits] == [
            (h.doc_id, h.page, h.path) for h in want_hits
        ]
        np.testing.assert_allclose(
            [h.score for h in got_hits], [h.score for h in want_hits], rtol=1e-5
        )


def _admits(filter_: SearchFilter, record) -> bool:
    return (
        (filter_.doc_ids is None or record.doc_id in filter_.doc_ids)
        and (filter_.path_prefix is None or record.path.startswith(filter_.path_prefix))
        and filter_.tags <= set(record.tags)
    )


def check_consistent(index: Path) -> int:
    """Reopen after a crash and check every invariant; return the complete documents."""
    with open_store(index) as store:
        committed = {row[0] for row in _rows(index, "SELECT file FROM segments")}
        on_disk = {p.name for p in (index / "segments").iterdir()}
        # Compactions past sketch_min_pages also commit a codebook and sketches (fast mode).
        derived = referenced_files(store._connection)
        assert on_disk == committed | derived  # orphans gone, nothing committed missing
        assert store.verify() == len(committed)
        docs = store.documents()
        n_pages, n_vectors = _rows(
            index, "SELECT count(*), coalesce(sum(n_vectors), 0) FROM pages"
        )[0]
        stats = store.stats()
        assert (stats.documents, stats.pages, stats.vectors) == (len(docs), n_pages, n_vectors)
        complete = 0
        for info in docs:
            doc = crash_doc(int(info.title))
            numbers = [
                r[0]
                for r in _rows(
                    index, "SELECT page FROM pages WHERE doc_id = ? ORDER BY page", (info.doc_id,)
                )
            ]
            assert numbers == list(range(1, info.stored_pages + 1))
            assert info.stored_pages == info.total_pages or not info.complete
            complete += info.complete
            for n in numbers:
                expected = doc.pages[n - 1].astype(np.float16).astype(np.float32)
                np.testing.assert_array_equal(store.page_vectors(info.doc_id, n), expected)
        hits = store.search(crash_doc(0).pages[0], 5)
        assert len(hits) == min(5, sum(d.stored_pages for d in docs if d.complete))
        return complete


def _rows(index: Path, sql: str, args: tuple = ()) -> list[tuple]:
    connection = sqlite3.connect(index / "index.sqlite")
    try:
        return connection.execute(sql, args).fetchall()
    finally:
        connection.close()


def test_sigkill_at_random_moments_leaves_a_consistent_store(tmp_path: Path) -> None:
    index = tmp_path / "index"
    rng = random.Random(1234)
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    complete = 0
    for cycle in range(5):
        child = subprocess.Popen(
            [sys.executable, "-m", "tests.store_crash_writer", str(index), str(cycle * 1000)],
            cwd=ROOT,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        assert child.stdout.readline().strip() == "ready", child.stderr.read()
        time.sleep(rng.uniform(0.05, 0.5))
        child.send_signal(signal.SIGKILL)
        child.wait()
        assert child.returncode == -signal.SIGKILL, child.stderr.read()
        complete = check_consistent(index)
    assert complete > 5  # the writer got real work done between kills


def test_one_store_shared_by_threads(built: Path) -> None:
    """Searches from several threads while another thread writes through the same object."""
    from concurrent.futures import ThreadPoolExecutor

    corpus = make_corpus()
    extra = make_corpus(seed=21, n_docs=4)
    query = make_queries()[0]
    with open_store(built) as store:

        def write() -> None:
            ingest(store, extra, batch=1)

        def search(_: int) -> int:
            hits = store.search(query, 100)
            # Each search sees one commit: the base corpus plus whole extra documents.
            assert (len(hits) - 60) % 5 == 0
            return len(hits)

        with ThreadPoolExecutor(4) as pool:
            writer = pool.submit(write)
            counts = list(pool.map(search, range(40)))
            writer.result()
        assert min(counts) >= 60
        assert_matches(store.search(query, 100), reference([*corpus, *extra], query, 100))


def test_add_pages_stores_float16_and_refuses_values_float16_cannot_hold(tmp_path: Path) -> None:
    doc = make_corpus(n_docs=1, pages_per_doc=3)[0]
    with EmbeddedStore.open(tmp_path / "i", create=True) as store:
        store.bind_model(MODEL)
        store.begin_document(doc.record)
        bad = doc.inputs(1, 2)
        bad[1].vectors[0, 0] = 1e5
        with pytest.raises(InvalidInputError, match="float16"):
            store.add_pages(doc.record.doc_id, bad)
        doc = make_corpus(n_docs=1, pages_per_doc=3)[0]
        store.add_pages(doc.record.doc_id, doc.inputs())
        store.finish_document(doc.record.doc_id)
        for n, vectors in enumerate(doc.pages, start=1):
            stored = store.page_vectors(doc.record.doc_id, n)
            np.testing.assert_array_equal(stored, vectors.astype(np.float16).astype(stored.dtype))
