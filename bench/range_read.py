"""Range read on a TimescaleDB filled like production: one device's 30 days in 1 h buckets through
the API, beside the same query issued directly with asyncpg, in the same run.

    .venv/bin/python bench/range_read.py [--devices 1000] [--days 30] [--seconds 10] [--connections 10]

Fills ``system_metrics`` with ``--devices`` devices every 5 min over ``--days`` days (8.6 M rows by
default, with generate_series), compresses the chunks older than 7 days as the compression policy
does, and stops TimescaleDB's background jobs so they do not run during the measurement. Then
wrk (1 thread, ``--connections``) reads ``GET /devices/{d}/metrics?start=&end=&bucket=1h`` from the
API (uvicorn, one worker), and as many asyncpg connections run the API's SQL in a loop. Recorded:
both rates, p50 and p99, and the API / direct ratio (limit 0.5). Skipped, with the reason, when
TimescaleDB or wrk is not installed. The servers share the machine with the load generators.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import time
import uuid
from datetime import datetime, timedelta, timezone
from pathlib import Path

import asyncpg
import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench import wrk
from bench.api_bench import hour_floor, range_path, wait_ready
from bench.common import pct, record, run_in_workdir
from schema.migrate import upgrade
from services.api.keys import create_api_key
from services.api.queries import _BUCKET_FUNCTIONS, ORIGIN
from services.api.routes.metrics import _AGGREGATE
from services.api.schemas import parse_bucket
from shared.runtime.embedded import NatsServer, free_port
from tests import timescale

RATIO_MIN = 0.5

# One day of samples every 5 min for every device of $1; the values vary with time and device.
FILL_DAY = """
INSERT INTO system_metrics (time, device_id, event_id, cpu_usage, cpu_count, memory_usage, memory_total_bytes,
    memory_used_bytes, memory_available_bytes, load_1, load_5, load_15, uptime_seconds)
SELECT t, d.id, gen_random_uuid(), 50 + 40 * sin(extract(epoch FROM t) / 3600 + d.k), 4,
       60 + 20 * cos(extract(epoch FROM t) / 7200 + d.k), 8000000000, 4800000000, 3200000000,
       1.5 + sin(extract(epoch FROM t) / 900 + d.k), 1.2, 1.0, extract(epoch FROM t - $2::timestamptz)
FROM generate_series($2::timestamptz, $3::timestamptz - interval '1 microsecond', interval '5 minutes') AS t
CROSS JOIN unnest($1::uuid[]) WITH ORDINALITY AS d(id, k)
"""
STOP_JOBS = "SELECT alter_job(job_id, scheduled => false) FROM timescaledb_information.jobs WHERE job_id >= 1000"


def direct_sql() -> str:
    """The API's bucketed query (TimescaleDB's time_bucket) with asyncpg's numbered parameters."""
    sql = _AGGREGATE.format(fn=_BUCKET_FUNCTIONS[True][1].format(column="time"))
    for n, name in enumerate((":width", ":origin", ":device_id", ":start", ":end"), 1):
        sql = sql.replace(name, f"${n}")
    return sql


async def fill(url: str, device_id: str, devices: int, start: datetime, days: int) -> int:
    ids = [uuid.UUID(device_id), *(uuid.uuid4() for _ in range(devices - 1))]
    conn = await asyncpg.connect(url)
    try:
        t0 = time.monotonic()
        for day in range(days):
            a = start + timedelta(days=day)
            await conn.execute(FILL_DAY, ids, a, a + timedelta(days=1))
            print(f"\r  filled {day + 1}/{days} days ({time.monotonic() - t0:.0f} s)", end="", flush=True)
        print()
        t0 = time.monotonic()
        chunks = await conn.fetchval(timescale.COMPRESS_OLD_CHUNKS)
        await conn.execute(STOP_JOBS)
        await conn.execute("VACUUM ANALYZE system_metrics")
        rows = await conn.fetchval("SELECT count(*) FROM system_metrics")
        print(f"  {rows:,} rows; {chunks} chunks older than 7 days compressed ({time.monotonic() - t0:.0f} s)")
        return rows
    finally:
        await conn.close()


async def direct(url: str, args: tuple, seconds: float, connections: int) -> tuple[float, list[float], int]:
    """Queries/s and latencies (ms) of ``connections`` asyncpg connections running the query in a loop."""
    sql = direct_sql()
    latencies: list[float] = []
    rows = 0
    pool = await asyncpg.create_pool(url, min_size=connections, max_size=connections)
    try:
        async with pool.acquire() as conn:
            rows = len(await conn.fetch(sql, *args))  # warm: plan and cache
        deadline = time.perf_counter() + seconds

        async def worker() -> None:
            async with pool.acquire() as conn:
                while time.perf_counter() < deadline:
                    t = time.perf_counter()
                    await conn.fetch(sql, *args)
                    latencies.append((time.perf_counter() - t) * 1000)

        started = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(connections)))
        return len(latencies) / (time.perf_counter() - started), latencies, rows
    finally:
        await pool.close()


