"""Dependencies of the routes, as ``Annotated`` aliases."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator
from typing import Annotated, Any

from fastapi import Depends, HTTPException, Query, Request, Security, status
from fastapi.security import APIKeyHeader, HTTPAuthorizationCredentials, HTTPBearer
from nats.aio.client import Client
from nats.js import JetStreamContext
from sqlalchemy.ext.asyncio import AsyncSession
from starlette.datastructures import Headers, State

from services.api.audit import Auditor
from services.api.cache import CacheMirror
from services.api.keys import Principal, PrincipalCache, authenticate, hash_key
from services.api.reads import Reader
from services.api.refresh import Refresher
from services.api.settings import ApiSettings
from shared.events import DeviceSpec
from shared.names import Names
from shared.runtime.devices import DeviceRegistry

_bearer = HTTPBearer(auto_error=False, description="Authorization: Bearer <API key>")
_api_key_header = APIKeyHeader(name="X-API-Key", auto_error=False, description="the API key")


def _state(attr: str):
    """A dependency on one attribute of the application's state."""
    async def get(request: Request):
        return getattr(request.app.state, attr)

    return get


async def _session(request: Request) -> AsyncIterator[AsyncSession]:
    """A session for the routes that query the database (the others never open one)."""
    async with request.app.state.sessionmaker() as session:
        yield session


SettingsDep = Annotated[ApiSettings, Depends(_state("settings"))]
NamesDep = Annotated[Names, Depends(_state("names"))]
NatsDep = Annotated[Client, Depends(_state("nc"))]
JsDep = Annotated[JetStreamContext, Depends(_state("js"))]
RegistryDep = Annotated[DeviceRegistry, Depends(_state("registry"))]
CacheDep = Annotated[CacheMirror, Depends(_state("cache"))]
SessionDep = Annotated[AsyncSession, Depends(_session)]
ReaderDep = Annotated[Reader, Depends(_state("reader"))]
AuditorDep = Annotated[Auditor, Depends(_state("auditor"))]
RefresherDep = Annotated[Refresher, Depends(_state("refresher"))]


def _presented_key(headers: Headers) -> str | None:
    """The key of ``Authorization: Bearer <key>`` or ``X-API-Key: <key>``."""
    auth = headers.get("authorization")
    if auth:
        scheme, _, value = auth.partition(" ")
        if scheme.lower() == "bearer" and value.strip():
            return value.strip()
    return headers.get("x-api-key") or None


def cached_principal(state: State, headers: Headers) -> Principal | None:
    """The principal of the presented key if this instance authenticated it recently (no I/O)."""
    key = _presented_key(headers)
    return state.principals.get(hash_key(key), time.monotonic()) if key else None


async def _lookup(request: Request, key: str, digest: str) -> Principal | None:
    """The key's principal from the database; concurrent requests with one key share the query."""
    state = request.app.state
    lookups: dict[str, asyncio.Future] | None = getattr(state, "principal_lookups", None)
    if lookups is None:
        lookups = state.principal_lookups = {}
    pending = lookups.get(digest)
    if pending is None:
        async def lookup() -> Principal | None:
            async with state.sessionmaker() as session:
                return await authenticate(session, key)

        pending = lookups[digest] = asyncio.ensure_future(lookup())
        pending.add_done_callback(lambda _: lookups.pop(digest, None))
    return await asyncio.shield(pending)  # a request that goes away does not cancel the others' query


async def _authenticated(request: Request) -> Principal:
    """The request's principal (looked up once per request), else 401.

    Only a key not seen within api_key_cache_s costs a database query, and no session is opened
    otherwise.
    """
    principal = getattr(request.state, "principal", None)
    if principal is not None:
        return principal
    key = _presented_key(request.headers)
    if key:
        cache: PrincipalCache = request.app.state.principals
        digest, now = hash_key(key), time.monotonic()
        principal = cache.get(digest, now)
        if principal is None:
            principal = await _lookup(request, key, digest)
            if principal is not None:
                cache.put(digest, principal, now)
    if principal is None:
        raise HTTPException(
            status.HTTP_401_UNAUTHORIZED,
            "a valid API key is required" if key else "missing API key",
            headers={"WWW-Authenticate": "Bearer"},
        )
    request.state.principal = principal
    return principal


def _require(role: str):
    # The two Security parameters declare the schemes in the OpenAPI document ("Authorize" in
    # /docs); the key itself is read by _presented_key.
    async def check(
        request: Request,
        _bearer_doc: Annotated[HTTPAuthorizationCredentials | None, Security(_bearer)] = None,
        _header_doc: Annotated[str | None, Security(_api_key_header)] = None,
    ) -> Principal:
        principal = await _authenticated(request)
        if not principal.allows(role):
            raise HTTPException(status.HTTP_403_FORBIDDEN, f"this needs the {role} role or higher")
        return principal

    return check


ViewerKey = Annotated[Principal, Depends(_require("viewer"))]
OperatorKey = Annotated[Principal, Depends(_require("operator"))]
AdminKey = Annotated[Principal, Depends(_require("admin"))]


async def _device(device: str, request: Request) -> DeviceSpec:
    """The device of the path, by UUID or name (after authentication), else 404."""
    await _authenticated(request)
    spec = request.app.state.registry.get(device)
    if spec is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"device {device!r} not found")
    return spec


DeviceDep = Annotated[DeviceSpec, Depends(_device)]


def device_filter(registry: DeviceRegistry, device: str | None) -> uuid.UUID | None:
    """A device filter's id: a UUID as given (also of a removed device), or a registered name, else 404."""
    if device is None:
        return None
    try:
        return uuid.UUID(device)
    except ValueError:
        spec = registry.get(device)
    if spec is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"device {device!r} not found")
    return spec.id


Responses = dict[int | str, dict[str, Any]]  # a route's documented answers by status code
UNKNOWN_DEVICE: Responses = {404: {"description": "unknown device"}}


async def _device_filter(
    registry: RegistryDep,
    device: Annotated[str | None, Query(max_length=63, description="name or UUID")] = None,
) -> uuid.UUID | None:
    return device_filter(registry, device)


DeviceFilterDep = Annotated[uuid.UUID | None, Depends(_device_filter)]  # the optional ``device`` query filter


def require_force(principal: Principal, force_refresh: bool) -> None:
    """A forced refresh needs the operator role."""
    if force_refresh and not principal.allows("operator"):
        raise HTTPException(status.HTTP_403_FORBIDDEN, "force_refresh needs the operator role or higher")
