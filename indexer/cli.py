"""The ``colretrieve`` command line: index, search, info, delete, eval, make-tiny-models,
serve, ask."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Annotated, Any, NoReturn

import typer

from colretrieve.contracts import SearchFilter
from colretrieve.errors import ColretrieveError, InvalidInputError
from colretrieve.settings import Settings

app = typer.Typer(
    name="colretrieve",
    help="Late-interaction visual document retrieval: index PDFs and page images, search them.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

IndexOpt = Annotated[
    Path | None,
    typer.Option(
        "--index", help="Index folder (env COLRETRIEVE_INDEX, default ./colretrieve-index)."
    ),
]
ModelOpt = Annotated[
    str | None,
    typer.Option("--model", help="Checkpoint: hub name or local folder (env COLRETRIEVE_MODEL)."),
]
DeviceOpt = Annotated[
    str | None, typer.Option("--device", help="auto, cpu or cuda (env COLRETRIEVE_DEVICE).")
]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print machine-readable JSON.")]
StoreOpt = Annotated[
    str | None,
    typer.Option("--store", help="embedded (default) or qdrant (env COLRETRIEVE_STORE)."),
]
QdrantUrlOpt = Annotated[
    str | None,
    typer.Option(
        "--qdrant-url",
        help="Qdrant server URL, e.g. http://localhost:6333; unset: local mode in --index "
        "(env COLRETRIEVE_QDRANT_URL; key in COLRETRIEVE_QDRANT_API_KEY).",
    ),
]
QdrantCollectionOpt = Annotated[
    str | None,
    typer.Option(
        "--qdrant-collection", help="Qdrant collection (env COLRETRIEVE_QDRANT_COLLECTION)."
    ),
]


ChannelsOpt = Annotated[
    str | None,
    typer.Option(
        "--channels",
        help="Comma-separated channels from visual,text,bm25 (env COLRETRIEVE_CHANNELS).",
    ),
]


def settings_from(**overrides: Any) -> Settings:
    """Settings from COLRETRIEVE_* variables, overridden by the options actually given."""
    return Settings(**{key: value for key, value in overrides.items() if value is not None})


def store_settings(
    index: Path | None,
    store_kind: str | None,
    qdrant_url: str | None,
    qdrant_collection: str | None,
    **overrides: Any,
) -> Settings:
    """``settings_from`` for the commands that take the store-selection options."""
    return settings_from(
        index=index,
        store=store_kind,
        qdrant_url=qdrant_url,
        qdrant_collection=qdrant_collection,
        **overrides,
    )


def check_mode(mode: str | None) -> None:
    # typer 0.29 takes no choice type for an optional str; check by hand.
    if mode not in (None, "fast", "exact"):
        raise InvalidInputError(f"--mode must be fast or exact; got {mode!r}")


def fail(error: Exception, code: int = 1) -> NoReturn:
    from indexer.console import console

    console.print(f"[bold red]error:[/] {error}")
    raise typer.Exit(code)


@app.command()
def index(
    paths: Annotated[list[Path], typer.Argument(help="PDFs, page images, or folders of them.")],
    index: IndexOpt = None,
    model: ModelOpt = None,
    dpi: Annotated[int | None, typer.Option(help="PDF rendering resolution (default 144).")] = None,
    max_visual_tokens: Annotated[
        int | None, typer.Option(help="Visual tokens per page (default 768).")
    ] = None,
    batch_size: Annotated[int | None, typer.Option(help="Pages per batch (default 4).")] = None,
    device: DeviceOpt = None,
    workers: Annotated[
        int | None, typer.Option(help="Rasterizing processes (default: spare cores, max 4).")
    ] = None,
    tag: Annotated[
        list[str] | None, typer.Option("--tag", help="Tag every document (repeatable).")
    ] = None,
    channels: ChannelsOpt = None,
    text_model: Annotated[
        str | None,
        typer.Option(help="Text channel encoder: hub name or folder (env COLRETRIEVE_TEXT_MODEL)."),
    ] = None,
    store_kind: StoreOpt = None,
    qdrant_url: QdrantUrlOpt = None,
    qdrant_collection: QdrantCollectionOpt = None,
    json_output: JsonOpt = False,
) -> None:
    """Render, embed and store every page in each channel. Re-runs skip unchanged files,
    resume interrupted ones and fill in channels added since.

    Default channels: text and bm25, plus visual when its model loads.
    Exit status: 0 when every input was indexed (or already was), 3 when some were skipped.
    """
    from colretrieve.index import Index
    from indexer.console import ProgressListener, console, print_report
    from indexer.models import load_ingest_models
    from indexer.pipeline import IngestOptions
    from indexer.pipeline import ingest as run_ingest

    try:
        settings = store_settings(
            index,
            store_kind,
            qdrant_url,
            qdrant_collection,
            model=model,
            dpi=dpi,
            max_visual_tokens=max_visual_tokens,
            batch_size=batch_size,
            device=device,
            workers=workers,
            channels=channels,
            text_model=text_model,
        )
        # Models first: a model that cannot load must not leave an empty index behind.
        models = load_ingest_models(settings)
        if models.visual_left_out:
            console.print(
                f"[yellow]visual channel left out:[/] {models.visual_left_out}; indexing "
                f"{', '.join(models.channels)}. Pass --model to add it when available."
            )
        with Index.from_settings(
            settings, create=True, embedder=models.embedder, text_encoder=models.text_encoder
        ) as idx:
            writers = idx.writers(models.channels)
            options = IngestOptions.from_settings(settings, tag or ())
            with ProgressListener() as listener:
                report = run_ingest(paths, writers, options, listener)
    except (ColretrieveError, ValueError) as error:
        fail(error)
    print_report(report)
    if json_output:
        print(json.dumps(report.to_dict(), indent=2))
    raise typer.Exit(report.exit_code)


@app.command()
def search(
    query: Annotated[str, typer.Argument(help="The question or keywords.")],
    index: IndexOpt = None,
    k: Annotated[int, typer.Option("-k", help="Number of pages to return.")] = 10,
    json_output: JsonOpt = False,
    model: ModelOpt = None,
    device: DeviceOpt = None,
    doc: Annotated[
        list[str] | None, typer.Option("--doc", help="Only these document ids (repeatable).")
    ] = None,
    path_prefix: Annotated[
        str | None, typer.Option(help="Only documents whose path starts with this.")
    ] = None,
    tag: Annotated[
        list[str] | None, typer.Option("--tag", help="Only documents with this tag (repeatable).")
    ] = None,
    mode: Annotated[
        str | None, typer.Option(help="fast (first stage + exact rerank) or exact.")
    ] = None,
    channels: ChannelsOpt = None,
    fusion: Annotated[
        str | None, typer.Option(help="rrf or weighted (env COLRETRIEVE_FUSION).")
    ] = None,
    store_kind: StoreOpt = None,
    qdrant_url: QdrantUrlOpt = None,
    qdrant_collection: QdrantCollectionOpt = None,
) -> None:
    """Print the k best pages for QUERY, fused over the index's channels (visual model:
    the index's own unless --model is given)."""
    from colretrieve.index import Index
    from indexer.console import print_hits

    try:
        check_mode(mode)
        settings = store_settings(
            index,
            store_kind,
            qdrant_url,
            qdrant_collection,
            device=device,
            search_mode=mode,
            channels=channels,
            fusion=fusion,
        )
        search_filter = None
        if doc or path_prefix or tag:
            search_filter = SearchFilter(
                doc_ids=frozenset(doc) if doc else None,
                path_prefix=str(Path(path_prefix).resolve()) if path_prefix else None,
                tags=frozenset(tag or ()),
            )
        with Index.from_settings(settings, read_only=True, model=model) as idx:
            result = idx.search_timed(query, k, filter=search_filter, channels=settings.channels)
    except (ColretrieveError, ValueError) as error:
        fail(error)
    if json_output:
        payload = {
            "results": [
                {
                    "doc_id": h.doc_id,
                    "path": h.path,
                    "page": h.page,
                    "score": h.score,
                    "channels": {m.channel: {"rank": m.rank, "score": m.score} for m in h.matches},
                }
                for h in result.hits
            ],
            "timings_ms": result.timings_ms,
        }
        print(json.dumps(payload, indent=2))
    else:
        print_hits(result.hits)


