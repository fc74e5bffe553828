"""One conformance suite for every MultiVectorStore backend, checked against numpy MaxSim.

Add a backend by adding a param to ``store_factory``; every test then runs against it.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pytest

from colretrieve.contracts import (
    DocumentRecord,
    ModelInfo,
    MultiVectorStore,
    PageInput,
    SearchFilter,
)
from colretrieve.errors import (
    DocumentNotFoundError,
    InvalidInputError,
    ModelMismatchError,
)
from colretrieve.maxsim import maxsim_lists, top_k
from colretrieve.store import EmbeddedStore, SearchOptions
from tests.store_corpus import (
    DIM,
    MODEL,
    OTHER_MODEL,
    Doc,
    doc_id_for,
    make_corpus,
    make_queries,
    unit_rows,
)

StoreFactory = Callable[[], MultiVectorStore]


def _embedded(tmp_path: Path) -> StoreFactory:
    counter = iter(range(1_000))
    return lambda: EmbeddedStore.open(tmp_path / f"index{next(counter)}", create=True)


def _embedded_exact(tmp_path: Path) -> StoreFactory:
    counter = iter(range(1_000))
    options = SearchOptions(mode="exact")
    return lambda: EmbeddedStore.open(
        tmp_path / f"index{next(counter)}", create=True, search=options
    )


class _SketchingStore(EmbeddedStore):
    """The fast path with a first stage: compact (train, sketch) after every 4th finished
    document, so the fixture corpus is sketched and later documents are not yet; full
    candidate depth, so results must be exact."""

    def finish_document(self, doc_id, replaces=()):
        super().finish_document(doc_id, replaces)
        if len(self.documents()) % 4 == 0:
            self.compact()


def _embedded_fast(tmp_path: Path) -> StoreFactory:
    counter = iter(range(1_000))
    options = SearchOptions(mode="fast", candidates=1_000, probe=8, min_pages=1)
    return lambda: _SketchingStore.open(
        tmp_path / f"index{next(counter)}", create=True, search=options
    )


def _qdrant_local(tmp_path: Path) -> StoreFactory:
    from colretrieve.store.qdrant import QdrantStore

    counter = iter(range(1_000))
    return lambda: QdrantStore.open(path=tmp_path / f"qdrant{next(counter)}", create=True)


def _qdrant_server(tmp_path: Path) -> StoreFactory:
    """Fresh collections on the live server at COLRETRIEVE_TEST_QDRANT_URL (dropped after)."""
    from colretrieve.store.qdrant import QdrantStore

    url = os.environ.get("COLRETRIEVE_TEST_QDRANT_URL")
    if not url:
        pytest.skip("set COLRETRIEVE_TEST_QDRANT_URL to run the suite against a live Qdrant")
    api_key = os.environ.get("COLRETRIEVE_TEST_QDRANT_API_KEY")
    run = uuid.uuid4().hex[:10]
    counter = iter(range(1_000))
    return lambda: QdrantStore.open(
        url=url, collection=f"colretrieve_test_{run}_{next(counter)}", api_key=api_key, create=True
    )


BACKENDS = {
    "embedded": _embedded,
    "embedded-exact": _embedded_exact,
    "embedded-fast": _embedded_fast,
    "qdrant-local": _qdrant_local,
    "qdrant-server": _qdrant_server,  # skipped unless COLRETRIEVE_TEST_QDRANT_URL is set
}


@pytest.fixture(params=sorted(BACKENDS))
def store_factory(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[StoreFactory]:
    opened: list[MultiVectorStore] = []
    make = BACKENDS[request.param](tmp_path)

    def factory() -> MultiVectorStore:
        store = make()
        opened.append(store)
        return store

    yield factory
    for store in opened:
        if request.param == "qdrant-server":
            store.drop()  # type: ignore[attr-defined]
        store.close()


def ingest(store: MultiVectorStore, docs: list[Doc], batch: int = 2) -> None:
    for doc in docs:
        start = store.begin_document(doc.record) + 1
        for first in range(start, len(doc.pages) + 1, batch):
            store.add_pages(
                doc.record.doc_id, doc.inputs(first, min(first + batch - 1, len(doc.pages)))
            )
        store.finish_document(doc.record.doc_id)


@pytest.fixture
def corpus() -> list[Doc]:
    return make_corpus()


@pytest.fixture
def store(store_factory: StoreFactory, corpus: list[Doc]) -> MultiVectorStore:
    store = store_factory()
    store.bind_model(MODEL)
    ingest(store, corpus)
    return store


def reference(docs: list[Doc], query: np.ndarray, k: int, half: bool = True):
    """(doc_id, page, score) of numpy's top-k, ties by (doc_id, page) like the stores."""
    pages = sorted((d.record.doc_id, n + 1, v) for d in docs for n, v in enumerate(d.pages))
    vectors = [v.astype(np.float16) if half else v for _, _, v in pages]
    scores = maxsim_lists([query], vectors)[0]
    return [(pages[i][0], pages[i][1], float(scores[i])) for i in top_k(scores, k)]


