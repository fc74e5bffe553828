"""Retrieval-augmented answers: search, render the top pages, generate, validate, log a replay.

Used by ``colretrieve ask`` and by the server. Model calls go through ``model_lock`` when one
is given, so one process can share a model between threads.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import threading
import time
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

from colretrieve.answer.base import ChatMessage, GenerationRequest, GenerationSettings, Generator
from colretrieve.answer.citations import (
    REPAIR_INSTRUCTION,
    Answer,
    MalformedAnswer,
    validate_answer,
)
from colretrieve.answer.pages import AnswerPage, answer_pages
from colretrieve.answer.prompt import build_messages
from colretrieve.contracts import SearchFilter
from colretrieve.errors import GenerationError, GeneratorNotConfiguredError
from colretrieve.index import Index
from colretrieve.search import check_query_text
from colretrieve.settings import MAX_ANSWER_PAGES, Settings

replay_log = logging.getLogger("colretrieve.answer.replay")


@dataclass(frozen=True)
class AnswerOptions:
    pages: int = 3
    max_pixels: int = 602_112
    dpi: int = 144
    page_text: bool = True
    generation: GenerationSettings = field(default_factory=GenerationSettings)

    @classmethod
    def from_settings(cls, settings: Settings, pages: int | None = None) -> AnswerOptions:
        return cls(
            pages=min(pages or settings.answer_pages, MAX_ANSWER_PAGES),
            max_pixels=settings.answer_max_pixels,
            dpi=settings.dpi,
            page_text=settings.answer_page_text,
            generation=GenerationSettings(
                max_new_tokens=settings.max_new_tokens, temperature=settings.temperature
            ),
        )


@dataclass
class AnswerResult:
    answer: Answer
    pages: list[AnswerPage]
    timings_ms: dict[str, float]
    replay: dict[str, Any]


@dataclass
class Prepared:
    """Everything up to generation: the pages shown and the request built from them."""

    question: str
    pages: list[AnswerPage]
    request: GenerationRequest
    timings_ms: dict[str, float]


def load_generator(settings: Settings) -> Generator:
    """The generator ``settings.generator`` names: an http(s) URL or a local checkpoint."""
    name = settings.generator
    if not name:
        raise GeneratorNotConfiguredError()
    if name.startswith(("http://", "https://")):
        from colretrieve.answer.openai_compat import OpenAICompatGenerator

        key = settings.generator_api_key.get_secret_value() if settings.generator_api_key else None
        return OpenAICompatGenerator(name, settings.generator_model, key)
    from colretrieve.answer.local import LocalGenerator

    return LocalGenerator.load(name, device=settings.device)


def _locked(lock: threading.Lock | None) -> contextlib.AbstractContextManager[Any]:
    return lock if lock is not None else contextlib.nullcontext()


def prepare(
    index: Index,
    question: str,
    options: AnswerOptions,
    *,
    history: Sequence[ChatMessage] = (),
    filter: SearchFilter | None = None,
    model_lock: threading.Lock | None = None,
    channels: str | Iterable[str] | None = None,
) -> Prepared:
    """Search (``channels``, else every channel the index holds, fused), then render the
    top pages for the generator."""
    check_query_text(question)
    timings: dict[str, float] = {}
    with _locked(model_lock):
        result = index.search_timed(question, options.pages, filter=filter, channels=channels)
    timings.update(result.timings_ms)
    started = time.perf_counter()
    text_stores = [store for store in (index.store, index.stores.text) if store is not None]
    pages = answer_pages(
        text_stores,
        result.hits,
        dpi=options.dpi,
        max_pixels=options.max_pixels,
        with_text=options.page_text,
    )
    timings["render"] = _ms(started)
    request = GenerationRequest(
        build_messages(question, pages, history),
        tuple(page.image for page in pages),
        options.generation,
    )
    return Prepared(question, pages, request, timings)


def generate_answer(
    generator: Generator, prepared: Prepared, model_lock: threading.Lock | None = None
) -> AnswerResult:
    """Generate, validate, repair once if malformed, log the replay record."""
    started = time.perf_counter()
    request = prepared.request
    raw = ""
    for attempt in (1, 2):
        with _locked(model_lock):
            raw = generator.generate(request)
        try:
            answer = validate_answer(raw, prepared.pages)
            break
        except MalformedAnswer as error:
            if attempt == 2:
                _log_replay(generator, prepared, raw, failed=str(error))
                raise GenerationError(f"{error} (after one repair attempt)") from error
            request = repair_request(request, raw, str(error))
    prepared.timings_ms["generate"] = _ms(started)
    replay = _log_replay(generator, prepared, raw)
    return AnswerResult(answer, prepared.pages, prepared.timings_ms, replay)


def stream_answer(
    generator: Generator, prepared: Prepared, model_lock: threading.Lock | None = None
) -> Iterator[str | AnswerResult]:
    """Yield text pieces as they are generated, then the validated ``AnswerResult``.

    A malformed first attempt (nothing usable was streamed) is repaired once; its pieces
    are streamed in turn.
    """
    started = time.perf_counter()
    request = prepared.request
    for attempt in (1, 2):
        pieces: list[str] = []
        with _locked(model_lock):
            for piece in generator.stream(request):
                pieces.append(piece)
                yield piece
        raw = "".join(pieces)
        try:
            answer = validate_answer(raw, prepared.pages)
        except MalformedAnswer as error:
            if attempt == 2:
                _log_replay(generator, prepared, raw, failed=str(error))
                raise GenerationError(f"{error} (after one repair attempt)") from error
            request = repair_request(request, raw, str(error))
            continue
        prepared.timings_ms["generate"] = _ms(started)
        yield AnswerResult(
            answer, prepared.pages, prepared.timings_ms, _log_replay(generator, prepared, raw)
        )
        return


def answer_question(
    index: Index,
    generator: Generator,
    question: str,
    options: AnswerOptions,
    *,
    history: Sequence[ChatMessage] = (),
    filter: SearchFilter | None = None,
    model_lock: threading.Lock | None = None,
    channels: str | Iterable[str] | None = None,
) -> AnswerResult:
    prepared = prepare(
        index,
        question,
        options,
        history=history,
        filter=filter,
        model_lock=model_lock,
        channels=channels,
    )
    return generate_answer(generator, prepared, model_lock)


def repair_request(request: GenerationRequest, raw: str, reason: str) -> GenerationRequest:
    messages = (
        *request.messages,
        ChatMessage("assistant", (raw,)),
        ChatMessage("user", (REPAIR_INSTRUCTION.format(reason=reason),)),
    )
    return GenerationRequest(messages, request.images, request.settings)


def _sha256(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def replay_record(generator: Generator, prepared: Prepared, raw: str) -> dict[str, Any]:
    """Hashes of the query, prompt and each image sent, plus model and generation settings."""
    prompt = json.dumps(
        [
            [m.role, [p if isinstance(p, str) else f"<image {p.index}>" for p in m.parts]]
            for m in prepared.request.messages
        ]
    )
    return {
        "query_sha256": _sha256(prepared.question),
        "prompt_sha256": _sha256(prompt),
        "images": [
            {
                "doc_id": p.doc_id,
                "page": p.page,
                "size": list(p.image.size),
                "sha256": p.image_sha256(),
            }
            for p in prepared.pages
        ],
        "model": generator.name,
        "model_revision": generator.revision,
        "generation": prepared.request.settings.to_dict(),
        "output_sha256": _sha256(raw),
    }


def _log_replay(
    generator: Generator, prepared: Prepared, raw: str, failed: str = ""
) -> dict[str, Any]:
    record = replay_record(generator, prepared, raw)
    if failed:
        record["failed"] = failed
    replay_log.info("answer replay %s", json.dumps(record, sort_keys=True))
    return record


def _ms(started: float) -> float:
    return (time.perf_counter() - started) * 1000
