"""The host simulator against the real collector and a real nats-server."""

from __future__ import annotations

import asyncio
import uuid

import msgspec
import pytest

from services.collector.service import CollectorStats, run
from services.collector.settings import CollectorSettings
from services.simulator import Simulator
from shared import events
from shared.datatypes.containers import collect as containers
from shared.datatypes.system_metrics import collect as system_metrics
from shared.names import Names
from shared.runtime.bootstrap import ensure
from shared.runtime.nats_conn import connect
from tests.util import wait_until

pytestmark = pytest.mark.ssh

GOOD = [f"host-{i}" for i in range(5)]
WAIT_S = 30  # upper bound for waiting on events, not a performance assertion
COMMAND_TIMEOUT_S = 2.0


@pytest.fixture
def short_timeouts(monkeypatch):
    """A hung command is killed after 2 s, without a retry (the collector has no setting for it)."""
    for module in (system_metrics, containers):
        monkeypatch.setattr(module, "TIMEOUT_S", COMMAND_TIMEOUT_S)
        monkeypatch.setattr(module, "RETRIES", 0)


async def test_collector_polls_simulated_hosts(nats_url, tmp_path, short_timeouts) -> None:
    misbehave = {"host-5": "garbage", "host-6": "hang", "host-7": "unreachable"}
    async with Simulator(8, tmp_path / "sim", misbehave) as sim:
        settings = CollectorSettings(
            nats_url=nats_url, subject_prefix=f"t{uuid.uuid4().hex[:10]}", data_dir=tmp_path, instance="test",
            ssh_client_keys=[sim.client_key], ssh_known_hosts=sim.known_hosts, ssh_connect_timeout_s=5,
            collector_data_types=["system_metrics", "containers"],
            collector_interval_overrides={"system_metrics": 2, "containers": 2},
            freshness_overrides={"system_metrics": 1, "containers": 1},
        )
        names = Names(settings.subject_prefix)
        nc = await connect(settings, "test")
        js = nc.jetstream()
        await ensure(js, settings)
        seen: dict[tuple[str, str], list] = {}

        async def on_event(msg) -> None:
            ev = events.decode(msg.data)
            seen.setdefault((ev.device, ev.data_type), []).append(ev)

        await nc.subscribe(names.all("collected"), cb=on_event)
        specs = await sim.register(js, names)
        assert [s.name for s in specs] == [f"host-{i}" for i in range(8)]

        stop, stats = asyncio.Event(), CollectorStats()
        task = asyncio.create_task(run(settings, stop, stats=stats))
        try:
            def successes(host: str, data_type: str) -> list:
                return [e for e in seen.get((host, data_type), []) if e.status == "success"]

            async def done() -> bool:
                return (all(len(successes(h, t)) >= 2 for h in GOOD for t in ("system_metrics", "containers"))
                        and all(seen.get((h, "containers")) for h in ("host-5", "host-6", "host-7")))

            await wait_until(done, timeout=WAIT_S, interval=0.2, what="two polls of every host")
        finally:
            stop.set()
            await asyncio.wait_for(task, 30)
            await nc.close()

    for host in GOOD:
        first, second = successes(host, "system_metrics")[:2]
        assert first.payload.memory_total_bytes > 0 and first.payload.cpu_count == 2
        assert second.payload.uptime_seconds > first.payload.uptime_seconds
        assert msgspec.to_builtins(first.payload) != msgspec.to_builtins(second.payload)
        a, b = successes(host, "containers")[:2]
        assert [c.name for c in a.payload.containers] == ["promtail", "web-db-1", "web-nginx-1", "worker"]
        assert [c.cpu_percent for c in a.payload.containers] != [c.cpu_percent for c in b.payload.containers]

    cpu = {e.payload.cpu_percent for h in GOOD for e in successes(h, "system_metrics")}
    assert len(cpu) > 1, cpu  # CPU counters advance at a different pace on every poll

    garbage = seen[("host-5", "system_metrics")][0]
    assert garbage.status == "error" and garbage.payload is None
    assert "no '@@' section markers" in garbage.error, garbage.error
    garbage = seen[("host-5", "containers")][0]
    assert garbage.status == "error" and "a JSON object per line expected" in garbage.error, garbage.error

    hung = seen[("host-6", "containers")][0]
    assert hung.status == "error" and hung.payload is None
    assert "ps was killed after its timeout" in hung.error, hung.error
    assert any(f"killed after {COMMAND_TIMEOUT_S:g}s" in w for w in hung.warnings), hung.warnings

    refused = seen[("host-7", "containers")][0]
    assert refused.status == "error" and "cannot connect" in refused.error
    assert str(sim.host("host-7").port) in refused.error
    assert sim.host("host-7").connections == 0 and sim.host("host-0").connections == 1
