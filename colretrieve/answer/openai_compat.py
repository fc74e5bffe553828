"""A generator behind any OpenAI-compatible chat endpoint that accepts images (vLLM, hosted).

Page images are sent inline as PNG data URLs. ``httpx`` is imported lazily: install it with
``pip install "colretrieve[server]"``.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from typing import Any

from colretrieve.answer.base import ChatMessage, GenerationRequest, ImagePart
from colretrieve.answer.pages import png_bytes
from colretrieve.errors import GenerationError, InvalidInputError

TIMEOUT_S = 300.0


def _httpx() -> Any:
    try:
        import httpx
    except ImportError as error:  # pragma: no cover - depends on the install
        raise InvalidInputError(
            'an OpenAI-compatible generator needs httpx: pip install "colretrieve[server]"'
        ) from error
    return httpx


class OpenAICompatGenerator:
    def __init__(self, base_url: str, model: str | None, api_key: str | None = None) -> None:
        self.base_url = base_url.rstrip("/")
        self.model = model or "default"
        self._headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}

    @property
    def name(self) -> str:
        return f"{self.base_url}#{self.model}"

    @property
    def revision(self) -> str:
        return ""

    def _payload(self, request: GenerationRequest, stream: bool) -> dict[str, Any]:
        urls = [
            "data:image/png;base64," + base64.b64encode(png_bytes(image)).decode()
            for image in request.images
        ]
        return {
            "model": self.model,
            "messages": [_wire_message(m, urls) for m in request.messages],
            "max_tokens": request.settings.max_new_tokens,
            "temperature": request.settings.temperature,
            "seed": request.settings.seed,
            "stream": stream,
        }

    def generate(self, request: GenerationRequest) -> str:
        httpx = _httpx()
        try:
            response = httpx.post(
                f"{self.base_url}/chat/completions",
                json=self._payload(request, stream=False),
                headers=self._headers,
                timeout=TIMEOUT_S,
            )
            response.raise_for_status()
            return response.json()["choices"][0]["message"]["content"] or ""
        except httpx.HTTPError as error:
            raise GenerationError(f"generator endpoint: {error}") from error
        except (KeyError, IndexError, TypeError, ValueError) as error:
            raise GenerationError(
                f"generator endpoint sent an unexpected reply ({error})"
            ) from error

    def stream(self, request: GenerationRequest) -> Iterator[str]:
        httpx = _httpx()
        try:
            with httpx.stream(
                "POST",
                f"{self.base_url}/chat/completions",
                json=self._payload(request, stream=True),
                headers=self._headers,
                timeout=TIMEOUT_S,
            ) as response:
                response.raise_for_status()
                for line in response.iter_lines():
                    if not line.startswith("data:"):
                        continue
                    data = line[5:].strip()
                    if data == "[DONE]":
                        break
                    delta = json.loads(data)["choices"][0].get("delta", {})
                    if delta.get("content"):
                        yield delta["content"]
        except httpx.HTTPError as error:
            raise GenerationError(f"generator endpoint: {error}") from error
        except (KeyError, IndexError, TypeError, ValueError) as error:
            raise GenerationError(
                f"generator endpoint sent an unexpected chunk ({error})"
            ) from error


def _wire_message(message: ChatMessage, urls: list[str]) -> dict[str, Any]:
    content: list[dict[str, Any]] = []
    for part in message.parts:
        if isinstance(part, ImagePart):
            content.append({"type": "image_url", "image_url": {"url": urls[part.index]}})
        elif part:
            content.append({"type": "text", "text": part})
    if message.role != "user":
        return {"role": message.role, "content": message.text}
    return {"role": message.role, "content": content}