@app.command()
def info(
    index: IndexOpt = None,
    json_output: JsonOpt = False,
    store_kind: StoreOpt = None,
    qdrant_url: QdrantUrlOpt = None,
    qdrant_collection: QdrantCollectionOpt = None,
) -> None:
    """Documents, pages, models and bytes on disk of an index, per channel."""
    from colretrieve.channels.stores import open_channel_stores

    try:
        settings = store_settings(index, store_kind, qdrant_url, qdrant_collection)
        stores = open_channel_stores(settings, read_only=True)
        try:
            location = getattr(stores.visual, "location", None) or str(settings.index.resolve())
            per_channel = {channel: stores.get(channel).stats() for channel in stores.existing()}
        finally:
            stores.close()
    except ColretrieveError as error:
        fail(error)
    channels = {
        channel: {
            "documents": stats.documents,
            "incomplete_documents": stats.incomplete_documents,
            "pages": stats.pages,
            "vectors": stats.vectors,
            "dim": stats.dim,
            "model": stats.model.to_dict() if stats.model else None,
            "bytes_on_disk": stats.bytes_on_disk,
        }
        for channel, stats in per_channel.items()
    }
    if json_output:
        print(json.dumps({"index": location, "channels": channels}, indent=2))
        return
    print(f"{'index':>22}: {location}")
    if not channels:
        print("(empty: no channel holds anything yet)")
    for channel, figures in channels.items():
        print(f"\n[{channel}]")
        for key, value in figures.items():
            if key == "model" and per_channel[channel].model:
                value = per_channel[channel].model.label
            print(f"{key:>22}: {value}")
    if any(stats.incomplete_documents for stats in per_channel.values()):
        print("(incomplete documents are not searchable; re-run `colretrieve index` to finish)")