def assert_matches(hits, expected, exact_docs: list[Doc] | None = None) -> None:
    assert [(h.doc_id, h.page) for h in hits] == [(d, p) for d, p, _ in expected]
    np.testing.assert_allclose([h.score for h in hits], [s for _, _, s in expected], atol=1e-4)


def test_search_matches_numpy_reference(store: MultiVectorStore, corpus: list[Doc]) -> None:
    queries = make_queries()
    batch = store.search_batch(queries, k=10)
    for query, hits in zip(queries, batch, strict=True):
        assert_matches(hits, reference(corpus, query, 10))
        assert_matches(store.search(query, k=10), reference(corpus, query, 10))
        # Against unrounded float32 vectors the fp16 store is within 1e-3.
        exact = reference(corpus, query, 10, half=False)
        np.testing.assert_allclose([h.score for h in hits], [s for *_, s in exact], atol=1e-3)
        by_id = {d.record.doc_id: d.record for d in corpus}
        assert all(
            h.path == by_id[h.doc_id].path and h.title == by_id[h.doc_id].title for h in hits
        )


def test_k_larger_than_corpus_returns_every_page(store: MultiVectorStore, corpus) -> None:
    query = make_queries()[0]
    hits = store.search(query, k=1000)
    assert len(hits) == 60
    assert_matches(hits, reference(corpus, query, 1000))


@pytest.mark.parametrize(
    "filter_",
    [
        SearchFilter(doc_ids=frozenset({doc_id_for("doc-0-3"), doc_id_for("doc-0-7")})),
        SearchFilter(path_prefix="letters/"),
        SearchFilter(tags=frozenset({"red"})),
        SearchFilter(tags=frozenset({"red", "blue"})),
        SearchFilter(path_prefix="reports/", tags=frozenset({"blue"})),
        SearchFilter(doc_ids=frozenset()),
        SearchFilter(tags=frozenset({"absent"})),
    ],
)
def test_filters_apply_before_top_k(store, corpus, filter_: SearchFilter) -> None:
    kept = [
        d
        for d in corpus
        if (filter_.doc_ids is None or d.record.doc_id in filter_.doc_ids)
        and (filter_.path_prefix is None or d.record.path.startswith(filter_.path_prefix))
        and filter_.tags <= set(d.record.tags)
    ]
    for query in make_queries(n=2):
        assert_matches(store.search(query, 7, filter_), reference(kept, query, 7))


