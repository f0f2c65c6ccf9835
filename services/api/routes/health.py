"""Liveness and readiness; neither needs an API key."""

from __future__ import annotations

import asyncio
import logging

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel
from sqlalchemy import text

router = APIRouter(tags=["health"])
log = logging.getLogger(__name__)

DB_CHECK_TIMEOUT_S = 3.0


@router.get("/health")
async def health() -> dict[str, str]:
    """The process is up."""
    return {"status": "ok"}


async def _select_one(request: Request) -> None:
    async with request.app.state.engine.connect() as conn:
        await conn.execute(text("SELECT 1"))


async def _database_ok(request: Request) -> str:
    try:
        await asyncio.wait_for(_select_one(request), DB_CHECK_TIMEOUT_S)
        return "ok"
    except Exception as exc:
        log.warning("readiness: database check failed: %s", type(exc).__name__)
        return f"unavailable ({type(exc).__name__})"


class Readiness(BaseModel):
    """Whether the API can serve: ``ready`` when NATS and the database are ok."""

    status: str
    nats: str
    database: str


@router.get("/ready", response_model=Readiness, responses={503: {"model": Readiness, "description": "not ready"}})
async def ready(request: Request) -> JSONResponse:
    """200 when NATS is connected and the database answers, else 503 naming what failed."""
    nc = getattr(request.app.state, "nc", None)
    checks = {
        "nats": "ok" if nc is not None and nc.is_connected else "disconnected",
        "database": await _database_ok(request),
    }
    ok = all(v == "ok" for v in checks.values())
    return JSONResponse({"status": "ready" if ok else "not ready", **checks}, status_code=200 if ok else 503)
