"""``colretrieve ask``: a cited answer from the shell (the same core as POST /v1/ask)."""

from __future__ import annotations

import json

from colretrieve.answer import AnswerOptions, answer_question, load_generator
from colretrieve.index import Index
from colretrieve.settings import Settings


def run_ask(question: str, settings: Settings, model: str | None, as_json: bool) -> None:
    generator = load_generator(settings)
    with Index.from_settings(settings, read_only=True, model=model) as index:
        result = answer_question(
            index,
            generator,
            question,
            AnswerOptions.from_settings(settings),
            channels=settings.channels,
        )
    if as_json:
        payload = {
            "answer": result.answer.text,
            "citations": [c.model_dump() for c in result.answer.citations],
            "pages": [{"doc_id": p.doc_id, "page": p.page, "path": p.path} for p in result.pages],
            "timings_ms": result.timings_ms,
            "replay": result.replay,
        }
        print(json.dumps(payload, indent=2))
        return
    print(result.answer.text)
    print()
    if not result.answer.citations:
        print("(no citations)")
    for citation in result.answer.citations:
        print(f"[{citation.marker}] {citation.path} page {citation.page}")