def test_incomplete_documents_are_invisible(store, corpus) -> None:
    extra = make_corpus(seed=5, n_docs=1)[0]
    # Make the new document the best match for a query built from its own page.
    query = extra.pages[2][:6]
    store.begin_document(extra.record)
    store.add_pages(extra.record.doc_id, extra.inputs(1, 3))
    hits = store.search(query, 1000)
    assert extra.record.doc_id not in {h.doc_id for h in hits}
    assert_matches(hits, reference(corpus, query, 1000))
    assert store.get_document(extra.record.doc_id).complete is False
    assert store.begin_document(extra.record) == 3  # idempotent: resume at page 4
    store.add_pages(extra.record.doc_id, extra.inputs(4, 5))
    store.finish_document(extra.record.doc_id)
    hits = store.search(query, 3)
    assert (hits[0].doc_id, hits[0].page) == (extra.record.doc_id, 3)
    assert_matches(hits, reference([*corpus, extra], query, 3))


def test_delete_removes_pages_from_search(store, corpus) -> None:
    gone = [corpus[0].record.doc_id, corpus[5].record.doc_id]
    assert store.delete_documents(gone) == 10
    assert store.get_document(gone[0]) is None
    kept = [d for d in corpus if d.record.doc_id not in gone]
    for query in make_queries(n=2):
        assert_matches(store.search(query, 1000), reference(kept, query, 1000))
    stats = store.stats()
    assert (stats.documents, stats.pages) == (10, 50)


def test_reindex_with_replaces_swaps_atomically(store, corpus) -> None:
    old = corpus[2]
    new = make_corpus(seed=9, n_docs=1)[0]
    new = Doc(DocumentRecord(new.record.doc_id, old.record.path, "v2", 1, 5), new.pages)
    query = new.pages[0][:5]
    store.begin_document(new.record)
    store.add_pages(new.record.doc_id, new.inputs())
    # Before finishing, search still sees exactly the old version.
    assert_matches(store.search(query, 1000), reference(corpus, query, 1000))
    store.finish_document(new.record.doc_id, replaces=[old.record.doc_id])
    swapped = [d for d in corpus if d is not old] + [new]
    assert_matches(store.search(query, 1000), reference(swapped, query, 1000))
    assert [d.doc_id for d in store.find_by_path(old.record.path)] == [new.record.doc_id]


def test_failed_replace_changes_nothing(store, corpus) -> None:
    new = make_corpus(seed=9, n_docs=1)[0]
    store.begin_document(new.record)
    store.add_pages(new.record.doc_id, new.inputs())
    with pytest.raises(DocumentNotFoundError):
        store.finish_document(new.record.doc_id, replaces=[corpus[0].record.doc_id, "f" * 64])
    assert store.get_document(new.record.doc_id).complete is False
    assert store.get_document(corpus[0].record.doc_id) is not None


def test_model_binding(store_factory: StoreFactory) -> None:
    store = store_factory()
    assert store.model is None
    store.bind_model(MODEL)
    store.bind_model(ModelInfo("copied/folder", MODEL.revision, MODEL.architecture, DIM))
    assert store.model == MODEL
    with pytest.raises(ModelMismatchError) as error:
        store.bind_model(OTHER_MODEL)
    assert error.value.index_model == MODEL.label
    assert store.model == MODEL


def test_reads(store, corpus) -> None:
    doc = corpus[4]
    info = store.get_document(doc.record.doc_id)
    assert (info.path, info.total_pages, info.stored_pages, info.complete) == (
        doc.record.path,
        5,
        5,
        True,
    )
    assert info.tags == tuple(sorted(doc.record.tags))
    paths = [d.path for d in store.documents()]
    assert paths == sorted(paths) and len(paths) == 12
    page = store.get_page(doc.record.doc_id, 2)
    assert (page.page, page.n_vectors, page.text, page.width, page.text_source) == (
        2,
        len(doc.pages[1]),
        "page 2",
        10,
        "ocr",
    )
    assert store.get_page(doc.record.doc_id, 6) is None
    vectors = store.page_vectors(doc.record.doc_id, 2)
    assert vectors.dtype == np.float32
    np.testing.assert_array_equal(vectors, doc.pages[1].astype(np.float16).astype(np.float32))
    stats = store.stats()
    assert (stats.documents, stats.incomplete_documents, stats.pages, stats.dim) == (12, 0, 60, DIM)
    assert stats.vectors == sum(len(p) for d in corpus for p in d.pages)
    assert stats.model == MODEL


