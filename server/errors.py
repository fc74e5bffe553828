"""One JSON error shape for every error, mapped from ``colretrieve.errors`` in one place::

{"error": {"code": "not_found", "message": "no collection 'x'", "status": 404}}
"""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field
from starlette.exceptions import HTTPException as StarletteHTTPException

from colretrieve.errors import ColretrieveError

log = logging.getLogger("colretrieve.server")

STATUS_BY_CODE = {
    "invalid_input": 400,
    "limit_exceeded": 400,
    "unauthorized": 401,
    "not_found": 404,
    "document_not_found": 404,
    "index_not_found": 404,
    "index_locked": 409,
    "model_mismatch": 409,
    "upload_too_large": 413,
    "unreadable_document": 415,
    "too_busy": 429,
    "index_corrupt": 500,
    "generation_failed": 502,
    "generator_not_configured": 503,
    "model_load_failed": 503,
}


class ErrorDetail(BaseModel):
    model_config = ConfigDict(extra="forbid")

    code: str = Field(description="Stable machine-readable error code, e.g. `not_found`.")
    message: str = Field(description="What went wrong and what to do next.")
    status: int = Field(description="The HTTP status code, repeated.")


class ErrorBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    error: ErrorDetail = Field(description="The error.")


def error_body(status: int, code: str, message: str) -> dict[str, Any]:
    return ErrorBody(error=ErrorDetail(code=code, message=message, status=status)).model_dump()


def error_response(status: int, code: str, message: str) -> JSONResponse:
    headers = {"WWW-Authenticate": "Bearer"} if status == 401 else None
    return JSONResponse(error_body(status, code, message), status_code=status, headers=headers)


def status_for(error: ColretrieveError) -> int:
    return STATUS_BY_CODE.get(error.code, 500)


_HTTP_CODES = {404: "not_found", 405: "method_not_allowed", 413: "upload_too_large"}


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(ColretrieveError)
    async def colretrieve_error(_: Request, error: ColretrieveError) -> JSONResponse:
        status = status_for(error)
        if status >= 500:
            log.error("%s: %s", error.code, error.message)
        return error_response(status, error.code, error.message)

    @app.exception_handler(RequestValidationError)
    async def validation_error(_: Request, error: RequestValidationError) -> JSONResponse:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e.get('loc', ()))}: {e.get('msg', '')}"
            for e in error.errors()[:5]
        )
        return error_response(422, "invalid_request", problems or "invalid request")

    @app.exception_handler(StarletteHTTPException)
    async def http_error(_: Request, error: StarletteHTTPException) -> JSONResponse:
        code = _HTTP_CODES.get(error.status_code, "http_error")
        return error_response(error.status_code, code, str(error.detail))

    @app.exception_handler(Exception)
    async def unexpected(_: Request, error: Exception) -> JSONResponse:
        log.exception("unexpected error")
        return error_response(500, "internal_error", "internal server error (see server log)")


ERROR_RESPONSES: dict[int | str, dict[str, Any]] = {
    status: {"model": ErrorBody, "description": description}
    for status, description in {
        400: "Invalid input or over a limit",
        401: "Missing or invalid API key",
        404: "Not found (or not visible to this key)",
        409: "Conflict (index locked by another writer, model mismatch)",
        413: "Upload too large",
        415: "Unsupported upload content",
        422: "Request does not match the schema",
        429: "Too many jobs",
        500: "Internal error",
        502: "Generator failed",
        503: "Generator or model not available",
    }.items()
}
