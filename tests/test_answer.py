"""Answer validation: citations only of shown pages, one repair attempt, honest errors."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from PIL import Image

from colretrieve.answer import GenerationRequest, Prepared, generate_answer, stream_answer
from colretrieve.answer.base import ChatMessage, GenerationSettings
from colretrieve.answer.citations import MalformedAnswer, validate_answer
from colretrieve.answer.pages import AnswerPage
from colretrieve.errors import GenerationError


def pages(n: int) -> list[AnswerPage]:
    image = Image.new("RGB", (28, 28), "white")
    return [
        AnswerPage(f"doc{i}", f"/d/{i}.pdf", f"T{i}", i, 1.0, image, "") for i in range(1, n + 1)
    ]


class Scripted:
    """A generator that replies from a script, recording what it was asked."""

    name = "scripted"
    revision = ""

    def __init__(self, *replies: str) -> None:
        self.replies = list(replies)
        self.requests: list[GenerationRequest] = []

    def generate(self, request: GenerationRequest) -> str:
        self.requests.append(request)
        return self.replies.pop(0)

    def stream(self, request: GenerationRequest) -> Iterator[str]:
        yield from self.generate(request).split(" ")


def prepared(n: int = 2) -> Prepared:
    shown = pages(n)
    request = GenerationRequest(
        (ChatMessage("user", ("q",)),), tuple(p.image for p in shown), GenerationSettings(8)
    )
    return Prepared("q", shown, request, {})


def test_citations_of_pages_not_shown_are_dropped(caplog):
    answer = validate_answer("A [2] and B [1] and C [3] and [2] again", pages(2))
    assert [(c.marker, c.doc_id, c.page) for c in answer.citations] == [
        (2, "doc2", 2),
        (1, "doc1", 1),
    ]
    assert "dropped citation [3]" in caplog.text
    with pytest.raises(MalformedAnswer):
        validate_answer("  [1] <|im_end|> ", pages(2))


def test_malformed_output_gets_one_repair_then_an_honest_error():
    generator = Scripted("", "Fixed [1].")
    result = generate_answer(generator, prepared())
    assert result.answer.text == "Fixed [1]." and len(generator.requests) == 2
    repair = generator.requests[1].messages[-1]
    assert repair.role == "user" and "unusable" in repair.text
    assert result.replay["model"] == "scripted" and len(result.replay["images"]) == 2
    with pytest.raises(GenerationError, match="repair"):
        generate_answer(Scripted("", "<|im_end|>"), prepared())


def test_stream_repairs_too_and_ends_with_the_answer():
    items = list(stream_answer(Scripted(" ", "Streamed [2] [9]"), prepared()))
    assert "Streamed" in "".join(i for i in items if isinstance(i, str))
    final = items[-1]
    assert [c.marker for c in final.answer.citations] == [2]
