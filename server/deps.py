"""FastAPI dependencies: the server state and the caller's key."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Header, Request

from server.auth import Principal
from server.state import ServerState


def get_state(request: Request) -> ServerState:
    return request.app.state.colretrieve


StateDep = Annotated[ServerState, Depends(get_state)]


def get_principal(
    state: StateDep,
    authorization: Annotated[
        str | None, Header(description="`Bearer KEY` (not needed with --no-auth).")
    ] = None,
) -> Principal:
    return state.keys.authenticate(authorization)


PrincipalDep = Annotated[Principal, Depends(get_principal)]
