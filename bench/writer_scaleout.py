"""Two writers vs one: events/s of one writer process draining a preloaded stream into an
empty database, then of two writer processes sharing one durable consumer draining the same
events into another empty database; the ratio two/one is held to the target 1.6.

The events are container snapshots (``--per-event`` containers each): containers are polled
every 30 s, the shortest default interval, so they are most of the collected stream. Each
run's durable consumer is created paused, the writers start and subscribe, and the clock
starts when it is resumed and stops when nothing is pending or unacknowledged. CPU of the
writers, PostgreSQL (all its processes) and nats-server is measured over each run, to show
what is saturated.

    .venv/bin/python bench/writer_scaleout.py [--events 60000] [--per-event 20]
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import asyncpg
import nats
import psutil
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy

from bench.common import check_alive, cpu_seconds, record, servers, service_env, start_service, stop_procs
from bench.writer_ingest import make_events, publish
from schema.migrate import upgrade
from services.writer.projection import rows
from shared.names import Names
from shared.runtime.bootstrap import ensure
from shared.settings import Settings

TARGET = 1.6


def cpu(r: dict) -> str:
    """CPU % of one core over a run, by process group."""
    return (f"CPU writers {'+'.join(f'{c:.0f}' for c in r['writers'])}%, postgres {r['postgres']:.0f}%, "
            f"nats {r['nats']:.0f}%, other processes {r['other']:.0f}%, machine {r['machine']:.0f}% of "
            f"{psutil.cpu_count() * 100}%")


def writer_consumer(settings: Settings, durable: str, names: Names) -> ConsumerConfig:
    """The collected-stream consumer exactly as the writer creates it (services.writer.service)."""
    return ConsumerConfig(
        durable_name=durable, name=durable, ack_policy=AckPolicy.EXPLICIT, deliver_policy=DeliverPolicy.ALL,
        ack_wait=30, max_deliver=-1, max_ack_pending=max(settings.writer_batch_size * 4, 1000),
        filter_subject=names.all("collected"),
    )


def busy_cpu_seconds() -> float:
    """Machine-wide non-idle CPU seconds (all cores)."""
    t = psutil.cpu_times()
    return sum(t) - t.idle - getattr(t, "iowait", 0.0)


async def drain(js, settings: Settings, names: Names, env: dict, n_writers: int, durable: str, db_url: str,
                n: int, tmp: Path, pg_pid: int, nats_pid: int) -> dict:
    """Seconds and CPU for ``n_writers`` writer processes to drain ``n`` events into ``db_url``."""
    stream = names.stream_collected
    await js.add_consumer(stream, config=writer_consumer(settings, durable, names))
    await js.pause_consumer(stream, durable, (datetime.now(timezone.utc) + timedelta(days=1))
                            .strftime("%Y-%m-%dT%H:%M:%SZ"))
    wenv = {**env, "INFRAWATCH_WRITER_DURABLE": durable, "INFRAWATCH_DATABASE_URL": db_url,
            "INFRAWATCH_LOG_LEVEL": "INFO"}
    procs = {f"{durable}-{i}": start_service("writer", wenv, tmp / f"{durable}-{i}.log") for i in range(n_writers)}
    try:
        deadline = time.monotonic() + 120
        for name in procs:
            while "writer consuming" not in (tmp / f"{name}.log").read_text(errors="replace"):
                check_alive(procs, tmp)
                if time.monotonic() > deadline:
                    raise RuntimeError(f"{name} did not start")
                await asyncio.sleep(0.1)
        await asyncio.sleep(1)  # its pull requests are waiting
        pids = [p.pid for p in procs.values()]
        c0 = [cpu_seconds(pid) for pid in pids] + [cpu_seconds(pg_pid), cpu_seconds(nats_pid), busy_cpu_seconds()]
        t0 = time.monotonic()
        await js.resume_consumer(stream, durable)
        while True:
            await asyncio.sleep(0.1)
            info = await js.consumer_info(stream, durable)
            if info.num_pending == 0 and info.num_ack_pending == 0 and info.ack_floor.stream_seq >= n:
                break
            check_alive(procs, tmp)
        elapsed = time.monotonic() - t0
        c1 = [cpu_seconds(pid) for pid in pids] + [cpu_seconds(pg_pid), cpu_seconds(nats_pid), busy_cpu_seconds()]
    finally:
        stop_procs(list(procs.values()))
    pct = [(b - a) / elapsed * 100 for a, b in zip(c0, c1)]
    return {"seconds": elapsed, "eps": n / elapsed, "writers": pct[:n_writers], "postgres": pct[-3],
            "nats": pct[-2], "machine": pct[-1], "other": max(0.0, pct[-1] - sum(pct[:-1]))}


async def count_rows(url: str, tables: list[str]) -> int:
    conn = await asyncpg.connect(url)
    try:
        return sum([await conn.fetchval(f"SELECT count(*) FROM {t}") for t in tables])
    finally:
        await conn.close()


async def main(args) -> None:
    with servers() as (nats_srv, pg, tmp):
        urls = [pg.url, pg.url.rsplit("/", 1)[0] + "/infrawatch_two"]
        admin = await asyncpg.connect(pg.admin_url())
        await admin.execute('CREATE DATABASE "infrawatch_two"')
        await admin.close()
        for url in urls:
            await asyncio.to_thread(upgrade, url)
        settings = Settings(nats_url=nats_srv.url, database_url=pg.url, data_dir=tmp, subject_prefix="bench",
                            instance="bench", collected_max_age_s=0)
        names = Names(settings.subject_prefix)
        env = service_env(nats_srv.url, tmp, pg.url, collected_max_age_s=0)
        nc = await nats.connect(nats_srv.url)
        js = nc.jetstream()
        await ensure(js, settings)
        print(f"building and publishing {args.events} containers events of {args.per_event} containers…", flush=True)
        evs = make_events("containers", args.events, args.per_event)
        t = time.perf_counter()
        await publish(js, names, evs)
        print(f"published in {time.perf_counter() - t:.1f}s", flush=True)
        sample = rows(evs[0], 1)
        tables, per_event = list(sample), sum(len(v) for v in sample.values())
        del evs
        results = {}
        for k, durable, url in ((1, "scale-one", urls[0]), (2, "scale-two", urls[1])):
            r = await drain(js, settings, names, env, k, durable, url, args.events, tmp, pg.proc.pid,
                            nats_srv.proc.pid)
            got = await count_rows(url, tables)
            if got != args.events * per_event:
                raise RuntimeError(f"{k} writer(s): {got} rows in the database, {args.events * per_event} expected")
            results[k] = r
            print(f"{k} writer(s): {r['eps']:.0f} events/s ({r['seconds']:.1f}s); {cpu(r)}", flush=True)
        await nc.close()

    one, two = results[1], results[2]
    ratio = two["eps"] / one["eps"]
    print(f"two / one = {ratio:.2f} (target {TARGET})")
    cores = psutil.cpu_count() * 100
    if two["machine"] > 0.9 * cores:
        print(f"with two writers the machine was {two['machine']:.0f}% busy of {cores}%: CPU-bound; "
              f"PostgreSQL used {two['postgres']:.0f}%, the writers {sum(two['writers']):.0f}%, "
              f"other processes {two['other']:.0f}%")

    cond = (f"{args.events} containers events x {args.per_event} ({per_event} rows/event) preloaded, "
            f"drained into an empty database, batch {settings.writer_batch_size}")
    record("writer_scaleout_one_events_per_s", one["eps"], "events/s", None, f"{cond}; 1 writer; {cpu(one)}")
    record("writer_scaleout_two_events_per_s", two["eps"], "events/s", None, f"{cond}; 2 writers; {cpu(two)}")
    record("writer_scaleout_two_over_one", ratio, "x", TARGET, f"{cond}; target >= {TARGET}")
    # Whether a second writer costs CPU of its own (coordination, lock waits): events per CPU-second
    # of writers + PostgreSQL + nats-server, two writers against one. Throughput scales with cores
    # only if this stays near 1.
    eff = {k: r["eps"] / ((sum(r["writers"]) + r["postgres"] + r["nats"]) / 100) for k, r in results.items()}
    print(f"events per CPU-second: one writer {eff[1]:.0f}, two writers {eff[2]:.0f} ({eff[2] / eff[1]:.2f})")
    record("writer_scaleout_events_per_cpu_s_two_over_one", eff[2] / eff[1], "x", 1.0,
           f"{cond}; events per CPU-second of writers + postgres + nats: one {eff[1]:.0f}, two {eff[2]:.0f}")


if __name__ == "__main__":
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--events", type=int, default=60_000)
    p.add_argument("--per-event", type=int, default=20, help="containers per event")
    asyncio.run(main(p.parse_args()))
