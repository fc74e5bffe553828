"""Query-time work: check the model matches the index, encode, score, time each stage."""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np

from colretrieve.contracts import (
    ModelInfo,
    MultiVectorStore,
    PageEmbedder,
    SearchFilter,
    SearchHit,
)
from colretrieve.errors import InvalidInputError, ModelMismatchError
from colretrieve.timing import collect

MAX_QUERY_CHARS = 2_000
MAX_K = 1_000


@dataclass(frozen=True)
class SearchResult:
    hits: list[SearchHit]
    timings_ms: dict[str, float] = field(default_factory=dict)
    """Milliseconds per stage: ``encode`` (text queries only), ``score`` (all of the store's
    search) and, when the store's fast path ran, its ``first_stage`` and ``rerank``."""


def check_same_model(index_model: ModelInfo | None, embedder: PageEmbedder) -> None:
    """Refuse to score queries of one model against pages of another."""
    if index_model is not None and not index_model.same_embedding_space(embedder.info):
        raise ModelMismatchError(index_model.label, embedder.info.label)


def check_k(k: int) -> int:
    if not isinstance(k, int) or isinstance(k, bool) or not 1 <= k <= MAX_K:
        raise InvalidInputError(f"k must be an integer from 1 to {MAX_K}; got {k!r}")
    return k


def check_query_text(query: str) -> str:
    if not isinstance(query, str) or not query.strip():
        raise InvalidInputError("a query must be a non-empty string")
    if len(query) > MAX_QUERY_CHARS:
        raise InvalidInputError(
            f"a query may have at most {MAX_QUERY_CHARS} characters; got {len(query)}"
        )
    return query


def encode_query(embedder: PageEmbedder, query: str) -> np.ndarray:
    return embedder.embed_queries([check_query_text(query)])[0]


def search(
    store: MultiVectorStore,
    query: str | np.ndarray,
    k: int = 10,
    *,
    embedder: PageEmbedder | None = None,
    filter: SearchFilter | None = None,
) -> SearchResult:
    """Top-k pages for a text query (encoded with ``embedder``) or a query multi-vector."""
    check_k(k)
    timings: dict[str, float] = {}
    if isinstance(query, str):
        if embedder is None:
            raise InvalidInputError("a text query needs an embedder; pass a query multi-vector")
        check_same_model(store.model, embedder)
        started = time.perf_counter()
        query = encode_query(embedder, query)
        timings["encode"] = (time.perf_counter() - started) * 1000
    started = time.perf_counter()
    with collect() as stages:
        hits = store.search(query, k, filter)
    timings["score"] = (time.perf_counter() - started) * 1000
    timings.update(stages)
    return SearchResult(hits, timings)
