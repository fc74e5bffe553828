"""One root exception and its specific subclasses.

Every backend raises these same classes. Each carries the fields a caller (or the HTTP
error handler) needs and a message that says what to do next.
"""

from __future__ import annotations

from pathlib import Path


class ColretrieveError(Exception):
    """Root of every error colretrieve raises on purpose."""

    code: str = "colretrieve_error"

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class ModelLoadError(ColretrieveError):
    """A model could not be loaded (missing folder, unreachable hub, unknown architecture)."""

    code = "model_load_failed"

    def __init__(self, name: str, reason: str) -> None:
        super().__init__(
            f"cannot load model {name!r}: {reason}. Point --model (or COLRETRIEVE_MODEL) at a "
            "local folder holding the checkpoint, e.g. one saved with "
            "`huggingface-cli download vidore/colqwen2-v1.0 --local-dir DIR` on a machine "
            "with network access."
        )
        self.name = name
        self.reason = reason


class TextModelLoadError(ModelLoadError):
    """The text channel's encoder could not be loaded."""

    def __init__(self, name: str, reason: str) -> None:
        ColretrieveError.__init__(
            self,
            f"cannot load text model {name!r}: {reason}. Point the text model setting at a "
            "local folder holding the checkpoint (saved with `huggingface-cli download NAME "
            "--local-dir DIR` on a machine with network access), or use the bundled default "
            "'sentence-transformers/all-MiniLM-L6-v2', which needs no download.",
        )
        self.name = name
        self.reason = reason


class AnalyzerMismatchError(ColretrieveError):
    """A bm25 index was built with another text analyzer than this colretrieve's."""

    code = "model_mismatch"

    def __init__(self, location: str, stored: str, current: str) -> None:
        super().__init__(
            f"the bm25 channel at {location} was built with text analyzer {stored!r}; this "
            f"colretrieve uses {current!r}, whose terms would not match. Rebuild it: "
            "`colretrieve drop-channel bm25` then `colretrieve index ... --channels bm25`."
        )
        self.stored = stored
        self.current = current


class ModelMismatchError(ColretrieveError):
    """The index was built with another model than the one being used."""

    code = "model_mismatch"

    def __init__(self, index_model: str, requested_model: str) -> None:
        super().__init__(
            f"this index was built with {index_model}, not {requested_model}; embeddings of "
            "different models are not comparable. Use --model with the index's model, or "
            "build a new index (--index DIR) for this one."
        )
        self.index_model = index_model
        self.requested_model = requested_model


class IndexNotFoundError(ColretrieveError):
    code = "index_not_found"

    def __init__(self, path: Path | str, hint: str | None = None) -> None:
        super().__init__(
            f"no colretrieve index at {path}; "
            + (hint or f"create one with `colretrieve index PATH --index {path}`")
        )
        self.path = path


class IndexCorruptError(ColretrieveError):
    """A committed file is missing or damaged: the index refuses to serve it."""

    code = "index_corrupt"

    def __init__(self, path: Path, reason: str) -> None:
        super().__init__(
            f"index at {path} is damaged ({reason}); nothing from it was served. Re-index the "
            "affected documents or restore the folder from a backup."
        )
        self.path = path
        self.reason = reason


class IndexLockedError(ColretrieveError):
    code = "index_locked"

    def __init__(self, path: Path) -> None:
        super().__init__(
            f"index at {path} is being written by another process; wait for it to finish"
        )
        self.path = path


class StoreUnavailableError(ColretrieveError):
    """A store server (Qdrant) refused or failed a request: unreachable, auth, overloaded."""

    code = "store_unavailable"

    def __init__(self, location: str, reason: str) -> None:
        super().__init__(
            f"the store at {location} failed a request ({reason}); check that the server is "
            "up and reachable, and its URL and API key (COLRETRIEVE_QDRANT_URL, "
            "COLRETRIEVE_QDRANT_API_KEY), then retry: writes are idempotent"
        )
        self.location = location
        self.reason = reason


class DocumentNotFoundError(ColretrieveError):
    code = "document_not_found"

    def __init__(self, ref: str) -> None:
        super().__init__(f"no document {ref!r} in this index (give a document id or its path)")
        self.ref = ref


class InvalidInputError(ColretrieveError):
    """A request or argument is malformed (wrong shape, dtype, empty query, bad k...)."""

    code = "invalid_input"


class UnreadableDocumentError(ColretrieveError):
    """An input file cannot be turned into pages; ingest reports it and skips the file."""

    code = "unreadable_document"

    def __init__(self, path: Path, reason: str) -> None:
        super().__init__(f"{path}: {reason}")
        self.path = path
        self.reason = reason


class GeneratorNotConfiguredError(ColretrieveError):
    """An answer was asked for but no generator model or endpoint is configured."""

    code = "generator_not_configured"

    def __init__(self) -> None:
        super().__init__(
            "no answer generator is configured; pass --generator NAME_OR_DIR_OR_URL "
            "(or set COLRETRIEVE_GENERATOR) to a Qwen2-VL checkpoint or an OpenAI-compatible URL"
        )


class GenerationError(ColretrieveError):
    """The generator failed, or its output stayed malformed after one repair attempt."""

    code = "generation_failed"

    def __init__(self, reason: str) -> None:
        super().__init__(f"the answer could not be generated: {reason}")
        self.reason = reason


class LimitExceededError(ColretrieveError):
    """A request is over one of the configured caps (upload size, pages, k, query length...)."""

    code = "limit_exceeded"

    def __init__(self, what: str, limit: int, got: int | None = None) -> None:
        extra = f"; got {got}" if got is not None else ""
        super().__init__(f"{what} is limited to {limit}{extra}")
        self.what = what
        self.limit = limit
        self.got = got


class TooBusyError(ColretrieveError):
    """Too many jobs are running; retry later."""

    code = "too_busy"


class UnauthorizedError(ColretrieveError):
    """Missing or unknown API key."""

    code = "unauthorized"

    def __init__(self) -> None:
        super().__init__("missing or invalid API key; send it as `Authorization: Bearer KEY`")


class NotFoundError(ColretrieveError):
    """A named thing (collection, job, page) does not exist or is not visible to the caller."""

    code = "not_found"

    def __init__(self, kind: str, name: str) -> None:
        super().__init__(f"no {kind} {name!r}")
        self.kind = kind
        self.name = name


class OcrUnavailableError(ColretrieveError):
    """OCR was required (COLRETRIEVE_OCR=require) but Tesseract or a language is missing."""

    code = "ocr_unavailable"

    def __init__(self, tesseract: str, reason: str) -> None:
        super().__init__(
            f"OCR is required but {reason}; install Tesseract (`apt-get install tesseract-ocr`, "
            "plus `tesseract-ocr-LANG` for each language), point COLRETRIEVE_OCR_TESSERACT at "
            "the binary, or set COLRETRIEVE_OCR=auto to index scanned pages without text"
        )
        self.tesseract = tesseract
        self.reason = reason


class OcrFailedError(ColretrieveError):
    """Tesseract failed on one page image (crash, timeout, unreadable output).

    Ingest never lets this fail a file: the page keeps no text and the reason is logged.
    """

    code = "ocr_failed"

    def __init__(self, reason: str) -> None:
        super().__init__(f"OCR failed: {reason}")
        self.reason = reason
