"""Embedded bm25 store specifics: crash safety, the writer lock, read-only openers."""

from __future__ import annotations

import itertools
import os
import random
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from colretrieve.contracts import PageText
from colretrieve.errors import (
    IndexCorruptError,
    IndexLockedError,
    IndexNotFoundError,
    InvalidInputError,
)
from colretrieve.store import EmbeddedStore
from colretrieve.store.lexical import DATABASE_NAME, EmbeddedLexicalStore
from tests.lexical_corpus import QUERIES, ingest, make_text_corpus
from tests.lexical_crash_writer import apply, crash_text_doc, operations
from tests.store_corpus import MODEL, make_corpus

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def built(tmp_path: Path) -> Path:
    with EmbeddedLexicalStore.open(tmp_path / "bm25", create=True) as store:
        ingest(store, make_text_corpus())
    return tmp_path / "bm25"


def test_missing_and_misuse(tmp_path: Path) -> None:
    with pytest.raises(IndexNotFoundError):
        EmbeddedLexicalStore.open(tmp_path / "nothing")
    with pytest.raises(InvalidInputError):
        EmbeddedLexicalStore.open(tmp_path / "x", create=True, read_only=True)


def test_persists_across_reopen(built: Path) -> None:
    with EmbeddedLexicalStore.open(built) as store:
        before = store.search_text_batch(QUERIES, 5)
        assert store.stats().pages == 13
    with EmbeddedLexicalStore.open(built, read_only=True) as store:
        assert store.search_text_batch(QUERIES, 5) == before


def test_single_writer_and_read_only_openers_see_commits(built: Path) -> None:
    corpus = make_text_corpus()
    with EmbeddedLexicalStore.open(built) as writer:
        with pytest.raises(IndexLockedError):
            EmbeddedLexicalStore.open(built)
        reader = EmbeddedLexicalStore.open(built, read_only=True)
        assert reader.search_text("zeppelin", 5) == []
        doc = crash_text_doc(1)
        writer.begin_document(doc.record)
        writer.add_texts(doc.record.doc_id, doc.pages())
        assert reader.search_text("uniq1p2", 5) == []  # not complete yet
        assert reader.get_document(doc.record.doc_id).stored_pages == 5
        writer.finish_document(doc.record.doc_id, replaces=[corpus[0].record.doc_id])
        assert [h.page for h in reader.search_text("uniq1p2", 5)] == [2]
        assert reader.get_document(corpus[0].record.doc_id) is None
        for write in (
            lambda: reader.begin_document(doc.record),
            lambda: reader.delete_documents([doc.record.doc_id]),
            lambda: reader.compact(),
        ):
            with pytest.raises(InvalidInputError):
                write()
        reader.close()
    EmbeddedLexicalStore.open(built).close()  # the lock went with the writer


def test_shares_a_folder_with_the_vector_store(tmp_path: Path) -> None:
    doc = make_corpus(n_docs=1)[0]
    with (
        EmbeddedStore.open(tmp_path / "index", create=True) as vectors,
        EmbeddedLexicalStore.open(tmp_path / "index", create=True) as lexical,
    ):
        vectors.bind_model(MODEL)
        for store in (vectors, lexical):
            store.begin_document(doc.record)
        vectors.add_pages(doc.record.doc_id, doc.inputs())
        lexical.add_texts(doc.record.doc_id, [PageText(p.page, p.text) for p in doc.inputs()])
        for store in (vectors, lexical):
            store.finish_document(doc.record.doc_id)
        assert [h.page for h in lexical.search_text("page", 2)] == [1, 2]
        assert lexical.stats().pages == vectors.stats().pages == 5
        assert lexical.stats().bytes_on_disk < vectors.stats().bytes_on_disk


def test_compact_reclaims_deleted_space(built: Path) -> None:
    with EmbeddedLexicalStore.open(built) as store:
        before = store.search_text_batch(QUERIES, 5)
        for n in range(20):
            doc = crash_text_doc(n * 5)  # never a replacing version
            store.begin_document(doc.record)
            store.add_texts(doc.record.doc_id, doc.pages())
            store.finish_document(doc.record.doc_id)
        grown = store.stats().bytes_on_disk
        store.delete_documents([crash_text_doc(n * 5).record.doc_id for n in range(20)])
        report = store.compact()
        assert report.vacuumed and report.bytes_after < grown / 2
        assert store.search_text_batch(QUERIES, 5) == before
        store.verify()


def test_verify_catches_a_page_without_terms(built: Path) -> None:
    connection = sqlite3.connect(built / DATABASE_NAME)
    connection.execute("DELETE FROM page_terms WHERE rowid = (SELECT min(id) FROM pages)")
    connection.commit()
    connection.close()
    with EmbeddedLexicalStore.open(built) as store, pytest.raises(IndexCorruptError):
        store.verify()


def expected_states(acked: int) -> list[dict[str, tuple[int, bool]]]:
    """The store's state after call ``acked`` returned, and after the call in flight."""
    state: dict[str, tuple[int, bool]] = {}
    ops = operations()
    for op in itertools.islice(ops, acked + 1):
        apply(state, op)
    after = dict(state)
    apply(after, next(ops))
    return [state, after]


def stored_state(index: Path) -> dict[str, tuple[int, bool]]:
    with EmbeddedLexicalStore.open(index) as store:
        store.verify()
        state = {d.doc_id: (d.stored_pages, d.complete) for d in store.documents()}
        for info in store.documents():
            n = int(info.title.removeprefix("Crash-"))
            hits = store.search_text(f"uniq{n}p1 uniq{n}p{info.stored_pages}", 5)
            want = [1, info.stored_pages] if info.stored_pages > 1 else [1]
            assert sorted({h.page for h in hits}) == (want if info.complete else [])
        assert store.stats().pages == sum(pages for pages, _ in state.values())
    return state


def test_sigkill_mid_write_keeps_exactly_the_returned_calls(tmp_path: Path) -> None:
    rng = random.Random(4321)
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    acked_total = 0
    for cycle in range(4):
        index = tmp_path / f"bm25-{cycle}"
        child = subprocess.Popen(
            [sys.executable, "-m", "tests.lexical_crash_writer", str(index)],
            cwd=ROOT,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        assert child.stdout.readline().strip() == "ready", child.stderr.read()
        time.sleep(rng.uniform(0.2, 1.0))
        child.send_signal(signal.SIGKILL)
        out, err = child.communicate()
        assert child.returncode == -signal.SIGKILL, err
        acked = max((int(line.split()[1]) for line in out.split("\n") if line), default=-1)
        acked_total += acked + 1
        assert stored_state(index) in expected_states(acked)
    assert acked_total > 20  # the writer got real work done between kills


def test_an_index_of_another_analyzer_is_refused(built: Path) -> None:
    """Terms from another analyzer would silently never match: refuse, say how to rebuild."""
    import sqlite3

    from colretrieve.errors import AnalyzerMismatchError

    with sqlite3.connect(built / "bm25.sqlite") as connection:
        connection.execute("UPDATE meta SET value = 'words-old/1' WHERE key = 'analyzer'")
    for read_only in (True, False):
        with pytest.raises(AnalyzerMismatchError, match="drop-channel bm25"):
            EmbeddedLexicalStore.open(built, read_only=read_only)
