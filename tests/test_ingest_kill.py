"""SIGKILL ``colretrieve index`` mid-run, twice, then re-run: every page stored exactly once."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

from colretrieve.errors import IndexNotFoundError
from colretrieve.rasterize import inspect_source
from colretrieve.store import EmbeddedStore
from tests.bad_inputs import CORPUS

FILES = (
    "papermage__papermage.pdf",
    "papermage__s2orc-acl2020.pdf",
    "pymupdf__irs-form-7004.pdf",
    "tabula__fisheries-exports-es.pdf",
    "pdfua__invoice.pdf",
)
REPO = Path(__file__).resolve().parents[1]


def stored_pages(index: Path) -> int:
    try:
        with EmbeddedStore.open(index, read_only=True) as store:
            return store.stats().pages
    except IndexNotFoundError:  # not created yet (or its first commit is not done)
        return 0


def start_index(docs: Path, index: Path, model: Path) -> subprocess.Popen:
    command = [sys.executable, "-m", "indexer", "index", str(docs), "--index", str(index)]
    command += ["--model", str(model), "--batch-size", "2", "--json"]
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    return subprocess.Popen(
        command, cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )


def children(pid: int) -> set[int]:
    found: set[int] = set()
    for task in Path(f"/proc/{pid}/task").iterdir():
        found |= {int(child) for child in (task / "children").read_text().split()}
    return found


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except FileNotFoundError:
        return False
    return state != "Z"


def kill_after(process: subprocess.Popen, index: Path, pages: int, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while stored_pages(index) < pages:
        assert process.poll() is None, process.communicate()
        assert time.monotonic() < deadline, "ingest made no progress"
        time.sleep(0.02)
    workers = children(process.pid)
    assert workers, "the ingest runs its rendering in worker processes"
    process.send_signal(signal.SIGKILL)
    process.wait()
    # Its rendering workers must not outlive it as orphans.
    deadline = time.monotonic() + 20
    while any(alive(pid) for pid in workers):
        assert time.monotonic() < deadline, f"orphaned workers: {workers}"
        time.sleep(0.1)


def test_sigkill_mid_ingest_then_resume(tmp_path: Path, tiny_models):
    docs = tmp_path / "docs"
    docs.mkdir()
    for name in FILES:
        shutil.copy(CORPUS / "pdfs" / name, docs / name)
    total = sum(inspect_source(docs / name).page_count for name in FILES)
    index = tmp_path / "index"

    kill_after(start_index(docs, index, tiny_models.colqwen2), index, pages=5)
    kill_after(start_index(docs, index, tiny_models.colqwen2), index, pages=17)
    before_last_run = stored_pages(index)
    assert 17 <= before_last_run < total

    finisher = start_index(docs, index, tiny_models.colqwen2)
    stdout, stderr = finisher.communicate(timeout=300)
    assert finisher.returncode == 0, stderr
    report = json.loads(stdout)
    # Only the pages missing after the kills were embedded: a resume, not a redo.
    assert report["pages_embedded"] == total - before_last_run

    with EmbeddedStore.open(index, read_only=True) as store:
        stats = store.stats()
        assert (stats.documents, stats.incomplete_documents, stats.pages) == (len(FILES), 0, total)
        for document in store.documents():
            count = inspect_source(Path(document.path)).page_count
            assert document.stored_pages == document.total_pages == count
            for page in range(1, count + 1):
                assert store.get_page(document.doc_id, page) is not None
        query = store.page_vectors(store.documents()[0].doc_id, 1)[:20]
        assert store.search(query, k=total)[0].page >= 1
        assert len(store.search(query, k=total)) == total
