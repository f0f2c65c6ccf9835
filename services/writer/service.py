"""The writer: durable pull consumers on the event streams, batches projected into the
database in one transaction each, acknowledged only after commit."""

from __future__ import annotations

import asyncio
import logging

import asyncpg
import msgspec
from nats.aio.msg import Msg
from nats.js import JetStreamContext
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy

from services.writer import sink
from services.writer.projection import ProjectionError, Rows, merge, rows
from shared import events
from shared.names import DLQ_REASON, DLQ_STREAM_SEQ, DLQ_SUBJECT, MSG_ID, Names
from shared.runtime.bootstrap import ensure
from shared.runtime.fetch import batches, finish, unsubscribe
from shared.runtime.nats_conn import connect, drain
from shared.runtime.perf import Perf, publish_loop, serve_metrics
from shared.settings import Settings

log = logging.getLogger(__name__)

# The kinds of stream the writer projects: (kind in the subject, stream attribute of Names).
PROJECTED = (("device", "stream_devices"), ("collected", "stream_collected"), ("audit", "stream_audit"),
             ("config", "stream_config"), ("perf", "stream_perf"), ("alert", "stream_alerts"))
LAG_EVERY_S = 5.0
WRITES_IN_FLIGHT = 2  # batches being written per stream while the next one is prepared
IDLE_COMMIT = {"config"}  # kinds committed as soon as an event arrives on an idle stream


