"""The collector against the real test sshd: every data type, one connection per device for a
fleet of 20, the host-key alarm, and three instances sharing the devices (one of them killed)."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import signal
import subprocess
import time
from collections import defaultdict

import asyncssh
import pytest
import pytest_asyncio

from services.collector.registry import DATA_TYPES
from services.collector.runner import collect
from services.collector.service import Collector, CollectorStats, run
from services.collector.settings import CollectorSettings
from shared import events
from shared.events import Audited
from shared.names import Names
from shared.runtime.devices import register
from shared.runtime.transport import SshTransport, TransportPool
from tests.collector.conftest import ssh_spec
from tests.util import start_service, wait_until

pytestmark = pytest.mark.ssh

WAIT_S = 120  # bounds waits on a loaded machine; not a performance assertion
ALWAYS_THERE = ("system_metrics", "inventory")  # need only sh, uname and /proc


def collector_settings(settings, **fields) -> CollectorSettings:
    return CollectorSettings(**{**settings.model_dump(), **fields})


@pytest_asyncio.fixture
async def ssh(ssh_server, ssh_settings):
    t = SshTransport(ssh_spec(ssh_server), ssh_settings)
    yield t
    await t.close()


@pytest.mark.parametrize("data_type", list(DATA_TYPES))
async def test_every_data_type_over_ssh(ssh, ssh_settings, data_type) -> None:
    """Supported types collect; the others are unsupported with the reason, never an error."""
    ev = await collect(ssh, ssh.spec, data_type, trigger="poll", settings=ssh_settings)
    assert ev.status in ("success", "partial", "unsupported"), ev.error
    assert ev.ssh_command_count >= 1 and ssh.connections_created == 1
    if ev.status == "unsupported":
        assert ev.payload is None and ev.error, "an unsupported type says why"
        assert data_type not in ALWAYS_THERE
    else:
        assert ev.payload is not None
    if data_type == "network" and shutil.which("ip"):
        assert ev.status == "success" and any(i.name == "lo" for i in ev.payload.interfaces)
    if data_type == "inventory":
        assert ev.payload.kernel == os.uname().release and ev.payload.drift is None
        if shutil.which("dpkg-query") or shutil.which("rpm"):
            assert ev.payload.packages
    if data_type == "drive_health" and not shutil.which("smartctl"):
        assert ev.status == "unsupported" and "smartctl" in ev.error


async def test_inventory_drift_against_the_previous_snapshot(ssh, ssh_settings) -> None:
    first = await collect(ssh, ssh.spec, "inventory", trigger="poll", settings=ssh_settings)
    previous = first.payload
    previous.packages = [*previous.packages[1:], type(previous.packages[0])(name="gone-pkg", version="1", manager="dpkg")]
    second = await collect(ssh, ssh.spec, "inventory", trigger="poll", settings=ssh_settings, previous=previous)
    names = {c.name: (c.old, c.new) for c in second.payload.drift.packages}
    assert names["gone-pkg"] == ("1", None)
    assert second.payload.drift.changed


async def test_twenty_devices_all_types_twenty_connections(ssh_server, ssh_settings, js) -> None:
    """20 registrations of the test sshd, every data type, several cycles: one SSH connection each."""
    names = Names(ssh_settings.subject_prefix)
    intervals = {t: 10 for t in DATA_TYPES}
    # A bounded number of collections at once keeps the test host responsive (each channel
    # starts the login shell, which can be slow to start on a developer machine).
    settings = collector_settings(ssh_settings, collector_interval_overrides=intervals,
                                  collector_first_poll_within_s=2.0, collector_max_concurrent=8)
    specs = [ssh_spec(ssh_server, name=f"fleet-{i:02d}") for i in range(20)]
    counts: dict[tuple[str, str], int] = defaultdict(int)
    sub = await js.subscribe(names.all("collected"), ordered_consumer=True)
    pool, stats, stop = TransportPool(), CollectorStats(), asyncio.Event()
    task = asyncio.create_task(run(settings, stop, stats=stats, pool=pool))
    try:
        for spec in specs:
            await register(js, names, spec, "test", "test")
        cycles = 3
        async with asyncio.timeout(WAIT_S * 6):
            while min((counts[(s.name, t)] for s in specs for t in DATA_TYPES), default=0) < cycles:
                ev = events.decode((await sub.next_msg(timeout=WAIT_S)).data)
                assert not any(w in (ev.error or "") for w in ("cannot connect", "connection", "host key")), ev.error
                counts[(ev.device, ev.data_type)] += 1
        totals = pool.totals()
        assert totals["connections_created"] == 20
        assert totals["connections_reused"] > 20 * len(DATA_TYPES)
        assert sorted(t.connections_created for t in pool.transports) == [1] * 20
        assert stats.counters()["commands_executed"] == totals["commands_executed"] > 0
        established = _established_to(ssh_server.port)
        if established is not None:  # sshd's side, when `ss` is there to ask
            assert established == 20
    finally:
        stop.set()
        await asyncio.wait_for(task, timeout=60)


def _established_to(port: int) -> int | None:
    if not shutil.which("ss"):
        return None
    out = subprocess.run(["ss", "-Htn", "state", "established", f"( sport = :{port} )"],
                         capture_output=True, text=True, timeout=10)
    return len([line for line in out.stdout.splitlines() if line.strip()]) if out.returncode == 0 else None


async def test_changed_host_key_is_refused_and_reported(ssh_server, ssh_settings, known_hosts, js) -> None:
    names = Names(ssh_settings.subject_prefix)
    other = asyncssh.generate_private_key("ssh-ed25519").export_public_key("openssh").decode().strip()
    known_hosts.write_text(f"[{ssh_server.host}]:{ssh_server.port} {other}\n")
    audit = await js.subscribe(names.audit("collector"), ordered_consumer=True)
    collector = Collector(collector_settings(ssh_settings, collector_data_types=["network"]), js,
                          await js.key_value(names.cache_bucket))
    spec = ssh_spec(ssh_server, name="moved", trust_on_first_use=True)
    collector._start_device(spec)
    try:
        ev = await collector.collect_and_publish(collector._devices[spec.id], "network", trigger="poll")
        assert ev.status == "error" and "does not match" in ev.error
        alarm = events.decode((await audit.next_msg(timeout=30)).data)
        assert isinstance(alarm, Audited) and alarm.action == "host_key_changed" and alarm.device_id == spec.id
        keytype, key = ssh_server.host_key_pub.split()[:2]
        presented = asyncssh.import_public_key(f"{keytype} {key}").get_fingerprint("sha256")
        assert alarm.detail["presented_fingerprint"] == presented
        assert known_hosts.read_text().count(ssh_server.host) == 1  # nothing recorded
    finally:
        await collector.close()


# ---------------------------------------------------------------- three instances


async def test_three_instances_share_the_devices_and_take_over(ssh_server, ssh_settings, js, tmp_path) -> None:
    """Each device is polled by exactly one live instance; after one instance is killed (SIGKILL,
    no goodbye) its devices are polled by another within two intervals."""
    names = Names(ssh_settings.subject_prefix)
    interval, n_devices = 4.0, 12
    env = {
        "INFRAWATCH_SSH_CLIENT_KEYS": json.dumps([str(ssh_server.client_key)]),
        "INFRAWATCH_SSH_KNOWN_HOSTS": str(ssh_settings.known_hosts_path),
        "INFRAWATCH_COLLECTOR_DATA_TYPES": '["network"]',
        "INFRAWATCH_COLLECTOR_INTERVAL_OVERRIDES": json.dumps({"network": interval}),
        "INFRAWATCH_FRESHNESS_OVERRIDES": json.dumps({"network": interval}),
        "INFRAWATCH_COLLECTOR_HEARTBEAT_S": "0.4",
        "INFRAWATCH_COLLECTOR_MEMBER_TIMEOUT_S": "2",
        "INFRAWATCH_COLLECTOR_JITTER_FRACTION": "0",
        "INFRAWATCH_LOG_LEVEL": "WARNING",
    }
    polls: list[tuple[float, str, str]] = []  # (receive time, device, instance)

    async def record(msg) -> None:
        ev = events.decode(msg.data)
        if ev.trigger == "poll" and not ev.skipped_fresh:
            polls.append((time.monotonic(), ev.device, ev.instance))

    sub = await js.subscribe(names.all("collected"), ordered_consumer=True, cb=record)
    procs = {}
    try:
        for name in ("c1", "c2", "c3"):
            procs[name] = await start_service("collector", ssh_settings, tmp_path / f"{name}.log",
                                              {**env, "INFRAWATCH_INSTANCE": name})
        members = await js.key_value(names.collectors_bucket)
        async with asyncio.timeout(WAIT_S):
            while len(await _keys(members)) < 3:
                await asyncio.sleep(0.2)
        for i in range(n_devices):
            await register(js, names, ssh_spec(ssh_server, name=f"shared-{i:02d}"), "test", "test")

        def owners(since: float, until: float) -> dict[str, set[str]]:
            out: dict[str, set[str]] = defaultdict(set)
            for t, device, instance in polls:
                if since <= t < until:
                    out[device].add(instance)
            return out

        async def window(seconds: float) -> dict[str, set[str]]:
            start = time.monotonic()
            await asyncio.sleep(seconds)
            return owners(start, time.monotonic())

        await wait_until(lambda: len(owners(0, float("inf"))) == n_devices, WAIT_S, interval=0.2, what="every device polled")
        before = await window(3 * interval)
        assert set(before) == {f"shared-{i:02d}" for i in range(n_devices)}
        assert all(len(v) == 1 for v in before.values()), before
        by_instance: dict[str, list[str]] = defaultdict(list)
        for device, (instance,) in before.items():
            by_instance[instance].append(device)
        victim = max(by_instance, key=lambda k: len(by_instance[k]))
        orphans = by_instance[victim]

        procs[victim].send_signal(signal.SIGKILL)
        await procs[victim].wait()
        killed_at = time.monotonic()
        await wait_until(lambda: all(owners(killed_at, float("inf")).get(d) for d in orphans), WAIT_S, interval=0.2, what="takeover")
        taken = {d: min(t for t, dev, inst in polls if dev == d and t >= killed_at) - killed_at for d in orphans}
        assert max(taken.values()) <= 2 * interval, taken  # the requirement: within two intervals
        after = await window(3 * interval)
        assert set(after) == set(before)
        assert all(len(v) == 1 and victim not in v for v in after.values()), after
    finally:
        await sub.unsubscribe()
        for proc in procs.values():
            if proc.returncode is None:
                proc.send_signal(signal.SIGTERM)
        for proc in procs.values():
            try:
                await asyncio.wait_for(proc.wait(), 30)
            except TimeoutError:
                proc.kill()


async def _keys(kv) -> list[str]:
    try:
        return await kv.keys()
    except Exception:
        return []
