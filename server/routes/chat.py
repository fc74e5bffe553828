"""OpenAI-compatible chat completions and model list; the model id names a collection."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterator
from typing import Any

from fastapi import APIRouter
from fastapi.responses import StreamingResponse

from colretrieve.answer import ChatMessage, generate_answer, stream_answer
from colretrieve.errors import ColretrieveError, InvalidInputError, NotFoundError
from server.chat_wire import AssistantMessage, ChatCompletion, ChatRequest, Choice, Usage
from server.deps import PrincipalDep, StateDep
from server.errors import ERROR_RESPONSES, error_body, status_for
from server.routes.answers import SSE_DOC, citations_out, prepare_answer
from server.wire import ModelList, ModelOut, Timings

router = APIRouter(responses=ERROR_RESPONSES)

_ROLES = {"system": "system", "developer": "system", "user": "user", "assistant": "assistant"}


@router.get("/v1/models", response_model=ModelList, tags=["openai"])
def models(state: StateDep, principal: PrincipalDep) -> ModelList:
    """One model per collection this key can read."""
    now = int(time.time())
    return ModelList(
        data=[
            ModelOut(id=name, created=now, owned_by="colretrieve")
            for name in state.readable(principal)
        ]
    )


@router.post(
    "/v1/chat/completions",
    response_model=ChatCompletion,
    tags=["openai"],
    responses={200: SSE_DOC},
)
def chat_completions(body: ChatRequest, state: StateDep, principal: PrincipalDep) -> Any:
    """The last user message is the query; earlier turns are context; pages go as images."""
    if body.model not in state.collections or not principal.can_read(body.model):
        raise NotFoundError("model", body.model)
    collection = state.collections[body.model]
    last_user = next(
        (i for i in range(len(body.messages) - 1, -1, -1) if body.messages[i].role == "user"),
        None,
    )
    if last_user is None or not body.messages[last_user].text.strip():
        raise InvalidInputError("the conversation needs a non-empty user message")
    question = body.messages[last_user].text
    history = [
        ChatMessage(_ROLES[m.role], (m.text,))  # type: ignore[arg-type]
        for m in body.messages[:last_user]
    ]
    prepared = prepare_answer(
        state,
        collection,
        question,
        None,
        None,
        history,
        body.max_completion_tokens or body.max_tokens,
        body.temperature,
        body.channels,
    )
    generator = state.require_generator()
    completion_id = f"chatcmpl-{uuid.uuid4().hex}"
    created = int(time.time())
    if not body.stream:
        result = generate_answer(generator, prepared, state.model_lock)
        state.metrics.observe_stages(result.timings_ms)
        citations = citations_out(collection.name, result)
        return ChatCompletion(
            id=completion_id,
            created=created,
            model=body.model,
            choices=[
                Choice(
                    index=0,
                    message=AssistantMessage(content=result.answer.text, citations=citations),
                    finish_reason="stop",
                )
            ],
            usage=Usage(prompt_tokens=0, completion_tokens=0, total_tokens=0),
            citations=citations,
            timings=Timings.of(result.timings_ms),
        )

    def chunk(delta: dict[str, Any], finish: str | None = None, **extra: Any) -> str:
        payload = {
            "id": completion_id,
            "object": "chat.completion.chunk",
            "created": created,
            "model": body.model,
            "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
            **extra,
        }
        return f"data: {json.dumps(payload)}\n\n"

    def events() -> Iterator[str]:
        yield chunk({"role": "assistant", "content": ""})
        try:
            for item in stream_answer(generator, prepared, state.model_lock):
                if isinstance(item, str):
                    yield chunk({"content": item})
                else:
                    state.metrics.observe_stages(item.timings_ms)
                    citations = [c.model_dump() for c in citations_out(collection.name, item)]
                    yield chunk(
                        {},
                        "stop",
                        citations=citations,
                        timings=Timings.of(item.timings_ms).model_dump(),
                    )
        except ColretrieveError as error:
            body = error_body(status_for(error), error.code, error.message)
            yield f"data: {json.dumps(body)}\n\n"
        yield "data: [DONE]\n\n"

    return StreamingResponse(events(), media_type="text/event-stream")