async def bench(args: argparse.Namespace, work: Path) -> None:
    lack = timescale.missing()
    if lack:
        print(f"TimescaleDB range read skipped: missing {lack}")
        return
    if not wrk.available():
        print(f"TimescaleDB range read skipped: {wrk.MISSING}")
        return
    nats = NatsServer(work / "nats").start()
    ts = timescale.TimescaleServer(work / "timescaledb").start()
    api = None
    try:
        admin = await asyncpg.connect(ts.admin_url())
        await admin.execute("CREATE DATABASE infrawatch")
        await admin.close()
        url = ts.admin_url().rsplit("/", 1)[0] + "/infrawatch"
        await asyncio.to_thread(upgrade, url)
        key, _ = await create_api_key(url, "admin", "bench")
        port = free_port()
        env = {**os.environ, "PYTHONPATH": str(ROOT), "INFRAWATCH_NATS_URL": nats.url, "INFRAWATCH_DATABASE_URL": url,
               "INFRAWATCH_DATA_DIR": str(work), "INFRAWATCH_LOG_LEVEL": "WARNING", "INFRAWATCH_API_PORT": str(port),
               "INFRAWATCH_METRICS_PORT": "-1", "INFRAWATCH_API_WORKERS": "1"}
        with open(work / "api.log", "ab") as log:
            api = await asyncio.create_subprocess_exec(sys.executable, "-m", "services.cli", "api", env=env,
                                                       cwd=ROOT, stdout=log, stderr=log)
        base = f"http://127.0.0.1:{port}"
        headers = {"Authorization": f"Bearer {key}"}
        async with httpx.AsyncClient(base_url=base, timeout=60, headers=headers) as client:
            await wait_ready(client)
            r = await client.post("/devices", json={"name": "range-0", "address": "10.0.0.1"})
            r.raise_for_status()
            device_id = r.json()["id"]
            end = hour_floor(datetime.now(timezone.utc))
            start = end - timedelta(days=args.days)
            print(f"filling system_metrics: {args.devices} devices x {args.days} days every 5 min")
            await fill(url, device_id, args.devices, start, args.days)
            path = range_path("range-0", end, args.days, "1h")
            r = await client.get(path)
            r.raise_for_status()
            items = len(r.json()["items"])

        query_args = (parse_bucket("1h"), ORIGIN, uuid.UUID(device_id), start, end)
        d_rps, d_lat, rows = await direct(url, query_args, args.seconds, args.connections)
        if rows != items:
            raise RuntimeError(f"the API answered {items} buckets, the direct query {rows}")
        a = await asyncio.to_thread(wrk.run, base + path, args.seconds, args.connections, headers)
        ratio = a.rps / d_rps
        print(f"one device's {args.days} days in 1 h buckets ({items} items), {args.connections} connections,"
              f" {args.seconds:g} s each")
        print(a.line("API GET /devices/{d}/metrics?start&end&bucket=1h (wrk)"))
        print(f"  {'same SQL with asyncpg (direct)':<52} {d_rps:8.0f} q/s     p50 {pct(d_lat, 50):7.2f} ms"
              f"   p99 {pct(d_lat, 99):7.2f} ms   ({len(d_lat)} queries)")
        print(f"  API / direct: {ratio:.2f} (at least {RATIO_MIN})")
        cond = (f"TimescaleDB, system_metrics {args.devices} devices x {args.days} d every 5 min, chunks older than"
                f" 7 d compressed; {items} buckets; {args.connections} connections, {args.seconds:g}s each, same run;"
                " API uvicorn 1 worker, load generators on the same machine")
        record("range_read_api_req_per_s", a.rps, "req/s", d_rps, f"API (wrk) vs direct asyncpg; {cond}")
        record("range_read_api_p50_ms", a.p50_ms, "ms", pct(d_lat, 50), cond)
        record("range_read_api_p99_ms", a.p99_ms, "ms", pct(d_lat, 99), cond)
        record("range_read_direct_req_per_s", d_rps, "req/s", None, f"the API's SQL through asyncpg; {cond}")
        record("range_read_api_vs_direct", ratio, "ratio", RATIO_MIN, f"at least {RATIO_MIN}; {cond}")
    finally:
        if api is not None and api.returncode is None:
            api.terminate()
            await api.wait()
        ts.stop()
        nats.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--devices", type=int, default=1000)
    parser.add_argument("--days", type=int, default=30)
    parser.add_argument("--seconds", type=float, default=10)
    parser.add_argument("--connections", type=int, default=10)
    run_in_workdir(bench, parser.parse_args())


if __name__ == "__main__":
    main()
