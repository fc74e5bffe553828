"""Upload ingest jobs: run in background threads, one ``indexer.ingest`` each, with progress.

A job writes every channel the collection ingests (``Collection.ingest_channels``: the
``channels`` setting, else text and bm25 plus visual when its model is loaded), creating the
channel stores it lacks."""

from __future__ import annotations

import logging
import threading
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from colretrieve.errors import ColretrieveError, NotFoundError, TooBusyError
from colretrieve.ocr import OcrOptions
from indexer.pipeline import FileOutcome, IngestOptions, ingest

if TYPE_CHECKING:
    from server.state import Collection, ServerState

log = logging.getLogger("colretrieve.server.jobs")


@dataclass
class Job:
    id: str
    collection: str
    files: list[str]
    status: str = "queued"  # queued, running, succeeded, failed
    pages_total: int = 0
    pages_done: int = 0
    outcomes: list[FileOutcome] = field(default_factory=list)
    error: str = ""
    created_at: float = field(default_factory=time.time)
    finished_at: float | None = None


class _Progress:
    def __init__(self, job: Job) -> None:
        self.job = job

    def planned(self, files: int, pages: int) -> None:
        self.job.pages_total = pages

    def pages_done(self, count: int) -> None:
        self.job.pages_done += count

    def file_done(self, outcome: FileOutcome) -> None:
        self.job.outcomes.append(outcome)


class JobManager:
    def __init__(self, state: ServerState) -> None:
        self.state = state
        self._jobs: dict[str, Job] = {}
        self._lock = threading.Lock()
        self._threads: list[threading.Thread] = []

    def active(self) -> int:
        return sum(job.status in ("queued", "running") for job in self._jobs.values())

    def submit(self, collection: Collection, files: list[Path], tags: tuple[str, ...]) -> Job:
        limit = self.state.settings.max_jobs
        with self._lock:
            if self.active() >= limit:
                raise TooBusyError(
                    f"{limit} ingest jobs are already queued or running; retry when one finishes"
                )
            job = Job(uuid.uuid4().hex, collection.name, [str(f) for f in files])
            self._jobs[job.id] = job
        thread = threading.Thread(
            target=self._run, args=(job, collection, files, tags), name=f"ingest-{job.id[:8]}"
        )
        self._threads.append(thread)
        thread.start()
        return job

    def get(self, job_id: str, readable: list[str]) -> Job:
        job = self._jobs.get(job_id)
        if job is None or job.collection not in readable:
            raise NotFoundError("job", job_id)
        return job

    def _run(
        self, job: Job, collection: Collection, files: list[Path], tags: tuple[str, ...]
    ) -> None:
        settings = self.state.settings
        options = IngestOptions(
            dpi=settings.dpi,
            max_pixels=settings.max_page_pixels,
            batch_size=settings.batch_size,
            workers=1,
            tags=tags,
            ocr=OcrOptions.from_settings(settings),
        )
        job.status = "running"
        try:
            with collection.writer() as index:
                writers = index.writers(collection.ingest_channels)
                report = ingest(files, writers, options, _Progress(job))
            failed = [o for o in report.outcomes if o.status.value == "skipped"]
            job.status = "failed" if failed and len(failed) == len(report.outcomes) else "succeeded"
            if failed:
                job.error = "; ".join(f"{Path(o.path).name}: {o.reason}" for o in failed)
        except ColretrieveError as error:
            job.status, job.error = "failed", error.message
        except Exception as error:
            log.exception("ingest job %s failed", job.id)
            job.status, job.error = "failed", f"internal error: {type(error).__name__}"
        finally:
            job.finished_at = time.time()

    def shutdown(self, timeout: float = 60.0) -> None:
        for thread in self._threads:
            thread.join(timeout)
