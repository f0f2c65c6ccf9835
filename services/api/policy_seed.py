"""The default policy pack, put into ``config_policies`` when the API starts.

Each pack entry becomes a built-in policy with a fixed id (``policy_id(name)``), enabled, unless a
policy of that name (or id) exists already: an admin's changes and disables stick, and several API
instances starting together insert each entry once.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.ext.asyncio import AsyncEngine

from schema.models import ConfigPolicy

if TYPE_CHECKING:
    from services.policy.pack import PolicySpec

log = logging.getLogger(__name__)

NAMESPACE = uuid.UUID("6f1d8a52-3c4b-5e07-9a1f-2b8c4d6e0f13")  # of the built-in policies' ids
RETRY_S = 10.0
FIRST_TRY_S = 5.0


def policy_id(name: str) -> uuid.UUID:
    """The id of the built-in policy of that name, the same on every installation."""
    return uuid.uuid5(NAMESPACE, name)


async def seed(engine: AsyncEngine, pack: Iterable[PolicySpec]) -> int:
    """Insert the pack's policies that are missing; returns how many were inserted."""
    rows: list[dict[str, Any]] = [
        dict(id=policy_id(p.name), name=p.name, config_type=p.config_type, jsonpath=p.jsonpath, severity=p.severity,
             message=p.message, description=p.description, enabled=True, device_id=None, tags={}, builtin=True,
             webhook_url=None, webhook_format="json")
        for p in pack]
    if not rows:
        return 0
    stmt = pg_insert(ConfigPolicy).values(rows).on_conflict_do_nothing().returning(ConfigPolicy.id)
    async with engine.begin() as conn:
        inserted = len((await conn.execute(stmt)).all())
    if inserted:
        log.info("config policies: %d of the default pack's %d added", inserted, len(rows))
    return inserted


def default_pack() -> list[PolicySpec]:
    """``services.policy.pack.PACK``."""
    from services.policy.pack import PACK

    return list(PACK)


async def seed_until_done(engine: AsyncEngine, pack: Iterable[PolicySpec], retry_s: float = RETRY_S) -> None:
    """Seed, trying again every ``retry_s`` while the database is unavailable (or not migrated yet)."""
    specs = list(pack)
    while True:
        try:
            await seed(engine, specs)
            return
        except Exception as exc:  # any failure of the database: ask again later
            log.warning("config policies: cannot add the default pack yet (%s); trying again in %g s",
                        type(exc).__name__, retry_s)
        await asyncio.sleep(retry_s)


async def start(engine: AsyncEngine, pack: Iterable[PolicySpec]) -> asyncio.Task | None:
    """Seed now if the database answers within ``FIRST_TRY_S``, else keep trying in a task (returned)."""
    specs = list(pack)
    try:
        await asyncio.wait_for(seed(engine, specs), FIRST_TRY_S)
        return None
    except Exception as exc:
        log.warning("config policies: default pack not added at start (%s)", type(exc).__name__)
    return asyncio.create_task(seed_until_done(engine, specs), name="api-policy-seed")

