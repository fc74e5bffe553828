"""Every endpoint in process (httpx ASGI transport) with the tiny models: shapes, auth,
limits, the error shape, uploads as background jobs, page images, SSE streams."""

from __future__ import annotations

import json
import shutil
import time
from pathlib import Path

import pytest

from colretrieve.settings import Settings
from server import create_app
from server.auth import key_hash
from server.state import load_state
from tests.bad_inputs import CORPUS
from tests.server_support import InProcessClient, assert_error

ADMIN = {"Authorization": "Bearer admin-key"}
ALICE = {"Authorization": "Bearer alice-key"}
BOB = {"Authorization": "Bearer bob-key"}


def server_settings(index: Path, other: Path, keys: Path, **extra) -> Settings:
    return Settings(
        index=index,
        collections={"other": other},
        api_key="admin-key",
        keys_file=keys,
        device="cpu",
        max_new_tokens=8,
        answer_max_pixels=50_000,
        max_k=50,
        **extra,
    )


@pytest.fixture(scope="module")
def app(server_index, tiny_embedder, tiny_generator, tmp_path_factory):
    root = tmp_path_factory.mktemp("server-app")
    keys = root / "keys.json"
    keys.write_text(
        json.dumps(
            {
                "keys": [
                    {"name": "alice", "sha256": key_hash("alice-key"), "read": ["default"]},
                    {"name": "bob", "sha256": key_hash("bob-key"), "write": ["other"]},
                ]
            }
        )
    )
    settings = server_settings(server_index, root / "other", keys)
    state = load_state(settings, embedder=tiny_embedder, generator=tiny_generator)
    yield create_app(settings, state=state)
    state.close()


@pytest.fixture(scope="module")
def admin(app) -> InProcessClient:
    return InProcessClient(app, ADMIN)


def test_error_shape_is_one_shape_for_every_kind_of_error(app, admin):
    """Pinned: {"error": {"code", "message", "status"}} for ours, validation, routing, auth."""
    assert_error(InProcessClient(app).post("/v1/search", json={"query": "x"}), 401, "unauthorized")
    assert_error(admin.post("/v1/search", json={"query": ""}), 422, "invalid_request")
    assert_error(admin.post("/v1/search", json={"query": "x", "bogus": 1}), 422, "invalid_request")
    assert_error(admin.get("/v1/nothing-here"), 404, "not_found")
    assert_error(admin.request("PUT", "/v1/search"), 405, "method_not_allowed")
    assert_error(admin.post("/v1/search", json={"query": "x", "k": 51}), 400, "limit_exceeded")
    assert_error(admin.delete("/v1/documents/abcdef0123456789"), 404, "document_not_found")


def test_search_ranks_pages_with_links_and_timings(admin):
    body = admin.post("/v1/search", json={"query": "total amount due", "k": 3}).json()
    assert body["collection"] == "default"
    hits = body["hits"]
    assert [h["rank"] for h in hits] == [1, 2, 3]
    assert [h["score"] for h in hits] == sorted((h["score"] for h in hits), reverse=True)
    assert all(h["image_url"].startswith(f"/v1/pages/{h['doc_id']}/{h['page']}/") for h in hits)
    assert all(h["explanation"] is None for h in hits)
    timings = body["timings"]
    assert timings["encode_ms"] > 0 and timings["score_ms"] >= 0
    assert timings["rerank_ms"] is None and timings["generate_ms"] is None


def test_search_fuses_the_visual_and_text_channels(app, admin):
    """The tiny-visual index holds all three channels: a default search fuses them, each
    channel searches alone, and an empty collection answers no hits (as before channels)."""
    ready = InProcessClient(app).get("/readyz").json()
    assert ready["channels"]["default"] == ["visual", "text", "bm25"]
    assert ready["ingest_channels"]["other"] == ["visual", "text", "bm25"]
    assert ready["warnings"] == []
    body = admin.post("/v1/search", json={"query": "invoice total", "k": 3}).json()
    assert body["channels"] == ["visual", "text", "bm25"] and body["fusion"] == "rrf"
    assert {m["channel"] for h in body["hits"] for m in h["matches"]} == {"visual", "text", "bm25"}
    timings = body["timings"]
    assert timings["visual_encode_ms"] > 0 and timings["text_encode_ms"] > 0
    assert timings["bm25_score_ms"] >= 0 and timings["fuse_ms"] >= 0
    visual = admin.post("/v1/search", json={"query": "invoice", "k": 2, "channels": ["visual"]})
    assert visual.json()["channels"] == ["visual"] and visual.json()["fusion"] is None
    assert all([m["channel"] for m in h["matches"]] == ["visual"] for h in visual.json()["hits"])
    text_explain = admin.post(
        "/v1/search", json={"query": "x", "explain": True, "channels": ["text"]}
    )
    assert "visual" in assert_error(text_explain, 400, "invalid_input")["message"]
    empty = admin.post("/v1/search", json={"query": "x", "collection": "other"}).json()
    assert empty["hits"] == [] and empty["channels"] == []


