"""The grounded-answer prompt: numbered page images, their text, the question, a citation rule."""

from __future__ import annotations

from collections.abc import Sequence

from colretrieve.answer.base import ChatMessage, ImagePart
from colretrieve.answer.pages import AnswerPage

SYSTEM_PROMPT = (
    "You answer questions about documents using only the numbered page images you are shown. "
    "Cite every statement with the marker of the page it comes from, like [1] or [2]. "
    "Cite only pages you were shown. If the pages do not contain the answer, say so."
)


def build_messages(
    question: str,
    pages: Sequence[AnswerPage],
    history: Sequence[ChatMessage] = (),
) -> tuple[ChatMessage, ...]:
    """System rule, earlier turns (text only) as context, then the pages and the question."""
    parts: list[str | ImagePart] = []
    for number, page in enumerate(pages, start=1):
        parts.append(f"Page [{number}]: {page.title or page.path}, page {page.page}\n")
        parts.append(ImagePart(number - 1))
        if page.text:
            parts.append(f"\nText layer of page [{number}]:\n{page.text}\n")
    parts.append(f"\nQuestion: {question}\nAnswer with citations:")
    context = tuple(ChatMessage(m.role, (m.text,)) for m in history if m.text.strip())
    return (ChatMessage("system", (SYSTEM_PROMPT,)), *context, ChatMessage("user", tuple(parts)))
