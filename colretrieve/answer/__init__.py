"""Visual RAG answers: the top pages go to a vision-language model as images, with citations.

Nothing heavy is imported here; generators load their libraries when built.
"""

from colretrieve.answer.base import (
    ChatMessage,
    GenerationRequest,
    GenerationSettings,
    Generator,
    ImagePart,
)
from colretrieve.answer.citations import Answer, Citation, MalformedAnswer, validate_answer
from colretrieve.answer.pages import AnswerPage
from colretrieve.answer.service import (
    AnswerOptions,
    AnswerResult,
    Prepared,
    answer_question,
    generate_answer,
    load_generator,
    prepare,
    stream_answer,
)

__all__ = [
    "Answer",
    "AnswerOptions",
    "AnswerPage",
    "AnswerResult",
    "ChatMessage",
    "Citation",
    "GenerationRequest",
    "GenerationSettings",
    "Generator",
    "ImagePart",
    "MalformedAnswer",
    "Prepared",
    "answer_question",
    "generate_answer",
    "load_generator",
    "prepare",
    "stream_answer",
    "validate_answer",
]
