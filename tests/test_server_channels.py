"""The server on a CPU-only machine: no visual model at all, a text+bm25 collection built from
real corpus PDFs with the bundled MiniLM, and an empty one filled by an upload. Real stores,
real models, in process (httpx ASGI transport)."""

from __future__ import annotations

import shutil
import time
from pathlib import Path

import pytest

from colretrieve.channels import BM25, TEXT, VISUAL
from colretrieve.errors import ModelLoadError
from colretrieve.index import Index
from colretrieve.settings import Settings
from server import create_app
from server.state import load_state
from tests.bad_inputs import CORPUS
from tests.server_support import InProcessClient, assert_error

ADMIN = {"Authorization": "Bearer admin-key"}
TEXT_PDFS = (
    "pdfua__invoice.pdf",
    "camelot__good-energy-tariff-label.pdf",
    "camelot__india-budget-2014-15-summary.pdf",
)


@pytest.fixture(scope="module")
def text_index(tmp_path_factory, text_encoder) -> Path:
    """Three corpus PDFs (4 pages) in the text and bm25 channels only: no visual model."""
    root = tmp_path_factory.mktemp("text-only")
    docs = root / "docs"
    docs.mkdir()
    with Index.open(root / "index", create=True, text_encoder=text_encoder) as index:
        for name in TEXT_PDFS:
            shutil.copy(CORPUS / "pdfs" / name, docs / name)
            index.add_document(docs / name)
        assert index.channels == (TEXT, BM25)
    return root / "index"


@pytest.fixture(scope="module")
def text_app(text_index, tiny_generator, tmp_path_factory):
    """The server as `colretrieve serve` starts it on a machine without the visual weights:
    the default visual model is tried, cannot load (offline), and is left out."""
    settings = Settings(
        index=text_index,
        collections={"other": tmp_path_factory.mktemp("text-other") / "other"},
        api_key="admin-key",
        device="cpu",
        max_new_tokens=8,
        answer_max_pixels=50_000,
    )
    state = load_state(settings, generator=tiny_generator)
    yield create_app(settings, state=state)
    state.close()


@pytest.fixture(scope="module")
def client(text_app) -> InProcessClient:
    return InProcessClient(text_app, ADMIN)


def search(client: InProcessClient, query: str, **extra) -> dict:
    response = client.post("/v1/search", json={"query": query, **extra})
    assert response.status_code == 200, response.text
    return response.json()


def titles(body: dict) -> list[str]:
    return [Path(hit["path"]).name for hit in body["hits"]]


def test_starts_without_a_visual_model_and_says_so(text_app):
    state = text_app.state.colretrieve
    assert all(c.embedder is None for c in state.collections.values())
    ready = InProcessClient(text_app).get("/readyz").json()
    assert ready["channels"] == {"default": [TEXT, BM25], "other": []}
    assert ready["ingest_channels"] == {"default": [TEXT, BM25], "other": [TEXT, BM25]}
    (warning,) = ready["warnings"]
    assert "visual channel left out" in warning and "vidore/colqwen2-v1.0" in warning
    # One text encoder, shared by every collection.
    encoders = {id(c.text_encoder) for c in state.collections.values()}
    assert len(encoders) == 1 and None not in encoders


def test_default_search_fuses_every_channel_with_matches(client):
    body = search(client, "Paper Planes invoice Kraxi Systems", k=3)
    assert body["channels"] == [TEXT, BM25] and body["fusion"] == "rrf"
    assert titles(body)[0] == "pdfua__invoice.pdf"
    top = body["hits"][0]
    assert {m["channel"] for m in top["matches"]} == {TEXT, BM25}
    assert all(m["rank"] >= 1 for m in top["matches"])
    assert all(hit["matches"] for hit in body["hits"])
    timings = body["timings"]
    assert timings["text_encode_ms"] > 0 and timings["text_score_ms"] >= 0
    assert timings["bm25_score_ms"] >= 0 and timings["fuse_ms"] >= 0
    assert timings["encode_ms"] > 0 and timings["visual_encode_ms"] is None


