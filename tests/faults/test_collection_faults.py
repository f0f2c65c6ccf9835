"""Collection under faults: nats-server restarted while the collector publishes, and SSH hosts
that refuse, hang, crawl, answer garbage or flood; every operation ends as exactly one row."""

from __future__ import annotations

import asyncio
import logging
import threading
import uuid
from collections import Counter
from datetime import UTC, datetime

import psutil
import pytest
from nats.js.errors import NotFoundError

from services.collector.service import CollectorStats, run as run_collector
from services.collector.settings import CollectorSettings
from services.simulator import Simulator
from services.writer.service import run as run_writer
from shared import events
from shared.datatypes.containers import collect as containers
from shared.datatypes.system_metrics import collect as system_metrics
from shared.names import Names
from shared.runtime.bootstrap import ensure
from shared.runtime.embedded import NatsServer
from shared.runtime.nats_conn import connect
from shared.runtime.publish import publish_event
from shared.runtime.transport import TransportPool
from shared.settings import Settings
from tests.util import fetch, stream_events, wait_until

pytestmark = pytest.mark.ssh

TYPES = ("system_metrics", "containers")
WAIT_S = 60  # bounds waits on a loaded machine; not a performance assertion


def _settings(nats_url: str, database_url: str, prefix: str, tmp_path, **fields) -> CollectorSettings:
    return CollectorSettings(nats_url=nats_url, database_url=database_url, subject_prefix=prefix,
                             data_dir=tmp_path, metrics_port=-1, writer_batch_wait_s=0.2, **fields)


def _collecting(sim: Simulator, interval_s: float) -> dict:
    """Collector fields: log in to the simulator, poll ``TYPES`` every ``interval_s``, no skips."""
    return dict(ssh_client_keys=[sim.client_key], ssh_known_hosts=sim.known_hosts, ssh_connect_timeout_s=5,
                collector_data_types=list(TYPES), collector_interval_overrides=dict.fromkeys(TYPES, interval_s),
                freshness_overrides=dict.fromkeys(TYPES, 1), collector_first_poll_within_s=1.0)


async def _drained(js, names: Names, durable: str) -> bool:
    try:
        info = await js.consumer_info(names.stream_collected, durable)
    except NotFoundError:
        return False
    return info.num_pending == 0 and info.num_ack_pending == 0


async def _audit_rows(database_url: str) -> list:
    return await fetch(database_url, "SELECT event_id, device_id, data_type, status, cache_hit, error_message "
                                     "FROM data_collection_audit")


async def _stop(stop: asyncio.Event, task: asyncio.Task) -> None:
    stop.set()
    await asyncio.wait_for(task, WAIT_S)


# ---------------------------------------------------------------- nats-server restart


async def test_nats_restart_during_collection_loses_no_result(database_url, tmp_path, caplog) -> None:
    """nats-server stopped for 15 s while 10 hosts are polled every 2 s: each result the collector
    produced is in the stream once and in data_collection_audit once, none failed to publish.
    The outage is longer than a publish's ack timeout, so publishes made during it are retried."""
    caplog.set_level(logging.WARNING, logger="shared.runtime.publish")
    server = NatsServer(tmp_path / "nats").start()  # one port and store for both lives
    prefix = f"t{uuid.uuid4().hex[:10]}"
    nc = None
    try:
        async with Simulator(10, tmp_path / "sim") as sim:
            settings = _settings(server.url, database_url, prefix, tmp_path, instance="c1", **_collecting(sim, 2))
            names = Names(prefix)
            nc = await connect(settings, "test")
            js = nc.jetstream()
            await ensure(js, settings)
            await sim.register(js, names)
            stats, c_stop, w_stop = CollectorStats(), asyncio.Event(), asyncio.Event()
            writer = asyncio.create_task(run_writer(Settings(**{**settings.model_dump(), "instance": "w1"}), w_stop))
            collector = asyncio.create_task(run_collector(settings, c_stop, stats=stats))
            try:
                def done() -> int:
                    return sum(stats.operations.values())

                async def at_least(n: int) -> bool:
                    return done() >= n

                await wait_until(lambda: at_least(20), timeout=WAIT_S, what="collection under way")
                down_at = datetime.now(UTC)
                await asyncio.to_thread(server.stop)
                await asyncio.sleep(15)  # the outage: polls go on, their publishes wait
                await asyncio.to_thread(server.start)
                up_at = datetime.now(UTC)
                after = done() + 40
                await wait_until(lambda: at_least(after), timeout=WAIT_S, what="collection after the restart")
            finally:
                await _stop(c_stop, collector)
            produced = sum(stats.operations.values())
            await wait_until(lambda: _drained(js, names, settings.writer_durable), timeout=WAIT_S, interval=0.5,
                             what="the writer drained the stream")
            await _stop(w_stop, writer)

            assert stats.publish_errors == 0
            assert stats.published == produced
            stream = await stream_events(js, names.stream_collected, names.all("collected"))
            ids = [ev.event_id for ev in stream]
            assert len(ids) == len(set(ids)) == produced
            rows = await _audit_rows(database_url)
            assert len(rows) == produced
            assert {r["event_id"] for r in rows} == set(ids)
            during = [ev for ev in stream if down_at <= ev.occurred_at <= up_at]
            assert len({ev.device for ev in during}) == 10, "every host has a result produced during the outage"
            retried = [r for r in caplog.records if "not acknowledged" in r.getMessage()]
            assert retried, "some publishes were retried"
    finally:
        if nc is not None:
            await nc.close()
        server.stop()