def test_ties_break_by_doc_id_then_page(store_factory: StoreFactory) -> None:
    store = store_factory()
    store.bind_model(MODEL)
    vectors = unit_rows(np.random.default_rng(3), 4)
    names = ["zeta", "alpha", "mid"]
    for name in names:
        record = DocumentRecord(doc_id_for(name), f"{name}.pdf", name, 1, 2)
        store.begin_document(record)
        store.add_pages(record.doc_id, [PageInput(1, vectors), PageInput(2, vectors)])
        store.finish_document(record.doc_id)
    hits = store.search(vectors, 6)
    assert [(h.doc_id, h.page) for h in hits] == sorted(
        (doc_id_for(n), p) for n in names for p in (1, 2)
    )


def test_empty_store_returns_no_hits(store_factory: StoreFactory) -> None:
    store = store_factory()
    assert store.search(make_queries()[0], 5) == []
    store.bind_model(MODEL)
    assert store.search_batch(make_queries(n=2), 5) == [[], []]


def test_misuse_raises_the_same_errors(store, corpus) -> None:
    query = make_queries()[0]
    for k in (0, -1):
        with pytest.raises(InvalidInputError):
            store.search(query, k)
    for bad in (query[:, :5], query[0], np.zeros((0, DIM)), query.astype(np.int32)):
        with pytest.raises(InvalidInputError):
            store.search(bad, 3)
    with pytest.raises(DocumentNotFoundError):
        store.delete_documents([corpus[0].record.doc_id, "0" * 64])
    assert store.get_document(corpus[0].record.doc_id) is not None  # all or nothing

    extra = make_corpus(seed=7, n_docs=1)[0]
    doc_id = extra.record.doc_id
    with pytest.raises(DocumentNotFoundError):
        store.add_pages(doc_id, extra.inputs(1, 1))
    store.begin_document(extra.record)
    good = extra.pages[0]
    bad_batches = [
        [PageInput(1, good[:, :16])],  # wrong dim
        [PageInput(2, good)],  # gap: page 1 missing
        [PageInput(1, good), PageInput(1, good)],  # duplicate
        [PageInput(1, good), PageInput(3, good)],  # not contiguous
        [PageInput(0, good)],
        [PageInput(1, np.zeros((0, DIM), dtype=np.float32))],
        [PageInput(1, np.full((3, DIM), np.nan, dtype=np.float32))],
        [PageInput(1, np.ones((3, DIM), dtype=np.int64))],
    ]
    for batch in bad_batches:
        with pytest.raises(InvalidInputError):
            store.add_pages(doc_id, batch)
    assert store.get_document(doc_id).stored_pages == 0  # failed batches left nothing
    store.add_pages(doc_id, extra.inputs(1, 5))
    with pytest.raises(InvalidInputError):
        store.add_pages(doc_id, [PageInput(6, good)])  # past total_pages
    with pytest.raises(InvalidInputError):
        store.add_pages(doc_id, [PageInput(5, good)])  # already stored
    with pytest.raises(DocumentNotFoundError):
        store.finish_document("1" * 64)


def test_cannot_finish_a_partial_document_or_add_without_a_model(store_factory) -> None:
    store = store_factory()
    doc = make_corpus(seed=8, n_docs=1)[0]
    store.begin_document(doc.record)
    with pytest.raises(InvalidInputError):
        store.add_pages(doc.record.doc_id, doc.inputs(1, 1))  # no model bound yet
    store.bind_model(MODEL)
    store.add_pages(doc.record.doc_id, doc.inputs(1, 2))
    with pytest.raises(InvalidInputError):
        store.finish_document(doc.record.doc_id)
    store.add_pages(doc.record.doc_id, doc.inputs(3, 5))
    store.finish_document(doc.record.doc_id)
    with pytest.raises(InvalidInputError):
        store.add_pages(doc.record.doc_id, doc.inputs(1, 1))  # complete documents are closed