@pytest.mark.parametrize("channel", [TEXT, BM25])
def test_one_channel_searches_alone(client, channel):
    body = search(client, "standing charge unit rate tariff", k=2, channels=[channel])
    assert body["channels"] == [channel] and body["fusion"] is None
    assert titles(body)[0] == "camelot__good-energy-tariff-label.pdf"
    for rank, hit in enumerate(body["hits"], start=1):
        assert [(m["channel"], m["rank"]) for m in hit["matches"]] == [(channel, rank)]
    missing = BM25 if channel == TEXT else TEXT
    assert body["timings"][f"{missing}_score_ms"] is None


def test_fusion_overrides_are_applied_and_validated(client):
    text_only = search(client, "budget provisions 2014-2015", k=3, channels=[TEXT])
    muted = search(client, "budget provisions 2014-2015", k=3, weights={"bm25": 0})
    assert muted["fusion"] == "rrf"
    assert [(h["doc_id"], h["page"]) for h in muted["hits"]] == [
        (h["doc_id"], h["page"]) for h in text_only["hits"]
    ]
    weighted = search(client, "budget provisions 2014-2015", k=3, fusion="weighted")
    assert weighted["fusion"] == "weighted" and weighted["hits"]
    for bad in (
        {"weights": {"text": 101}},
        {"weights": {"image": 1}},
        {"fusion": "max"},
        {"channels": []},
        {"channels": ["pixels"]},
    ):
        assert_error(client.post("/v1/search", json={"query": "x", **bad}), 422, "invalid_request")


def test_a_channel_the_collection_lacks_is_a_clear_error(client):
    error = assert_error(
        client.post("/v1/search", json={"query": "invoice", "channels": [VISUAL]}),
        400,
        "invalid_input",
    )
    assert "visual" in error["message"] and "not available" in error["message"]
    assert "it has: text, bm25" in error["message"]
    empty = client.post(
        "/v1/search", json={"query": "x", "collection": "other", "channels": [BM25]}
    )
    assert "no searchable bm25" in assert_error(empty, 400, "invalid_input")["message"]
    explain = client.post("/v1/search", json={"query": "invoice", "explain": True})
    assert "visual" in assert_error(explain, 400, "invalid_input")["message"]
    # An empty collection without a visual model has nothing to search: no hits, no error.
    nothing = search(client, "anything", collection="other")
    assert nothing["hits"] == [] and nothing["channels"] == []


def test_page_images_come_from_the_text_channels(client):
    hit = search(client, "invoice", k=1, channels=[BM25])["hits"][0]
    image = client.get(hit["image_url"] + "&width=80")
    assert image.status_code == 200 and image.headers["content-type"] == "image/png"
    assert_error(client.get(f"/v1/pages/{hit['doc_id']}/99/image"), 404, "not_found")


def test_ask_and_chat_retrieve_over_the_channels_asked(client):
    body = client.post(
        "/v1/ask", json={"query": "what is the invoice total?", "pages": 1, "channels": [BM25]}
    )
    assert body.status_code == 200, body.text
    shown = body.json()["pages"]
    best = search(client, "what is the invoice total?", k=1, channels=[BM25])["hits"][0]
    assert [(p["doc_id"], p["page"]) for p in shown] == [(best["doc_id"], best["page"])]
    timings = body.json()["timings"]
    assert timings["bm25_score_ms"] >= 0 and timings["text_encode_ms"] is None
    visual = client.post("/v1/ask", json={"query": "total?", "channels": [VISUAL]})
    assert_error(visual, 400, "invalid_input")
    chat = client.post(
        "/v1/chat/completions",
        json={
            "model": "default",
            "messages": [{"role": "user", "content": "tariff unit rate?"}],
            "max_tokens": 4,
            "channels": [TEXT],
        },
    )
    assert chat.status_code == 200, chat.text
    assert chat.json()["timings"]["text_score_ms"] >= 0
    assert chat.json()["timings"]["bm25_score_ms"] is None


