"""Dependencies of the routes, as ``Annotated`` aliases."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Annotated

from fastapi import Depends, HTTPException, Request, status
from nats.aio.client import Client
from nats.js import JetStreamContext
from sqlalchemy.ext.asyncio import AsyncSession

from services.api.cache import CacheMirror
from services.api.keys import Principal, authenticate
from shared.devices import DeviceRegistry
from shared.names import Names
from shared.settings import Settings


def _settings(request: Request) -> Settings:
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


async def _session(request: Request) -> AsyncIterator[AsyncSession]:
    async with request.app.state.sessionmaker() as session:
        yield session


SettingsDep = Annotated[Settings, Depends(_settings)]
NamesDep = Annotated[Names, Depends(_names)]
NatsDep = Annotated[Client, Depends(_nc)]
JsDep = Annotated[JetStreamContext, Depends(_js)]
RegistryDep = Annotated[DeviceRegistry, Depends(_registry)]
CacheDep = Annotated[CacheMirror, Depends(_cache)]
SessionDep = Annotated[AsyncSession, Depends(_session)]


def _presented_key(request: Request) -> str | None:
    """The key of ``Authorization: Bearer <key>`` or ``X-API-Key: <key>``."""
    auth = request.headers.get("authorization")
    if auth:
        scheme, _, value = auth.partition(" ")
        if scheme.lower() == "bearer" and value.strip():
            return value.strip()
    return request.headers.get("x-api-key") or None


async def _principal(request: Request, session: SessionDep) -> Principal:
    key = _presented_key(request)
    principal = await authenticate(session, key) if key else None
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
