"""``colretrieve eval``: run a labelled query file against an index and print the metrics."""

from __future__ import annotations

from pathlib import Path

from rich.table import Table

from colretrieve.evaluation import ChannelEvalReport, Metrics, evaluate_channels, load_queries
from colretrieve.index import Index
from colretrieve.settings import Settings


def run_eval(
    queries_file: Path,
    settings: Settings | None = None,
    k: int = 10,
    *,
    model: str | None = None,
    index: Index | None = None,
) -> ChannelEvalReport:
    """Evaluate ``index`` (or the one ``settings`` select) on ``queries_file``: each of its
    channels alone (or those ``settings.channels`` names) and their fusion."""
    queries = load_queries(queries_file)
    owned = index is None
    index = index or Index.from_settings(settings or Settings(), read_only=True, model=model)
    try:
        indexed_files = {Path(doc.path).name for doc in index.documents() if doc.complete}
        wanted = settings.channels if settings is not None else None
        channels = index.search_channels(wanted)

        def search(texts: list[str], depth: int, chosen) -> list:
            return index.search_many(texts, depth, channels=chosen)

        return evaluate_channels(queries, search, channels, indexed_files, k)
    finally:
        if owned:
            index.close()


def print_eval(evaluation: ChannelEvalReport) -> None:
    """Per kind for the default search, then every channel alone and fused."""
    from indexer.console import console, stdout

    report = evaluation.default
    label = "fused" if "fused" in evaluation.runs else evaluation.channels[0]
    stdout.print(f"search over {', '.join(evaluation.channels)} ({label}), per kind:")
    stdout.print(_metrics_table("kind", [*report.by_kind.items(), ("all", report.overall)]))
    if len(evaluation.runs) > 1:
        stdout.print("each channel alone and fused, all queries:")
        rows = [(name, run.overall) for name, run in evaluation.runs.items()]
        stdout.print(_metrics_table("channel", rows))
    if report.missing_files:
        console.print(
            f"[yellow]{len(report.missing_files)} target files are not in the index[/] "
            f"(their queries count as misses): {', '.join(report.missing_files[:5])}"
            + (" ..." if len(report.missing_files) > 5 else "")
        )


def _metrics_table(first: str, rows: list[tuple[str, Metrics]]) -> Table:
    table = Table(first, "queries", "R@1", "R@5", "R@10", "MRR@10", "nDCG@5")
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
    return table
