"""The three-node cluster of deploy/nats/cluster with R3 streams: killing a node (a follower of
the stream, or its leader) with kill -9 during ingest loses no acknowledged event and stores none
twice, because unacknowledged publishes are retried with the same Nats-Msg-Id."""

from __future__ import annotations

import asyncio
import uuid
from collections import Counter

import pytest
from nats.errors import TimeoutError as NatsTimeoutError
from nats.js.api import DeliverPolicy

from shared.names import MSG_ID, Names
from shared.runtime.bootstrap import ensure
from shared.runtime.nats_conn import connect
from shared.runtime.publish import publish_event
from shared.settings import Settings
from tests.factories import metrics_event
from tests.nats_cluster import NatsCluster, password_env, passwords
from tests.util import wait_until

PUBLISHERS = 4
BEFORE_KILL = 200
AFTER_KILL = 200


async def _bootstrapped(js, settings) -> bool:
    try:
        await ensure(js, settings)
    except Exception:  # no JetStream meta leader elected yet
        return False
    return True


async def _stored_ids(js, names: Names, expected: int) -> Counter:
    """Every Nats-Msg-Id in the collected stream, read back with an ordered consumer."""
    seen: Counter = Counter()
    done = asyncio.Event()

    async def on_msg(msg) -> None:
        seen[(msg.headers or {}).get(MSG_ID)] += 1
        if sum(seen.values()) >= expected:
            done.set()

    async def subscribed():  # a consumer needs the meta leader, which may be the node just killed
        try:
            return await js.subscribe(names.all("collected"), ordered_consumer=True,
                                      deliver_policy=DeliverPolicy.ALL, cb=on_msg)
        except NatsTimeoutError:
            return None

    sub = await wait_until(subscribed, timeout=30, interval=0.5, what="an ordered consumer")
    try:
        await asyncio.wait_for(done.wait(), timeout=30)
    finally:
        await sub.unsubscribe()
    return seen


@pytest.mark.faults
@pytest.mark.parametrize("victim", ["follower", "leader"])
async def test_killing_a_node_loses_no_acknowledged_event(tmp_path, victim):
    pw = passwords()
    cluster = NatsCluster(tmp_path, password_env(pw)).start()
    settings = Settings(nats_url=cluster.url, nats_user="admin", nats_password=pw["admin"], stream_replicas=3,
                        subject_prefix="infra", data_dir=tmp_path, instance="test")
    names = Names("infra")
    nc = await connect(settings, "test")
    stop = asyncio.Event()
    acked: list[str] = []
    tasks: list[asyncio.Task] = []
    try:
        js = nc.jetstream()
        await wait_until(lambda: _bootstrapped(js, settings), timeout=45, interval=0.5, what="R3 streams created")
        info = await js.stream_info(names.stream_collected)
        assert info.config.num_replicas == 3

        async def publisher(n: int) -> None:
            device_id = uuid.uuid4()
            subject = names.collected(f"dev{n}", "system_metrics")
            while not stop.is_set():
                ev = metrics_event(device_id, f"dev{n}")
                try:
                    await publish_event(js, subject, ev, attempts=12)
                except Exception:  # never acknowledged: the test does not count it
                    continue
                acked.append(str(ev.event_id))

        tasks = [asyncio.create_task(publisher(n)) for n in range(PUBLISHERS)]
        await wait_until(lambda: _at_least(acked, BEFORE_KILL), timeout=30, what="events before the kill")

        info = await js.stream_info(names.stream_collected)
        leader = info.cluster.leader
        followers = [p.name for p in info.cluster.replicas or []]
        target = leader if victim == "leader" else followers[0]
        assert target in cluster.nodes, (target, list(cluster.nodes))
        cluster.nodes[target].kill()
        killed_at = len(acked)

        await wait_until(lambda: _at_least(acked, killed_at + AFTER_KILL), timeout=45, interval=0.2,
                         what="events acknowledged after the kill")
        stop.set()
        await asyncio.gather(*tasks)

        info = await js.stream_info(names.stream_collected)
        if victim == "leader":
            assert info.cluster.leader != target
        stored = await _stored_ids(js, names, info.state.messages)
        assert info.state.messages == sum(stored.values())
        missing = [i for i in acked if stored[i] == 0]
        twice = {i: c for i, c in stored.items() if c > 1}
        assert not missing, f"{len(missing)} acknowledged events lost"
        assert not twice, f"{len(twice)} events stored more than once"
        assert len(set(acked)) == len(acked) >= killed_at + AFTER_KILL
    finally:
        stop.set()
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await nc.close()
        cluster.stop()


async def _at_least(items: list, n: int) -> bool:
    return len(items) >= n
