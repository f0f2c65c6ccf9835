"""The policy evaluator's SQL: policies applied to parsed data by PostgreSQL's jsonpath, and the
violations of one file read and changed under a per-file lock, in one transaction.

A policy whose JSONPath fails at run time (or takes longer than the statement timeout) is
evaluated alone, in a savepoint, and left out with a warning, so one bad policy never holds
up the others nor the event.
"""

from __future__ import annotations

import json
import logging
import uuid
from datetime import datetime
from typing import Any

import asyncpg
import msgspec

from services.policy.evaluate import FileVersion, OpenViolation, Plan, PolicyResult
from shared.policy_events import ConfigRef, ConfigViolation, ViolationState, path_key

log = logging.getLogger(__name__)

_APPLICABLE = """
    FROM config_policies p LEFT JOIN devices d ON d.id = $2 AND d.deleted_at IS NULL
    WHERE p.enabled AND p.config_type = $1 AND (p.device_id IS NULL OR p.device_id = $2)
      AND (p.tags = '{}'::jsonb OR coalesce(d.tags, '{}'::jsonb) @> p.tags)
"""
_EVALUATE = ("SELECT p.id, p.name, p.severity, p.message, "
             "jsonb_path_query_array($3::jsonb, p.jsonpath::jsonpath, '{}', true) AS found" + _APPLICABLE)
_ONE = "SELECT jsonb_path_query_array($1::jsonb, $2::jsonpath, '{}', true)"
_OPEN = """
    SELECT id, policy_id, policy_name, severity, message, matches, match_count, opened_at, introduced_by,
           fired_event_id
    FROM config_violations WHERE device_id = $1 AND path_key = $2 AND state = 'open' FOR UPDATE
"""
_INSERT = """
    INSERT INTO config_violations (id, policy_id, policy_name, severity, message, device_id, config_type, file_path,
        path_key, state, matches, match_count, opened_at, introduced_by, fired_event_id, published, notified,
        updated_at)
    VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, 'open', $10::jsonb, $11, $12, $13::jsonb, $14, false, false, $15)
"""
_RESOLVE = """
    UPDATE config_violations SET state = 'resolved', resolved_at = $2, fixed_by = $3::jsonb, resolution = $4,
        resolved_event_id = $5, published = false, notified = false, updated_at = $2
    WHERE id = $1 AND state = 'open'
"""
_UPDATE = "UPDATE config_violations SET matches = $2::jsonb, match_count = $3, updated_at = $4 WHERE id = $1"
_PROGRESS = ("SELECT time, event_id FROM config_policy_progress WHERE device_id = $1 AND path_key = $2 "
             "FOR UPDATE")
_ADVANCE = """
    INSERT INTO config_policy_progress (device_id, path_key, time, event_id) VALUES ($1, $2, $3, $4)
    ON CONFLICT (device_id, path_key) DO UPDATE SET time = EXCLUDED.time, event_id = EXCLUDED.event_id
"""
_LOCK = "SELECT pg_advisory_xact_lock(hashtextextended($1::text || $2::text, 7))"
_enc = msgspec.json.Encoder()
_ref = msgspec.json.Decoder(ConfigRef)


def _json(value: Any) -> str:
    return _enc.encode(value).decode()


def _loads(value: Any) -> Any:
    return json.loads(value) if isinstance(value, str) else value


async def init_connection(conn: asyncpg.Connection) -> None:
    await conn.set_type_codec("jsonb", encoder=lambda v: v, decoder=lambda v: v, schema="pg_catalog", format="text")


async def results(conn: asyncpg.Connection, config_type: str, device_id: uuid.UUID,
                  parsed: dict[str, Any]) -> list[PolicyResult]:
    """Every enabled policy that applies to this device and config type, with what it found in ``parsed``."""
    doc = _json(parsed)
    try:
        async with conn.transaction():
            rows = await conn.fetch(_EVALUATE, config_type, device_id, doc)
        return [_result(r, r["found"]) for r in rows]
    except asyncpg.PostgresError as exc:
        log.warning("policies on %s failed together (%s: %s), evaluating them one by one", config_type,
                    type(exc).__name__, exc)
    out = []
    for p in await conn.fetch("SELECT p.id, p.name, p.severity, p.message, p.jsonpath" + _APPLICABLE,
                              config_type, device_id):
        try:
            async with conn.transaction():
                out.append(_result(p, await conn.fetchval(_ONE, doc, p["jsonpath"])))
        except asyncpg.PostgresError as exc:
            log.warning("policy %s cannot be evaluated, left out: %s: %s", p["name"], type(exc).__name__, exc)
    return out


def _result(row: asyncpg.Record, found: Any) -> PolicyResult:
    return PolicyResult(policy_id=row["id"], name=row["name"], severity=row["severity"], message=row["message"],
                        found=_loads(found) or [])


