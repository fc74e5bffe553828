"""One conformance suite for every LexicalStore (bm25) backend, checked against a plain
Python BM25 reference of each backend's formula (tests/lexical_corpus.py).

Add a backend by adding a param to ``store_factory``; every test then runs against it.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from colretrieve.contracts import DocumentRecord, LexicalStore, PageText, SearchFilter
from colretrieve.errors import DocumentNotFoundError, InvalidInputError
from colretrieve.store.lexical import EmbeddedLexicalStore
from colretrieve.store.lexical_base import MAX_PAGE_CHARS
from colretrieve.text.analyzer import terms
from tests.lexical_corpus import QUERIES, TextDoc, ingest, make_text_corpus, reference, text_doc
from tests.store_corpus import doc_id_for

StoreFactory = Callable[[], LexicalStore]


def _embedded(tmp_path: Path) -> StoreFactory:
    counter = iter(range(1_000))
    return lambda: EmbeddedLexicalStore.open(tmp_path / f"bm25-{next(counter)}", create=True)


def _qdrant_local(tmp_path: Path) -> StoreFactory:
    from colretrieve.store.qdrant_lexical import QdrantLexicalStore

    counter = iter(range(1_000))
    return lambda: QdrantLexicalStore.open(path=tmp_path / f"q{next(counter)}", create=True)


def _qdrant_server(tmp_path: Path) -> StoreFactory:
    """Fresh collections on the live server at COLRETRIEVE_TEST_QDRANT_URL (dropped after)."""
    from colretrieve.store.qdrant_lexical import QdrantLexicalStore

    url = os.environ.get("COLRETRIEVE_TEST_QDRANT_URL")
    if not url:
        pytest.skip("set COLRETRIEVE_TEST_QDRANT_URL to run the suite against a live Qdrant")
    api_key = os.environ.get("COLRETRIEVE_TEST_QDRANT_API_KEY")
    run = uuid.uuid4().hex[:10]
    counter = iter(range(1_000))
    return lambda: QdrantLexicalStore.open(
        url=url,
        collection=f"colretrieve_test_{run}_{next(counter)}_bm25",
        api_key=api_key,
        create=True,
    )


BACKENDS = {
    "embedded": _embedded,
    "qdrant-local": _qdrant_local,
    "qdrant-server": _qdrant_server,  # skipped unless COLRETRIEVE_TEST_QDRANT_URL is set
}


@pytest.fixture(params=sorted(BACKENDS))
def backend(request: pytest.FixtureRequest) -> str:
    return request.param


@pytest.fixture
def store_factory(backend: str, tmp_path: Path) -> Iterator[StoreFactory]:
    opened: list[LexicalStore] = []
    make = BACKENDS[backend](tmp_path)

    def factory() -> LexicalStore:
        store = make()
        opened.append(store)
        return store

    yield factory
    for store in opened:
        if backend == "qdrant-server":
            store.drop()  # type: ignore[attr-defined]
        store.close()


@pytest.fixture
def corpus() -> list[TextDoc]:
    return make_text_corpus()


@pytest.fixture
def store(store_factory: StoreFactory, corpus: list[TextDoc]) -> LexicalStore:
    store = store_factory()
    ingest(store, corpus)
    return store


def assert_matches(hits, expected, backend: str) -> None:
    assert [(h.doc_id, h.page) for h in hits] == [(d, p) for d, p, _ in expected]
    if backend != "qdrant-server":  # a server's idf statistics may lag deletes: order only
        tolerance = 1e-9 if backend == "embedded" else 1e-5
        assert [h.score for h in hits] == pytest.approx([s for *_, s in expected], rel=tolerance)


def test_search_matches_the_bm25_reference(store, corpus, backend) -> None:
    by_id = {d.record.doc_id: d.record for d in corpus}
    for hits, query in zip(store.search_text_batch(QUERIES, 5), QUERIES, strict=True):
        assert hits, query
        assert_matches(hits, reference(corpus, corpus, query, 5, backend), backend)
        assert store.search_text(query, 5) == hits
        assert all(
            h.path == by_id[h.doc_id].path and h.title == by_id[h.doc_id].title for h in hits
        )
        assert all(h.score > 0 and h.matches == () for h in hits)


def test_rarer_terms_rank_higher(store) -> None:
    """'electricity' is on six of 13 pages, 'fiberglass' on one: the fiberglass page wins, and of
    two pages with one 'electricity' each, the shorter one ranks higher."""
    hits = store.search_text("electricity fiberglass", 10)
    assert (hits[0].doc_id, hits[0].page) == (doc_id_for("wind"), 2)
    ranked = [(h.doc_id, h.page) for h in store.search_text("electricity", 10)]
    assert ranked.index((doc_id_for("battery"), 1)) < ranked.index((doc_id_for("solar"), 1))


def test_k_and_pages_without_shared_terms(store, corpus, backend) -> None:
    assert len(store.search_text("electricity", 1)) == 1
    every = store.search_text("electricity", 1000)
    assert_matches(every, reference(corpus, corpus, "electricity", 1000, backend), backend)
    assert len(every) == 6  # only pages holding the term: never the empty page
    assert store.search_text("zeppelin", 5) == []
    for k in (0, -1, True, 1.5, "3"):
        with pytest.raises(InvalidInputError):
            store.search_text("electricity", k)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "filter_",
    [
        SearchFilter(doc_ids=frozenset({doc_id_for("tariff"), doc_id_for("hydro")})),
        SearchFilter(path_prefix="letters/"),
        SearchFilter(path_prefix="reports/gr"),
        SearchFilter(tags=frozenset({"red"})),
        SearchFilter(tags=frozenset({"red", "blue"})),
        SearchFilter(path_prefix="reports/", tags=frozenset({"blue"})),
        SearchFilter(doc_ids=frozenset()),
        SearchFilter(tags=frozenset({"absent"})),
    ],
)
def test_filters_apply_before_ranking(store, corpus, backend, filter_: SearchFilter) -> None:
    kept = [
        d
        for d in corpus
        if (filter_.doc_ids is None or d.record.doc_id in filter_.doc_ids)
        and (filter_.path_prefix is None or d.record.path.startswith(filter_.path_prefix))
        and filter_.tags <= set(d.record.tags)
    ]
    for query in QUERIES:
        expected = reference(corpus, kept, query, 2, backend)
        assert_matches(store.search_text(query, 2, filter_), expected, backend)


def test_a_filtered_search_finds_a_low_ranked_page(store) -> None:
    """The last page for 'electricity' (the long solar page) is the top hit when the search
    is filtered to its document or folder: the filter applies before ranking, not to a top-k."""
    everything = store.search_text("electricity", 100)
    last = (everything[-1].doc_id, everything[-1].page)
    assert last == (doc_id_for("solar"), 1)
    assert [(h.doc_id, h.page) for h in store.search_text("electricity", 1)] != [last]
    for filter_ in (
        SearchFilter(doc_ids=frozenset({doc_id_for("solar")})),
        SearchFilter(path_prefix="letters/s"),
        SearchFilter(path_prefix="letters/", tags=frozenset({"red"})),
    ):
        assert [(h.doc_id, h.page) for h in store.search_text("electricity", 1, filter_)] == [last]


@pytest.mark.parametrize(
    "query",
    [
        "AND",
        "solar AND wind",
        "solar OR",
        "NOT solar",
        '"',
        '"solar panels',
        "sol*",
        "*",
        "NEAR(solar wind)",
        "NEAR(",
        "(solar) OR (wind",
        "solar - wind",
        "terms: solar",
        "^solar",
        "{terms} : wind",
        "solar + wind",
        "a\x00solar",
        "solar\u200bwind",
    ],
)
def test_query_syntax_is_never_interpreted(store, query: str) -> None:
    plain = " ".join(terms(query))
    assert store.search_text(query, 5) == store.search_text(plain, 5)


@pytest.mark.parametrize("query", ["", "   ", "the and of to", "?!", "\x00", "*"])
def test_queries_without_terms_find_nothing(store, query: str) -> None:
    assert store.search_text(query, 5) == []


def test_batch_with_empty_and_bad_queries(store) -> None:
    batch = store.search_text_batch(["electricity", "the", "wind"], 3)
    assert batch[0] == store.search_text("electricity", 3)
    assert batch[1] == []
    assert batch[2] == store.search_text("wind", 3)
    assert store.search_text_batch([], 3) == []
    for bad in ([b"solar"], [None], [3]):
        with pytest.raises(InvalidInputError):
            store.search_text_batch(bad, 3)  # type: ignore[arg-type]
    with pytest.raises(InvalidInputError):
        store.search_text_batch("solar", 3)
    with pytest.raises(InvalidInputError):
        store.search_text("solar", 3, {"tags": ["red"]})  # type: ignore[arg-type]


def test_ties_break_by_doc_id_then_page(store_factory: StoreFactory) -> None:
    store = store_factory()
    names = ["zeta", "alpha", "mid"]
    for name in names:
        doc = text_doc(name, f"{name}.pdf", ["copper wire", "copper wire"])
        store.begin_document(doc.record)
        store.add_texts(doc.record.doc_id, doc.pages())
        store.finish_document(doc.record.doc_id)
    hits = store.search_text("copper", 6)
    assert [(h.doc_id, h.page) for h in hits] == sorted(
        (doc_id_for(n), p) for n in names for p in (1, 2)
    )
    assert len({h.score for h in hits}) == 1
    assert [(h.doc_id, h.page) for h in store.search_text("copper", 3)] == [
        (h.doc_id, h.page) for h in hits[:3]
    ]


def test_empty_store_returns_no_hits(store_factory: StoreFactory) -> None:
    store = store_factory()
    assert store.search_text("solar", 5) == []
    assert store.search_text_batch(["solar", "wind"], 5) == [[], []]
    stats = store.stats()
    assert (stats.documents, stats.pages, stats.vectors, stats.dim, stats.model) == (
        0,
        0,
        0,
        None,
        None,
    )


def test_lifecycle_resume_and_incomplete_documents_are_invisible(store, corpus, backend):
    extra = text_doc("zeppelin", "reports/zeppelin.pdf", ["zeppelin one", "zeppelin two", "x"])
    assert store.begin_document(extra.record) == 0
    store.add_texts(extra.record.doc_id, extra.pages(1, 1))
    assert store.begin_document(extra.record) == 1  # idempotent: resume at page 2
    store.add_texts(extra.record.doc_id, extra.pages(2, 2))
    assert store.search_text("zeppelin", 5) == []
    info = store.get_document(extra.record.doc_id)
    assert (info.complete, info.stored_pages, info.total_pages) == (False, 2, 3)
    assert store.stats().incomplete_documents == 1
    with pytest.raises(InvalidInputError):
        store.finish_document(extra.record.doc_id)  # a page is missing
    store.add_texts(extra.record.doc_id, [])  # nothing to do
    store.add_texts(extra.record.doc_id, extra.pages(3, 3))
    store.finish_document(extra.record.doc_id)
    hits = store.search_text("zeppelin", 5)
    assert [(h.doc_id, h.page) for h in hits] == [
        (extra.record.doc_id, 1),
        (extra.record.doc_id, 2),
    ]
    assert_matches(hits, reference([*corpus, extra], [extra], "zeppelin", 5, backend), backend)
    with pytest.raises(InvalidInputError):
        store.add_texts(extra.record.doc_id, [PageText(1, "x")])  # complete: closed


def test_order_rule_and_bad_pages_store_nothing(store) -> None:
    doc = text_doc("orders", "orders.pdf", ["one", "two", "three"])
    with pytest.raises(DocumentNotFoundError):
        store.add_texts(doc.record.doc_id, doc.pages(1, 1))
    store.begin_document(doc.record)
    bad_batches = [
        [PageText(2, "two")],  # gap: page 1 missing
        [PageText(1, "one"), PageText(1, "one")],  # repeat
        [PageText(1, "one"), PageText(3, "three")],  # not contiguous
        [PageText(0, "zero")],
        [PageText(True, "one")],  # type: ignore[arg-type]
        [PageText(1, None)],  # type: ignore[arg-type]
        [PageText(1, b"bytes")],  # type: ignore[arg-type]
        [PageText(1, "one"), PageText(2, 2)],  # type: ignore[arg-type]
        [("1", "one")],
        [PageText(1, "one"), PageText(2, "two"), PageText(3, "three"), PageText(4, "four")],
    ]
    for batch in bad_batches:
        with pytest.raises(InvalidInputError):
            store.add_texts(doc.record.doc_id, batch)  # type: ignore[arg-type]
    assert store.get_document(doc.record.doc_id).stored_pages == 0  # all or nothing
    store.add_texts(doc.record.doc_id, doc.pages(1, 2))
    with pytest.raises(InvalidInputError):
        store.add_texts(doc.record.doc_id, [PageText(2, "two")])  # already stored
    with pytest.raises(DocumentNotFoundError):
        store.finish_document("1" * 64)
    with pytest.raises(InvalidInputError):
        store.begin_document("not a record")  # type: ignore[arg-type]


def test_odd_texts_nul_bytes_and_the_size_cap(store_factory: StoreFactory) -> None:
    store = store_factory()
    long = "filler " * (MAX_PAGE_CHARS // 7) + " overflowword"
    doc = text_doc(
        "odd",
        "odd.pdf",
        ["alpha\x00beta", "", "\ud800 lone surrogate gamma", long, "Ünïcödé Straße naïve"],
    )
    store.begin_document(doc.record)
    store.add_texts(doc.record.doc_id, doc.pages())
    store.finish_document(doc.record.doc_id)
    assert [h.page for h in store.search_text("beta", 5)] == [1]
    assert [h.page for h in store.search_text("alpha", 5)] == [1]
    assert [h.page for h in store.search_text("gamma", 5)] == [3]
    assert [h.page for h in store.search_text("filler", 5)] == [4]
    assert store.search_text("overflowword", 5) == []  # past MAX_PAGE_CHARS: not indexed
    assert [h.page for h in store.search_text("STRASSE", 5)] == [5]  # casefolded: ß -> ss
    assert [h.page for h in store.search_text("ünïcödé", 5)] == [5]
    assert store.get_document(doc.record.doc_id).stored_pages == 5


def test_delete_and_stats(store, corpus, backend) -> None:
    gone = [doc_id_for("wind"), doc_id_for("grid")]
    with pytest.raises(DocumentNotFoundError):
        store.delete_documents([gone[0], "0" * 64])
    assert store.get_document(gone[0]) is not None  # all or nothing
    assert store.delete_documents(gone) == 5
    assert store.get_document(gone[0]) is None
    kept = [d for d in corpus if d.record.doc_id not in gone]
    for query in QUERIES:
        expected = reference(kept, kept, query, 10, backend)
        assert_matches(store.search_text(query, 10), expected, backend)
    stats = store.stats()
    assert (stats.documents, stats.incomplete_documents, stats.pages) == (4, 0, 8)
    assert (stats.vectors, stats.dim, stats.model) == (0, None, None)
    assert store.delete_documents([]) == 0


def test_replace_swaps_in_one_step(store, corpus, backend) -> None:
    old = next(d for d in corpus if d.record.path == "reports/battery.pdf")
    new = text_doc("battery-v2", old.record.path, ["Sodium batteries avoid lithium.", "x"])
    store.begin_document(new.record)
    store.add_texts(new.record.doc_id, new.pages())
    with pytest.raises(InvalidInputError):
        store.finish_document(new.record.doc_id, replaces=[new.record.doc_id])
    with pytest.raises(DocumentNotFoundError):
        store.finish_document(new.record.doc_id, replaces=[old.record.doc_id, "f" * 64])
    assert store.get_document(new.record.doc_id).complete is False  # failed: nothing moved
    assert store.get_document(old.record.doc_id) is not None
    # Before finishing, search still sees exactly the old version.
    assert {h.doc_id for h in store.search_text("lithium", 10)} == {old.record.doc_id}
    store.finish_document(new.record.doc_id, replaces=[old.record.doc_id])
    assert [(h.doc_id, h.page) for h in store.search_text("lithium", 10)] == [
        (new.record.doc_id, 1)
    ]
    assert [d.doc_id for d in store.find_by_path(old.record.path)] == [new.record.doc_id]
    assert store.get_document(old.record.doc_id) is None


def test_reads(store, corpus) -> None:
    assert isinstance(store, LexicalStore)
    doc = corpus[3]
    info = store.get_document(doc.record.doc_id)
    assert (info.path, info.title, info.total_pages, info.stored_pages, info.complete) == (
        doc.record.path,
        doc.record.title,
        2,
        2,
        True,
    )
    assert info.tags == tuple(sorted(doc.record.tags))
    assert store.get_document("9" * 64) is None
    assert store.find_by_path("nowhere.pdf") == []
    documents = store.documents()
    assert [(d.path, d.doc_id) for d in documents] == sorted((d.path, d.doc_id) for d in documents)
    assert len(documents) == 6
    store.compact()
    assert store.search_text("electricity", 3)


def test_every_call_checks_its_input(store) -> None:
    record = DocumentRecord(doc_id="", path="x.pdf", title="x", size_bytes=1, total_pages=1)
    with pytest.raises(InvalidInputError):
        store.begin_document(record)
    with pytest.raises(InvalidInputError):
        store.search_text(None, 3)  # type: ignore[arg-type]


def test_backends_agree_on_the_top_results(tmp_path: Path, corpus) -> None:
    """Same pages found, same top two on this corpus. Below that the backends may differ:
    their idf and length norms differ for common terms (docs/bm25.md)."""
    from colretrieve.store.qdrant_lexical import QdrantLexicalStore

    with (
        EmbeddedLexicalStore.open(tmp_path / "e", create=True) as embedded,
        QdrantLexicalStore.open(path=tmp_path / "q", create=True) as qdrant,
    ):
        stores = (embedded, qdrant)
        for store in stores:
            ingest(store, corpus)
        for query in QUERIES:
            found = [[(h.doc_id, h.page) for h in s.search_text(query, 100)] for s in stores]
            assert found[0][:2] == found[1][:2], query
            assert set(found[0]) == set(found[1]), query
