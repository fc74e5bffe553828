"""Bulk ingest and the ``colretrieve`` command line, built on the ``colretrieve`` core."""

from indexer.pipeline import FileOutcome, IngestOptions, IngestReport, Status, ingest

__all__ = ["FileOutcome", "IngestOptions", "IngestReport", "Status", "ingest"]
