"""Validate a generated reply into an ``Answer``: text plus citations of pages actually shown.

The prompt asks the model to cite pages with markers ``[1]``, ``[2]``... numbered as the pages
were shown. A marker of a page that was not shown is dropped from the citations (and logged);
the text keeps what the model wrote. A reply with no answer text is malformed.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Sequence

from pydantic import BaseModel, ConfigDict, Field

from colretrieve.answer.pages import AnswerPage

log = logging.getLogger("colretrieve.answer")

MARKER = re.compile(r"\[(\d{1,3})\]")
# Special tokens a chat model may leak into its text.
_LEAKED = re.compile(r"<\|[a-z_]+\|>")


class Citation(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    marker: int = Field(description="The [n] marker used in the answer text (1-based).")
    doc_id: str = Field(description="Document id (SHA-256 of the file).")
    page: int = Field(description="1-based page number within the document.")
    title: str = Field(description="Document title.")
    path: str = Field(description="Document source path.")


class Answer(BaseModel):
    model_config = ConfigDict(extra="forbid")

    text: str = Field(min_length=1, description="The answer, with [n] citation markers.")
    citations: list[Citation] = Field(description="Pages cited, each one that was shown.")


class MalformedAnswer(ValueError):
    """The reply cannot become an Answer (for example: it is empty)."""


def clean(text: str) -> str:
    return _LEAKED.sub("", text).strip()


def validate_answer(raw: str, pages: Sequence[AnswerPage]) -> Answer:
    """Parse ``raw`` into an Answer; raise MalformedAnswer if there is no answer text."""
    text = clean(raw)
    if not MARKER.sub("", text).strip():
        raise MalformedAnswer("the reply holds no answer text")
    citations: list[Citation] = []
    seen: set[int] = set()
    for match in MARKER.finditer(text):
        number = int(match.group(1))
        if number in seen:
            continue
        seen.add(number)
        if not 1 <= number <= len(pages):
            log.warning("dropped citation [%d]: only %d pages were shown", number, len(pages))
            continue
        page = pages[number - 1]
        citations.append(
            Citation(
                marker=number,
                doc_id=page.doc_id,
                page=page.page,
                title=page.title,
                path=page.path,
            )
        )
    return Answer(text=text, citations=citations)


REPAIR_INSTRUCTION = (
    "Your previous reply was unusable ({reason}). Answer the question again in plain text, "
    "citing the pages you used with their markers such as [1]."
)
