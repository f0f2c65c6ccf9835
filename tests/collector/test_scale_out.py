"""Three collectors share 60 simulated hosts, and no host is polled twice."""

from __future__ import annotations

import asyncio
import uuid
from collections import Counter, defaultdict
from datetime import UTC, datetime, timedelta

import pytest

from services.collector.service import CollectorStats, run
from services.collector.settings import CollectorSettings
from services.simulator import Simulator
from shared import events
from shared.names import Names
from shared.runtime.bootstrap import ensure
from shared.runtime.nats_conn import connect
from shared.runtime.transport import TransportPool
from tests.util import stream_events, wait_until

pytestmark = pytest.mark.ssh

HOSTS = 60
INTERVAL_S = 2.0
CYCLES = 3
INSTANCES = ("c1", "c2", "c3")
WAIT_S = 60  # bounds waits on a loaded machine; not a performance assertion


async def test_three_collectors_share_60_hosts_and_no_host_is_polled_twice(nats_url, tmp_path) -> None:
    """Once the instances know each other, every host is polled in every cycle by exactly one of
    them, about one interval apart, and each instance polls some of the hosts."""
    prefix = f"t{uuid.uuid4().hex[:10]}"
    names = Names(prefix)
    hosts = {f"host-{i}" for i in range(HOSTS)}
    async with Simulator(HOSTS, tmp_path / "sim") as sim:
        base = CollectorSettings(
            nats_url=nats_url, subject_prefix=prefix, data_dir=tmp_path, metrics_port=-1,
            ssh_client_keys=[sim.client_key], ssh_known_hosts=sim.known_hosts, ssh_connect_timeout_s=10,
            collector_data_types=["system_metrics"], collector_interval_overrides={"system_metrics": INTERVAL_S},
            freshness_overrides={"system_metrics": int(INTERVAL_S)}, collector_heartbeat_s=0.5,
            collector_member_timeout_s=3,
        )
        nc = await connect(base, "test")
        js = nc.jetstream()
        await ensure(js, base)
        await sim.register(js, names)
        polls: list[tuple[datetime, str, str]] = []  # (occurred_at, device, instance) of polls, as they come

        async def record(msg) -> None:
            ev = events.decode(msg.data)
            if ev.trigger == "poll" and not ev.skipped_fresh:
                polls.append((ev.occurred_at, ev.device, ev.instance))

        await nc.subscribe(names.all("collected"), cb=record)
        stats = {name: CollectorStats() for name in INSTANCES}
        stops = {name: asyncio.Event() for name in INSTANCES}
        tasks = [asyncio.create_task(run(base.model_copy(update={"instance": name}), stops[name],
                                         stats=stats[name], pool=TransportPool())) for name in INSTANCES]
        try:
            def pollers(since: datetime) -> dict[str, set[str]]:
                out: dict[str, set[str]] = defaultdict(set)
                for t, device, instance in polls:
                    if t >= since:
                        out[device].add(instance)
                return out

            async def settled() -> datetime | None:
                """Now, when in the last 2.5 intervals every host was polled, each by one instance."""
                now = datetime.now(UTC)
                recent = pollers(now - timedelta(seconds=2.5 * INTERVAL_S))
                one_each = set(recent) == hosts and all(len(v) == 1 for v in recent.values())
                return now if one_each and {i for v in recent.values() for i in v} == set(INSTANCES) else None

            start = await wait_until(settled, timeout=WAIT_S, interval=0.5, what="membership settled")

            def cycles_done() -> dict[str, int]:
                return Counter(device for t, device, _ in polls if t >= start)

            async def observed() -> bool:
                done = cycles_done()
                return set(done) == hosts and min(done.values()) >= CYCLES

            await wait_until(observed, timeout=WAIT_S, interval=0.2, what=f"{CYCLES} cycles of every host")
            end = datetime.now(UTC)
        finally:
            for name in INSTANCES:
                stops[name].set()
            await asyncio.wait_for(asyncio.gather(*tasks), WAIT_S)
        everything = await stream_events(js, names.stream_collected, names.all("collected"))
        await nc.close()

    per_host: dict[str, list[tuple[datetime, str]]] = defaultdict(list)  # from the stream: every event
    for ev in everything:
        if ev.trigger == "poll" and not ev.skipped_fresh and start <= ev.occurred_at <= end:
            per_host[ev.device].append((ev.occurred_at, ev.instance))
    assert set(per_host) == hosts
    assert all(len(p) >= CYCLES for p in per_host.values())
    owners = {device: {i for _, i in p} for device, p in per_host.items()}
    assert all(len(o) == 1 for o in owners.values()), {d: o for d, o in owners.items() if len(o) > 1}
    shares = Counter(next(iter(o)) for o in owners.values())
    assert set(shares) == set(INSTANCES) and sum(shares.values()) == HOSTS, shares
    gaps = {device: min((b[0] - a[0]).total_seconds() for a, b in zip(sorted(p), sorted(p)[1:]))
            for device, p in per_host.items()}
    # Polls start one interval apart (jitter centred on zero) and an event's time is its collection's
    # end, so a gap is about one interval; a second poller would make one near zero.
    assert all(g >= INTERVAL_S / 2 for g in gaps.values()), {d: g for d, g in gaps.items() if g < INTERVAL_S / 2}

    # Every command a host received is in an event, but for a poll cut short by the stop.
    reported = Counter()
    for ev in everything:
        reported[ev.device] += ev.ssh_command_count
    unreported = {h.name: h.commands - reported[h.name] for h in sim.hosts}
    assert all(0 <= n <= 1 for n in unreported.values()), unreported
    assert sum(s.published for s in stats.values()) == len(everything)
    assert all(s.publish_errors == 0 for s in stats.values())