def test_search_filters_and_explain_grid(admin):
    docs = admin.get("/v1/documents").json()["documents"]
    one = docs[0]["doc_id"]
    body = admin.post(
        "/v1/search",
        json={"query": "tariff", "k": 5, "filters": {"doc_ids": [one]}, "explain": True},
    ).json()
    assert {h["doc_id"] for h in body["hits"]} == {one}
    explanation = body["hits"][0]["explanation"]
    rows, cols = explanation["grid"]
    assert 1 <= len(explanation["maps"]) <= 32
    assert all(len(row) == rows * cols for row in explanation["maps"])
    too_many = admin.post("/v1/search", json={"query": "x", "k": 11, "explain": True})
    assert_error(too_many, 400, "limit_exceeded")


def test_page_image_thumbnail_and_bounds(admin):
    hit = admin.post("/v1/search", json={"query": "invoice", "k": 1}).json()["hits"][0]
    response = admin.get(hit["image_url"] + "&width=120")
    assert response.status_code == 200 and response.headers["content-type"] == "image/png"
    from io import BytesIO

    from PIL import Image

    assert Image.open(BytesIO(response.content)).width == 120
    assert_error(admin.get(f"/v1/pages/{hit['doc_id']}/999/image"), 404, "not_found")
    assert_error(
        admin.get(f"/v1/pages/{hit['doc_id']}/1/image?width=99999"), 422, "invalid_request"
    )


def test_ask_answers_with_citations_of_shown_pages_only(admin):
    body = admin.post("/v1/ask", json={"query": "what is the total?", "pages": 2}).json()
    assert body["answer"].strip()
    assert len(body["pages"]) == 2 and [p["marker"] for p in body["pages"]] == [1, 2]
    shown = {(p["doc_id"], p["page"]) for p in body["pages"]}
    assert all((c["doc_id"], c["page"]) in shown for c in body["citations"])
    assert body["timings"]["generate_ms"] > 0 and body["timings"]["encode_ms"] > 0
    replay = body["replay"]
    assert len(replay["images"]) == 2 and len(replay["query_sha256"]) == 64
    assert replay["generation"]["max_new_tokens"] == 8
    assert_error(admin.post("/v1/ask", json={"query": "x", "pages": 9}), 422, "invalid_request")


def test_ask_streams_tokens_then_the_answer_event(admin):
    response = admin.post("/v1/ask", json={"query": "what is the total?", "stream": True})
    assert response.headers["content-type"].startswith("text/event-stream")
    events = [
        (block.split("\n")[0][len("event: ") :], json.loads(block.split("\n")[1][len("data: ") :]))
        for block in response.text.strip().split("\n\n")
    ]
    assert events[-1][0] == "answer" and {e for e, _ in events[:-1]} == {"token"}
    final = events[-1][1]
    assert final["answer"] == "".join(d["text"] for _, d in events[:-1]).strip() or final["answer"]
    assert "citations" in final and final["timings"]["generate_ms"] > 0


def test_chat_completions_and_models(admin):
    models = admin.get("/v1/models").json()
    assert {m["id"] for m in models["data"]} == {"default", "other"}
    body = admin.post(
        "/v1/chat/completions",
        json={
            "model": "default",
            "messages": [
                {"role": "system", "content": "be brief"},
                {"role": "user", "content": "what is the invoice total?"},
                {"role": "assistant", "content": "Which invoice?"},
                {"role": "user", "content": [{"type": "text", "text": "the first one"}]},
            ],
            "max_tokens": 4,
        },
    ).json()
    assert body["object"] == "chat.completion" and body["model"] == "default"
    assert body["choices"][0]["message"]["role"] == "assistant"
    assert body["choices"][0]["message"]["citations"] == body["citations"]
    bad_model = admin.post(
        "/v1/chat/completions",
        json={"model": "nope", "messages": [{"role": "user", "content": "x"}]},
    )
    assert_error(bad_model, 404, "not_found")
    no_user = admin.post(
        "/v1/chat/completions",
        json={"model": "default", "messages": [{"role": "system", "content": "x"}]},
    )
    assert_error(no_user, 400, "invalid_input")


