"""`colretrieve migrate`: embedded -> Qdrant (local mode) -> embedded on a real tiny-model index,
with identical search results, and resumption after an interruption or a SIGKILL."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from colretrieve.contracts import MultiVectorStore
from colretrieve.errors import InvalidInputError
from colretrieve.settings import Settings
from colretrieve.store import EmbeddedStore
from indexer.migrate import Location, migrate, open_location, parse_location

ROOT = Path(__file__).resolve().parents[1]
PDFS = ROOT.parent / "shared" / "corpus" / "pdfs"
FILES = [
    "camelot__imd-rainfall-distribution.pdf",
    "pdfplumber__demolition-committee-minutes-fr.pdf",
    "opendataloader__bialetti-income-statement-it.pdf",
    "pdfua__academic-abstract.pdf",
]
QUERIES = ["rainfall distribution", "committee minutes", "income statement", "abstract"]
SETTINGS = Settings()


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory, tiny_embedder) -> Path:
    """An embedded index of four corpus PDFs (7 pages), built once with the tiny model."""
    if not all((PDFS / name).exists() for name in FILES):
        pytest.skip(f"needs the shared corpus at {PDFS}")
    from colretrieve.channels.writers import VisualWriter
    from indexer.pipeline import IngestOptions, ingest

    folder = tmp_path_factory.mktemp("pdfs")
    for name in FILES:
        shutil.copy(PDFS / name, folder / name)
    index = tmp_path_factory.mktemp("built") / "index"
    with EmbeddedStore.open(index, create=True) as store:
        report = ingest(
            [folder],
            {"visual": VisualWriter(store, tiny_embedder)},
            IngestOptions(dpi=50, workers=1),
        )
    assert report.exit_code == 0 and report.pages_embedded == 7
    return index


def hits_of(store: MultiVectorStore, queries: list[np.ndarray]) -> list[list[tuple]]:
    return [
        [(h.doc_id, h.path, h.page, h.title, h.score) for h in hits]
        for hits in store.search_batch(queries, k=10)
    ]


def assert_same_index(a: MultiVectorStore, b: MultiVectorStore, queries: list[np.ndarray]) -> None:
    assert [
        (d.doc_id, d.path, d.title, d.tags, d.stored_pages, d.complete) for d in a.documents()
    ] == [(d.doc_id, d.path, d.title, d.tags, d.stored_pages, d.complete) for d in b.documents()]
    sa, sb = a.stats(), b.stats()
    assert (sa.documents, sa.pages, sa.vectors, sa.model) == (
        sb.documents,
        sb.pages,
        sb.vectors,
        sb.model,
    )
    for doc in a.documents():
        for page in range(1, doc.total_pages + 1):
            assert a.get_page(doc.doc_id, page) == b.get_page(doc.doc_id, page)
            np.testing.assert_array_equal(
                a.page_vectors(doc.doc_id, page), b.page_vectors(doc.doc_id, page)
            )
    for want, got in zip(hits_of(a, queries), hits_of(b, queries), strict=True):
        assert [h[:4] for h in want] == [h[:4] for h in got]
        np.testing.assert_allclose([h[4] for h in want], [h[4] for h in got], atol=1e-4)


def test_round_trip_embedded_qdrant_embedded(built: Path, tmp_path: Path, tiny_embedder) -> None:
    queries = tiny_embedder.embed_queries(QUERIES)
    with EmbeddedStore.open(built, read_only=True) as source:
        first = source.documents()[0].doc_id
        queries.append(source.page_vectors(first, 1)[:16])  # a query with an exact match
    qdrant_at = parse_location(f"qdrant-local://{tmp_path / 'q'}/pages")
    back_at = parse_location(str(tmp_path / "back"))
    with EmbeddedStore.open(built, read_only=True) as source:
        with open_location(qdrant_at, SETTINGS, create=True) as qdrant:
            report = migrate(source, qdrant, batch_pages=1, verify_queries=7)
            assert (report.copied, report.pages_copied, report.queries_verified) == (4, 7, 7)
            assert_same_index(source, qdrant, queries)
            # A second run finds everything there and copies nothing.
            again = migrate(source, qdrant)
            assert (again.already_there, again.pages_copied) == (4, 0)
        with (
            open_location(qdrant_at, SETTINGS, read_only=True) as qdrant,
            open_location(back_at, SETTINGS, create=True) as back,
        ):
            migrate(qdrant, back, batch_pages=3)
            assert_same_index(source, back, queries)


class Interrupt(Exception):
    pass


def test_interrupted_migration_resumes(built: Path, tmp_path: Path, tiny_embedder) -> None:
    class StopAfter:
        def __init__(self, pages: int) -> None:
            self.left = pages

        def planned(self, documents: int, pages: int) -> None:
            pass

        def pages_done(self, count: int) -> None:
            self.left -= count
            if self.left <= 0:
                raise Interrupt

    at = parse_location(f"qdrant-local://{tmp_path / 'q'}/pages")
    with EmbeddedStore.open(built, read_only=True) as source:
        for stop in (2, 2):  # the second run resumes, then is cut again
            with open_location(at, SETTINGS, create=True) as dest, pytest.raises(Interrupt):
                migrate(source, dest, batch_pages=1, listener=StopAfter(stop))
        with open_location(at, SETTINGS) as dest:
            assert dest.stats().incomplete_documents == 1  # cut inside a two-page document
            report = migrate(source, dest, batch_pages=1)
            assert report.resumed == 1 and report.already_there >= 1
            assert report.pages_copied == 7 - 4
            assert_same_index(source, dest, tiny_embedder.embed_queries(QUERIES))


def test_killed_migration_resumes(built: Path, tmp_path: Path, tiny_embedder) -> None:
    """A real SIGKILL after the third page: the next run finishes the copy."""
    dest = f"qdrant-local://{tmp_path / 'q'}/pages"
    child = subprocess.run(
        [sys.executable, "-m", "tests.migrate_killer", str(built), dest, "3"],
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert child.returncode == -signal.SIGKILL, child.stderr
    with (
        EmbeddedStore.open(built, read_only=True) as source,
        open_location(parse_location(dest), SETTINGS) as qdrant,
    ):
        assert qdrant.stats().pages == 3
        report = migrate(source, qdrant, batch_pages=2)
        assert report.pages_copied == 4
        assert_same_index(source, qdrant, tiny_embedder.embed_queries(QUERIES))


def test_parse_location() -> None:
    assert parse_location("qdrant://db:6334/pages") == Location(
        "qdrant", url="http://db:6334", collection="pages"
    )
    assert parse_location("qdrants://db.example.com/pages") == Location(
        "qdrant", url="https://db.example.com:6333", collection="pages"
    )
    assert parse_location("qdrant-local:///tmp/q/pages") == Location(
        "qdrant", path=Path("/tmp/q"), collection="pages"
    )
    assert parse_location("some/index") == Location("embedded", path=Path("some/index"))
    for bad in ("qdrant://db:6333", "qdrant:///pages", "s3://bucket/x", "qdrant-local://pages"):
        with pytest.raises(InvalidInputError):
            parse_location(bad)


def test_migrate_command(built: Path, tmp_path: Path) -> None:
    import json

    from typer.testing import CliRunner

    from indexer.cli import app

    dest = f"qdrant-local://{tmp_path / 'q'}/pages"
    result = CliRunner().invoke(app, ["migrate", "--from", str(built), "--to", dest, "--json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout[result.stdout.index("{") :])
    assert (report["copied"], report["pages_copied"], report["queries_verified"]) == (4, 7, 7)
    result = CliRunner().invoke(
        app,
        [
            "info",
            "--store",
            "qdrant",
            "--index",
            str(tmp_path / "q"),
            "--qdrant-collection",
            "pages",
            "--json",
        ],
    )
    assert result.exit_code == 0, result.output
    info = json.loads(result.stdout[result.stdout.index("{") :])
    assert info["channels"]["visual"]["pages"] == 7
    result = CliRunner().invoke(app, ["migrate", "--from", str(built), "--to", "s3://x/y"])
    assert result.exit_code == 1 and "unknown index location" in result.output
