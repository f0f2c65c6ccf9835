"""Fixtures of the policy tests: a watched host whose changes go through the watcher's own change
decision, policies in the database, and the policy evaluator and writer run in-process."""

from __future__ import annotations

import asyncio
import hashlib
import json
import uuid
from datetime import datetime
from pathlib import Path

import asyncpg
import pytest_asyncio
from nats.js.errors import NotFoundError

from services.policy.service import run as run_policy
from services.policy.settings import PolicySettings
from services.watcher import changes
from services.watcher.remote import FileStat
from shared import events
from shared.config_events import ConfigChanged
from shared.names import Names
from shared.policy_events import ConfigViolation
from shared.runtime import devices
from tests.alerts.conftest import Services, stream_events
from tests.util import wait_until

ROOT = Path(__file__).resolve().parents[2]
CORPUS = ROOT / "tests" / "corpus"


class WatchedHost:
    """One device's files as the watcher sees them: each change is decided by ``changes.diff``
    against what was published before, as the watcher does."""

    def __init__(self, name: str, device_id: uuid.UUID | None = None) -> None:
        self.name = name
        self.id = device_id or uuid.uuid4()
        self.known: dict[str, changes.Known | None] = {}

    def change(self, config_type: str, path: str, data: bytes | None, at: datetime) -> ConfigChanged:
        ctx = changes.Context(device=events.DeviceSpec(id=self.id, name=self.name), instance="watcher-test",
                              watch_mode="poll", trigger="watch", now=at.timestamp())
        new = None
        if data is not None:
            stat = FileStat(path=path, size=len(data), mtime=at.timestamp(), owner="root:root", mode="0644",
                            sha256=hashlib.sha256(data).hexdigest())
            new = changes.Seen(stat=stat, content=data)
        ev = changes.diff(changes.Item(config_type=config_type, path=path, old=self.known.get(path), new=new), ctx)
        assert ev is not None, f"no change decided for {path}"
        self.known[path] = changes.known_after(ev, 0)
        return ev


async def add_device(js, settings, host: WatchedHost, tags: dict[str, str] | None = None) -> None:
    """Register the host as the API does; the writer (running) records it in ``devices``."""
    spec = events.DeviceSpec(id=host.id, name=host.name, tags=tags or {})
    await devices.register(js, Names(settings.subject_prefix), spec, "test", "test")
    await wait_until(lambda: rows(settings.database_url, "SELECT 1 FROM devices WHERE id = $1", host.id),
                     timeout=60, what="the writer to record the device")


async def add_policy(database_url: str, name: str, config_type: str, jsonpath: str, severity: str = "high",
                     message: str = "", webhook_url: str | None = None, webhook_format: str = "json",
                     tags: dict[str, str] | None = None, device_id: uuid.UUID | None = None) -> uuid.UUID:
    pid = uuid.uuid4()
    conn = await asyncpg.connect(database_url)
    try:
        await conn.execute(
            "INSERT INTO config_policies (id, name, config_type, jsonpath, severity, message, enabled, tags, builtin, "
            "webhook_url, webhook_format, device_id) VALUES ($1, $2, $3, $4, $5, $6, true, $7::jsonb, false, $8, $9, $10)",
            pid, name, config_type, jsonpath, severity, message or f"{name} matched", json.dumps(tags or {}),
            webhook_url, webhook_format, device_id)
    finally:
        await conn.close()
    return pid


async def violations(js, settings) -> list[ConfigViolation]:
    return [e for e in await stream_events(js, Names(settings.subject_prefix).stream_alerts)
            if isinstance(e, ConfigViolation)]


async def rows(database_url: str, sql: str, *args) -> list[dict]:
    conn = await asyncpg.connect(database_url)
    try:
        return [dict(r) for r in await conn.fetch(sql, *args)]
    finally:
        await conn.close()


class PolicyServices(Services):
    async def policy(self, instance: str = "policy-1", **update):
        s = PolicySettings(**{**self.settings.model_dump(), "instance": instance, "alerts_webhook_backoff_s": 0.05,
                              "alerts_webhook_allow_private": True, "policy_poll_s": 0.3, **update})
        handle = self._start(run_policy(s, stop := asyncio.Event()), stop)
        names = Names(s.subject_prefix)

        async def ready() -> bool:
            import nats

            nc = await nats.connect(s.nats_url)
            try:
                await nc.jetstream().consumer_info(names.stream_config, s.policy_durable)
                return True
            except NotFoundError:
                return False
            finally:
                await nc.close()

        await wait_until(ready, timeout=60, interval=0.2, what="the policy evaluator's consumer")
        return handle


@pytest_asyncio.fixture
async def services(settings):
    s = PolicyServices(settings)
    yield s
    await s.close()
