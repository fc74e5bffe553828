"""What each channel does with a batch of rendered pages at ingest time.

A writer owns one channel's store and model: ``bind`` records the model in the store before
anything is written, ``write`` turns a batch of pages into that channel's representation and
stores it in one atomic call. The ingest loops (``colretrieve.ingest``, ``indexer``) drive
writers without knowing which channels they serve.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from colretrieve.channels import BM25, TEXT, VISUAL
from colretrieve.contracts import (
    DocumentCatalog,
    LexicalStore,
    MultiVectorStore,
    PageEmbedder,
    PageInput,
    PageText,
    TextEmbedder,
)
from colretrieve.rasterize import RenderedPage


class ChannelWriter(Protocol):
    name: str
    needs_images: bool
    """Whether ``write`` looks at page images (else the text layer is enough)."""

    @property
    def store(self) -> DocumentCatalog: ...

    def bind(self) -> None: ...

    def write(self, doc_id: str, pages: Sequence[RenderedPage]) -> None: ...


def page_inputs(pages: Sequence[RenderedPage], vectors: Sequence) -> list[PageInput]:
    return [
        PageInput(page.page, vecs, page.text, page.width, page.height, page.text_source)
        for page, vecs in zip(pages, vectors, strict=True)
    ]


@dataclass
class VisualWriter:
    store: MultiVectorStore
    embedder: PageEmbedder
    name: str = VISUAL
    needs_images: bool = True

    def bind(self) -> None:
        self.store.bind_model(self.embedder.info)

    def write(self, doc_id: str, pages: Sequence[RenderedPage]) -> None:
        vectors = self.embedder.embed_images([page.image for page in pages])
        self.store.add_pages(doc_id, page_inputs(pages, vectors))


@dataclass
class TextWriter:
    store: MultiVectorStore
    encoder: TextEmbedder
    name: str = TEXT
    needs_images: bool = False

    def bind(self) -> None:
        self.store.bind_model(self.encoder.info)

    def write(self, doc_id: str, pages: Sequence[RenderedPage]) -> None:
        vectors = self.encoder.embed_texts([page.text for page in pages])
        self.store.add_pages(doc_id, page_inputs(pages, vectors))


@dataclass
class Bm25Writer:
    store: LexicalStore
    name: str = BM25
    needs_images: bool = False

    def bind(self) -> None:
        pass  # BM25 has no model: its analyzer is part of the code

    def write(self, doc_id: str, pages: Sequence[RenderedPage]) -> None:
        self.store.add_texts(doc_id, [PageText(page.page, page.text) for page in pages])
