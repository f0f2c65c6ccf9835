"""Policies over the fleet's current files (``config_current``): at start, when the policies
change, periodically, and on request. Every policy is applied to every current file of its
config type in one statement; only files with a match or an open violation are then decided,
each under its lock like an event. A violation found this way names as its introducing change
the oldest version of the file's current run of matching versions (from its stored history).
"""

from __future__ import annotations

import logging
import uuid
from datetime import datetime

import asyncpg
import msgspec

from services.policy import store
from services.policy.evaluate import FileVersion, decide
from shared.policy_events import ConfigRef, Resolution

log = logging.getLogger(__name__)

HISTORY_LIMIT = 500  # versions read back to find the introducing change
_MATCHES = """
    SELECT * FROM (
      SELECT c.device_id, c.path_key, jsonb_path_query_array(c.parsed, p.jsonpath::jsonpath, '{}', true) AS found
      FROM config_current c
      LEFT JOIN devices d ON d.id = c.device_id AND d.deleted_at IS NULL
      JOIN config_policies p ON p.id = $1 AND p.config_type = c.config_type
        AND (p.device_id IS NULL OR p.device_id = c.device_id)
        AND (p.tags = '{}'::jsonb OR coalesce(d.tags, '{}'::jsonb) @> p.tags)
      WHERE c.parsed IS NOT NULL AND c.change_type <> 'DELETE'
    ) m
    WHERE m.found <> '[]'::jsonb OR EXISTS (
      SELECT 1 FROM config_violations v WHERE v.device_id = m.device_id AND v.path_key = m.path_key AND v.state = 'open')
"""
_OPEN_FILES = "SELECT DISTINCT device_id, path_key FROM config_violations WHERE state = 'open'"
_CURRENT = """
    SELECT c.*, d.name AS device FROM config_current c LEFT JOIN devices d ON d.id = c.device_id
    WHERE c.device_id = $1 AND c.path_key = $2
"""
_HISTORY = """
    SELECT id, event_id, time, change_type, content_hash,
           jsonb_path_exists(parsed_data -> 'data', $3::jsonpath, '{}', true) AS hit
    FROM configuration_snapshots WHERE device_id = $1 AND file_path = $2 AND time <= $4
    ORDER BY time DESC, event_id DESC LIMIT $5
"""


class Outcome(msgspec.Struct, kw_only=True):
    files: int = 0
    opened: int = 0
    resolved: int = 0
    open: int = 0
    failed_policies: list[str] = []


async def _matches(conn: asyncpg.Connection, policy_id: uuid.UUID | None,
                   outcome: Outcome) -> tuple[set[tuple], dict[uuid.UUID, str]]:
    """The files (device id, path key) some policy matches now, and the policies' JSONPaths."""
    policies = await conn.fetch("SELECT id, name, severity, message, jsonpath FROM config_policies WHERE enabled "
                                "AND ($1::uuid IS NULL OR id = $1)", policy_id)
    files: set[tuple] = set()
    for p in policies:
        try:
            async with conn.transaction():
                rows = await conn.fetch(_MATCHES, p["id"])
        except asyncpg.PostgresError as exc:
            log.warning("policy %s cannot be evaluated over the fleet: %s: %s", p["name"], type(exc).__name__, exc)
            outcome.failed_policies.append(p["name"])
            continue
        files.update((r["device_id"], r["path_key"]) for r in rows)
    return files, {p["id"]: p["jsonpath"] for p in policies}


async def introducer(conn: asyncpg.Connection, device_id: uuid.UUID, path: str, jsonpath: str,
                     current: ConfigRef) -> ConfigRef:
    """The oldest version in the run of matching versions that ends with ``current``."""
    found = current
    for r in await conn.fetch(_HISTORY, device_id, path, jsonpath, current.time, HISTORY_LIMIT):
        if not r["hit"]:
            break
        found = ConfigRef(event_id=r["event_id"], snapshot_id=r["id"], time=r["time"], change_type=r["change_type"],
                          sha256=r["content_hash"] or None)
    return found


async def evaluate(pool: asyncpg.Pool, instance: str, now: datetime, policy_id: uuid.UUID | None = None,
                   ) -> tuple[Outcome, list[uuid.UUID]]:
    """Apply the enabled policies (or one) to every current file; returns the counts and the
    violations whose transition is to be published."""
    outcome = Outcome()
    changed: list[uuid.UUID] = []
    async with pool.acquire() as conn:
        matched, paths = await _matches(conn, policy_id, outcome)
        keys = matched | {(r["device_id"], r["path_key"]) for r in await conn.fetch(_OPEN_FILES)}
        for device_id, key in sorted(keys, key=str):
            outcome.files += 1
            changed += await _one_file(conn, device_id, key, paths, policy_id, instance, now, outcome)
        outcome.open = await conn.fetchval("SELECT count(*) FROM config_violations WHERE state = 'open'")
    return outcome, changed


async def _one_file(conn: asyncpg.Connection, device_id: uuid.UUID, key: uuid.UUID, paths: dict[uuid.UUID, str],
                    only: uuid.UUID | None, instance: str, now: datetime, outcome: Outcome) -> list[uuid.UUID]:
    """Decide one file from its current version, read and evaluated under its lock."""
    cur = await conn.fetchrow(_CURRENT, device_id, key)
    if cur is None:
        return []  # violations of a file the writer has not recorded yet: its event decides them
    async with conn.transaction():
        await store.lock(conn, device_id, cur["file_path"])
        if not await store.advance(conn, device_id, cur["file_path"], cur["time"], cur["event_id"]):
            progress = await conn.fetchrow("SELECT time, event_id FROM config_policy_progress WHERE device_id = $1 "
                                           "AND path_key = $2", device_id, key)
            if progress is not None and progress["event_id"] != cur["event_id"]:
                return []  # a newer version was applied already; the writer will catch up
        ref = ConfigRef(event_id=cur["event_id"], snapshot_id=cur["snapshot_id"], time=cur["time"],
                        change_type=cur["change_type"], sha256=cur["content_hash"] or None)
        v = FileVersion(device_id=device_id, device=cur["device"], config_type=cur["config_type"],
                        path=cur["file_path"], ref=ref, operation_id=uuid.uuid4())
        gone: Resolution | None = "deleted" if cur["change_type"] == "DELETE" else None
        parsed = store._loads(cur["parsed"])
        results = [] if gone or parsed is None else await store.results(conn, cur["config_type"], device_id, parsed)
        if gone is None and parsed is None:
            return []  # the current version did not parse: it decides nothing
        open_ = await store.open_violations(conn, device_id, cur["file_path"])
        plan = decide(v, results, open_, now, instance, gone=gone, only=only, cleared="policy")
        opened = []
        for ev in plan.opened:
            intro = await introducer(conn, device_id, cur["file_path"], paths[ev.policy_id], ref)
            opened.append(msgspec.structs.replace(ev, introduced_by=intro, since=intro.time))
        plan.opened = opened
        changed = await store.apply(conn, v, plan, {r.policy_id: r.message for r in results}, now)
    outcome.opened += len(plan.opened)
    outcome.resolved += len(plan.resolved)
    return changed