async def lock(conn: asyncpg.Connection, device_id: uuid.UUID, path: str) -> None:
    """Serialise every change of one file's violations (held until the transaction ends)."""
    await conn.execute(_LOCK, str(device_id), str(path_key(path)))


async def advance(conn: asyncpg.Connection, device_id: uuid.UUID, path: str, time: datetime,
                  event_id: uuid.UUID) -> bool:
    """Record ``(time, event_id)`` as the file's last applied change; False when it is not newer."""
    key = path_key(path)
    row = await conn.fetchrow(_PROGRESS, device_id, key)
    if row is not None and (row["time"], str(row["event_id"])) >= (time, str(event_id)):
        return False
    await conn.execute(_ADVANCE, device_id, key, time, event_id)
    return True


async def open_violations(conn: asyncpg.Connection, device_id: uuid.UUID, path: str) -> list[OpenViolation]:
    return [OpenViolation(
        id=r["id"], policy_id=r["policy_id"], policy_name=r["policy_name"], severity=r["severity"],
        message=r["message"], matches=_loads(r["matches"]) or [], match_count=r["match_count"],
        opened_at=r["opened_at"], introduced_by=_ref.decode(r["introduced_by"]), fired_event_id=r["fired_event_id"],
    ) for r in await conn.fetch(_OPEN, device_id, path_key(path))]


async def apply(conn: asyncpg.Connection, v: FileVersion, plan: Plan, messages: dict[uuid.UUID, str],
                now: datetime) -> list[uuid.UUID]:
    """Write ``plan``; returns the ids of the violations with a transition to publish."""
    changed = []
    for ev in plan.opened:
        await conn.execute(_INSERT, ev.violation_id, ev.policy_id, ev.policy, ev.severity,
                           messages.get(ev.policy_id, ev.message), v.device_id, v.config_type, v.path,
                           path_key(v.path), _json(ev.matches), ev.match_count, ev.since, _json(ev.introduced_by),
                           ev.event_id, now)
        changed.append(ev.violation_id)
    for ev in plan.resolved:
        await conn.execute(_RESOLVE, ev.violation_id, now, _json(ev.fixed_by) if ev.fixed_by else None,
                           ev.resolution, ev.event_id)
        changed.append(ev.violation_id)
    for u in plan.updated:
        await conn.execute(_UPDATE, u.id, _json(u.matches), u.match_count, now)
    return changed


# --- the outbox ----------------------------------------------------------------------------------

_ROWS = """
    SELECT v.*, d.name AS device, p.webhook_url, p.webhook_format
    FROM config_violations v LEFT JOIN devices d ON d.id = v.device_id
    LEFT JOIN config_policies p ON p.id = v.policy_id
"""


async def unpublished(conn: asyncpg.Connection, ids: list[uuid.UUID] | None = None,
                      limit: int = 500) -> list[asyncpg.Record]:
    if ids is not None:
        return list(await conn.fetch(_ROWS + " WHERE v.id = ANY($1::uuid[]) AND NOT v.published", ids))
    return list(await conn.fetch(_ROWS + " WHERE NOT v.published ORDER BY v.updated_at LIMIT $1", limit))


async def mark_published(conn: asyncpg.Connection, violation_id: uuid.UUID, updated_at: datetime) -> None:
    """Published, unless it changed again since it was read."""
    await conn.execute("UPDATE config_violations SET published = true WHERE id = $1 AND updated_at = $2",
                       violation_id, updated_at)


def event_of(row: asyncpg.Record, instance: str) -> ConfigViolation:
    """The event of a violation's last transition, rebuilt from its row."""
    from services.policy.evaluate import FIRED, RESOLVED, SERVICE, summary

    state: ViolationState = FIRED if row["state"] == "open" else RESOLVED
    matches = _loads(row["matches"]) or []
    fixed = row["fixed_by"]
    return ConfigViolation(
        event_id=row["fired_event_id"] if state == FIRED else row["resolved_event_id"],
        operation_id=row["fired_event_id"], device_id=row["device_id"], device=row["device"],
        occurred_at=row["updated_at"], service=SERVICE, instance=instance, trigger="watch",
        violation_id=row["id"], policy_id=row["policy_id"], policy=row["policy_name"],
        config_type=row["config_type"], path=row["file_path"], severity=row["severity"], state=state,
        message=summary(row["policy_name"], row["message"], row["file_path"], row["device"], matches,
                        row["match_count"], state),
        matches=matches, match_count=row["match_count"], since=row["opened_at"],
        introduced_by=_ref.decode(row["introduced_by"]), fixed_by=_ref.decode(fixed) if fixed else None,
        resolution=row["resolution"],
    )
