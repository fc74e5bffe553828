"""A local transformers vision-language generator (Qwen2-VL, Qwen2.5-VL), CPU or CUDA."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from typing import Any

from colretrieve.answer.base import ChatMessage, GenerationRequest, ImagePart
from colretrieve.errors import GenerationError, ModelLoadError


def _template_messages(messages: tuple[ChatMessage, ...]) -> list[dict[str, Any]]:
    out = []
    for message in messages:
        content: list[dict[str, Any]] = []
        for part in message.parts:
            if isinstance(part, ImagePart):
                content.append({"type": "image"})
            elif part:
                content.append({"type": "text", "text": part})
        out.append({"role": message.role, "content": content})
    return out


class LocalGenerator:
    """Runs ``generate`` on a checkpoint loaded once; calls are serialised by the caller."""

    def __init__(self, name: str, model: Any, processor: Any, device: Any, revision: str) -> None:
        self._name = name
        self.model = model
        self.processor = processor
        self.device = device
        self._revision = revision

    @classmethod
    def load(cls, name_or_dir: str, device: str = "auto") -> LocalGenerator:
        from colretrieve.torchvision_compat import ensure_torchvision

        ensure_torchvision()
        import torch
        from transformers import AutoModelForImageTextToText, AutoProcessor

        from colretrieve.models.checkpoint import _hub_commit, fingerprint, locate
        from colretrieve.models.loading import resolve_device

        folder, _ = locate(name_or_dir)
        target = resolve_device(device)
        dtype = torch.bfloat16 if target.type == "cuda" else torch.float32
        try:
            processor = AutoProcessor.from_pretrained(folder)
            model = AutoModelForImageTextToText.from_pretrained(folder, dtype=dtype)
        except (OSError, ValueError, KeyError) as error:
            raise ModelLoadError(name_or_dir, str(error).splitlines()[0]) from error
        model = model.to(target).eval()
        revision = _hub_commit(folder) or fingerprint(folder)
        return cls(name_or_dir, model, processor, target, revision)

    @property
    def name(self) -> str:
        return self._name

    @property
    def revision(self) -> str:
        return self._revision

    def _inputs(self, request: GenerationRequest) -> Any:
        prompt = self.processor.apply_chat_template(
            _template_messages(request.messages), add_generation_prompt=True, tokenize=False
        )
        images = list(request.images) or None
        return self.processor(text=[prompt], images=images, return_tensors="pt").to(self.device)

    def _generate_kwargs(self, request: GenerationRequest) -> dict[str, Any]:
        settings = request.settings
        kwargs: dict[str, Any] = {"max_new_tokens": settings.max_new_tokens}
        if settings.temperature > 0:
            kwargs.update(do_sample=True, temperature=settings.temperature)
        else:
            kwargs.update(do_sample=False)
        return kwargs

    def generate(self, request: GenerationRequest) -> str:
        import torch

        torch.manual_seed(request.settings.seed)
        inputs = self._inputs(request)
        try:
            with torch.inference_mode():
                output = self.model.generate(**inputs, **self._generate_kwargs(request))
        except RuntimeError as error:
            raise GenerationError(str(error).splitlines()[0]) from error
        new_tokens = output[0, inputs["input_ids"].shape[1] :]
        return self.processor.tokenizer.decode(new_tokens, skip_special_tokens=True)

    def stream(self, request: GenerationRequest) -> Iterator[str]:
        import torch
        from transformers import TextIteratorStreamer

        torch.manual_seed(request.settings.seed)
        inputs = self._inputs(request)
        streamer = TextIteratorStreamer(
            self.processor.tokenizer, skip_prompt=True, skip_special_tokens=True, timeout=600
        )
        failure: list[BaseException] = []

        def run() -> None:
            try:
                with torch.inference_mode():
                    self.model.generate(
                        **inputs, **self._generate_kwargs(request), streamer=streamer
                    )
            except BaseException as error:  # re-raised in the consuming thread
                failure.append(error)
                streamer.end()

        thread = threading.Thread(target=run, name="colretrieve-generate", daemon=True)
        thread.start()
        try:
            for piece in streamer:
                if piece:
                    yield piece
        finally:
            thread.join()
        if failure:
            raise GenerationError(str(failure[0]).splitlines()[0]) from failure[0]
