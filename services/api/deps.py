"""Dependencies of the routes, as ``Annotated`` aliases."""

from __future__ import annotations

import time
import uuid
from collections.abc import AsyncIterator
from typing import Annotated

from fastapi import Depends, HTTPException, Request, Security, status
from fastapi.security import APIKeyHeader, HTTPAuthorizationCredentials, HTTPBearer
from nats.aio.client import Client
from nats.js import JetStreamContext
from sqlalchemy.ext.asyncio import AsyncSession

from services.api.audit import Auditor
from services.api.cache import CacheMirror
from services.api.keys import Principal, PrincipalCache, authenticate, hash_key
from services.api.reads import Reader
from services.api.refresh import Refresher
from services.api.settings import ApiSettings
from shared.devices import DeviceRegistry
from shared.events import DeviceSpec
from shared.names import Names

# Declared for the OpenAPI document ("Authorize" in /docs); the key itself is read by _presented_key.
_bearer = HTTPBearer(auto_error=False, description="Authorization: Bearer <API key>")
_api_key_header = APIKeyHeader(name="X-API-Key", auto_error=False, description="the API key")


def _settings(request: Request) -> ApiSettings:
    return request.app.state.settings


def _names(request: Request) -> Names:
    return request.app.state.names


def _nc(request: Request) -> Client:
    return request.app.state.nc


def _js(request: Request) -> JetStreamContext:
    return request.app.state.js


def _registry(request: Request) -> DeviceRegistry:
    return request.app.state.registry


def _cache(request: Request) -> CacheMirror:
    return request.app.state.cache


def _reader(request: Request) -> Reader:
    return request.app.state.reader


def _auditor(request: Request) -> Auditor:
    return request.app.state.auditor


def _refresher(request: Request) -> Refresher:
    return request.app.state.refresher


async def _session(request: Request) -> AsyncIterator[AsyncSession]:
    async with request.app.state.sessionmaker() as session:
        yield session


SettingsDep = Annotated[ApiSettings, Depends(_settings)]
NamesDep = Annotated[Names, Depends(_names)]
NatsDep = Annotated[Client, Depends(_nc)]
JsDep = Annotated[JetStreamContext, Depends(_js)]
RegistryDep = Annotated[DeviceRegistry, Depends(_registry)]
CacheDep = Annotated[CacheMirror, Depends(_cache)]
SessionDep = Annotated[AsyncSession, Depends(_session)]
ReaderDep = Annotated[Reader, Depends(_reader)]
AuditorDep = Annotated[Auditor, Depends(_auditor)]
RefresherDep = Annotated[Refresher, Depends(_refresher)]


def _presented_key(request: Request) -> str | None:
    """The key of ``Authorization: Bearer <key>`` or ``X-API-Key: <key>``."""
    auth = request.headers.get("authorization")
    if auth:
        scheme, _, value = auth.partition(" ")
        if scheme.lower() == "bearer" and value.strip():
            return value.strip()
    return request.headers.get("x-api-key") or None


async def _principal(
    request: Request,
    session: SessionDep,
    _bearer_doc: Annotated[HTTPAuthorizationCredentials | None, Security(_bearer)] = None,
    _header_doc: Annotated[str | None, Security(_api_key_header)] = None,
) -> Principal:
    key = _presented_key(request)
    principal = None
    if key:
        cache: PrincipalCache = request.app.state.principals
        digest, now = hash_key(key), time.monotonic()
        principal = cache.get(digest, now)
        if principal is None:
            principal = await authenticate(session, key)
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
    async def check(principal: Annotated[Principal, Depends(_principal)]) -> Principal:
        if not principal.allows(role):
            raise HTTPException(status.HTTP_403_FORBIDDEN, f"this needs the {role} role or higher")
        return principal

    return check


ViewerKey = Annotated[Principal, Depends(_require("viewer"))]
OperatorKey = Annotated[Principal, Depends(_require("operator"))]
AdminKey = Annotated[Principal, Depends(_require("admin"))]


def _device(device: str, registry: RegistryDep, _: Annotated[Principal, Depends(_principal)]) -> DeviceSpec:
    """The device of the path, by UUID or name (after authentication), else 404."""
    spec = registry.get(device)
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


def require_force(principal: Principal, force_refresh: bool) -> None:
    """A forced refresh needs the operator role."""
    if force_refresh and not principal.allows("operator"):
        raise HTTPException(status.HTTP_403_FORBIDDEN, "force_refresh needs the operator role or higher")