async def test_publish_is_retried_until_the_stream_answers(nats_url, tmp_path) -> None:
    """A publish nobody answers yet (JetStream has not restored the stream) is retried with the
    same message id until the stream exists: stored once."""
    settings = Settings(nats_url=nats_url, subject_prefix=f"t{uuid.uuid4().hex[:10]}", data_dir=tmp_path,
                        instance="test")
    names = Names(settings.subject_prefix)
    nc = await connect(settings, "test")
    try:
        js = nc.jetstream()
        ev = events.new_event(events.Audited, service="test", instance="test", trigger="poll", action="probe")
        publish = asyncio.create_task(publish_event(js, names.audit("test"), ev))
        await asyncio.sleep(1.5)  # several unanswered attempts before the stream exists
        assert not publish.done()
        await ensure(js, settings)
        ack = await asyncio.wait_for(publish, WAIT_S)
        assert (ack.stream, ack.seq) == (names.stream_audit, 1) and not ack.duplicate
        again = await publish_event(js, names.audit("test"), ev)
        assert again.duplicate and again.seq == 1
        assert (await js.stream_info(names.stream_audit)).state.messages == 1
    finally:
        await nc.close()


async def test_hosts_of_a_stopped_collector_are_taken_over_after_a_nats_restart(tmp_path) -> None:
    """nats-server keeps the instances bucket in memory, so a restart deletes it. The collectors
    recreate it: when one of two stops after the restart, the other polls every host."""
    server = NatsServer(tmp_path / "nats").start()
    prefix = f"t{uuid.uuid4().hex[:10]}"
    nc = None
    try:
        async with Simulator(16, tmp_path / "sim") as sim:
            fields = {**_collecting(sim, 2), "collector_data_types": ["system_metrics"],
                      "collector_heartbeat_s": 0.3, "collector_member_timeout_s": 1.5}
            base = _settings(server.url, "postgresql://unused/unused", prefix, tmp_path, **fields)
            names = Names(prefix)
            nc = await connect(base, "test")
            js = nc.jetstream()
            await ensure(js, base)
            await sim.register(js, names)
            polls: list[tuple[datetime, str, str]] = []  # (occurred_at, instance, device)

            async def record(msg) -> None:
                ev = events.decode(msg.data)
                if not ev.skipped_fresh:
                    polls.append((ev.occurred_at, ev.instance, ev.device))

            await nc.subscribe(names.all("collected"), cb=record)
            stops = {name: asyncio.Event() for name in ("a", "b")}
            tasks = {name: asyncio.create_task(run_collector(base.model_copy(update={"instance": name}), stop,
                                                             pool=TransportPool()))
                     for name, stop in stops.items()}
            try:
                def polled_by(instance: str, since: datetime) -> set[str]:
                    return {d for t, i, d in polls if i == instance and t >= since}

                async def both_since(since: datetime) -> bool:
                    return bool(polled_by("a", since) and polled_by("b", since))

                await wait_until(lambda: both_since(datetime.min.replace(tzinfo=UTC)), timeout=WAIT_S,
                                 what="both instances polling")
                await asyncio.to_thread(server.stop)
                await asyncio.sleep(2)
                await asyncio.to_thread(server.start)
                up_at = datetime.now(UTC)
                await wait_until(lambda: both_since(up_at), timeout=WAIT_S, what="both instances polling again")
                await _stop(stops["b"], tasks["b"])
                stopped_at = datetime.now(UTC)

                async def all_taken() -> bool:
                    return len(polled_by("a", stopped_at)) == 16

                await wait_until(all_taken, timeout=WAIT_S, what="instance a polling every host")
            finally:
                for name, task in tasks.items():
                    await _stop(stops[name], task)
    finally:
        if nc is not None:
            await nc.close()
        server.stop()


# ---------------------------------------------------------------- misbehaving hosts

COMMAND_TIMEOUT_S = 2.0
MISBEHAVE = {"host-4": "unreachable", "host-5": "hang", "host-6": "slow:4", "host-7": "slow:0.5",
             "host-8": "garbage", "host-9": "huge:100"}
GOOD = ["host-0", "host-1", "host-2", "host-3", "host-7"]  # host-7 answers within the timeout
BAD = ["host-4", "host-5", "host-6", "host-8", "host-9"]


@pytest.fixture
def short_timeouts(monkeypatch):
    """Commands are killed after 2 s, without a retry."""
    for module in (system_metrics, containers):
        monkeypatch.setattr(module, "TIMEOUT_S", COMMAND_TIMEOUT_S)
        monkeypatch.setattr(module, "RETRIES", 0)


