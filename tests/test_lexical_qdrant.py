"""Qdrant bm25 store specifics: the sparse layout, term ids, sharing a client, retries."""

from __future__ import annotations

from pathlib import Path

import pytest

from colretrieve.errors import (
    IndexLockedError,
    IndexNotFoundError,
    InvalidInputError,
    StoreUnavailableError,
)
from colretrieve.settings import Settings
from colretrieve.store.qdrant import QdrantStore
from colretrieve.store.qdrant_lexical import (
    SPARSE,
    QdrantLexicalStore,
    page_vector,
    term_id,
)
from tests.lexical_corpus import QUERIES, ingest, make_text_corpus
from tests.store_corpus import MODEL, make_corpus


def test_term_ids_are_stable_and_values_saturate() -> None:
    # Pinned: changing the hash would silently break every existing collection.
    assert term_id("electr") == term_id("electr") == 1_173_677_607
    assert 0 <= term_id("x" * 64) < 2**31
    indices, values = page_vector(["a", "b", "a"], avgdl=3.0)
    assert indices == sorted(indices) and len(indices) == 2
    by_term = dict(zip(indices, values, strict=True))
    assert by_term[term_id("a")] == pytest.approx(2 * 2.2 / (2 + 1.2))
    assert by_term[term_id("b")] == pytest.approx(2.2 / (1 + 1.2))
    _, long_page = page_vector(["b"] * 1 + ["c"] * 29, avgdl=3.0)
    assert long_page[0] < by_term[term_id("b")]  # longer page, same tf: lower value


def test_layout_and_reopen(tmp_path: Path) -> None:
    folder = tmp_path / "q"
    with pytest.raises(IndexNotFoundError):
        QdrantLexicalStore.open(path=folder)
    with QdrantLexicalStore.open(path=folder, create=True, avg_page_terms=120) as store:
        params = store._client.get_collection(store.collection).config.params
        assert params.sparse_vectors[SPARSE].modifier.value == "idf"
        assert not params.vectors
        ingest(store, make_text_corpus())
        before = store.search_text_batch(QUERIES, 5)
        with pytest.raises(IndexLockedError):
            QdrantLexicalStore.open(path=folder)  # local mode: one client per folder
    with QdrantLexicalStore.open(path=folder, read_only=True) as store:
        assert store.avg_page_terms == 120  # the collection's own, not the default
        assert store.search_text_batch(QUERIES, 5) == before
        with pytest.raises(InvalidInputError):
            store.begin_document(make_text_corpus()[0].record)


def test_beside_a_vector_store_on_one_local_client(tmp_path: Path) -> None:
    doc = make_corpus(n_docs=1)[0]
    with QdrantStore.open(path=tmp_path / "q", collection="pages", create=True) as vectors:
        vectors.bind_model(MODEL)
        lexical = QdrantLexicalStore.beside(vectors, create=True)
        assert lexical.collection == "pages_bm25"
        with pytest.raises(InvalidInputError):  # a vector collection is not a bm25 one
            QdrantLexicalStore.beside(vectors, collection="pages")
        ingest(lexical, make_text_corpus())
        lexical.close()  # leaves the shared client open
        vectors.begin_document(doc.record)
        assert vectors.documents()[0].doc_id == doc.record.doc_id
        assert len(QdrantLexicalStore.beside(vectors).documents()) == 6


def test_retried_add_texts_never_doubles_a_page(tmp_path: Path, monkeypatch) -> None:
    doc = make_text_corpus()[1]  # three pages, the last one empty
    with QdrantLexicalStore.open(path=tmp_path / "q", create=True) as store:
        store.begin_document(doc.record)
        store.add_texts(doc.record.doc_id, doc.pages(1, 1))

        def crash(*args, **kwargs):
            raise ConnectionError("connection reset")

        with monkeypatch.context() as patch:
            patch.setattr(store, "_set_record", crash)
            with pytest.raises(ConnectionError):
                store.add_texts(doc.record.doc_id, doc.pages(2, 3))
        assert store.begin_document(doc.record) == 1
        store.add_texts(doc.record.doc_id, doc.pages(2, 3))
        store.finish_document(doc.record.doc_id)
        assert store._client.count(store.collection).count == 3
        assert [h.page for h in store.search_text("fiberglass turbines", 10)] == [2, 1]


def test_unreachable_server_and_settings(tmp_path: Path) -> None:
    with pytest.raises(StoreUnavailableError):
        QdrantLexicalStore.open(url="http://127.0.0.1:9", collection="x_bm25", timeout=2)
    settings = Settings(qdrant_path=str(tmp_path / "q"), qdrant_collection="pages")
    with QdrantLexicalStore.from_settings(settings, create=True) as store:
        assert store.collection == "pages_bm25"


def test_a_collection_of_another_analyzer_is_refused(tmp_path) -> None:
    from colretrieve.errors import AnalyzerMismatchError
    from colretrieve.store.qdrant_lexical import META_BM25

    store = QdrantLexicalStore.open(path=tmp_path / "q", create=True)
    metadata = store._client.get_collection(store.collection).config.metadata
    metadata[META_BM25]["analyzer"] = "words-old/1"
    store._client.update_collection(store.collection, metadata=metadata)
    store.close()
    with pytest.raises(AnalyzerMismatchError, match="drop-channel bm25"):
        QdrantLexicalStore.open(path=tmp_path / "q")
