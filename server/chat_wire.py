"""OpenAI chat-completions shapes (the subset we serve), plus a ``citations`` extra field."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from server.wire import Channel, CitationOut, Timings, Wire


class TextPart(Wire):
    type: Literal["text"] = Field(description="Always `text`.")
    text: str = Field(max_length=100_000, description="The text.")


class ChatMessageIn(Wire):
    role: Literal["system", "developer", "user", "assistant"] = Field(description="Author.")
    content: str | list[TextPart] | None = Field(
        max_length=100_000, description="Text, or text parts."
    )
    name: str | None = Field(default=None, max_length=256, description="Ignored.")

    @property
    def text(self) -> str:
        if self.content is None:
            return ""
        if isinstance(self.content, str):
            return self.content
        return "".join(part.text for part in self.content)


class StreamOptions(Wire):
    include_usage: bool | None = Field(default=None, description="Ignored.")


class ChatRequest(Wire):
    model: str = Field(
        min_length=1, max_length=64, description="A served model id (a collection name)."
    )
    messages: list[ChatMessageIn] = Field(
        min_length=1,
        max_length=100,
        description="The conversation; the last user message is the query.",
    )
    stream: bool = Field(default=False, description="Stream chunks as Server-Sent Events.")
    max_tokens: int | None = Field(
        default=None, ge=1, le=8192, description="Most tokens to generate."
    )
    max_completion_tokens: int | None = Field(
        default=None, ge=1, le=8192, description="Same as max_tokens."
    )
    temperature: float | None = Field(default=None, ge=0, le=2, description="Sampling temperature.")
    top_p: float | None = Field(default=None, ge=0, le=1, description="Ignored.")
    n: int | None = Field(default=None, ge=1, le=1, description="Only 1 is supported.")
    seed: int | None = Field(default=None, description="Sampling seed.")
    user: str | None = Field(default=None, max_length=256, description="Ignored.")
    stream_options: StreamOptions | None = Field(default=None, description="Ignored.")
    channels: list[Channel] | None = Field(
        default=None,
        min_length=1,
        max_length=3,
        description="colretrieve extra: retrieval channels for the pages shown (default: "
        "every channel the collection holds); with the openai SDK pass it in `extra_body`.",
    )


class AssistantMessage(Wire):
    role: Literal["assistant"] = Field(default="assistant", description="Always assistant.")
    content: str = Field(description="The answer with [n] citation markers.")
    citations: list[CitationOut] = Field(description="Cited pages.")


class Choice(Wire):
    index: int = Field(description="Always 0.")
    message: AssistantMessage = Field(description="The reply.")
    finish_reason: Literal["stop", "length"] = Field(description="Why generation stopped.")


class Usage(Wire):
    prompt_tokens: int = Field(description="Not counted: 0.")
    completion_tokens: int = Field(description="Not counted: 0.")
    total_tokens: int = Field(description="Not counted: 0.")


class ChatCompletion(Wire):
    id: str = Field(description="Completion id.")
    object: Literal["chat.completion"] = Field(
        default="chat.completion", description="Always chat.completion."
    )
    created: int = Field(description="Unix time.")
    model: str = Field(description="The model id asked for.")
    choices: list[Choice] = Field(description="One choice.")
    usage: Usage = Field(description="Token counts (not counted).")
    citations: list[CitationOut] = Field(description="Cited pages (also in the message).")
    timings: Timings = Field(description="Milliseconds per stage.")