async def test_misbehaving_hosts_each_operation_one_audit_row(database_url, nats_url, tmp_path,
                                                              short_timeouts) -> None:
    """Unreachable, hung, too slow, garbage and 100 MB answers: every operation of every host is one
    audit row, the bad hosts' rows say what went wrong, the good hosts keep being polled, and the
    collector's memory stays bounded by the output cap."""
    prefix = f"t{uuid.uuid4().hex[:10]}"
    names = Names(prefix)
    async with Simulator(10, tmp_path / "sim", MISBEHAVE) as sim:
        settings = _settings(nats_url, database_url, prefix, tmp_path, instance="c1", **_collecting(sim, 2))
        nc = await connect(settings, "test")
        js = nc.jetstream()
        await ensure(js, settings)
        await sim.register(js, names)
        seen: Counter = Counter()  # (device, data_type) -> events published

        async def count(msg) -> None:
            ev = events.decode(msg.data)
            seen[(ev.device, ev.data_type)] += 1

        await nc.subscribe(names.all("collected"), cb=count)
        stats, c_stop, w_stop = CollectorStats(), asyncio.Event(), asyncio.Event()
        writer = asyncio.create_task(run_writer(Settings(**{**settings.model_dump(), "instance": "w1"}), w_stop))
        await wait_until(lambda: _consumer_exists(js, names, settings.writer_durable), timeout=WAIT_S,
                         what="the writer consuming")
        rss = _RssPeak()
        collector = asyncio.create_task(run_collector(settings, c_stop, stats=stats))
        try:
            async def bad_hosts_polled() -> bool:
                return all(seen[(h, t)] >= 3 for h in BAD for t in TYPES)

            await wait_until(bad_hosts_polled, timeout=WAIT_S * 2, interval=0.2, what="3 polls of every bad host")
        finally:
            await _stop(c_stop, collector)
            growth = rss.stop()
        await wait_until(lambda: _drained(js, names, settings.writer_durable), timeout=WAIT_S, interval=0.5,
                         what="the writer drained the stream")
        await _stop(w_stop, writer)
        stream = await stream_events(js, names.stream_collected, names.all("collected"))
        await nc.close()

    produced = sum(stats.operations.values())
    assert stats.publish_errors == 0 and stats.published == produced == len(stream)
    rows = await _audit_rows(database_url)
    assert len(rows) == len({r["event_id"] for r in rows}) == produced
    by_id = {ev.device_id: ev.device for ev in stream}
    per_host = Counter((by_id[r["device_id"]], r["data_type"]) for r in rows)
    assert per_host == Counter((ev.device, ev.data_type) for ev in stream)
    assert set(per_host) == {(f"host-{i}", t) for i in range(10) for t in TYPES}

    def host_rows(host: str, data_type: str) -> list:
        return [r for r in rows if by_id[r["device_id"]] == host and r["data_type"] == data_type]

    for host in GOOD:
        for t in TYPES:
            ok = [r for r in host_rows(host, t) if r["status"] == "success" and not r["cache_hit"]]
            assert len(ok) >= 3, (host, t, [(r["status"], r["error_message"]) for r in host_rows(host, t)])
    for host in BAD:
        for t in TYPES:
            statuses = Counter(r["status"] for r in host_rows(host, t))
            assert statuses == {"error": per_host[(host, t)]}, (host, t, statuses)
    expected = {  # host: (system_metrics, containers)
        "host-4": ("cannot connect", "cannot connect"),
        "host-5": ("did not finish within 2.0s", "was killed after its timeout"),
        "host-6": ("did not finish within 2.0s", "was killed after its timeout"),
        "host-8": ("parse error: no '@@' section markers", "a JSON object per line expected"),
        "host-9": ("output exceeded the size limit", "printed more than the output limit"),
    }
    for host, words in expected.items():
        for t, w in zip(TYPES, words):
            messages = {r["error_message"] for r in host_rows(host, t)}
            assert all(w in m for m in messages), (host, t, messages)
    # The flooding host runs up to three commands at once (system_metrics; containers' ps and
    # stats), each kept to the cap and briefly held twice (bytes, then text): 96 MiB. Reading
    # its 100 MB outputs whole would take several hundred MiB.
    assert growth < 8 * settings.collector_max_output_bytes, f"peak RSS grew by {growth / 2**20:.1f} MiB"


class _RssPeak:
    """The highest resident set size of this process above its size at start, sampled by a thread."""

    def __init__(self, every_s: float = 0.02) -> None:
        self._proc = psutil.Process()
        self.baseline = self.peak = self._proc.memory_info().rss
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._sample, args=(every_s,), daemon=True)
        self._thread.start()

    def _sample(self, every_s: float) -> None:
        while not self._done.wait(every_s):
            self.peak = max(self.peak, self._proc.memory_info().rss)

    def stop(self) -> int:
        self._done.set()
        self._thread.join()
        return self.peak - self.baseline


async def _consumer_exists(js, names: Names, durable: str) -> bool:
    try:
        await js.consumer_info(names.stream_collected, durable)
    except NotFoundError:
        return False
    return True
