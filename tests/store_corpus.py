"""Seeded random multi-vector corpora shared by the store tests and the crash-test writer."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import numpy as np

from colretrieve.contracts import DocumentRecord, ModelInfo, PageInput

DIM = 32
MODEL = ModelInfo(name="test/colqwen", revision="a" * 40, architecture="ColQwen2", dim=DIM)
OTHER_MODEL = ModelInfo(name="test/colpali", revision="b" * 40, architecture="ColPali", dim=DIM)


def unit_rows(rng: np.random.Generator, n: int, dim: int = DIM) -> np.ndarray:
    """Random unit-norm rows, like ColQwen2's normalised embeddings."""
    rows = rng.normal(size=(n, dim)).astype(np.float32)
    return rows / np.linalg.norm(rows, axis=1, keepdims=True)


def doc_id_for(name: str) -> str:
    return hashlib.sha256(name.encode()).hexdigest()


@dataclass(frozen=True)
class Doc:
    record: DocumentRecord
    pages: list[np.ndarray]

    def inputs(self, first: int = 1, last: int | None = None) -> list[PageInput]:
        last = len(self.pages) if last is None else last
        return [
            PageInput(
                page=n,
                vectors=self.pages[n - 1],
                text=f"page {n}",
                width=10,
                height=20,
                text_source="ocr" if n % 2 == 0 else "layer",
            )
            for n in range(first, last + 1)
        ]


def make_corpus(seed: int = 0, n_docs: int = 12, pages_per_doc: int = 5) -> list[Doc]:
    """``n_docs`` documents (60 pages by default) of 20-120 vectors per page."""
    rng = np.random.default_rng(seed)
    docs = []
    for i in range(n_docs):
        folder = "reports" if i % 3 else "letters"
        tags = tuple(t for t, keep in (("red", i % 2 == 0), ("blue", i % 4 < 2)) if keep)
        pages = [unit_rows(rng, int(rng.integers(20, 121))) for _ in range(pages_per_doc)]
        record = DocumentRecord(
            doc_id=doc_id_for(f"doc-{seed}-{i}"),
            path=f"{folder}/doc{i:02d}.pdf",
            title=f"Document {i}",
            size_bytes=1000 + i,
            total_pages=pages_per_doc,
            tags=tags,
        )
        docs.append(Doc(record, pages))
    return docs


def make_queries(seed: int = 1, n: int = 4) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    return [unit_rows(rng, int(rng.integers(3, 16))) for _ in range(n)]


def crash_doc(n: int) -> Doc:
    """Document number ``n`` of the crash test: everything derives from ``n``."""
    rng = np.random.default_rng(10_000 + n)
    total = 1 + n % 5
    pages = [unit_rows(rng, 5 + (n * 7 + p) % 20) for p in range(total)]
    record = DocumentRecord(
        doc_id=doc_id_for(f"crash-{n}"),
        path=f"crash/{n:05d}.pdf",
        title=str(n),
        size_bytes=n,
        total_pages=total,
    )
    return Doc(record, pages)