def test_upload_ingests_text_channels_and_delete_removes_every_channel(text_app, client):
    pdf = CORPUS / "pdfs" / "camelot__imd-rainfall-distribution.pdf"
    response = client.post(
        "/v1/documents",
        data={"collection": "other"},
        files={"files": (pdf.name, pdf.read_bytes(), "application/pdf")},
    )
    assert response.status_code == 202, response.text
    job = response.json()
    deadline = time.monotonic() + 180
    while job["status"] in ("queued", "running") and time.monotonic() < deadline:
        time.sleep(0.5)
        job = client.get(job["url"]).json()
    assert job["status"] == "succeeded", job
    assert [f["channels"] for f in job["files"]] == [[TEXT, BM25]]
    (document,) = client.get("/v1/documents?collection=other").json()["documents"]
    assert document["channels"] == [TEXT, BM25] and document["complete"]

    # The running server sees the channel stores its job created.
    body = search(client, "state-wise rainfall distribution", collection="other")
    assert body["channels"] == [TEXT, BM25]
    assert [h["doc_id"] for h in body["hits"]] == [document["doc_id"]]
    assert {m["channel"] for m in body["hits"][0]["matches"]} == {TEXT, BM25}
    ready = InProcessClient(text_app).get("/readyz").json()
    assert ready["channels"]["other"] == [TEXT, BM25]
    image = client.get(body["hits"][0]["image_url"] + "&width=64")
    assert image.status_code == 200

    deleted = client.delete(f"/v1/documents/{document['doc_id']}?collection=other").json()
    assert [(d["doc_id"], d["channels"]) for d in deleted["deleted"]] == [
        (document["doc_id"], [TEXT, BM25])
    ]
    assert client.get("/v1/documents?collection=other").json()["documents"] == []
    assert not Path(document["path"]).exists()
    collection = text_app.state.colretrieve.collections["other"]
    with Index.open(collection.path, read_only=True) as index:
        assert index.documents() == []
        for channel in (VISUAL, TEXT, BM25):
            store = index.stores.get(channel)
            assert store is None or store.get_document(document["doc_id"]) is None
    gone = search(client, "state-wise rainfall distribution", collection="other")
    assert gone["hits"] == [] and gone["channels"] == []


def test_visual_asked_for_explicitly_must_load(text_index):
    settings = Settings(index=text_index, no_auth=True, device="cpu", channels="visual,text,bm25")
    with pytest.raises(ModelLoadError, match=r"vidore/colqwen2-v1\.0"):
        load_state(settings)


def test_live_server_on_text_channels_only(text_index):
    """A real uvicorn, started through the app's own lifespan (models loaded by the server)
    with the channels setting naming only the text channels: no visual model is tried."""
    import httpx

    from tests.server_support import running

    settings = Settings(index=text_index, api_key="live-key", device="cpu", channels="text,bm25")
    with (
        running(create_app(settings), timeout=120) as url,
        httpx.Client(
            base_url=url, headers={"Authorization": "Bearer live-key"}, timeout=120
        ) as http,
    ):
        ready = http.get("/readyz").json()
        assert ready["channels"] == {"default": [TEXT, BM25]} and ready["warnings"] == []
        body = http.post("/v1/search", json={"query": "Good Energy tariff", "k": 2}).json()
        assert body["channels"] == [TEXT, BM25]
        assert Path(body["hits"][0]["path"]).name == "camelot__good-energy-tariff-label.pdf"
        assert http.get(body["hits"][0]["image_url"] + "&width=64").status_code == 200
        visual = http.post("/v1/search", json={"query": "x", "channels": ["visual"]})
        assert "channels setting" in assert_error(visual, 400, "invalid_input")["message"]
