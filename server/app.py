"""The app factory: ``create_app(settings)`` builds the FastAPI app; models load at startup."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI

from colretrieve.answer import Generator
from colretrieve.contracts import PageEmbedder, TextEmbedder
from colretrieve.settings import Settings
from server.errors import install_error_handlers
from server.metrics import Metrics, MetricsMiddleware
from server.routes import answers, chat, documents, search, system
from server.state import ServerState, load_state

log = logging.getLogger("colretrieve.server")


def create_app(
    settings: Settings,
    *,
    embedder: PageEmbedder | None = None,
    generator: Generator | None = None,
    state: ServerState | None = None,
    text_encoder: TextEmbedder | None = None,
) -> FastAPI:
    """Build the app. ``embedder``/``generator``/``text_encoder`` reuse already loaded
    models (tests)."""
    metrics = state.metrics if state is not None else Metrics()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        own = app.state.colretrieve is None
        if own:
            app.state.colretrieve = load_state(
                settings, embedder=embedder, generator=generator, text_encoder=text_encoder
            )
            app.state.colretrieve.metrics = metrics
        if settings.no_auth:
            log.warning(
                "AUTHENTICATION IS OFF (--no-auth): anyone who can reach this port "
                "can read and change every collection. Local development only."
            )
        try:
            yield
        finally:
            if own:
                app.state.colretrieve.close()
                app.state.colretrieve = None

    app = FastAPI(
        title="colretrieve",
        version="0.1.0",
        summary="Hybrid (visual, text, bm25) page retrieval and cited answers over page images.",
        lifespan=lifespan,
    )
    app.state.colretrieve = state
    install_error_handlers(app)
    for module in (search, answers, chat, documents, system):
        app.include_router(module.router)
    app.add_middleware(MetricsMiddleware, metrics=metrics)
    return app


def serve(settings: Settings, **uvicorn_options: Any) -> None:
    """Run the app with uvicorn on ``settings.host``/``settings.port``."""
    try:
        import uvicorn
    except ImportError as error:  # pragma: no cover - depends on the install
        raise SystemExit(
            'the server needs its extras: pip install "colretrieve[server]"'
        ) from error
    uvicorn.run(create_app(settings), host=settings.host, port=settings.port, **uvicorn_options)
