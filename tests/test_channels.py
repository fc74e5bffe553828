"""Channels end to end through the public API and the bulk pipeline: text and bm25 indexed
without any visual model, channels added later embed only what they lack, dropped channels
free their storage, every channel resumes on its own, deletes and replacements reach every
channel, and fused hits say which channel found them."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from colretrieve.channels import BM25, TEXT, VISUAL
from colretrieve.channels.stores import drop_channel
from colretrieve.contracts import SearchFilter
from colretrieve.errors import InvalidInputError
from colretrieve.index import Index
from colretrieve.rasterize import inspect_source, render_pages
from colretrieve.settings import Settings
from indexer.pipeline import IngestOptions, Status, ingest
from tests.bad_inputs import CORPUS

FILES = (
    "pdfua__invoice.pdf",
    "camelot__good-energy-tariff-label.pdf",
    "tabula__campus-attacks-report.pdf",
)


@pytest.fixture()
def docs(tmp_path: Path) -> Path:
    folder = tmp_path / "docs"
    folder.mkdir()
    for name in FILES:
        shutil.copy(CORPUS / "pdfs" / name, folder / name)
    return folder


def pages_of(folder: Path) -> int:
    return sum(inspect_source(path).page_count for path in folder.iterdir())


def run(index: Index, folder: Path, channels: str) -> object:
    return ingest([folder], index.writers(channels), IngestOptions(workers=1, batch_size=2))


def test_text_channels_index_and_search_without_a_visual_model(tmp_path, docs, text_encoder):
    with Index.open(tmp_path / "idx", create=True, text_encoder=text_encoder) as index:
        assert index.ingest_channels() == (TEXT, BM25)  # no visual model given or bound
        report = run(index, docs, "text,bm25")
        assert {o.status for o in report.outcomes} == {Status.INDEXED}
        assert all(o.channels == (TEXT, BM25) for o in report.outcomes)
        assert index.channels == (TEXT, BM25)
        assert index.model is None  # the visual store holds nothing
        stats = index.channel_stats()
        assert stats[TEXT].pages == stats[BM25].pages == pages_of(docs)
        assert stats[VISUAL].pages == 0

        hits = index.search("invoice total amount due", k=5)
        assert hits and all({m.channel for m in h.matches} <= {TEXT, BM25} for h in hits)
        assert all(m.rank >= 1 for h in hits for m in h.matches)
        lexical = index.search("invoice total amount due", k=5, channels="bm25")
        assert all([m.channel for m in h.matches] == [BM25] for h in lexical)
        with pytest.raises(InvalidInputError, match="no searchable visual channel"):
            index.search("invoice", channels="visual")


def test_a_channel_added_later_embeds_only_what_it_lacks(tmp_path, docs, text_encoder):
    with Index.open(tmp_path / "idx", create=True, text_encoder=text_encoder) as index:
        run(index, docs, "bm25")
        assert index.channels == (BM25,)
        report = run(index, docs, "text,bm25")
        # Every page is read again for the new channel, but bm25 writes nothing new.
        assert all(o.channels == (TEXT,) for o in report.outcomes)
        assert index.channel_stats()[BM25].pages == pages_of(docs)
        assert index.channels == (TEXT, BM25)
        again = run(index, docs, "text,bm25")
        assert again.pages_embedded == 0
        assert {o.status for o in again.outcomes} == {Status.UNCHANGED}


def test_each_channel_resumes_on_its_own(tmp_path, docs, text_encoder):
    """An interrupted run left the text channel two pages into a document that bm25 never
    saw: the next run embeds only the rest for text and everything for bm25."""
    target = docs / "tabula__campus-attacks-report.pdf"
    source = inspect_source(target)
    assert source.page_count >= 3
    with Index.open(tmp_path / "idx", create=True, text_encoder=text_encoder) as index:
        writers = index.writers("text,bm25")
        from colretrieve.ingest import document_record

        record = document_record(source)
        text = writers[TEXT]
        text.bind()
        text.store.begin_document(record)
        text.write(record.doc_id, render_pages(target, source.kind, 1, 2, 72, 10**6, images=False))
        before = index.stores.text.get_document(record.doc_id)
        assert (before.stored_pages, before.complete) == (2, False)
        assert index.search("assaults", k=3, channels=None) == []  # nothing complete yet

        report = ingest([target], writers, IngestOptions(workers=1, batch_size=2))
        (outcome,) = report.outcomes
        assert outcome.status is Status.INDEXED and outcome.channels == (TEXT, BM25)
        assert report.pages_embedded == source.page_count  # rendered once for both channels
        for channel in (TEXT, BM25):
            stored = index.stores.get(channel).get_document(record.doc_id)
            assert (stored.stored_pages, stored.complete) == (source.page_count, True)


def test_changed_files_are_replaced_and_deletes_reach_every_channel(tmp_path, docs, text_encoder):
    with Index.open(tmp_path / "idx", create=True, text_encoder=text_encoder) as index:
        run(index, docs, "text,bm25")
        changed = docs / FILES[0]
        old_id = inspect_source(changed).sha256
        shutil.copy(CORPUS / "pdfs" / "pdfplumber__demolition-committee-minutes-fr.pdf", changed)
        new_id = inspect_source(changed).sha256
        run(index, docs, "text,bm25")
        for channel in (TEXT, BM25):
            store = index.stores.get(channel)
            assert store.get_document(old_id) is None
            assert [d.doc_id for d in store.find_by_path(str(changed))] == [new_id]

        deleted = index.delete([str(changed)])
        assert [d.doc_id for d in deleted] == [new_id]
        for channel in (TEXT, BM25):
            assert index.stores.get(channel).get_document(new_id) is None
        assert all(h.doc_id != new_id for h in index.search("demolition committee", k=10))


def test_filters_apply_to_every_channel_before_fusion(tmp_path, docs, text_encoder):
    with Index.open(tmp_path / "idx", create=True, text_encoder=text_encoder) as index:
        run(index, docs, "text,bm25")
        only = inspect_source(docs / FILES[1]).sha256
        hits = index.search(
            "invoice total amount due", k=10, filter=SearchFilter(doc_ids=frozenset({only}))
        )
        assert hits and {h.doc_id for h in hits} == {only}
        assert all(m.channel in (TEXT, BM25) for h in hits for m in h.matches)


def test_dropping_a_channel_frees_its_storage(tmp_path, docs, text_encoder):
    root = tmp_path / "idx"
    with Index.open(root, create=True, text_encoder=text_encoder) as index:
        run(index, docs, "text,bm25")
    assert (root / "text").is_dir()
    settings = Settings(index=root)
    assert drop_channel(settings, TEXT) is True
    assert not (root / "text").exists()
    assert drop_channel(settings, TEXT) is False
    with pytest.raises(InvalidInputError, match="visual channel is the index itself"):
        drop_channel(settings, VISUAL)
    with Index.open(root, read_only=True) as index:
        assert index.channels == (BM25,)
        assert index.search("invoice", k=3)  # bm25 still answers


def test_pages_without_text_are_stored_and_never_match(tmp_path, text_encoder):
    """A page image has no text layer: both text channels store it (ingest stays whole)
    and neither returns it for a text query."""
    from PIL import Image

    image = tmp_path / "scan.png"
    Image.new("RGB", (400, 300), "white").save(image)
    with Index.open(tmp_path / "idx", create=True, text_encoder=text_encoder) as index:
        index.add_document(image)
        assert index.channel_stats()[TEXT].pages == index.channel_stats()[BM25].pages == 1
        assert index.search("anything at all", k=5, channels="bm25") == []
        hits = index.search("anything at all", k=5, channels="text")
        assert [m.score for h in hits for m in h.matches] == [0.0]  # its zero vector


def test_qdrant_local_mode_holds_the_same_channels(tmp_path, docs, text_encoder):
    """The Qdrant backend through the same Index code: text and bm25 collections beside the
    visual one on one client, searched and fused like the embedded store."""
    pytest.importorskip("qdrant_client")
    settings = Settings(index=tmp_path / "q", store="qdrant")
    with Index.from_settings(settings, create=True, text_encoder=text_encoder) as index:
        report = run(index, docs, "text,bm25")
        assert {o.status for o in report.outcomes} == {Status.INDEXED}
        assert index.channels == (TEXT, BM25)
        hits = index.search("invoice total amount due", k=5)
        assert hits and all({m.channel for m in h.matches} <= {TEXT, BM25} for h in hits)
    with Index.open(tmp_path / "embedded", create=True, text_encoder=text_encoder) as embedded:
        run(embedded, docs, "text,bm25")
        expected = embedded.search("invoice total amount due", k=3, channels="text")
    with Index.from_settings(settings, read_only=True, text_encoder=text_encoder) as index:
        # Both backends score text MaxSim exactly at this size: the same top pages.
        found = index.search("invoice total amount due", k=3, channels="text")
        assert [(h.doc_id, h.page) for h in found] == [(h.doc_id, h.page) for h in expected]
    assert drop_channel(settings, BM25) is True
    with Index.from_settings(settings, read_only=True) as index:
        assert index.channels == (TEXT,)
