"""``colretrieve eval``: run a labelled query file against an index and print the metrics."""

from __future__ import annotations

from pathlib import Path

from rich.table import Table

from colretrieve.evaluation import EvalReport, evaluate, load_queries
from colretrieve.index import Index
from colretrieve.settings import Settings


def run_eval(
    queries_file: Path,
    settings: Settings | None = None,
    k: int = 10,
    *,
    model: str | None = None,
    index: Index | None = None,
) -> EvalReport:
    """Evaluate ``index`` (or the one ``settings`` select) on ``queries_file``."""
    queries = load_queries(queries_file)
    owned = index is None
    index = index or Index.from_settings(settings or Settings(), read_only=True, model=model)
    try:
        indexed_files = {Path(doc.path).name for doc in index.documents() if doc.complete}
        return evaluate(queries, index.search_many, indexed_files, k)
    finally:
        if owned:
            index.close()


def print_eval(report: EvalReport) -> None:
    from indexer.console import console, stdout

    table = Table("kind", "queries", "R@1", "R@5", "R@10", "MRR@10", "nDCG@5")
    rows = [*report.by_kind.items(), ("all", report.overall)]
    for kind, metrics in rows:
        table.add_row(
            kind,
            str(metrics.queries),
            f"{metrics.recall_at_1:.3f}",
            f"{metrics.recall_at_5:.3f}",
            f"{metrics.recall_at_10:.3f}",
            f"{metrics.mrr_at_10:.3f}",
            f"{metrics.ndcg_at_5:.3f}",
        )
    stdout.print(table)
    if report.missing_files:
        console.print(
            f"[yellow]{len(report.missing_files)} target files are not in the index[/] "
            f"(their queries count as misses): {', '.join(report.missing_files[:5])}"
            + (" ..." if len(report.missing_files) > 5 else "")
        )
