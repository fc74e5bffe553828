"""``colretrieve quickstart``: index a folder, then search it and evaluate — the README's main job.

It indexes the text and bm25 channels (real MiniLM weights ship with colretrieve, so this
works offline on a CPU), plus the visual channel when its model loads. When the visual model
is not available it says so and carries on: the results are then real text-channel results,
not a stand-in.
"""

from __future__ import annotations

from pathlib import Path

from rich.panel import Panel

from colretrieve.errors import InvalidInputError
from colretrieve.evaluation import load_queries
from colretrieve.index import Index
from colretrieve.settings import Settings
from indexer.console import ProgressListener, console, print_hits, print_report, stdout
from indexer.evaluate import print_eval, run_eval
from indexer.models import load_ingest_models
from indexer.pipeline import IngestOptions, IngestReport, ingest

DEFAULT_FOLDERS = (Path("../shared/corpus/pdfs"), Path("examples/pdfs"))
EXAMPLE_QUERIES = 3


def default_folder() -> Path:
    for folder in DEFAULT_FOLDERS:
        if folder.is_dir():
            return folder
    raise InvalidInputError(
        "no folder given and none of the default sample folders exist: "
        + ", ".join(str(f) for f in DEFAULT_FOLDERS)
    )


def run_quickstart(
    folder: Path | None, settings: Settings, queries_file: Path | None, k: int
) -> IngestReport:
    folder = folder or default_folder()
    models = load_ingest_models(settings)
    if models.visual_left_out:
        console.print(
            Panel(
                f"The visual channel is left out: {models.visual_left_out}.\n\n"
                f"Indexing the {' and '.join(models.channels)} channels only (their models "
                "ship with colretrieve). For visual retrieval too, fetch the checkpoint on a "
                "machine with network access (`hf download vidore/colqwen2-v1.0` and its base "
                "`vidore/colqwen2-base`, or `--local-dir DIR`), then run again with --model "
                "NAME_OR_DIR: only the new channel is embedded.",
                title="[bold yellow]no visual model[/]",
                border_style="yellow",
            )
        )
    console.print(f"indexing {folder} into {settings.index} ({', '.join(models.channels)})")
    with Index.from_settings(
        settings, create=True, embedder=models.embedder, text_encoder=models.text_encoder
    ) as index:
        options = IngestOptions.from_settings(settings)
        with ProgressListener() as listener:
            report = ingest([folder], index.writers(models.channels), options, listener)
        print_report(report)
        queries_file = queries_file or folder.parent / "dev-queries.jsonl"
        if queries_file.is_file():
            for query in load_queries(queries_file)[:EXAMPLE_QUERIES]:
                stdout.print(f"\n[bold]query:[/] {query.query}")
                print_hits(index.search(query.query, k))
            stdout.print(f"\n[bold]evaluation on {queries_file}[/]")
            print_eval(run_eval(queries_file, index=index))
        else:
            stdout.print("\n[bold]query:[/] summary table of results")
            print_hits(index.search("summary table of results", k))
    return report
