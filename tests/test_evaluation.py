import json
from pathlib import Path

import pytest

from colretrieve.contracts import SearchHit
from colretrieve.errors import InvalidInputError
from colretrieve.evaluation import evaluate, load_queries, summarize

CORPUS_QUERIES = Path(__file__).resolve().parents[2] / "shared" / "corpus" / "dev-queries.jsonl"


def test_metrics_for_known_ranks():
    metrics = summarize([1, 3, None, 7])
    assert metrics.recall_at_1 == 0.25
    assert metrics.recall_at_5 == 0.5
    assert metrics.recall_at_10 == 0.75
    assert metrics.mrr_at_10 == pytest.approx((1 + 1 / 3 + 1 / 7) / 4, abs=1e-4)
    assert metrics.ndcg_at_5 == pytest.approx((1 + 0.5) / 4, abs=1e-4)


def test_evaluate_matches_file_name_and_page_per_kind(tmp_path: Path):
    lines = [
        {"qid": "a", "query": "x", "file": "a.pdf", "page": 2, "kind": "table"},
        {"qid": "b", "query": "y", "file": "b.pdf", "page": 1, "kind": "chart"},
        {"qid": "c", "query": "z", "file": "c.pdf", "page": 1, "kind": "chart"},
    ]
    path = tmp_path / "q.jsonl"
    path.write_text("\n".join(json.dumps(line) for line in lines))
    ranked = {
        "x": [SearchHit("1", "/d/a.pdf", 1, 2.0), SearchHit("1", "/d/a.pdf", 2, 1.0)],
        "y": [SearchHit("2", "/d/b.pdf", 1, 2.0)],
        "z": [SearchHit("2", "/d/b.pdf", 1, 2.0)],
    }
    report = evaluate(
        load_queries(path), lambda texts, k: [ranked[t][:k] for t in texts], {"a.pdf", "b.pdf"}
    )
    assert [o.rank for o in report.outcomes] == [2, 1, None]
    assert report.by_kind["table"].recall_at_1 == 0.0
    assert report.by_kind["chart"].recall_at_1 == 0.5
    assert report.overall.recall_at_5 == pytest.approx(0.6667, abs=1e-4)
    assert report.missing_files == ["c.pdf"]


def test_the_shared_dev_queries_parse():
    queries = load_queries(CORPUS_QUERIES)
    assert len(queries) >= 20
    assert {q.kind for q in queries} >= {"text", "table"}


def test_malformed_query_lines_name_the_line(tmp_path: Path):
    path = tmp_path / "q.jsonl"
    path.write_text('{"qid": "a", "query": "x", "file": "a.pdf", "page": 1}\n{"qid": 3}\n')
    with pytest.raises(InvalidInputError, match=r"q\.jsonl:2"):
        load_queries(path)
