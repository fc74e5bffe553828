"""POST /v1/ask: a cited answer, whole or streamed as Server-Sent Events."""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from typing import Any

from fastapi import APIRouter
from fastapi.responses import StreamingResponse

from colretrieve.answer import (
    AnswerOptions,
    AnswerResult,
    ChatMessage,
    Prepared,
    generate_answer,
    prepare,
    stream_answer,
)
from colretrieve.errors import ColretrieveError, InvalidInputError
from server.deps import PrincipalDep, StateDep
from server.errors import ERROR_RESPONSES, error_body, status_for
from server.links import page_image_url, search_filter
from server.routes.search import check_query
from server.state import Collection, ServerState
from server.wire import AskRequest, AskResponse, CitationOut, Filters, PageShown, Timings

router = APIRouter(responses=ERROR_RESPONSES)

SSE_DOC = {
    "content": {
        "text/event-stream": {
            "schema": {
                "type": "object",
                "properties": {"event": {"type": "string"}, "data": {"type": "string"}},
            }
        }
    },
    "description": "With stream=true: `token` events, then one `answer` event (or `error`).",
}


def sse(event: str, data: Any) -> str:
    return f"event: {event}\ndata: {json.dumps(data)}\n\n"


def prepare_answer(
    state: ServerState,
    collection: Collection,
    question: str,
    pages: int | None,
    filters: Filters | None,
    history: Sequence[ChatMessage] = (),
    max_tokens: int | None = None,
    temperature: float | None = None,
    channels: Sequence[str] | None = None,
) -> Prepared:
    state.require_generator()
    check_query(state, question)
    searched = collection.search_channels(channels)
    if not searched:
        raise InvalidInputError(
            f"collection {collection.name!r} has no searchable documents yet; upload some first"
        )
    options = AnswerOptions.from_settings(state.settings, pages)
    if max_tokens is not None or temperature is not None:
        generation = options.generation
        options = AnswerOptions(
            options.pages,
            options.max_pixels,
            options.dpi,
            options.page_text,
            type(generation)(
                max_new_tokens=min(
                    max_tokens or generation.max_new_tokens, state.settings.max_new_tokens
                ),
                temperature=generation.temperature if temperature is None else temperature,
                seed=generation.seed,
            ),
        )
    return prepare(
        collection.index,
        question,
        options,
        history=history,
        filter=search_filter(filters),
        channels=searched,
    )


def citations_out(collection: str, result: AnswerResult) -> list[CitationOut]:
    return [
        CitationOut(**c.model_dump(), image_url=page_image_url(collection, c.doc_id, c.page))
        for c in result.answer.citations
    ]


def ask_response(state: ServerState, collection: str, result: AnswerResult) -> AskResponse:
    state.metrics.observe_stages(result.timings_ms)
    return AskResponse(
        collection=collection,
        answer=result.answer.text,
        citations=citations_out(collection, result),
        pages=[
            PageShown(
                marker=n,
                doc_id=p.doc_id,
                page=p.page,
                score=p.score,
                image_url=page_image_url(collection, p.doc_id, p.page),
            )
            for n, p in enumerate(result.pages, start=1)
        ],
        model=state.require_generator().name,
        timings=Timings.of(result.timings_ms),
        replay=result.replay,
    )


@router.post(
    "/v1/ask",
    response_model=AskResponse,
    tags=["answers"],
    responses={200: SSE_DOC},
)
def ask(body: AskRequest, state: StateDep, principal: PrincipalDep) -> Any:
    """Answer from the top pages (searched over `channels`, fused), citing them;
    `stream=true` streams tokens as SSE."""
    collection = state.collection(body.collection, principal)
    prepared = prepare_answer(
        state, collection, body.query, body.pages, body.filters, channels=body.channels
    )
    generator = state.require_generator()
    if not body.stream:
        result = generate_answer(generator, prepared, state.model_lock)
        return ask_response(state, collection.name, result)

    def events() -> Iterator[str]:
        try:
            for item in stream_answer(generator, prepared, state.model_lock):
                if isinstance(item, str):
                    yield sse("token", {"text": item})
                else:
                    yield sse("answer", ask_response(state, collection.name, item).model_dump())
        except ColretrieveError as error:
            yield sse("error", error_body(status_for(error), error.code, error.message))

    return StreamingResponse(events(), media_type="text/event-stream")
