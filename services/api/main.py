"""The API application: NATS, the registry and cache mirrors and the database, wired at start."""

from __future__ import annotations

import asyncio
import gc
import logging
import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import uvicorn
from fastapi import FastAPI
from sqlalchemy.ext.asyncio import async_sessionmaker, create_async_engine

from services.api import errors, policy_seed
from services.api.audit import Auditor
from services.api.cache import CacheMirror
from services.api.hot import CachedReads
from services.api.keys import PrincipalCache
from services.api.limits import BodyLimit
from services.api.queries import has_timescaledb
from services.api.reads import Reader
from services.api.refresh import Refresher
from services.api.routes import ROUTERS, dashboard, policies, rules
from services.api.settings import ApiSettings
from shared.names import Names
from shared.runtime.bootstrap import ensure
from shared.runtime.devices import DeviceRegistry
from shared.runtime.nats_conn import connect, drain
from shared.runtime.perf import Perf, publish_loop
from shared.settings import Settings

log = logging.getLogger(__name__)

DESCRIPTION = """Reads of the infrawatch fleet: devices, metrics, cached collections, configuration history,
audit trail and live events. Every endpoint but `/health`, `/ready`, `/docs` and `/openapi.json` needs an API
key, as `Authorization: Bearer <key>` or `X-API-Key: <key>`. Roles: viewer reads; operator may also force a
refresh and invalidate the cache; admin also manages devices, keys, alert rules and config policies."""


def create_app(settings: Settings) -> FastAPI:
    """The FastAPI app; its lifespan connects everything and tears it down in reverse."""
    api_settings = ApiSettings.of(settings)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        s = api_settings
        names = Names(s.subject_prefix)
        nc = await connect(s, "api")
        # Connections beyond the pool would be opened and closed per request (and lose their
        # prepared statements): the pool holds as many as the API serves concurrently.
        engine = create_async_engine(s.sqlalchemy_url, pool_pre_ping=True, pool_size=s.api_db_pool_size,
                                     max_overflow=s.api_db_pool_size // 2)
        registry = cache = refresher = auditor = perf_task = perf_stop = seeding = None
        try:
            js = nc.jetstream()
            await ensure(js, s)
            registry = DeviceRegistry(js, names)
            await registry.start()
            cache = CacheMirror(js, names.cache_bucket)
            await cache.start()
            refresher = Refresher(nc, names, s.instance, s.api_refresh_timeout_s)
            perf = Perf("api")
            auditor = Auditor(js, names, s.instance, perf)
            perf_stop = asyncio.Event()

            async def sample() -> None:
                perf.cache_size_entries = len(cache.entries)

            perf_task = asyncio.create_task(publish_loop(js, s, perf, perf_stop, sample), name="api-perf")
            app.state.__dict__.update(
                settings=s, names=names, nc=nc, js=js, registry=registry, cache=cache, engine=engine,
                sessionmaker=async_sessionmaker(engine, expire_on_commit=False), refresher=refresher,
                auditor=auditor, reader=Reader(s, cache, refresher, auditor),
                principals=PrincipalCache(s.api_key_cache_s),
                timescaledb=await has_timescaledb(engine), perf=perf,
            )
            seeding = await policy_seed.start(engine, policy_seed.default_pack())
            log.info("api ready: %d devices, %d cached values, time buckets by %s", len(registry.by_id),
                     len(cache.entries), {True: "time_bucket", False: "date_bin"}.get(app.state.timescaledb, "?"))
            yield
        finally:
            if seeding is not None:
                seeding.cancel()
            if perf_task is not None and perf_stop is not None:
                perf_stop.set()
                await asyncio.gather(perf_task, return_exceptions=True)
            if refresher is not None:
                await refresher.close()
            if auditor is not None:
                await auditor.drain(s.api_audit_drain_s)
            if cache is not None:
                await cache.stop()
            if registry is not None:
                await registry.stop()
            await engine.dispose()
            await drain(nc)

    # FastAPI's OpenTelemetry hooks are off: they cost a provider lookup per request, and the API
    # reports its own counters (GET /metrics, perf events).
    app = FastAPI(title="infrawatch", version="0.1.0", description=DESCRIPTION, lifespan=lifespan,
                  telemetry={"tracing": False, "metrics": False, "logs": False})
    errors.install(app)
    app.add_middleware(CachedReads)  # the innermost middleware: outer ones (limits) see every request
    app.add_middleware(BodyLimit, limit=api_settings.api_max_body_bytes)  # before parsing, decoding and auth
    for router in ROUTERS:
        app.include_router(router)
    app.include_router(rules.router)
    app.include_router(policies.router)
    dashboard.install(app)
    return app


def worker_app() -> FastAPI:
    """The app of one of several worker processes, with the settings of the environment.

    Each worker keeps its own registry and cache mirrors and NATS connection; an explicit
    INFRAWATCH_INSTANCE gets the worker's pid appended, so audit and perf events tell them apart.
    """
    settings = ApiSettings()
    logging.basicConfig(level=settings.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    if "INFRAWATCH_INSTANCE" in os.environ:
        settings = settings.model_copy(update={"instance": f"{settings.instance}-{os.getpid()}"})
    app = create_app(settings)
    _freeze_heap()
    return app


def serve(settings: Settings) -> None:
    """Run the API with uvicorn on ``settings.api_host:api_port`` until SIGTERM/SIGINT.

    httptools and uvloop; no access log line per request (unless the log level is DEBUG).
    With INFRAWATCH_API_WORKERS > 1, that many worker processes share the port; their settings
    come from the environment.
    """
    s = ApiSettings.of(settings)
    options: dict[str, Any] = dict(host=s.api_host, port=s.api_port, log_level=s.log_level.lower(), proxy_headers=True,
                   http="httptools", loop="uvloop", access_log=s.log_level.upper() == "DEBUG")
    if s.api_workers > 1:
        uvicorn.run("services.api.main:worker_app", factory=True, workers=s.api_workers, **options)
    else:
        app = create_app(s)
        _freeze_heap()
        uvicorn.run(app, **options)


def _freeze_heap() -> None:
    """Leave the objects of start-up (modules, routes, schemas) out of every later garbage
    collection, which otherwise walks them all, pausing requests, as requests allocate."""
    gc.collect()
    gc.freeze()