def test_tenants_see_only_their_collections(app):
    alice, bob = InProcessClient(app, ALICE), InProcessClient(app, BOB)
    assert [m["id"] for m in alice.get("/v1/models").json()["data"]] == ["default"]
    assert [m["id"] for m in bob.get("/v1/models").json()["data"]] == ["other"]
    assert alice.post("/v1/search", json={"query": "x", "k": 1}).status_code == 200
    # Another tenant's collection is a 404, never its data (and never a 403).
    assert_error(bob.post("/v1/search", json={"query": "x"}), 404, "not_found")
    assert_error(bob.get("/v1/documents"), 404, "not_found")
    assert_error(alice.get("/v1/documents?collection=other"), 404, "not_found")
    # Read-only keys cannot write.
    pdf = (CORPUS / "pdfs" / "pdfua__invoice.pdf").read_bytes()
    upload = alice.post("/v1/documents", files={"files": ("a.pdf", pdf, "application/pdf")})
    assert_error(upload, 404, "not_found")
    wrong = InProcessClient(app, {"Authorization": "Bearer wrong"})
    assert_error(wrong.get("/v1/models"), 401, "unauthorized")
    assert InProcessClient(app).get("/v1/models").headers["www-authenticate"] == "Bearer"


def test_upload_is_checked_by_content_and_ingested_as_a_job(app, tmp_path):
    bob = InProcessClient(app, BOB)
    fake = bob.post(
        "/v1/documents",
        data={"collection": "other"},
        files={"files": ("report.pdf", b"GIF89a not a pdf at all", "application/pdf")},
    )
    assert_error(fake, 415, "unreadable_document")
    source = CORPUS / "pdfs" / "pymupdf__irs-form-7004.pdf"
    renamed = tmp_path / "scan.png"  # the name lies; the content decides
    shutil.copy(source, renamed)
    response = bob.post(
        "/v1/documents",
        data={"collection": "other", "tags": ["tax"]},
        files={"files": (renamed.name, renamed.read_bytes(), "image/png")},
    )
    assert response.status_code == 202, response.text
    job = response.json()
    deadline = time.monotonic() + 120
    while job["status"] in ("queued", "running") and time.monotonic() < deadline:
        time.sleep(0.5)
        job = bob.get(job["url"]).json()
    assert job["status"] == "succeeded", job
    assert job["pages_done"] == job["pages_total"] > 0
    assert_error(InProcessClient(app, ALICE).get(job["url"]), 404, "not_found")
    docs = bob.get("/v1/documents?collection=other").json()["documents"]
    assert len(docs) == 1 and docs[0]["tags"] == ["tax"] and docs[0]["complete"]
    stored = Path(docs[0]["path"])
    assert stored.parent.name == "uploads" and stored.name == f"{docs[0]['doc_id']}.pdf"
    image = bob.get(f"/v1/pages/{docs[0]['doc_id']}/1/image?collection=other&width=64")
    assert image.status_code == 200
    deleted = bob.delete(f"/v1/documents/{docs[0]['doc_id']}?collection=other").json()
    assert [d["doc_id"] for d in deleted["deleted"]] == [docs[0]["doc_id"]]
    assert bob.get("/v1/documents?collection=other").json()["documents"] == []
    assert not stored.exists()


def test_upload_caps(server_index, tiny_embedder, tmp_path):
    keys = tmp_path / "keys.json"
    keys.write_text(json.dumps({"keys": []}))
    settings = server_settings(
        server_index, tmp_path / "o", keys, max_upload_bytes=150_000, max_upload_pages=1
    )
    state = load_state(settings, embedder=tiny_embedder)
    client = InProcessClient(create_app(settings, state=state), ADMIN)
    pdfs = CORPUS / "pdfs"

    def upload(*names: str):
        files = [("files", (n, (pdfs / n).read_bytes(), "application/pdf")) for n in names]
        return client.post("/v1/documents", data={"collection": "other"}, files=files)

    try:
        too_big = upload("camelot__good-energy-tariff-label.pdf", "pdfua__invoice.pdf")
        assert_error(too_big, 413, "upload_too_large")
        too_many_pages = upload("pymupdf__irs-form-7004.pdf", "pdfua__invoice.pdf")
        assert_error(too_many_pages, 400, "limit_exceeded")
        # No generator configured: answers are a clear 503.
        assert_error(client.post("/v1/ask", json={"query": "x"}), 503, "generator_not_configured")
        assert list((tmp_path / "o" / "uploads").glob("*.pdf")) == []
    finally:
        state.close()


def test_health_ready_metrics(app, admin):
    anonymous = InProcessClient(app)
    assert anonymous.get("/healthz").json()["status"] == "ok"
    ready = anonymous.get("/readyz").json()
    assert ready["status"] == "ready" and ready["collections"] == ["default", "other"]
    admin.post("/v1/search", json={"query": "metrics please", "k": 1})
    text = anonymous.get("/metrics").text
    assert 'colretrieve_requests_total{method="POST",route="/v1/search",status="200"}' in text
    assert 'colretrieve_stage_seconds_count{stage="encode"}' in text


def test_server_refuses_to_start_without_keys(server_index, tiny_embedder):
    from colretrieve.errors import InvalidInputError

    with pytest.raises(InvalidInputError, match="--no-auth"):
        load_state(Settings(index=server_index), embedder=tiny_embedder)