@app.command(name="drop-channel")
def drop_channel_command(
    channel: Annotated[str, typer.Argument(help="text or bm25.")],
    index: IndexOpt = None,
    store_kind: StoreOpt = None,
    qdrant_url: QdrantUrlOpt = None,
    qdrant_collection: QdrantCollectionOpt = None,
) -> None:
    """Remove a channel from an index and free its storage (re-add it with index --channels)."""
    from colretrieve.channels import parse_channels
    from colretrieve.channels.stores import drop_channel

    try:
        settings = store_settings(index, store_kind, qdrant_url, qdrant_collection)
        (name,) = parse_channels(channel)
        dropped = drop_channel(settings, name)
    except (ColretrieveError, ValueError) as error:
        fail(error)
    print(f"dropped the {name} channel" if dropped else f"this index has no {name} channel")


@app.command()
def delete(
    refs: Annotated[list[str], typer.Argument(help="Document ids (or 8+ char prefixes) or paths.")],
    index: IndexOpt = None,
    store_kind: StoreOpt = None,
    qdrant_url: QdrantUrlOpt = None,
    qdrant_collection: QdrantCollectionOpt = None,
) -> None:
    """Delete documents and all their pages from the index."""
    from colretrieve.index import Index

    try:
        settings = store_settings(index, store_kind, qdrant_url, qdrant_collection)
        with Index.from_settings(settings) as idx:
            deleted = idx.delete(refs)
    except ColretrieveError as error:
        fail(error)
    for document in deleted:
        print(f"deleted {document.doc_id[:12]} {document.path} ({document.stored_pages} pages)")


@app.command(name="eval")
def evaluate(
    queries: Annotated[Path, typer.Argument(help="JSON lines: qid, query, file, page, kind.")],
    index: IndexOpt = None,
    k: Annotated[int, typer.Option("-k", help="Ranking depth.")] = 10,
    json_output: JsonOpt = False,
    model: ModelOpt = None,
    device: DeviceOpt = None,
    mode: Annotated[
        str | None, typer.Option(help="fast (first stage + exact rerank) or exact.")
    ] = None,
    channels: ChannelsOpt = None,
    store_kind: StoreOpt = None,
    qdrant_url: QdrantUrlOpt = None,
    qdrant_collection: QdrantCollectionOpt = None,
) -> None:
    """Recall@1/5/10, MRR@10 and nDCG@5 on labelled queries, per kind, for each channel
    alone and fused."""
    from indexer.evaluate import print_eval, run_eval

    try:
        check_mode(mode)
        settings = store_settings(
            index,
            store_kind,
            qdrant_url,
            qdrant_collection,
            device=device,
            search_mode=mode,
            channels=channels,
        )
        report = run_eval(queries, settings, k, model=model)
    except (ColretrieveError, ValueError) as error:
        fail(error)
    if json_output:
        print(json.dumps(report.to_dict(), indent=2))
    else:
        print_eval(report)


@app.command()
def quickstart(
    folder: Annotated[
        Path | None,
        typer.Argument(help="Folder of PDFs (default ../shared/corpus/pdfs if present)."),
    ] = None,
    index: IndexOpt = None,
    model: ModelOpt = None,
    device: DeviceOpt = None,
    queries: Annotated[
        Path | None,
        typer.Option(help="Labelled queries (default FOLDER/../dev-queries.jsonl if present)."),
    ] = None,
    k: Annotated[int, typer.Option("-k", help="Pages shown per example query.")] = 3,
    channels: ChannelsOpt = None,
) -> None:
    """Index a folder, search it and evaluate: the whole product in one command.

    Text and bm25 channels always (their model ships with colretrieve), visual when its
    model loads; if it cannot (no network, no local checkpoint) it says so and goes on.
    """
    from indexer.quickstart import run_quickstart

    try:
        settings = settings_from(index=index, model=model, device=device, channels=channels)
        report = run_quickstart(folder, settings, queries, k)
    except (ColretrieveError, ValueError) as error:
        fail(error)
    raise typer.Exit(report.exit_code)


