"""Searching one or several channels and fusing their rankings.

Each channel ranks pages on its own (encode the query, score it in that channel's store);
``search_fused`` asks every selected channel for ``depth`` candidates and fuses them into one
top-k whose hits say which channels found them, at what rank and score. Per-stage timings
(``<channel>_encode``, ``<channel>_score``, ``fuse``) go to ``colretrieve.timing``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Protocol

from colretrieve.channels import BM25
from colretrieve.contracts import LexicalStore, MultiVectorStore, SearchFilter, SearchHit
from colretrieve.fusion import DEFAULT_FUSION, Fusion, fuse
from colretrieve.timing import stage


class QueryEncoder(Protocol):
    def embed_queries(self, queries: Sequence[str]) -> list: ...


class ChannelSearcher(Protocol):
    name: str

    def search_batch(
        self, queries: Sequence[str], k: int, filter: SearchFilter | None
    ) -> list[list[SearchHit]]: ...


@dataclass
class VectorSearcher:
    """A multi-vector channel (visual or text): encode queries, then MaxSim in the store."""

    name: str
    store: MultiVectorStore
    encoder: Callable[[], QueryEncoder]
    """Returns the query encoder, loading it on first use."""

    def search_batch(
        self, queries: Sequence[str], k: int, filter: SearchFilter | None
    ) -> list[list[SearchHit]]:
        encoder = self.encoder()
        with stage(f"{self.name}_encode"):
            vectors = encoder.embed_queries(list(queries))
        with stage(f"{self.name}_score"):
            return self.store.search_batch(vectors, k, filter)


@dataclass
class LexicalSearcher:
    store: LexicalStore
    name: str = BM25

    def search_batch(
        self, queries: Sequence[str], k: int, filter: SearchFilter | None
    ) -> list[list[SearchHit]]:
        with stage(f"{self.name}_score"):
            return self.store.search_text_batch(list(queries), k, filter)


@dataclass(frozen=True)
class FusionOptions:
    """How several channels' rankings become one (see ``colretrieve.fusion``)."""

    method: str = DEFAULT_FUSION.method
    """``rrf`` (weighted reciprocal rank, the default) or ``weighted`` (normalised scores)."""
    weights: Mapping[str, float] = field(default_factory=lambda: dict(DEFAULT_FUSION.weights))
    """Per-channel weights; a missing channel weighs 1."""
    depth: int = 100
    """Candidates each channel contributes before fusion."""

    def fusion(self) -> Fusion:
        return Fusion(method=self.method, weights=dict(self.weights))  # type: ignore[arg-type]


def search_fused(
    searchers: Sequence[ChannelSearcher],
    queries: Sequence[str],
    k: int,
    filter: SearchFilter | None = None,
    fusion: FusionOptions = FusionOptions(),
) -> list[list[SearchHit]]:
    """Top-k per query over ``searchers``, fused (a single channel keeps its own order)."""
    if not searchers:
        return [[] for _ in queries]
    depth = max(k, fusion.depth)
    ranked = {s.name: s.search_batch(queries, depth, filter) for s in searchers}
    method = fusion.fusion()
    with stage("fuse"):
        return [
            fuse({name: results[i] for name, results in ranked.items()}, k, method)
            for i in range(len(queries))
        ]
