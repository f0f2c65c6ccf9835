"""API benchmark: cached reads, a range read and the device list against /health, and the
force_refresh round trip.

Starts its own nats-server, PostgreSQL and SSH server, migrates, then runs the collector and the
API (uvicorn, one worker) as real processes. Run from the repository root:

    .venv/bin/python bench/api_bench.py [--seconds 10] [--connections 50] [--refreshes 30]

HTTP load comes from wrk (1 thread, --latency), which saturates far above the API; without wrk
the load figures are skipped, with a message. The load generator runs on the same machine as
the servers, so absolute figures are a floor. The range read covers 30 days of one device's
system_metrics (every 5 min) in 1 h buckets, on PostgreSQL (date_bin); bench/range_read.py does
the same on a TimescaleDB filled like production. Recorded: req/s, p50 and p99 of each endpoint
and the ratio of the cached read to /health (limit 0.6), p99 of the cached read (limit 15 ms),
and the force_refresh p50/p99 against the API's 10 s refresh wait.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import sys
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path
from urllib.parse import urlencode

import asyncpg
import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench import wrk
from bench.common import cpu_seconds, pct, record, run_in_workdir
from schema.migrate import upgrade
from services.api.keys import create_api_key
from services.api.settings import ApiSettings
from shared.runtime.embedded import NatsServer, PostgresServer, free_port
from tests.sshd import start_ssh_server

# force_refresh is held to the API's wait for a refreshed collection (INFRAWATCH_API_REFRESH_TIMEOUT_S);
# its p99 over SSH to REFRESH_P99_MAX_MS.
REFRESH_LIMIT_MS = ApiSettings.model_fields["api_refresh_timeout_s"].default * 1000
REFRESH_P99_MAX_MS = 300.0
CACHED_VS_HEALTH_MIN = 0.6
CACHED_P99_MAX_MS = 15.0
RANGE_DAYS = 30

# One device's samples every 5 min over [start, end); values vary so the aggregates do work.
FILL_ONE = """
INSERT INTO system_metrics (time, device_id, event_id, cpu_usage, cpu_count, memory_usage, memory_total_bytes,
    memory_used_bytes, memory_available_bytes, load_1, load_5, load_15, uptime_seconds)
SELECT t, $1::uuid, gen_random_uuid(), 50 + 40 * sin(extract(epoch FROM t) / 3600), 4,
       60 + 20 * cos(extract(epoch FROM t) / 7200), 8000000000, 4800000000, 3200000000, 1.5 + sin(extract(epoch FROM t) / 900), 1.2, 1.0,
       extract(epoch FROM t - $2::timestamptz)
FROM generate_series($2::timestamptz, $3::timestamptz - interval '1 microsecond', interval '5 minutes') AS t
ON CONFLICT DO NOTHING
"""


def range_path(device: str, end: datetime, days: int = RANGE_DAYS, bucket: str = "1h") -> str:
    """The metrics range read of ``device``: ``days`` up to ``end`` in ``bucket`` buckets."""
    start = end - timedelta(days=days)
    return f"/devices/{device}/metrics?" + urlencode({"start": start.isoformat(), "end": end.isoformat(),
                                                        "bucket": bucket})


def hour_floor(t: datetime) -> datetime:
    return t.replace(minute=0, second=0, microsecond=0)


async def wait_ready(client: httpx.AsyncClient, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if (await client.get("/ready")).status_code == 200:
                return
        except httpx.TransportError:
            pass
        await asyncio.sleep(0.2)
    raise RuntimeError("the API did not become ready")


def measure(base: str, key: str, endpoints: list[tuple[str, str, str]], seconds: float, connections: int,
            pid: int) -> tuple[dict[str, wrk.WrkResult], dict[str, float]]:
    """wrk against each (name, label, path) of the same app in turn; prints one line each. Also
    the API process's CPU per request (µs), which depends less on what else the machine runs."""
    headers = {"Authorization": f"Bearer {key}"}
    wrk.run(base + "/health", min(2.0, seconds), connections)  # warm up
    out, cpu = {}, {}
    for name, label, path in endpoints:
        before = cpu_seconds(pid)
        out[name] = r = wrk.run(base + path, seconds, connections, headers)
        cpu[name] = (cpu_seconds(pid) - before) * 1e6 / max(1, r.requests)
        print(f"{r.line(label)}   API CPU {cpu[name]:.0f} us/req", flush=True)
    return out, cpu


