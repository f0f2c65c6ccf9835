"""The API application: NATS, the registry and cache mirrors and the database, wired at start."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import uvicorn
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from nats.errors import Error as NatsError
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import async_sessionmaker, create_async_engine

from services.api.cache import CacheMirror
from services.api.routes import devices, health, metrics
from shared.bootstrap import ensure
from shared.devices import DeviceRegistry
from shared.names import Names
from shared.nats_conn import connect
from shared.settings import Settings

log = logging.getLogger(__name__)


def _unavailable(part: str):
    """A handler answering 503 when a backing service fails mid-request."""

    async def handler(request: Request, exc: Exception) -> JSONResponse:
        log.warning("%s %s: %s unavailable (%s)", request.method, request.url.path, part, type(exc).__name__)
        return JSONResponse({"detail": f"{part} unavailable"}, status_code=503)

    return handler


def create_app(settings: Settings) -> FastAPI:
    """The FastAPI app; its lifespan connects everything and tears it down in reverse."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        names = Names(settings.subject_prefix)
        nc = await connect(settings, "api")
        engine = create_async_engine(settings.sqlalchemy_url, pool_pre_ping=True)
        registry = cache = None
        try:
            js = nc.jetstream()
            await ensure(js, settings)
            registry = DeviceRegistry(js, names)
            await registry.start()
            cache = CacheMirror(js, names.cache_bucket)
            await cache.start()
            app.state.__dict__.update(
                settings=settings, names=names, nc=nc, js=js, registry=registry, cache=cache, engine=engine,
                sessionmaker=async_sessionmaker(engine, expire_on_commit=False),
            )
            log.info("api ready: %d devices, %d cached values", len(registry.by_id), len(cache.entries))
            yield
        finally:
            if cache is not None:
                await cache.stop()
            if registry is not None:
                await registry.stop()
            await engine.dispose()
            if not nc.is_closed:
                try:
                    await nc.drain()
                except Exception as exc:  # a connection that is already gone
                    log.warning("nats drain: %s", exc)

    app = FastAPI(title="infrawatch", version="0.1.0", lifespan=lifespan)
    app.add_exception_handler(DBAPIError, _unavailable("database"))
    app.add_exception_handler(OSError, _unavailable("database"))
    app.add_exception_handler(NatsError, _unavailable("NATS"))
    for module in (health, devices, metrics):
        app.include_router(module.router)
    return app


def serve(settings: Settings) -> None:
    """Run the API with uvicorn on ``settings.api_host:api_port`` until SIGTERM/SIGINT."""
    uvicorn.run(
        create_app(settings), host=settings.api_host, port=settings.api_port,
        log_level=settings.log_level.lower(), proxy_headers=True,
    )
