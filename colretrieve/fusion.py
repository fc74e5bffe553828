"""PLACEHOLDER (integration scaffold; replaced by the measured fusion from branch text)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from colretrieve.contracts import ChannelMatch, SearchHit


def fuse(
    ranked: Mapping[str, Sequence[SearchHit]],
    k: int,
    *,
    method: str = "rrf",
    weights: Mapping[str, float] | None = None,
) -> list[SearchHit]:
    weights = weights or {}
    scores: dict[tuple[str, int], float] = {}
    matches: dict[tuple[str, int], list[ChannelMatch]] = {}
    first: dict[tuple[str, int], SearchHit] = {}
    for channel, hits in ranked.items():
        for rank, hit in enumerate(hits, start=1):
            key = (hit.doc_id, hit.page)
            scores[key] = scores.get(key, 0.0) + weights.get(channel, 1.0) / (60 + rank)
            matches.setdefault(key, []).append(ChannelMatch(channel, rank, hit.score))
            first.setdefault(key, hit)
    order = sorted(scores, key=lambda key: (-scores[key], key))[:k]
    return [
        SearchHit(
            first[key].doc_id,
            first[key].path,
            first[key].page,
            scores[key],
            first[key].title,
            tuple(matches[key]),
        )
        for key in order
    ]
