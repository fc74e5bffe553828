"""Work done in rasterizing processes, and the pool that survives a crashing renderer.

Results cross the process boundary as plain dataclasses holding an error string rather than
as raised exceptions, which would not all survive pickling.
"""

from __future__ import annotations

import multiprocessing
import os
import threading
import time
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from pathlib import Path

from colretrieve.errors import UnreadableDocumentError
from colretrieve.ocr import OcrOptions
from colretrieve.rasterize import RenderedPage, SourceInfo, SourceKind, inspect_source, render_pages

RENDERER_CRASHED = "the PDF renderer crashed on this file"


@dataclass(frozen=True)
class ProbeResult:
    path: Path
    source: SourceInfo | None = None
    error: str = ""


@dataclass(frozen=True)
class RenderResult:
    pages: list[RenderedPage]
    error: str = ""


def probe(path: Path) -> ProbeResult:
    try:
        return ProbeResult(path, source=inspect_source(path))
    except UnreadableDocumentError as error:
        return ProbeResult(path, error=error.reason)
    except Exception as error:  # a library bug on odd input must not end the run
        return ProbeResult(path, error=f"unexpected error reading file: {error!r}")


def render(
    path: Path,
    kind: SourceKind,
    first: int,
    last: int,
    dpi: int,
    max_pixels: int,
    ocr: OcrOptions | None = None,
    images: bool = True,
) -> RenderResult:
    """Render a chunk of pages; OCR failures stay on the pages (``ocr_error``), not here."""
    try:
        return RenderResult(render_pages(path, kind, first, last, dpi, max_pixels, ocr, images))
    except UnreadableDocumentError as error:
        return RenderResult([], error=error.reason)
    except Exception as error:
        return RenderResult([], error=f"unexpected error rendering pages {first}-{last}: {error!r}")


def exit_with_parent(parent: int) -> None:
    """Worker initializer: leave when the process that started the pool is gone.

    A SIGKILLed ingest cannot shut its pool down, and a worker blocked on the pool's queue
    never sees end-of-file (it holds the pipe's other end itself), so without this it would
    wait forever as an orphan.
    """

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(0.5)
        os._exit(0)

    threading.Thread(target=watch, name="exit-with-parent", daemon=True).start()


class RenderPool:
    """A process pool that replaces itself when a worker dies (a renderer segfault, OOM kill).

    ``run_isolated`` re-runs one task alone in a fresh process, to tell the input that
    crashed a worker from the innocent tasks that merely shared its pool.
    """

    def __init__(self, workers: int) -> None:
        self.workers = workers
        self._lock = threading.Lock()
        self._context = multiprocessing.get_context("spawn")  # no fork of a threaded process
        self._executor = self._new_executor()

    def _new_executor(self, workers: int | None = None) -> ProcessPoolExecutor:
        return ProcessPoolExecutor(
            workers or self.workers,
            mp_context=self._context,
            initializer=exit_with_parent,
            initargs=(os.getpid(),),
        )

    def submit(self, fn, *args) -> Future:
        with self._lock:
            try:
                return self._executor.submit(fn, *args)
            except BrokenProcessPool:
                self._executor.shutdown(wait=False, cancel_futures=True)
                self._executor = self._new_executor()
                return self._executor.submit(fn, *args)

    def run_isolated(self, fn, *args):
        """Run one task in its own process; None if that process died."""
        with self._new_executor(1) as executor:
            try:
                return executor.submit(fn, *args).result()
            except BrokenProcessPool:
                return None

    def shutdown(self) -> None:
        with self._lock:
            self._executor.shutdown(wait=True, cancel_futures=True)
