"""The public Python API: one object to open an index, add to it, search it, delete from it.

    from colretrieve import Index

    with Index.open("my-index", create=True, model="vidore/colqwen2-v1.0") as index:
        index.add_document("report.pdf")
        for hit in index.search("total revenue in 2023", k=5):
            print(hit.path, hit.page, hit.score)

An index has up to three channels (see ``colretrieve.channels``): ``visual`` (page images,
the ColPali model), ``text`` (token vectors of the text layer) and ``bm25``. Searches run on
every channel the index holds and fuse the rankings; ``channels=`` narrows either side.
Bulk ingest of folders (worker processes, progress, resume) is ``colretrieve index`` /
``indexer.ingest``; this class is the in-process building block they share.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Sequence
from pathlib import Path
from types import TracebackType

import numpy as np

from colretrieve.channels import BM25, TEXT, VISUAL, parse_channels
from colretrieve.channels.search import (
    ChannelSearcher,
    FusionOptions,
    LexicalSearcher,
    VectorSearcher,
    search_fused,
)
from colretrieve.channels.stores import ChannelStores, open_channel_stores, open_embedded_channels
from colretrieve.channels.writers import Bm25Writer, ChannelWriter, TextWriter, VisualWriter
from colretrieve.contracts import (
    DocumentInfo,
    DocumentRecord,
    IndexStats,
    LexicalStore,
    ModelInfo,
    MultiVectorStore,
    PageEmbedder,
    PageInput,
    SearchFilter,
    SearchHit,
    TextEmbedder,
)
from colretrieve.errors import DocumentNotFoundError, InvalidInputError
from colretrieve.ingest import FilePlan, ingest_file
from colretrieve.ocr import OcrOptions
from colretrieve.search import SearchResult, check_k, check_query_text, check_same_model
from colretrieve.search import search as run_search
from colretrieve.settings import DEFAULT_TEXT_MODEL, Settings
from colretrieve.timing import collect


class Index:
    """A multi-channel index of document pages and, optionally, the models that embed them."""

    def __init__(
        self,
        store: MultiVectorStore | ChannelStores,
        embedder: PageEmbedder | None = None,
        *,
        model: str | None = None,
        device: str = "auto",
        max_visual_tokens: int | None = 768,
        text_encoder: TextEmbedder | None = None,
        text_model: str = DEFAULT_TEXT_MODEL,
        fusion: FusionOptions | None = None,
    ) -> None:
        self.stores = store if isinstance(store, ChannelStores) else ChannelStores(store)
        self._embedder = embedder
        self._model_name = model
        self._device = device
        self._max_visual_tokens = max_visual_tokens
        self._text_encoder = text_encoder
        self._text_model = text_model
        self.fusion = fusion or FusionOptions()

    @classmethod
    def open(
        cls,
        path: str | Path,
        *,
        create: bool = False,
        read_only: bool = False,
        embedder: PageEmbedder | None = None,
        model: str | None = None,
        device: str = "auto",
        max_visual_tokens: int | None = 768,
        text_encoder: TextEmbedder | None = None,
        text_model: str = DEFAULT_TEXT_MODEL,
    ) -> Index:
        """Open (or with ``create=True``, create) the embedded on-disk index at ``path``.

        Models are loaded on first need: the visual one is ``model`` if given, else the one
        the index was built with; the text one likewise (``text_model`` for a new index).
        Pass ``embedder``/``text_encoder`` to reuse already loaded models.
        """
        stores = open_embedded_channels(Path(path), create=create, read_only=read_only)
        return cls(
            stores,
            embedder,
            model=model,
            device=device,
            max_visual_tokens=max_visual_tokens,
            text_encoder=text_encoder,
            text_model=text_model,
        )

    @classmethod
    def from_settings(
        cls,
        settings: Settings,
        *,
        create: bool = False,
        read_only: bool = False,
        embedder: PageEmbedder | None = None,
        model: str | None = None,
        text_encoder: TextEmbedder | None = None,
    ) -> Index:
        """Open the store that ``settings`` select. The visual model, when needed, is
        ``model`` if given, else the index's own (``settings.model`` for new indexes)."""
        stores = open_channel_stores(settings, create=create, read_only=read_only)
        return cls(
            stores,
            embedder,
            model=model,
            device=settings.device,
            max_visual_tokens=settings.max_visual_tokens,
            text_encoder=text_encoder,
            text_model=settings.text_model,
            fusion=settings.fusion_options(),
        )

    # -- stores and models --------------------------------------------------------------

    @property
    def store(self) -> MultiVectorStore:
        """The visual channel's store (the index itself)."""
        return self.stores.visual

    @property
    def model(self) -> ModelInfo | None:
        """The visual model the index was built with (None while it has no visual pages)."""
        return self.store.model

    @property
    def channels(self) -> tuple[str, ...]:
        """Channels holding at least one complete document: what a search uses by default."""
        return self.stores.present()

    @property
    def embedder(self) -> PageEmbedder:
        """The visual query/page model, loaded on first use and checked against the index."""
        if self._embedder is None:
            name = self._model_name or (self.model.name if self.model else None)
            if name is None:
                raise InvalidInputError(
                    "this index has no visual model and none was given; pass model=NAME_OR_DIR"
                )
            from colretrieve.models import ColpaliEmbedder

            self._embedder = ColpaliEmbedder.load(
                name, device=self._device, max_visual_tokens=self._max_visual_tokens
            )
        check_same_model(self.model, self._embedder)
        return self._embedder

    @property
    def text_encoder(self) -> TextEmbedder:
        """The text channel's encoder: the index's own model, else ``text_model``."""
        if self._text_encoder is None:
            bound = self.stores.text.model if self.stores.text is not None else None
            from colretrieve.text.encoder import TokenTextEncoder

            self._text_encoder = TokenTextEncoder.load(
                bound.name if bound else self._text_model, device=self._device
            )
        if self.stores.text is not None:
            check_same_model(self.stores.text.model, self._text_encoder)
        return self._text_encoder

    def has_visual_model(self) -> bool:
        """Whether a visual model was given or the index names one (it may still fail to load)."""
        return bool(self._embedder or self._model_name or self.model)

    # -- ingest -------------------------------------------------------------------------

    def ingest_channels(self, channels: str | Iterable[str] | None = None) -> tuple[str, ...]:
        """The channels an ingest writes: ``channels`` if given, else text and bm25 plus
        visual when a visual model is given or bound."""
        if channels is not None:
            return parse_channels(channels)
        return ((VISUAL,) if self.has_visual_model() else ()) + (TEXT, BM25)

    def writers(self, channels: str | Iterable[str] | None = None) -> dict[str, ChannelWriter]:
        """One writer per ingest channel; creates missing channel stores and loads models."""
        writers: dict[str, ChannelWriter] = {}
        for channel in self.ingest_channels(channels):
            if channel == VISUAL:
                writers[channel] = VisualWriter(self.store, self.embedder)
            elif channel == TEXT:
                encoder = self.text_encoder
                store = self.stores.ensure(TEXT)
                assert isinstance(store, MultiVectorStore)
                writers[channel] = TextWriter(store, encoder)
            else:
                lexical = self.stores.ensure(BM25)
                assert isinstance(lexical, LexicalStore)
                writers[channel] = Bm25Writer(lexical)
        return writers

    def add_document(
        self,
        path: str | Path,
        *,
        dpi: int = 144,
        max_pixels: int = 4_000_000,
        batch_size: int = 4,
        tags: Sequence[str] = (),
        channels: str | Iterable[str] | None = None,
        ocr: OcrOptions | None = None,
    ) -> FilePlan:
        """Render, embed and store one PDF or page image in every ingest channel; channels
        that already hold it are skipped. Pages without a text layer are OCRed when
        Tesseract is installed, unless ``ocr`` says otherwise (``OcrOptions(mode="off")``)."""
        writers = self.writers(channels)
        plan = ingest_file(
            writers,
            Path(path),
            dpi=dpi,
            max_pixels=max_pixels,
            batch_size=batch_size,
            tags=tags,
            ocr=ocr,
        )
        for writer in writers.values():
            writer.store.compact()
        return plan

    def add_page_vectors(
        self, document: DocumentRecord, pages: Sequence[PageInput], model: ModelInfo
    ) -> None:
        """Store visual multi-vectors embedded elsewhere, as one complete document.

        ``model`` describes the embedding space; it must match the index's model.
        """
        self.store.bind_model(model)
        stored = self.store.begin_document(document)
        self.store.add_pages(document.doc_id, list(pages)[stored:])
        self.store.finish_document(document.doc_id)

    # -- search -------------------------------------------------------------------------

    def search_channels(self, channels: str | Iterable[str] | None = None) -> tuple[str, ...]:
        """``channels`` (checked against the index), else every channel the index holds."""
        present = self.channels
        if channels is None:
            return present  # an empty index: nothing to search, no model to load
        wanted = parse_channels(channels)
        missing = [channel for channel in wanted if channel not in present]
        if missing:
            have = ", ".join(present) or "none"
            raise InvalidInputError(
                f"this index has no searchable {', '.join(missing)} channel (it has: {have}); "
                "index with --channels to add one"
            )
        return wanted

    def _searchers(self, channels: str | Iterable[str] | None) -> list[ChannelSearcher]:
        """Searchers of the chosen channels, their query models loaded (so that loading
        never counts as search time)."""
        searchers: list[ChannelSearcher] = []
        for channel in self.search_channels(channels):
            if channel == VISUAL:
                searchers.append(VectorSearcher(VISUAL, self.store, lambda: self.embedder))
            elif channel == TEXT and self.stores.text is not None:
                searchers.append(VectorSearcher(TEXT, self.stores.text, lambda: self.text_encoder))
            elif channel == BM25 and self.stores.bm25 is not None:
                searchers.append(LexicalSearcher(self.stores.bm25))
        for searcher in searchers:
            if isinstance(searcher, VectorSearcher):
                searcher.encoder()
        return searchers

    def search(
        self,
        query: str | np.ndarray,
        k: int = 10,
        *,
        filter: SearchFilter | None = None,
        channels: str | Iterable[str] | None = None,
    ) -> list[SearchHit]:
        """Top-k pages for a text query (every channel, fused) or a visual query multi-vector."""
        return self.search_timed(query, k, filter=filter, channels=channels).hits

    def search_timed(
        self,
        query: str | np.ndarray,
        k: int = 10,
        *,
        filter: SearchFilter | None = None,
        channels: str | Iterable[str] | None = None,
    ) -> SearchResult:
        """Like ``search``, with milliseconds spent per stage (``encode`` and ``score`` in
        total, and per channel ``<channel>_encode``/``<channel>_score``, ``fuse``)."""
        if not isinstance(query, str):
            if channels is not None and parse_channels(channels) != (VISUAL,):
                raise InvalidInputError("a query multi-vector searches the visual channel only")
            return run_search(self.store, query, k, filter=filter)
        check_k(k)
        check_query_text(query)
        searchers = self._searchers(channels)
        started = time.perf_counter()
        with collect() as stages:
            hits = search_fused(searchers, [query], k, filter, self.fusion)[0]
        total = (time.perf_counter() - started) * 1000
        encode = sum(ms for name, ms in stages.items() if name.endswith("_encode"))
        return SearchResult(hits, {"encode": encode, "score": total - encode, **stages})

    def search_many(
        self,
        queries: Sequence[str] | Sequence[np.ndarray],
        k: int = 10,
        *,
        filter: SearchFilter | None = None,
        channels: str | Iterable[str] | None = None,
    ) -> list[list[SearchHit]]:
        """Top-k for many queries at once (queries are encoded in batches per channel)."""
        check_k(k)
        if not queries:
            return []
        if not isinstance(queries[0], str):
            return self.store.search_batch(list(queries), k, filter)
        for text in queries:
            check_query_text(text)
        return search_fused(self._searchers(channels), list(queries), k, filter, self.fusion)

    # -- documents ----------------------------------------------------------------------

    def _catalogs(self) -> list:
        return [self.stores.get(c) for c in (VISUAL, TEXT, BM25) if self.stores.get(c)]

    def documents(self) -> list[DocumentInfo]:
        """Every document of every channel (a document in several channels is listed once,
        complete if complete in any), sorted by path then id."""
        found: dict[str, DocumentInfo] = {}
        for catalog in self._catalogs():
            for doc in catalog.documents():
                if doc.doc_id not in found or (doc.complete and not found[doc.doc_id].complete):
                    found[doc.doc_id] = doc
        return sorted(found.values(), key=lambda d: (d.path, d.doc_id))

    def resolve(self, ref: str) -> list[DocumentInfo]:
        """Documents named by ``ref``: a document id (or unique prefix) or a file path."""
        documents = self.documents()
        by_id = [d for d in documents if d.doc_id == ref]
        if by_id:
            return by_id
        by_path = [d for d in documents if d.path == str(Path(ref).resolve())]
        if by_path:
            return by_path
        if len(ref) >= 8:
            matches = [d for d in documents if d.doc_id.startswith(ref)]
            if len(matches) == 1:
                return matches
        raise DocumentNotFoundError(ref)

    def delete(self, refs: Sequence[str]) -> list[DocumentInfo]:
        """Delete documents by id or path from every channel; return what was deleted.
        Unknown refs raise before anything is deleted."""
        documents = {doc.doc_id: doc for ref in refs for doc in self.resolve(ref)}
        for catalog in self._catalogs():
            held = [doc_id for doc_id in documents if catalog.get_document(doc_id) is not None]
            if held:
                catalog.delete_documents(held)
        return list(documents.values())

    def stats(self) -> IndexStats:
        """The visual channel's figures (see ``channel_stats`` for every channel)."""
        return self.store.stats()

    def channel_stats(self) -> dict[str, IndexStats]:
        return {c: self.stores.get(c).stats() for c in (VISUAL, TEXT, BM25) if self.stores.get(c)}

    def close(self) -> None:
        self.stores.close()

    # Context-manager support written out here: importing colretrieve.store's helpers would
    # load torch at `import colretrieve`.
    def __enter__(self) -> Index:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()
