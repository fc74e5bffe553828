"""The answer generator contract and the values that pass through it.

A generator sees a chat: messages whose content is text and numbered page images. Backends
(local transformers, an OpenAI-compatible endpoint) translate this neutral shape into their
own; everything else (prompt, citations, replay) is backend independent.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any, Literal, Protocol, runtime_checkable

from PIL import Image

Role = Literal["system", "user", "assistant"]


@dataclass(frozen=True)
class ImagePart:
    """A page image inside a message: ``index`` into the request's image list."""

    index: int


@dataclass(frozen=True)
class ChatMessage:
    role: Role
    parts: tuple[str | ImagePart, ...]

    @property
    def text(self) -> str:
        return "".join(part for part in self.parts if isinstance(part, str))


@dataclass(frozen=True)
class GenerationSettings:
    max_new_tokens: int = 512
    temperature: float = 0.0
    seed: int = 0

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class GenerationRequest:
    messages: tuple[ChatMessage, ...]
    images: tuple[Image.Image, ...] = ()
    settings: GenerationSettings = field(default_factory=GenerationSettings)


@runtime_checkable
class Generator(Protocol):
    """Produces the assistant's reply to a chat that may hold page images."""

    @property
    def name(self) -> str:
        """Model name (hub name, folder or endpoint model), recorded in replay logs."""
        ...

    @property
    def revision(self) -> str:
        """Weights fingerprint where known, else an empty string."""
        ...

    def generate(self, request: GenerationRequest) -> str:
        """The whole reply."""
        ...

    def stream(self, request: GenerationRequest) -> Iterator[str]:
        """The reply as text pieces, in order; their concatenation equals ``generate``'s."""
        ...


def first_user_text(messages: Sequence[ChatMessage]) -> str:
    return next((m.text for m in messages if m.role == "user"), "")
