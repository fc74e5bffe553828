"""Qdrant-only behaviour: schema, idempotent retried writes, opening, errors, configuration.

The contract itself is checked by the shared conformance suite (test_store_conformance.py).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from colretrieve.errors import (
    IndexLockedError,
    IndexNotFoundError,
    InvalidInputError,
    StoreUnavailableError,
)
from colretrieve.settings import Settings
from colretrieve.store import open_configured
from colretrieve.store import qdrant as qdrant_module
from colretrieve.store import qdrant_schema as layout
from colretrieve.store.qdrant import QdrantStore
from tests.store_corpus import MODEL, make_corpus, make_queries


def test_schema_follows_the_colpali_recipe(tmp_path: Path) -> None:
    with QdrantStore.open(path=tmp_path / "q", collection="pages", create=True) as store:
        store.bind_model(MODEL)
        info = store._client.get_collection("pages")
    vectors = info.config.params.vectors
    full, pooled = vectors[layout.FULL], vectors[layout.POOLED]
    assert full.multivector_config.comparator.value == "max_sim"
    assert pooled.multivector_config.comparator.value == "max_sim"
    assert full.hnsw_config.m == 0  # rerank only
    assert pooled.hnsw_config is None  # the collection's HNSW: the first stage is indexed
    assert full.distance.value == pooled.distance.value == "Dot"
    assert info.config.metadata[layout.META_MODEL] == MODEL.to_dict()


def test_pooling_and_ids() -> None:
    rows = np.arange(10, dtype=np.float32).reshape(5, 2)
    np.testing.assert_allclose(layout.pooled(rows, 2), [[1, 2], [5, 6], [8, 9]])
    assert layout.page_point_id("a" * 64, 1) == layout.page_point_id("a" * 64, 1)
    assert layout.page_point_id("a" * 64, 1) != layout.page_point_id("a" * 64, 2)
    assert layout.dirs_of("/data/reports/x.pdf") == ["/", "/data/", "/data/reports/"]


def test_retried_add_pages_never_doubles_a_page(tmp_path: Path, monkeypatch) -> None:
    """A write that dies after its points landed but before the page count moved."""
    doc = make_corpus(n_docs=1)[0]
    with QdrantStore.open(path=tmp_path / "q", create=True) as store:
        store.bind_model(MODEL)
        store.begin_document(doc.record)
        store.add_pages(doc.record.doc_id, doc.inputs(1, 2))

        def crash(*args, **kwargs):
            raise ConnectionError("connection reset")

        with monkeypatch.context() as patch:
            patch.setattr(store, "_set_record", crash)
            with pytest.raises(ConnectionError):
                store.add_pages(doc.record.doc_id, doc.inputs(3, 4))
        # The contract sees nothing of the failed call; the retry overwrites its points.
        assert store.begin_document(doc.record) == 2
        assert store.get_page(doc.record.doc_id, 3) is None
        store.add_pages(doc.record.doc_id, doc.inputs(3, 5))
        store.finish_document(doc.record.doc_id)
        assert store._client.count(store.collection).count == 5
        assert len(store.search(make_queries()[0], 100)) == 5


def test_reopen_lock_read_only_and_missing(tmp_path: Path) -> None:
    folder = tmp_path / "q"
    with pytest.raises(IndexNotFoundError):
        QdrantStore.open(path=folder)
    corpus = make_corpus(n_docs=2)
    with QdrantStore.open(path=folder, create=True) as store:
        store.bind_model(MODEL)
        for doc in corpus:
            store.begin_document(doc.record)
            store.add_pages(doc.record.doc_id, doc.inputs())
            store.finish_document(doc.record.doc_id)
        with pytest.raises(IndexLockedError):
            QdrantStore.open(path=folder)  # local mode: one client per folder
    with pytest.raises(IndexNotFoundError):
        QdrantStore.open(path=folder, collection="other")
    with QdrantStore.open(path=folder, read_only=True) as store:
        assert store.model == MODEL and store.stats().pages == 10
        for write in (
            lambda: store.bind_model(MODEL),
            lambda: store.begin_document(corpus[0].record),
            lambda: store.delete_documents([corpus[0].record.doc_id]),
            lambda: store.finish_document(corpus[0].record.doc_id),
        ):
            with pytest.raises(InvalidInputError):
                write()


def test_unreachable_server_raises_store_unavailable() -> None:
    with pytest.raises(StoreUnavailableError) as error:
        QdrantStore.open(url="http://127.0.0.1:9", collection="pages", timeout=2)
    assert error.value.code == "store_unavailable"


def test_local_mode_warns_on_a_large_collection(tmp_path: Path, monkeypatch) -> None:
    doc = make_corpus(n_docs=1)[0]
    with QdrantStore.open(path=tmp_path / "q", create=True) as store:
        store.bind_model(MODEL)
        store.begin_document(doc.record)
        store.add_pages(doc.record.doc_id, doc.inputs())
    monkeypatch.setattr(qdrant_module, "LOCAL_MODE_WARN_PAGES", 3)
    with pytest.warns(UserWarning, match="local mode"):
        QdrantStore.open(path=tmp_path / "q").close()


def test_selected_by_settings_and_environment(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("COLRETRIEVE_STORE", "qdrant")
    monkeypatch.setenv("COLRETRIEVE_QDRANT_PATH", str(tmp_path / "q"))
    monkeypatch.setenv("COLRETRIEVE_QDRANT_COLLECTION", "pages")
    monkeypatch.setenv("COLRETRIEVE_QDRANT_API_KEY", "s3cret")
    settings = Settings()
    assert "s3cret" not in repr(settings)  # a SecretStr
    with open_configured(settings, create=True) as store:
        assert isinstance(store, QdrantStore)
        assert store.collection == "pages"
    with pytest.raises(ValueError):
        Settings(qdrant_url="db:6333")
    with pytest.raises(ValueError):
        Settings(qdrant_collection="no spaces")
