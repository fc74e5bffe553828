"""``colretrieve quickstart``: index a folder, then search it and evaluate — the README's main job.

It is the one command allowed to fall back to tiny random-weight models when the real model
cannot be loaded (offline, no local checkpoint), and it then says so loudly: the rankings are
meaningless, only the machinery is real. ``colretrieve index`` never swaps models.
"""

from __future__ import annotations

from pathlib import Path

from rich.panel import Panel

from colretrieve.contracts import PageEmbedder
from colretrieve.errors import InvalidInputError, ModelLoadError
from colretrieve.evaluation import load_queries
from colretrieve.index import Index
from colretrieve.settings import Settings
from indexer.console import ProgressListener, console, print_hits, print_report, stdout
from indexer.evaluate import print_eval, run_eval
from indexer.pipeline import IngestOptions, IngestReport, ingest

DEFAULT_FOLDERS = (Path("../shared/corpus/pdfs"), Path("examples/pdfs"))
TINY_HOME = Path(".colretrieve")
EXAMPLE_QUERIES = 3


def default_folder() -> Path:
    for folder in DEFAULT_FOLDERS:
        if folder.is_dir():
            return folder
    raise InvalidInputError(
        "no folder given and none of the default sample folders exist: "
        + ", ".join(str(f) for f in DEFAULT_FOLDERS)
    )


def load_embedder_or_tiny(settings: Settings, index_given: bool) -> tuple[PageEmbedder, Path, bool]:
    """The configured model, or (announced loudly) the tiny random-weight one; the index to
    use; and whether the fallback happened."""
    from colretrieve.models import ColpaliEmbedder, make_tiny_models

    try:
        return ColpaliEmbedder.from_settings(settings), settings.index, False
    except ModelLoadError as error:
        console.print(
            Panel(
                f"Could not load the real model: {error.reason}.\n\n"
                "Falling back to TINY RANDOM-WEIGHT models so the whole pipeline still runs. "
                "[bold]The rankings and metrics below are MEANINGLESS.[/]\n\n"
                "For real results, fetch the checkpoint on a machine with network access "
                "(`hf download vidore/colqwen2-v1.0` and its base `vidore/colqwen2-base` into "
                "the Hugging Face cache, or `--local-dir DIR`), then run with --model NAME_OR_DIR "
                "or COLRETRIEVE_MODEL.",
                title="[bold red]no real model[/]",
                border_style="red",
            )
        )
    tiny_dir = TINY_HOME / "tiny-models"
    if not (tiny_dir / "colqwen2" / "config.json").exists():
        make_tiny_models(tiny_dir)
    embedder = ColpaliEmbedder.from_settings(settings, str(tiny_dir / "colqwen2"))
    # Keep tiny-model pages out of the real index.
    return embedder, (settings.index if index_given else TINY_HOME / "tiny-index"), True


def run_quickstart(
    folder: Path | None, settings: Settings, index_given: bool, queries_file: Path | None, k: int
) -> IngestReport:
    folder = folder or default_folder()
    embedder, index_dir, tiny = load_embedder_or_tiny(settings, index_given)
    console.print(f"indexing {folder} into {index_dir} with {embedder.info.label}")
    with Index.open(index_dir, create=True, embedder=embedder) as index:
        options = IngestOptions.from_settings(settings)
        with ProgressListener() as listener:
            report = ingest([folder], index.store, embedder, options, listener)
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
    if tiny:
        console.print(
            "[bold red]Reminder:[/] these results come from a tiny random-weight model; "
            "they exercise the machinery and mean nothing about retrieval quality."
        )
    return report
