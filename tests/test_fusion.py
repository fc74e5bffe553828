"""Fusing per-channel ranked lists: rrf and weighted normalised scores, on hand-built hits."""

from __future__ import annotations

import pytest

from colretrieve.contracts import ChannelMatch, SearchHit
from colretrieve.errors import InvalidInputError
from colretrieve.fusion import DEFAULT_FUSION, Fusion, fuse, normalise, rrf, weighted


def hit(doc: str, page: int, score: float) -> SearchHit:
    return SearchHit(doc_id=doc, path=f"/docs/{doc}.pdf", page=page, score=score, title=doc)


def keys(hits: list[SearchHit]) -> list[tuple[str, int]]:
    return [(h.doc_id, h.page) for h in hits]


TEXT = [hit("a", 1, 9.0), hit("b", 2, 8.0), hit("c", 1, 4.0)]
BM25 = [hit("b", 2, 20.0), hit("d", 5, 12.0), hit("a", 1, 2.0)]


def test_rrf_scores_and_matches() -> None:
    fused = rrf({"text": TEXT, "bm25": BM25}, k=10)
    assert keys(fused) == [("b", 2), ("a", 1), ("d", 5), ("c", 1)]
    assert fused[0].score == pytest.approx(1 / 62 + 1 / 61)
    assert fused[0].matches == (ChannelMatch("text", 2, 8.0), ChannelMatch("bm25", 1, 20.0))
    assert fused[2].matches == (ChannelMatch("bm25", 2, 12.0),)
    assert fused[0].path == "/docs/b.pdf" and fused[0].title == "b"


def test_weighted_minmax_scores() -> None:
    fused = weighted({"text": TEXT, "bm25": BM25}, k=10, weights={"text": 1.0, "bm25": 0.5})
    # text: a 1, b 0.8, c 0; bm25: b 1, d 10/18, a 0
    expected = {("a", 1): 1.0, ("b", 2): 0.8 + 0.5, ("d", 5): 0.5 * 10 / 18, ("c", 1): 0.0}
    assert keys(fused) == [("b", 2), ("a", 1), ("d", 5), ("c", 1)]
    for h in fused:
        assert h.score == pytest.approx(expected[(h.doc_id, h.page)])
    assert {m.channel for m in fused[0].matches} == {"text", "bm25"}


def test_weights_are_respected() -> None:
    only_bm25 = rrf({"text": TEXT, "bm25": BM25}, k=10, weights={"text": 0.0})
    assert keys(only_bm25)[:3] == keys(BM25)
    heavy_text = weighted({"text": TEXT, "bm25": BM25}, k=10, weights={"bm25": 0.1})
    assert keys(heavy_text)[:2] == [("a", 1), ("b", 2)]
    heavy_bm25 = weighted({"text": TEXT, "bm25": BM25}, k=10, weights={"text": 0.1})
    assert keys(heavy_bm25)[:2] == [("b", 2), ("d", 5)]


def test_k_is_respected() -> None:
    for fusion in (Fusion("rrf"), Fusion("weighted"), DEFAULT_FUSION):
        assert len(fuse({"text": TEXT, "bm25": BM25}, 2, fusion)) == 2
        assert len(fusion({"text": TEXT, "bm25": BM25}, 100)) == 4


def test_one_channel_keeps_its_order() -> None:
    for fusion in (
        Fusion("rrf"),
        Fusion("weighted"),
        Fusion("weighted", normalisation="max"),
        Fusion("weighted", normalisation="zscore"),
    ):
        fused = fuse({"bm25": BM25}, 10, fusion)
        assert keys(fused) == keys(BM25)
        assert [m for h in fused for m in h.matches] == [
            ChannelMatch("bm25", r, h.score) for r, h in enumerate(BM25, start=1)
        ]


def test_ties_are_broken_by_doc_and_page() -> None:
    text = [hit("z", 1, 5.0), hit("a", 3, 4.0)]
    bm25 = [hit("a", 3, 5.0), hit("z", 1, 4.0)]
    for fusion in (Fusion("rrf"), Fusion("weighted")):
        assert keys(fuse({"text": text, "bm25": bm25}, 10, fusion)) == [("a", 3), ("z", 1)]
        assert keys(fuse({"bm25": bm25, "text": text}, 10, fusion)) == [("a", 3), ("z", 1)]
    same = [hit("b", 2, 1.0), hit("b", 1, 1.0), hit("a", 9, 1.0)]
    assert keys(weighted({"text": same}, 10)) == [("a", 9), ("b", 1), ("b", 2)]


def test_empty_channels() -> None:
    assert fuse({}, 5) == []
    assert keys(fuse({"text": [], "bm25": BM25}, 5)) == keys(BM25)


def test_normalise() -> None:
    assert normalise([4.0, 2.0, 0.0], "minmax") == [1.0, 0.5, 0.0]
    assert normalise([4.0, 2.0], "max") == [1.0, 0.5]
    assert normalise([3.0, 3.0], "minmax") == [1.0, 1.0]
    assert normalise([1.0, 3.0], "zscore") == [-1.0, 1.0]
    assert normalise([], "max") == []


def test_bad_arguments() -> None:
    with pytest.raises(InvalidInputError):
        fuse({"text": TEXT}, 0)
    with pytest.raises(InvalidInputError):
        Fusion("borda")  # type: ignore[arg-type]
    with pytest.raises(InvalidInputError):
        Fusion(weights={"text": -1.0})
    with pytest.raises(InvalidInputError):
        fuse({"text": [hit("a", 1, 2.0), hit("a", 1, 1.0)]}, 5)


def test_default_fusion_is_valid() -> None:
    assert DEFAULT_FUSION.method in ("rrf", "weighted")
    assert DEFAULT_FUSION.with_weights(visual=2.0).weight("visual") == 2.0
    assert DEFAULT_FUSION.weight("unknown-channel") == 1.0
