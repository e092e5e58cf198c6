"""Request dependencies: the app's services and the caller's token scope."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, HTTPException, Path, Request
from fastapi.exceptions import RequestValidationError
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from patronlink.domain.audit import Actor, ActorKind
from patronlink.services.access import authenticate
from patronlink.services.agencies import find_agency
from patronlink.services.clock import Clock
from patronlink.settings import Settings
from patronlink.storage.database import Database, TokenScope

_bearer = HTTPBearer(auto_error=False, description="a staff API token (patronlink token create)")


def get_db(request: Request) -> Database:
    db: Database = request.app.state.db
    return db


def get_clock(request: Request) -> Clock:
    clock: Clock = request.app.state.clock
    return clock


def get_settings(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


def refuse_nul_in_url(request: Request) -> None:
    """422 naming the parameter when a path or query value holds NUL (a router dependency).

    PostgreSQL cannot store or even compare text with NUL in it; refused here, before any
    query, a NUL is a validation error on every backend instead of a 500 on one.
    """
    for location, values in (
        ("path", request.path_params.items()),
        ("query", request.query_params.multi_items()),
    ):
        for name, value in values:
            if isinstance(value, str) and "\x00" in value:
                raise RequestValidationError(
                    [{"loc": (location, name), "msg": "contains a NUL character", "type": "nul"}]
                )


DbDep = Annotated[Database, Depends(get_db)]
ClockDep = Annotated[Clock, Depends(get_clock)]
SettingsDep = Annotated[Settings, Depends(get_settings)]


def token_scope(
    db: DbDep,
    clock: ClockDep,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> TokenScope:
    if credentials is None or credentials.scheme.lower() != "bearer":
        raise HTTPException(
            401, "a bearer token is required", headers={"WWW-Authenticate": "Bearer"}
        )
    scope = authenticate(db, credentials.credentials, clock())
    if scope is None:
        raise HTTPException(401, "the token is not valid", headers={"WWW-Authenticate": "Bearer"})
    return scope


ScopeDep = Annotated[TokenScope, Depends(token_scope)]


def agency_in_scope(
    db: DbDep,
    scope: ScopeDep,
    agency_id: Annotated[str, Path(max_length=32, description="ISIL, e.g. DK-761500, or 761500")],
) -> str:
    """The agency's ISIL; 403 when the token belongs to another agency, 404 when none exists."""
    agency = find_agency(db, agency_id)
    if agency is None:
        if scope.agency_id is not None:
            raise HTTPException(403, "this token is not valid for that agency")
        raise HTTPException(404, f"agency {agency_id!r} does not exist")
    if not scope.allows(agency.id):
        raise HTTPException(403, "this token is not valid for that agency")
    return agency.id


AgencyDep = Annotated[str, Depends(agency_in_scope)]


def client_address(request: Request) -> str | None:
    """Where a request came from, for the audit log (the peer; proxies are not trusted here)."""
    return request.client.host if request.client else None


def api_actor(request: Request, scope: ScopeDep) -> Actor:
    """The caller of the staff API for the audit log: its token's name and id, and address."""
    return Actor(ActorKind.TOKEN, f"{scope.name} (#{scope.token_id})", client_address(request))


ActorDep = Annotated[Actor, Depends(api_actor)]
