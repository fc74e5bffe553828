"""Fuse the ranked page lists of several retrieval channels into one.

Each channel (``visual``, ``text``, ``bm25``) answers a query with its own ranked
``SearchHit`` list; a fusion turns them into one top-k list whose hits carry
``ChannelMatch(channel, rank, score)`` for every channel that returned the page. Two methods:

* ``rrf``: reciprocal rank fusion, ``sum_c w_c / (rank_constant + rank_c)``. Only ranks count,
  so a channel that is sure (one page far ahead) weighs the same as one that is guessing;
* ``weighted``: ``sum_c w_c * norm_c(score)``, each channel's scores normalised per query
  (``minmax`` over its returned list, ``max``: divided by its top score, or ``zscore``). A page
  a channel did not return contributes that channel's minimum (0 after minmax).

Ties are broken by ``(doc_id, page)`` so results are deterministic. The default
(:data:`DEFAULT_FUSION`) is what ``benchmarks/hybrid_quality.py`` measured best on held-out
questions.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Literal

from colretrieve.contracts import ChannelMatch, SearchHit
from colretrieve.errors import InvalidInputError

__all__ = ["DEFAULT_FUSION", "Fusion", "fuse", "normalise", "rrf", "weighted"]

Method = Literal["rrf", "weighted"]
Normalisation = Literal["minmax", "max", "zscore"]


@dataclass(frozen=True)
class Fusion:
    """A fusion method and its parameters; call it on per-channel results."""

    method: Method = "rrf"
    weights: Mapping[str, float] = field(default_factory=dict)
    """Per-channel weight; a channel not named here weighs 1."""
    rank_constant: float = 60.0
    """``rrf`` only: larger values flatten the difference between top ranks."""
    normalisation: Normalisation = "minmax"
    """``weighted`` only: how each channel's scores are put on one scale per query."""

    def __post_init__(self) -> None:
        if self.method not in ("rrf", "weighted"):
            raise InvalidInputError(f"unknown fusion method {self.method!r}; use rrf or weighted")
        if self.normalisation not in ("minmax", "max", "zscore"):
            raise InvalidInputError(f"unknown normalisation {self.normalisation!r}")
        if any(not math.isfinite(w) or w < 0 for w in self.weights.values()):
            raise InvalidInputError(f"channel weights must be finite and >= 0; got {self.weights}")
        if self.rank_constant < 0:
            raise InvalidInputError(f"rank_constant must be >= 0; got {self.rank_constant}")

    def weight(self, channel: str) -> float:
        return float(self.weights.get(channel, 1.0))

    def with_weights(self, **weights: float) -> Fusion:
        return replace(self, weights={**self.weights, **weights})

    def __call__(self, results: Mapping[str, Sequence[SearchHit]], k: int) -> list[SearchHit]:
        return fuse(results, k, self)


# Chosen on the held-out questions in benchmarks/hybrid_quality.py and checked on the dev set:
# text ranks lead and bm25 mostly reorders pages the text channel ranks close together. An
# unweighted rrf (or bm25 weighted as high as text) measured below the text channel alone.
DEFAULT_FUSION = Fusion(method="rrf", weights={"text": 1.0, "bm25": 0.25})


def normalise(scores: Sequence[float], how: Normalisation) -> list[float]:
    """One channel's scores for one query on a common scale (higher is better)."""
    if not scores:
        return []
    if how == "max":
        top = max(scores)
        return [s / top if top > 0 else 0.0 for s in scores]
    if how == "zscore":
        mean = sum(scores) / len(scores)
        std = math.sqrt(sum((s - mean) ** 2 for s in scores) / len(scores))
        return [(s - mean) / std if std > 0 else 0.0 for s in scores]
    low, high = min(scores), max(scores)
    return [(s - low) / (high - low) if high > low else 1.0 for s in scores]


def _floor(how: Normalisation, normalised: list[float]) -> float:
    """What a page missing from a channel's list gets from that channel."""
    if how == "zscore":
        return min(normalised, default=0.0)
    return 0.0


def fuse(
    results: Mapping[str, Sequence[SearchHit]], k: int, fusion: Fusion = DEFAULT_FUSION
) -> list[SearchHit]:
    """The top ``k`` pages over every channel's hits, fused by ``fusion``."""
    if k < 1:
        raise InvalidInputError(f"k must be >= 1; got {k}")
    totals: dict[tuple[str, int], float] = {}
    first: dict[tuple[str, int], SearchHit] = {}
    matches: dict[tuple[str, int], list[ChannelMatch]] = {}
    for channel, hits in results.items():
        weight = fusion.weight(channel)
        seen: set[tuple[str, int]] = set()
        if fusion.method == "rrf":
            contributions = [weight / (fusion.rank_constant + r) for r in range(1, len(hits) + 1)]
            floor = 0.0
        else:
            norm = normalise([h.score for h in hits], fusion.normalisation)
            contributions = [weight * s for s in norm]
            floor = weight * _floor(fusion.normalisation, norm)
        for rank, (hit, value) in enumerate(zip(hits, contributions, strict=True), start=1):
            key = (hit.doc_id, hit.page)
            if key in seen:
                raise InvalidInputError(f"channel {channel!r} returned page {key} twice")
            seen.add(key)
            first.setdefault(key, hit)
            totals[key] = totals.get(key, 0.0) + value - floor
            matches.setdefault(key, []).append(ChannelMatch(channel, rank, hit.score))
    # (A missing page's floor is added to every page alike, so it is left out above.)
    ranked = sorted(totals, key=lambda key: (-totals[key], key))[:k]
    return [
        SearchHit(
            doc_id=key[0],
            path=first[key].path,
            page=key[1],
            score=totals[key],
            title=first[key].title,
            matches=tuple(matches[key]),
        )
        for key in ranked
    ]


def rrf(
    results: Mapping[str, Sequence[SearchHit]],
    k: int,
    weights: Mapping[str, float] | None = None,
    rank_constant: float = 60.0,
) -> list[SearchHit]:
    """Reciprocal rank fusion, optionally weighted per channel."""
    return fuse(results, k, Fusion("rrf", dict(weights or {}), rank_constant=rank_constant))


def weighted(
    results: Mapping[str, Sequence[SearchHit]],
    k: int,
    weights: Mapping[str, float] | None = None,
    normalisation: Normalisation = "minmax",
) -> list[SearchHit]:
    """Weighted sum of per-query normalised channel scores."""
    return fuse(results, k, Fusion("weighted", dict(weights or {}), normalisation=normalisation))