@app.command(name="migrate")
def migrate_command(
    source: Annotated[
        str, typer.Option("--from", help="Source: index folder or qdrant://HOST:PORT/COLLECTION.")
    ],
    dest: Annotated[
        str,
        typer.Option(
            "--to",
            help="Destination: qdrant://HOST:PORT/COLLECTION (qdrants:// for TLS), "
            "qdrant-local://FOLDER/COLLECTION, or an index folder.",
        ),
    ],
    batch_pages: Annotated[int, typer.Option(help="Pages per write batch.")] = 16,
    verify_queries: Annotated[
        int, typer.Option(help="Stored pages used as queries to compare top-k at the end.")
    ] = 8,
    json_output: JsonOpt = False,
) -> None:
    """Copy an index to another store without re-embedding; re-run to resume after a kill.

    Qdrant connection options (API key, TLS, prefetch limit) come from COLRETRIEVE_QDRANT_*.
    """
    from indexer.migrate import report_dict, run_migrate

    try:
        report = run_migrate(source, dest, settings_from(), batch_pages, verify_queries)
    except ColretrieveError as error:
        fail(error)
    if json_output:
        print(json.dumps(report_dict(report), indent=2))


@app.command(name="make-tiny-models")
def make_tiny_models_command(
    directory: Annotated[
        Path, typer.Argument(help="Folder to write colqwen2/ and qwen2-vl/ into.")
    ],
) -> None:
    """Build tiny RANDOM-WEIGHT ColQwen2 and Qwen2-VL checkpoints for offline tests and demos.

    They load through the same from_pretrained path as real weights but their rankings and
    answers are meaningless.
    """
    from colretrieve.models import make_tiny_models

    paths = make_tiny_models(directory)
    print(f"tiny ColQwen2 (random weights): {paths.colqwen2}")
    print(f"tiny Qwen2-VL (random weights): {paths.qwen2_vl}")


@app.command()
def serve(
    index: IndexOpt = None,
    model: ModelOpt = None,
    generator: Annotated[
        str | None,
        typer.Option(help="Answer model: hub name, folder or OpenAI-compatible URL."),
    ] = None,
    host: Annotated[str | None, typer.Option(help="Listen address (default 127.0.0.1).")] = None,
    port: Annotated[int | None, typer.Option(help="Listen port (default 8000).")] = None,
    keys: Annotated[Path | None, typer.Option("--keys", help="JSON file of hashed keys.")] = None,
    no_auth: Annotated[
        bool, typer.Option("--no-auth", help="NO API KEYS: local development only.")
    ] = False,
    device: DeviceOpt = None,
    channels: ChannelsOpt = None,
) -> None:
    """Run the HTTP API (search, cited answers, OpenAI-compatible chat); see docs/server.md."""
    from server import serve as run_server

    try:
        settings = settings_from(
            index=index,
            model=model,
            generator=generator,
            host=host,
            port=port,
            keys_file=keys,
            no_auth=no_auth or None,
            device=device,
            channels=channels,
        )
        run_server(settings)
    except (ColretrieveError, ValueError) as error:
        fail(error)


@app.command()
def ask(
    question: Annotated[str, typer.Argument(help="The question.")],
    index: IndexOpt = None,
    generator: Annotated[
        str | None,
        typer.Option(help="Answer model: hub name, folder or OpenAI-compatible URL."),
    ] = None,
    model: ModelOpt = None,
    device: DeviceOpt = None,
    channels: ChannelsOpt = None,
    json_output: JsonOpt = False,
) -> None:
    """Answer QUESTION from the index's top pages (fused over its channels) and print the
    cited pages."""
    from indexer.ask import run_ask

    try:
        settings = settings_from(index=index, generator=generator, device=device, channels=channels)
        run_ask(question, settings, model, json_output)
    except (ColretrieveError, ValueError) as error:
        fail(error)


def main() -> None:
    # transformers' weight-loading bars would tear through our own progress display.
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    try:
        app()
    except KeyboardInterrupt:
        print("interrupted; committed pages are kept and a re-run resumes", file=sys.stderr)
        sys.exit(130)
