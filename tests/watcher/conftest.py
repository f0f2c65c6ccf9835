"""Fixtures for the watcher: real NATS and a real sshd (the device is this machine over SSH);
the default globs are rooted in a temporary directory."""

from __future__ import annotations

import asyncio
import shutil
import uuid
from pathlib import Path

import msgspec
import pytest
import pytest_asyncio

from services.watcher.service import run
from services.watcher.settings import WatcherSettings
from services.watcher.state import status_key
from shared import events
from shared.config_events import ConfigChanged
from shared.events import DeviceSpec
from shared.names import Names
from shared.runtime.devices import register

WAIT_S = 120  # bounds waits on a shared 2-core machine; not a performance assertion
MISSING = "/nonexistent/bin/missing-program"

# mode -> settings that force it: inotifywait; the python3 inotify loop (no inotifywait);
# polling with the find/stat/sha256sum scanner (neither inotifywait nor python3)
MODES = {
    "inotifywait": {},
    "python": {"watcher_inotifywait": MISSING},
    "poll": {"watcher_inotifywait": MISSING, "watcher_python": MISSING},
}


@pytest.fixture
def root(tmp_path) -> Path:
    path = tmp_path / "root"
    path.mkdir()
    return path


@pytest.fixture
def settings(nats_url, tmp_path, ssh_server, root) -> WatcherSettings:
    """Own subject prefix (so own streams and KV buckets), no database, defaults rooted in ``root``."""
    known_hosts = tmp_path / "known_hosts"
    shutil.copy(ssh_server.known_hosts, known_hosts)
    return WatcherSettings(
        nats_url=nats_url, subject_prefix=f"t{uuid.uuid4().hex[:10]}", data_dir=tmp_path / "data", instance="test",
        ssh_client_keys=[ssh_server.client_key], ssh_known_hosts=known_hosts,
        watcher_root_prefix=str(root), watcher_poll_interval_s=1.0,
    )


def ssh_device(server, name: str = "box", **fields) -> DeviceSpec:
    return DeviceSpec(id=uuid.uuid4(), name=name, address=server.host, port=server.port,
                      username=server.username, **fields)


class Watching:
    """The watcher service running as a task, and every config event it publishes."""

    def __init__(self, settings: WatcherSettings, js, spec: DeviceSpec) -> None:
        self.settings = settings
        self.js = js
        self.spec = spec
        self.names = Names(settings.subject_prefix)
        self.events: list[ConfigChanged] = []
        self.stop = asyncio.Event()
        self.task: asyncio.Task | None = None
        self._sub = None

    async def _on_msg(self, msg) -> None:
        ev = events.decode(msg.data)
        assert isinstance(ev, ConfigChanged)
        self.events.append(ev)

    async def subscribe(self) -> None:
        self._sub = await self.js.subscribe(self.names.all("config"), ordered_consumer=True, cb=self._on_msg)

    async def start(self, expect_mode: str | None = None) -> None:
        since = events.utcnow().isoformat()
        self.stop = asyncio.Event()
        self.task = asyncio.create_task(run(self.settings, self.stop))
        await self.ready(expect_mode, since)

    async def status(self) -> dict:
        kv = await self.js.key_value(self.names.watch_state_bucket)
        try:
            entry = await kv.get(status_key(self.spec.name))
        except Exception:
            return {}
        return msgspec.json.decode(entry.value)

    async def ready(self, expect_mode: str | None = None, since: str = "") -> dict:
        """Wait until the device is watched (its first full scan since ``since`` is done)."""
        async with asyncio.timeout(WAIT_S):
            while True:
                st = await self.status()
                if st.get("watch_mode") and st.get("error") is None and st.get("scans", 0) >= 1 and (
                        expect_mode is None or st["watch_mode"] == expect_mode) and st["updated_at"] > since:
                    return st
                assert self.task is not None and not self.task.done(), self.task
                await asyncio.sleep(0.1)

    async def halt(self) -> None:
        self.stop.set()
        if self.task is not None:
            await asyncio.wait_for(self.task, 60)

    async def kill(self) -> None:
        """Cancel the task without a clean stop: nothing after this point is flushed."""
        assert self.task is not None
        self.task.cancel()
        await asyncio.gather(self.task, return_exceptions=True)

    async def wait_for(self, n: int, where=lambda ev: True) -> list[ConfigChanged]:
        async with asyncio.timeout(WAIT_S):
            while len(got := [e for e in self.events if where(e)]) < n:
                await asyncio.sleep(0.05)
        return got

    async def settle(self, seconds: float = 3.0) -> None:
        """Let extra (unwanted) events arrive, so that 'exactly once' can be checked."""
        count = -1
        while count != len(self.events):
            count = len(self.events)
            await asyncio.sleep(seconds)

    def of(self, path: Path | str) -> list[ConfigChanged]:
        return [e for e in self.events if e.path == str(path) or e.old_path == str(path)]


@pytest_asyncio.fixture
async def watching(settings, js, ssh_server):
    """A factory: ``await watching(mode, **spec_fields)`` registers a device and starts the service."""
    running: list[Watching] = []

    async def start(mode: str = "inotifywait", spec: DeviceSpec | None = None, **overrides) -> Watching:
        s = settings.model_copy(update={**MODES[mode], **overrides})
        spec = spec or ssh_device(ssh_server)
        w = Watching(s, js, spec)
        await w.subscribe()
        await register(js, w.names, spec, "test", "test")
        await w.start(expect_mode=mode)
        running.append(w)
        return w

    yield start
    for w in running:
        if w.task is not None and not w.task.done():
            await w.halt()
