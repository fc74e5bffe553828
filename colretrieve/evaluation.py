"""Retrieval quality on a labelled query set: recall@1/5/10, MRR@10 and nDCG@5 per kind.

The query file is JSON lines with ``qid``, ``query``, ``file`` (a file name, matched against
the basename of indexed paths), ``page`` (1-based) and ``kind``; other fields are ignored.
Each query has exactly one relevant page.
"""

from __future__ import annotations

import json
import math
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from colretrieve.contracts import SearchHit
from colretrieve.errors import InvalidInputError

RECALL_CUTOFFS = (1, 5, 10)


class EvalQuery(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)

    qid: str = Field(description="Query id.")
    query: str = Field(min_length=1, description="The question.")
    file: str = Field(min_length=1, description="File name of the page that answers it.")
    page: int = Field(ge=1, description="1-based page number that answers it.")
    kind: str = Field(default="all", description="Category used to break results down.")


@dataclass(frozen=True)
class Metrics:
    queries: int
    recall_at_1: float
    recall_at_5: float
    recall_at_10: float
    mrr_at_10: float
    ndcg_at_5: float


@dataclass(frozen=True)
class QueryOutcome:
    qid: str
    kind: str
    rank: int | None
    """1-based rank of the relevant page among the retrieved, None if not retrieved."""


@dataclass(frozen=True)
class EvalReport:
    k: int
    overall: Metrics
    by_kind: dict[str, Metrics]
    outcomes: list[QueryOutcome]
    missing_files: list[str]
    """Target files of some queries that are not in the index at all."""

    def to_dict(self) -> dict:
        return asdict(self)


def load_queries(path: Path) -> list[EvalQuery]:
    queries = []
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except OSError as error:
        raise InvalidInputError(f"cannot read {path}: {error.strerror}") from error
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            queries.append(EvalQuery.model_validate(json.loads(line)))
        except (json.JSONDecodeError, ValidationError) as error:
            raise InvalidInputError(f"{path}:{number}: not a valid query line ({error})") from error
    if not queries:
        raise InvalidInputError(f"{path} holds no queries")
    return queries


def rank_of(query: EvalQuery, hits: Sequence[SearchHit]) -> int | None:
    for rank, hit in enumerate(hits, start=1):
        if Path(hit.path).name == query.file and hit.page == query.page:
            return rank
    return None


def summarize(ranks: Sequence[int | None]) -> Metrics:
    count = len(ranks)

    def mean(values: list[float]) -> float:
        return round(sum(values) / count, 4) if count else 0.0

    recall = {
        cutoff: mean([1.0 if r is not None and r <= cutoff else 0.0 for r in ranks])
        for cutoff in RECALL_CUTOFFS
    }
    return Metrics(
        queries=count,
        recall_at_1=recall[1],
        recall_at_5=recall[5],
        recall_at_10=recall[10],
        mrr_at_10=mean([1.0 / r if r is not None and r <= 10 else 0.0 for r in ranks]),
        ndcg_at_5=mean(
            [1.0 / math.log2(r + 1) if r is not None and r <= 5 else 0.0 for r in ranks]
        ),
    )


def evaluate(
    queries: Sequence[EvalQuery],
    search_batch: Callable[[list[str], int], list[list[SearchHit]]],
    indexed_files: set[str],
    k: int = 10,
) -> EvalReport:
    """Run every query through ``search_batch(texts, k)`` and score the rankings."""
    results = search_batch([q.query for q in queries], max(k, max(RECALL_CUTOFFS)))
    outcomes = [
        QueryOutcome(q.qid, q.kind, rank_of(q, hits[:k]))
        for q, hits in zip(queries, results, strict=True)
    ]
    by_kind: dict[str, list[int | None]] = defaultdict(list)
    for outcome in outcomes:
        by_kind[outcome.kind].append(outcome.rank)
    return EvalReport(
        k=k,
        overall=summarize([o.rank for o in outcomes]),
        by_kind={kind: summarize(ranks) for kind, ranks in sorted(by_kind.items())},
        outcomes=outcomes,
        missing_files=sorted({q.file for q in queries} - indexed_files),
    )


@dataclass(frozen=True)
class ChannelEvalReport:
    """Every channel alone and, with several, their fusion (the index's default search)."""

    channels: tuple[str, ...]
    runs: dict[str, EvalReport]
    """One report per channel, plus ``fused`` when there are several channels."""

    @property
    def default(self) -> EvalReport:
        return self.runs["fused"] if "fused" in self.runs else self.runs[self.channels[0]]

    def to_dict(self) -> dict:
        # The default run's fields at the top level, so single-channel readers keep working.
        return {
            **self.default.to_dict(),
            "channels": list(self.channels),
            "runs": {name: report.to_dict() for name, report in self.runs.items()},
        }


def evaluate_channels(
    queries: Sequence[EvalQuery],
    search_batch: Callable[[list[str], int, Sequence[str]], list[list[SearchHit]]],
    channels: Sequence[str],
    indexed_files: set[str],
    k: int = 10,
) -> ChannelEvalReport:
    """``evaluate`` each channel alone (``search_batch(texts, k, [channel])``) and fused."""
    runs = {
        channel: evaluate(
            queries, lambda t, n, c=channel: search_batch(t, n, [c]), indexed_files, k
        )
        for channel in channels
    }
    if len(channels) > 1:
        runs["fused"] = evaluate(
            queries, lambda t, n: search_batch(t, n, list(channels)), indexed_files, k
        )
    return ChannelEvalReport(tuple(channels), runs)
