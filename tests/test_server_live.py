"""A real uvicorn on 127.0.0.1: the unmodified ``openai`` SDK (plain and streamed), plain
HTTP, and the OpenAI-compatible generator client against a fake endpoint on loopback."""

from __future__ import annotations

import json

import httpx
import pytest
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, StreamingResponse

from colretrieve.answer import (
    AnswerOptions,
    GenerationSettings,
    answer_question,
    prepare,
    stream_answer,
)
from colretrieve.answer.openai_compat import OpenAICompatGenerator
from colretrieve.index import Index
from colretrieve.settings import Settings
from server import create_app
from tests.server_support import running

KEY = "live-test-key"


@pytest.fixture(scope="module")
def base_url(server_index, tiny_embedder, tiny_generator):
    settings = Settings(
        index=server_index, api_key=KEY, device="cpu", max_new_tokens=8, answer_max_pixels=50_000
    )
    app = create_app(settings, embedder=tiny_embedder, generator=tiny_generator)
    with running(app) as url:
        yield url


def test_openai_sdk_plain_and_streamed(base_url):
    from openai import AuthenticationError, OpenAI

    client = OpenAI(base_url=f"{base_url}/v1", api_key=KEY, max_retries=0, timeout=120)
    assert [m.id for m in client.models.list()] == ["default"]
    completion = client.chat.completions.create(
        model="default", messages=[{"role": "user", "content": "What is the invoice total?"}]
    )
    message = completion.choices[0].message
    assert message.role == "assistant" and message.content
    assert isinstance(completion.model_extra["citations"], list)

    stream = client.chat.completions.create(
        model="default",
        messages=[{"role": "user", "content": "What is the invoice total?"}],
        stream=True,
    )
    chunks = list(stream)
    assert chunks[0].choices[0].delta.role == "assistant"
    assert chunks[-1].choices[0].finish_reason == "stop"
    assert "citations" in chunks[-1].model_extra
    assert "".join(c.choices[0].delta.content or "" for c in chunks)

    with pytest.raises(AuthenticationError):
        OpenAI(base_url=f"{base_url}/v1", api_key="wrong", max_retries=0).models.list()


def test_plain_http_search_and_sse(base_url):
    headers = {"Authorization": f"Bearer {KEY}"}
    with httpx.Client(base_url=base_url, headers=headers, timeout=120) as client:
        hits = client.post("/v1/search", json={"query": "energy tariff", "k": 2}).json()["hits"]
        assert len(hits) == 2
        assert client.get(hits[0]["image_url"] + "&width=100").status_code == 200
        events = []
        with client.stream("POST", "/v1/ask", json={"query": "tariff?", "stream": True}) as r:
            assert r.headers["content-type"].startswith("text/event-stream")
            events = [line[7:] for line in r.iter_lines() if line.startswith("event: ")]
        assert events[-1] == "answer" and set(events[:-1]) <= {"token"}


def fake_openai_app(reply: str):
    """A minimal OpenAI-compatible endpoint that checks images arrived and echoes ``reply``."""
    app = FastAPI()
    seen: list[dict] = []

    @app.post("/v1/chat/completions")
    async def completions(request: Request):
        body = await request.json()
        seen.append(body)
        if body["stream"]:

            def chunks():
                for word in reply.split(" "):
                    delta = {"choices": [{"index": 0, "delta": {"content": word + " "}}]}
                    yield f"data: {json.dumps(delta)}\n\n"
                yield "data: [DONE]\n\n"

            return StreamingResponse(chunks(), media_type="text/event-stream")
        return JSONResponse({"choices": [{"index": 0, "message": {"content": reply}}]})

    app.state.seen = seen
    return app


def test_openai_compatible_generator_keeps_only_citations_of_shown_pages(
    server_index, tiny_embedder
):
    app = fake_openai_app("The total is 42 [1], see also [2] and [7].")
    options = AnswerOptions(pages=2, max_pixels=50_000, generation=GenerationSettings(8))
    with (
        running(app) as url,
        Index.open(server_index, read_only=True, embedder=tiny_embedder) as index,
    ):
        generator = OpenAICompatGenerator(f"{url}/v1", "qwen2.5-vl", api_key="k")
        result = answer_question(index, generator, "total?", options)
        streamed = list(stream_answer(generator, prepare(index, "total?", options)))
    assert [c.marker for c in result.answer.citations] == [1, 2]  # [7] was never shown
    assert [(c.doc_id, c.page) for c in result.answer.citations] == [
        (p.doc_id, p.page) for p in result.pages
    ]
    assert streamed[-1].answer.citations == result.answer.citations
    sent = app.state.seen[0]
    images = [p for p in sent["messages"][-1]["content"] if p["type"] == "image_url"]
    assert len(images) == 2 and images[0]["image_url"]["url"].startswith("data:image/png;base64,")
    assert sent["model"] == "qwen2.5-vl" and sent["max_tokens"] == 8
