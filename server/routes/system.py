"""Health, readiness and Prometheus metrics (no key needed)."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import Response

from server.deps import StateDep
from server.errors import ERROR_RESPONSES
from server.wire import Health

router = APIRouter(tags=["system"])


@router.get("/healthz", response_model=Health)
def healthz() -> Health:
    """The process is up."""
    return Health(status="ok")


@router.get("/readyz", response_model=Health, responses={503: ERROR_RESPONSES[503]})
def readyz(state: StateDep) -> Health:
    """Models and stores are loaded; which channels each collection searches and writes,
    and what the server runs without."""
    return Health(
        status="ready",
        collections=sorted(state.collections),
        generator=state.generator.name if state.generator else None,
        channels={name: list(c.channels) for name, c in sorted(state.collections.items())},
        ingest_channels={
            name: list(c.ingest_channels) for name, c in sorted(state.collections.items())
        },
        warnings=state.warnings,
    )


@router.get(
    "/metrics",
    response_class=Response,
    responses={200: {"content": {"text/plain": {}}, "description": "Prometheus text format."}},
)
def metrics(state: StateDep) -> Response:
    """Request counts and latencies per route; latencies per stage."""
    return Response(state.metrics.render(), media_type="text/plain; version=0.0.4")