def record_load(results: dict[str, wrk.WrkResult], paths: dict[str, str], cond: str) -> None:
    health = results["health"]
    record("api_health_req_per_s", health.rps, "req/s", None, f"GET /health (the bare endpoint); {cond}")
    record("api_health_p99_ms", health.p99_ms, "ms", None, f"GET /health; {cond}")
    for name, r in results.items():
        if name == "health":
            continue
        c = f"GET {paths[name]} vs GET /health; {cond}"
        record(f"api_{name}_req_per_s", r.rps, "req/s", health.rps, c)
        record(f"api_{name}_p50_ms", r.p50_ms, "ms", health.p50_ms, c)
        record(f"api_{name}_p99_ms", r.p99_ms, "ms", CACHED_P99_MAX_MS if name == "cached_read" else health.p99_ms,
               c)
    ratio = results["cached_read"].rps / health.rps
    record("api_cached_read_vs_health", ratio, "ratio", CACHED_VS_HEALTH_MIN,
           f"req/s of GET {paths['cached_read']} / GET /health, at least {CACHED_VS_HEALTH_MIN}; {cond}")


async def bench(args: argparse.Namespace, work: Path) -> None:
    nats = NatsServer(work / "nats").start()
    pg = PostgresServer(work / "pg").start()
    (work / "ssh").mkdir()
    ssh = start_ssh_server(work / "ssh")
    procs: list[asyncio.subprocess.Process] = []
    try:
        await asyncio.to_thread(upgrade, pg.url)  # alembic runs its own event loop
        key, _ = await create_api_key(pg.url, "admin", "bench")
        port = free_port()
        env = {
            **os.environ, "PYTHONPATH": str(ROOT), "INFRAWATCH_NATS_URL": nats.url,
            "INFRAWATCH_DATABASE_URL": pg.url, "INFRAWATCH_DATA_DIR": str(work), "INFRAWATCH_LOG_LEVEL": "WARNING",
            "INFRAWATCH_API_PORT": str(port), "INFRAWATCH_SSH_KNOWN_HOSTS": str(ssh.known_hosts),
            "INFRAWATCH_SSH_CLIENT_KEYS": json.dumps([str(ssh.client_key)]), "INFRAWATCH_METRICS_PORT": "-1",
            "INFRAWATCH_API_WORKERS": "1",
        }
        for name in ("collector", "api"):
            with open(work / f"{name}.log", "ab") as log:  # the child keeps its own copy of the descriptor
                procs.append(await asyncio.create_subprocess_exec(
                    sys.executable, "-m", "services.cli", name, env=env, cwd=ROOT, stdout=log, stderr=log))
        base = f"http://127.0.0.1:{port}"
        async with httpx.AsyncClient(base_url=base, timeout=60, headers={"Authorization": f"Bearer {key}"}) as client:
            await wait_ready(client)
            r = await client.post("/devices", json={"name": "bench", "address": ssh.host, "port": ssh.port,
                                                    "username": ssh.username})
            r.raise_for_status()
            device_id = r.json()["id"]
            end = hour_floor(datetime.now(timezone.utc))
            conn = await asyncpg.connect(pg.url)
            try:
                await conn.execute(FILL_ONE, device_id, end - timedelta(days=RANGE_DAYS), end)
            finally:
                await conn.close()
            data = "/devices/bench/data/system_metrics"
            for _ in range(300):  # the first poll fills the cache
                r = await client.get(data)
                if r.status_code == 200:
                    break
                await asyncio.sleep(0.2)
            r.raise_for_status()
            paths = {"health": "/health", "cached_read": data, "cached_metrics": "/devices/bench/metrics",
                     "range_read": range_path("bench", end), "device_list": "/devices"}
            r = await client.get(paths["range_read"])
            r.raise_for_status()
            buckets = len(r.json()["items"])

            if not wrk.available():
                print(wrk.MISSING)
            else:
                print(f"API on uvicorn (1 worker); wrk: 1 thread, {args.connections} connections, {args.seconds:g} s"
                      f" per endpoint; SSH server: {ssh.kind}")
                labels = {"health": "GET /health (bare)", "cached_read": f"GET {data} (cache)",
                          "cached_metrics": "GET /devices/bench/metrics (cache)",
                          "range_read": f"GET /devices/bench/metrics {RANGE_DAYS} d in 1 h ({buckets} buckets)",
                          "device_list": "GET /devices (1 device)"}
                results, cpu = await asyncio.to_thread(
                    measure, base, key, [(n, labels[n], paths[n]) for n in paths], args.seconds, args.connections,
                    procs[1].pid)
                h = results["health"]
                c = results["cached_read"]
                print(f"  cached read / health: {c.rps / h.rps:.2f} (at least {CACHED_VS_HEALTH_MIN});"
                      f" cached read p99 {c.p99_ms:.2f} ms (below {CACHED_P99_MAX_MS:g} ms);"
                      f" metrics {results['cached_metrics'].rps / h.rps:.2f},"
                      f" range {results['range_read'].rps / h.rps:.2f},"
                      f" device list {results['device_list'].rps / h.rps:.2f}")
                cond = (f"wrk 1 thread, {args.connections} connections, {args.seconds:g}s each, same app and run; "
                        f"uvicorn 1 worker; load generator on the same machine")
                record_load(results, paths, cond)
                for name, us in cpu.items():
                    record(f"api_{name}_cpu_us_per_req", us, "us", None if name == "health" else cpu["health"],
                           f"CPU of the API process per request of GET {paths[name]} (limit: /health's); {cond}")

            lat = []
            for _ in range(args.refreshes):
                t = time.perf_counter()
                r = await client.get(data, params={"force_refresh": "true"})
                lat.append((time.perf_counter() - t) * 1000)
                r.raise_for_status()
            print(f"force_refresh round trip over SSH ({args.refreshes} sequential): p50 {pct(lat, 50):.0f} ms,"
                  f" p99 {pct(lat, 99):.0f} ms, mean {statistics.mean(lat):.0f} ms;"
                  f" p99 / {REFRESH_P99_MAX_MS:g} ms: {pct(lat, 99) / REFRESH_P99_MAX_MS:.2f}")
            c = (f"{args.refreshes} sequential GET {data}?force_refresh=true through the collector over SSH"
                 f" ({ssh.kind}); limit: the API's refresh wait")
            record("api_force_refresh_p50_ms", pct(lat, 50), "ms", REFRESH_LIMIT_MS, c)
            record("api_force_refresh_p99_ms", pct(lat, 99), "ms", REFRESH_P99_MAX_MS, c.replace(
                "limit: the API's refresh wait", f"limit: {REFRESH_P99_MAX_MS:g} ms"))
    finally:
        for p in procs:
            if p.returncode is None:
                p.terminate()
        await asyncio.gather(*(p.wait() for p in procs))
        ssh.stop()
        pg.stop()
        nats.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=10, help="wrk duration per endpoint")
    parser.add_argument("--connections", "--concurrency", type=int, default=50)
    parser.add_argument("--refreshes", type=int, default=30)
    run_in_workdir(bench, parser.parse_args())


if __name__ == "__main__":
    main()