class Writer:
    """Projects one or more streams into the database."""

    def __init__(self, settings: Settings, js: JetStreamContext, pool: asyncpg.Pool) -> None:
        self.settings = settings
        self.names = Names(settings.subject_prefix)
        self.js = js
        self.pool = pool
        self.perf = Perf("writer")
        self._backoff = 0.0

    async def consume(self, kind: str, stream: str, stop: asyncio.Event) -> None:
        """Fetch batches from one stream's durable consumer until ``stop`` is set."""
        cfg = ConsumerConfig(
            durable_name=self.settings.writer_durable,
            ack_policy=AckPolicy.EXPLICIT,
            deliver_policy=DeliverPolicy.ALL,
            ack_wait=30,
            max_deliver=-1,
            max_ack_pending=max(self.settings.writer_batch_size * 4, 1000),
        )
        psub = await self.js.pull_subscribe(self.names.all(kind), durable=self.settings.writer_durable,
                                            stream=stream, config=cfg)
        try:
            await self._loop(kind, stream, psub, stop)
        finally:
            await unsubscribe(psub, stream)

    async def _loop(self, kind: str, stream: str, psub, stop: asyncio.Event) -> None:
        """Fetch, decode and project the next batch while up to WRITES_IN_FLIGHT earlier ones are
        being written: Python's work and the database's overlap. Each batch is acked after its commit."""
        writing: set[asyncio.Task] = set()
        try:
            async for msgs in batches(psub, self.settings.writer_batch_size, self.settings.writer_batch_wait_s,
                                      stop, eager=kind in IDLE_COMMIT, label=stream):
                if len(writing) >= WRITES_IN_FLIGHT:
                    _, writing = await asyncio.wait(writing, return_when=asyncio.FIRST_COMPLETED)
                writing.add(asyncio.create_task(self.handle(kind, msgs)))
                if self._backoff:
                    await asyncio.sleep(self._backoff)
        finally:
            if writing:
                await asyncio.gather(*writing, return_exceptions=True)

    async def handle(self, kind: str, msgs: list) -> None:
        """Decode and project a batch; dead-letter what cannot be projected; write the rest."""
        loop = asyncio.get_running_loop()
        t0 = loop.time()
        items: list[tuple[Msg, Rows]] = []
        for msg in msgs:
            try:
                ev = events.decode(msg.data)
                items.append((msg, rows(ev, msg.metadata.sequence.stream)))
            except (msgspec.DecodeError, msgspec.ValidationError, ProjectionError) as exc:
                await self.dead_letter(kind, msg, f"{type(exc).__name__}: {exc}")
        if items:
            await self.commit(kind, items)
        ms = (loop.time() - t0) * 1000
        self.perf.operation("success" if items else "error", ms)
        self.perf.gauge("last_batch_ms", round(ms, 2), "duration of the last batch")
        self.perf.gauge("last_batch_events", len(msgs), "events in the last batch")

    async def commit(self, kind: str, items: list[tuple[Msg, Rows]]) -> None:
        """Write items in one transaction and ack them; bisect on a data error to isolate it."""
        batch: Rows = {}
        for _, r in items:
            merge(batch, r)
        try:
            async with self.pool.acquire() as conn:
                inserted = await sink.write(conn, batch)
        except sink.DATA_ERRORS as exc:
            await self._isolate(kind, items, exc)
            return
        except sink.UNAVAILABLE as exc:
            error_type = sink.unavailable_type(exc)
            self.perf.error(error_type)
            self._backoff = min(max(self._backoff * 2, 0.5), 30.0)
            log.warning("%s (%s: %s); %d events redelivered in %.1fs", error_type.replace("_", " "),
                        type(exc).__name__, exc, len(items), self._backoff)
            for msg, _ in items:
                await msg.nak(delay=self._backoff)
            return
        except asyncpg.PostgresError as exc:
            await self._isolate(kind, items, exc)
            return
        self._backoff = 0.0
        for msg, _ in items:
            await msg.ack()
        self.perf.add("database_writes", inserted)

    async def _isolate(self, kind: str, items: list[tuple[Msg, Rows]], exc: Exception) -> None:
        """The database refused the data: bisect the batch so only the bad event is dead-lettered."""
        if len(items) == 1:
            await self.dead_letter(kind, items[0][0], f"database refused the rows: {type(exc).__name__}: {exc}")
            return
        self.perf.error("bisection")
        mid = len(items) // 2
        await self.commit(kind, items[:mid])
        await self.commit(kind, items[mid:])

    async def update_lag(self) -> None:
        """Consumer lag per stream: messages not yet delivered, and delivered but not acknowledged."""
        for kind, attr in PROJECTED:
            try:
                info = await self.js.consumer_info(getattr(self.names, attr), self.settings.writer_durable)
            except Exception as exc:
                log.debug("lag of %s unknown: %s", kind, exc)
                continue
            self.perf.gauge(f"consumer_lag_{kind}", info.num_pending, f"{kind} events not yet delivered")
            self.perf.gauge(f"consumer_ack_pending_{kind}", info.num_ack_pending, f"{kind} events in flight")

    async def lag_loop(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            await self.update_lag()
            try:
                await asyncio.wait_for(stop.wait(), timeout=LAG_EVERY_S)
            except TimeoutError:
                pass

    async def dead_letter(self, kind: str, msg, reason: str) -> None:
        """Put the original bytes on the dead-letter stream with the reason, then terminate the message."""
        seq = msg.metadata.sequence.stream
        reason = " ".join(reason.split())[:1000]
        headers = {
            DLQ_REASON: reason,
            DLQ_SUBJECT: msg.subject,
            DLQ_STREAM_SEQ: str(seq),
            MSG_ID: f"dlq:{kind}:{seq}",
        }
        await self.js.publish(self.names.dlq("writer", kind), msg.data or b"", headers=headers)
        await msg.term()
        self.perf.error("dead_letter")
        log.error("dead-lettered %s seq %d: %s", msg.subject, seq, reason)


async def create_pool(settings: Settings, stop: asyncio.Event) -> asyncpg.Pool | None:
    """A connection pool, waiting (with backoff) for the database instead of crash-looping."""
    delay = 0.5
    while not stop.is_set():
        try:
            return await asyncpg.create_pool(settings.asyncpg_dsn, min_size=1, max_size=4)
        except sink.UNAVAILABLE as exc:
            log.warning("database not reachable (%s); retrying in %.1fs", exc, delay)
            try:
                await asyncio.wait_for(stop.wait(), timeout=delay)
            except TimeoutError:
                pass
            delay = min(delay * 2, 30)
    return None


async def run(settings: Settings, stop: asyncio.Event) -> None:
    """Run the writer until ``stop`` is set."""
    nc = await connect(settings, "writer")
    try:
        js = nc.jetstream()
        await ensure(js, settings)
        pool = await create_pool(settings, stop)
        if pool is None:
            return
        writer = Writer(settings, js, pool)
        names = writer.names
        tasks = [asyncio.create_task(writer.consume(kind, getattr(names, attr), stop), name=f"writer-{kind}")
                 for kind, attr in PROJECTED]
        serve_metrics(writer.perf, settings)
        tasks.append(asyncio.create_task(writer.lag_loop(stop), name="writer-lag"))
        tasks.append(asyncio.create_task(publish_loop(js, settings, writer.perf, stop, writer.update_lag),
                                         name="writer-perf"))
        log.info("writer consuming %s", ", ".join(k for k, _ in PROJECTED))
        await stop.wait()
        await finish(tasks, settings.writer_batch_wait_s + 10)
        await pool.close()
    finally:
        await drain(nc)
