"""Writer ingest: events/s and rows/s from the stream to committed rows, against two limits
measured on the same data in the same run — a bare nats-py consume-and-ack, and a bare asyncpg
COPY-to-staging insert of the same rows.

    .venv/bin/python bench/writer_ingest.py [--events 200000] [--kind containers] [--containers 20]
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
import uuid
from datetime import datetime, timedelta, timezone
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import asyncpg
import nats
from nats.js.api import AckPolicy, ConsumerConfig

from bench.common import record, servers
from schema.migrate import upgrade
from services.writer import sink
from services.writer.projection import Rows, merge, rows
from services.writer.service import Writer
from shared import events
from shared.names import MSG_ID, Names
from shared.runtime.bootstrap import ensure
from shared.settings import Settings


def make_events(kind: str, n: int, per_event: int) -> list[events.Event]:
    """``n`` collected events for a handful of devices, one second apart."""
    from tests import factories

    devices = [uuid.uuid4() for _ in range(10)]
    start = datetime(2026, 1, 1, tzinfo=timezone.utc)
    if kind == "metrics":
        return [factories.metrics_event(devices[i % 10], f"dev{i % 10}", at=start + timedelta(seconds=i // 10))
                for i in range(n)]
    return [factories.containers_event(devices[i % 10], f"dev{i % 10}", at=start + timedelta(seconds=i // 10),
                                       count=per_event) for i in range(n)]


async def publish(js, names: Names, evs: list[events.Event], window: int = 1000) -> None:
    for i in range(0, len(evs), window):
        chunk = evs[i:i + window]
        await asyncio.gather(*(js.publish(names.collected(ev.device, ev.data_type), events.encode(ev),
                                          headers={MSG_ID: str(ev.event_id)}) for ev in chunk))


async def bare_consume(js, names: Names, n: int, batch: int) -> float:
    """Seconds to fetch and ack ``n`` messages with nothing else done."""
    psub = await js.pull_subscribe(names.all("collected"), stream=names.stream_collected,
                                   config=ConsumerConfig(ack_policy=AckPolicy.EXPLICIT, max_ack_pending=-1))
    t0 = time.perf_counter()
    seen = 0
    while seen < n:
        msgs = await psub.fetch(batch, timeout=5)
        for m in msgs:
            await m.ack()
        seen += len(msgs)
    elapsed = time.perf_counter() - t0
    await psub.unsubscribe()
    return elapsed


async def bare_insert(dsn: str, batches: list[Rows]) -> float:
    """Seconds to write pre-built rows with the sink alone (COPY to staging, INSERT … ON CONFLICT)."""
    conn = await asyncpg.connect(dsn)
    try:
        t0 = time.perf_counter()
        for b in batches:
            await sink.write(conn, b)
        return time.perf_counter() - t0
    finally:
        await conn.close()


async def writer_run(settings: Settings, js, n: int) -> float:
    """Seconds for the writer to project ``n`` events from the stream into committed rows."""
    pool = await asyncpg.create_pool(settings.asyncpg_dsn, min_size=1, max_size=4)
    writer = Writer(settings, js, pool)
    stop = asyncio.Event()
    names = writer.names
    task = asyncio.create_task(writer.consume("collected", names.stream_collected, stop))
    t0 = time.perf_counter()
    while True:
        await asyncio.sleep(0.1)
        try:
            info = await js.consumer_info(names.stream_collected, settings.writer_durable)
        except Exception:
            continue
        if info.ack_floor.stream_seq >= n and info.num_ack_pending == 0:
            break
    elapsed = time.perf_counter() - t0
    stop.set()
    await task
    await pool.close()
    return elapsed


async def main(args) -> None:
    with servers() as (nats_srv, pg, tmp):
        await asyncio.to_thread(upgrade, pg.url)
        settings = Settings(nats_url=nats_srv.url, database_url=pg.url, data_dir=tmp, instance="bench",
                            writer_batch_size=args.batch, collected_max_age_s=0)
        names = Names(settings.subject_prefix)
        nc = await nats.connect(nats_srv.url)
        js = nc.jetstream()
        await ensure(js, settings)
        print(f"building {args.events} {args.kind} events of {args.per_event} items…", flush=True)
        evs = make_events(args.kind, args.events, args.per_event)
        t0 = time.perf_counter()
        await publish(js, names, evs)
        print(f"published in {time.perf_counter() - t0:.1f}s", flush=True)

        consume_s = await bare_consume(js, names, args.events, args.batch)
        batches: list[Rows] = []
        n_rows = 0
        for i in range(0, len(evs), args.batch):
            b: Rows = {}
            for ev in evs[i:i + args.batch]:
                merge(b, rows(ev))
            n_rows += sum(len(v) for v in b.values())
            batches.append(b)
        insert_s = await bare_insert(settings.asyncpg_dsn, batches)
        # the writer starts from an empty table, as the bare insert did
        conn = await asyncpg.connect(settings.asyncpg_dsn)
        for t in batches[0]:
            await conn.execute(f"TRUNCATE {t}")
        await conn.close()
        writer_s = await writer_run(settings, js, args.events)
        await nc.close()

    rows_per_event = n_rows / args.events
    consume_eps = args.events / consume_s
    insert_eps = args.events / insert_s
    writer_eps = args.events / writer_s
    limit = min(consume_eps, insert_eps)
    cond = f"{args.events} {args.kind} events x {args.per_event}, batch {args.batch}, {rows_per_event:.0f} rows/event"
    print(f"\n{'measure':34} {'events/s':>10} {'rows/s':>11}")
    for name, eps in (("bare consume+ack (limit)", consume_eps), ("bare asyncpg staging insert (limit)", insert_eps),
                      ("writer: stream to committed rows", writer_eps)):
        print(f"{name:34} {eps:10.0f} {eps * rows_per_event:11.0f}")
    print(f"\nwriter / lower limit = {writer_eps / limit:.2f}  ({cond})")
    record("writer_ingest_events_per_s", writer_eps, "events/s", limit, cond)
    record("writer_ingest_rows_per_s", writer_eps * rows_per_event, "rows/s", limit * rows_per_event, cond)
    record("bare_consume_ack_events_per_s", consume_eps, "events/s", None, cond)
    record("bare_staging_insert_rows_per_s", insert_eps * rows_per_event, "rows/s", None, cond)


if __name__ == "__main__":
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--events", type=int, default=200_000)
    p.add_argument("--kind", default="containers", help="containers or metrics")
    p.add_argument("--per-event", type=int, default=20, help="containers per event")
    p.add_argument("--batch", type=int, default=1000)
    asyncio.run(main(p.parse_args()))
