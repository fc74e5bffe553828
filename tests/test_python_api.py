"""The documented Python API: create an index, add documents and precomputed multi-vectors,
search by text or by query multi-vector, delete."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from colretrieve import (
    DocumentRecord,
    Index,
    InvalidInputError,
    ModelInfo,
    ModelMismatchError,
    PageInput,
    SearchFilter,
)
from colretrieve.maxsim import maxsim_lists
from tests.bad_inputs import CORPUS

PDF = CORPUS / "pdfs" / "pymupdf__irs-form-1040-2025.pdf"


def test_add_document_and_search_text(tmp_path: Path, tiny_embedder):
    with Index.open(tmp_path / "idx", create=True, embedder=tiny_embedder) as index:
        plan = index.add_document(PDF, tags=["tax"])
        assert plan.source.page_count == 2
        again = index.add_document(PDF)
        assert again.action.value == "unchanged"
        hits = index.search("adjusted gross income", k=5)
        assert [h.page for h in hits] in ([1, 2], [2, 1])
        assert index.search("income", k=5, filter=SearchFilter(tags=frozenset({"nope"}))) == []
        # Visual given, so text and bm25 come along; the search fuses all three.
        assert index.channels == ("visual", "text", "bm25")
        timed = index.search_timed("income", k=1)
        stages = {"visual_encode", "visual_score", "text_encode", "text_score", "bm25_score"}
        assert {"encode", "score", "fuse"} | stages <= set(timed.timings_ms)
        assert timed.timings_ms["encode"] == pytest.approx(
            timed.timings_ms["visual_encode"] + timed.timings_ms["text_encode"]
        )
        with pytest.raises(InvalidInputError):
            index.search("", k=3)
        with pytest.raises(InvalidInputError):
            index.search("income", k=0)
        assert [d.title for d in index.documents()] != []
        deleted = index.delete([str(PDF)])
        assert len(deleted) == 1 and index.search("income", k=5) == []


def test_precomputed_multivectors_round_trip_exactly(tmp_path: Path):
    rng = np.random.default_rng(7)
    model = ModelInfo("my-encoder", "abc123", "External", dim=32)
    pages = [
        rng.standard_normal((rng.integers(5, 40), 32)).astype(np.float16).astype(np.float32)
        for _ in range(12)
    ]
    with Index.open(tmp_path / "idx", create=True) as index:
        for doc in range(3):
            record = DocumentRecord(f"{doc:064x}", f"/data/doc{doc}.pdf", f"doc {doc}", 1, 4)
            inputs = [PageInput(p + 1, pages[doc * 4 + p]) for p in range(4)]
            index.add_page_vectors(record, inputs, model)
        query = rng.standard_normal((9, 32)).astype(np.float32)
        expected = maxsim_lists([query], pages)[0]
        hits = index.search(query, k=12)
        got = {(int(h.doc_id, 16), h.page): h.score for h in hits}
        for i, score in enumerate(expected):
            assert got[(i // 4, i % 4 + 1)] == pytest.approx(float(score), rel=1e-5, abs=1e-4)
        many = index.search_many([query, query[:3]], k=2)
        assert [h.doc_id for h in many[0]] == [h.doc_id for h in hits[:2]]
        with pytest.raises(ModelMismatchError):
            index.add_page_vectors(
                DocumentRecord("f" * 64, "/x.pdf", "x", 1, 1),
                [PageInput(1, pages[0])],
                ModelInfo("other", "zzz", "External", dim=32),
            )


def test_importing_colretrieve_loads_no_model_library():
    """`import colretrieve` stays cheap: torch and transformers load on first real use."""
    import subprocess
    import sys

    code = "import sys, colretrieve; print(sorted({'torch', 'transformers'} & set(sys.modules)))"
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=120
    )
    assert result.stdout.strip() == "[]"
