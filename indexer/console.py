"""Rich terminal output for the CLI: ingest progress, the end-of-run summary, result tables."""

from __future__ import annotations

from collections.abc import Sequence

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TaskProgressColumn,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.table import Table

from colretrieve.contracts import SearchHit
from indexer.pipeline import FileOutcome, IngestReport, Status

console = Console(stderr=True)
stdout = Console()


class ProgressListener:
    """Shows pages/s and ETA while ingest runs, and names each file that was skipped."""

    def __init__(self) -> None:
        self.progress = Progress(
            TextColumn("[bold]embedding pages"),
            BarColumn(),
            MofNCompleteColumn(),
            TaskProgressColumn(),
            TextColumn("{task.fields[rate]}"),
            TimeElapsedColumn(),
            TextColumn("ETA"),
            TimeRemainingColumn(),
            console=console,
        )
        self.task = self.progress.add_task("pages", total=None, rate="")

    def __enter__(self) -> ProgressListener:
        self.progress.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.progress.stop()

    def planned(self, files: int, pages: int) -> None:
        self.progress.update(self.task, total=pages)
        console.print(f"{files} input files, {pages} pages to embed")

    def pages_done(self, count: int) -> None:
        self.progress.advance(self.task, count)
        speed = self.progress.tasks[0].speed
        self.progress.update(self.task, rate=f"{speed:.2f} pages/s" if speed else "")

    def file_done(self, outcome: FileOutcome) -> None:
        if outcome.status is Status.SKIPPED:
            self.progress.console.print(f"[yellow]skipped[/] {outcome.path}: {outcome.reason}")


def print_report(report: IngestReport) -> None:
    indexed = report.with_status(Status.INDEXED)
    rate = report.pages_embedded / report.seconds if report.seconds else 0.0
    console.print(
        f"[bold]done[/] in {report.seconds:.1f} s: {len(indexed)} files indexed "
        f"({report.pages_embedded} pages embedded, {rate:.2f} pages/s), "
        f"{len(report.with_status(Status.UNCHANGED))} unchanged, "
        f"{len(report.with_status(Status.DUPLICATE))} duplicates, "
        f"{len(report.with_status(Status.SKIPPED))} skipped"
    )
    skipped = report.with_status(Status.SKIPPED) + report.with_status(Status.DUPLICATE)
    if skipped:
        table = Table("status", "file", "reason", title="not indexed", title_justify="left")
        for outcome in skipped:
            table.add_row(outcome.status.value, str(outcome.path), outcome.reason)
        console.print(table)


def print_hits(hits: Sequence[SearchHit]) -> None:
    table = Table("rank", "score", "page")
    table.add_column("file", overflow="fold")
    for rank, hit in enumerate(hits, start=1):
        table.add_row(str(rank), f"{hit.score:.3f}", str(hit.page), hit.path)
    stdout.print(table)
