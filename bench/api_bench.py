"""API benchmark: cached reads vs a bare endpoint, and the force_refresh round trip.

Starts its own nats-server, PostgreSQL and SSH server, migrates, then runs the collector and the
API (uvicorn) as real processes. Run from the repository root:

    .venv/bin/python bench/api_bench.py [--seconds 10] [--concurrency 50] [--refreshes 30]

The load generator runs on the same machine as the servers, so absolute figures are a floor.
Recorded: req/s, p50 and p99 of the cached reads against /health's (the limit, so the ratio is
cached / bare), /health's req/s, and the force_refresh p50/p99 against the API's 10 s refresh wait.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.common import pct, record  # noqa: E402
from schema.migrate import upgrade  # noqa: E402
from services.api.keys import create_api_key  # noqa: E402
from services.api.settings import ApiSettings  # noqa: E402
from shared.embedded import NatsServer, PostgresServer, free_port  # noqa: E402
from tests.sshd import start_ssh_server  # noqa: E402

# force_refresh is held to the API's wait for a refreshed collection (INFRAWATCH_API_REFRESH_TIMEOUT_S).
REFRESH_LIMIT_MS = ApiSettings.model_fields["api_refresh_timeout_s"].default * 1000


async def load(client: httpx.AsyncClient, path: str, seconds: float, concurrency: int) -> tuple[float, list[float]]:
    """Requests/s and latencies (ms) of ``concurrency`` workers hitting ``path`` for ``seconds``."""
    latencies: list[float] = []
    errors = 0
    deadline = time.perf_counter() + seconds

    async def worker() -> None:
        nonlocal errors
        while time.perf_counter() < deadline:
            t = time.perf_counter()
            r = await client.get(path)
            latencies.append((time.perf_counter() - t) * 1000)
            if r.status_code != 200:
                errors += 1

    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    elapsed = time.perf_counter() - started
    if errors:
        print(f"  warning: {errors} non-200 answers on {path}")
    return len(latencies) / elapsed, latencies


def report(label: str, rps: float, lat: list[float]) -> None:
    print(f"  {label:<44} {rps:8.0f} req/s   p50 {pct(lat, 50):7.2f} ms   p99 {pct(lat, 99):7.2f} ms"
          f"   ({len(lat)} requests)")


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
        }
        for name in ("collector", "api"):
            log = open(work / f"{name}.log", "ab")
            procs.append(await asyncio.create_subprocess_exec(
                sys.executable, "-m", "services.cli", name, env=env, cwd=ROOT, stdout=log, stderr=log))
        limits = httpx.Limits(max_connections=args.concurrency, max_keepalive_connections=args.concurrency)
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", limits=limits, timeout=60,
                                     headers={"Authorization": f"Bearer {key}"}) as client:
            await wait_ready(client)
            r = await client.post("/devices", json={"name": "bench", "address": ssh.host, "port": ssh.port,
                                                    "username": ssh.username})
            r.raise_for_status()
            data = "/devices/bench/data/system_metrics"
            for _ in range(300):  # the first poll fills the cache
                r = await client.get(data)
                if r.status_code == 200:
                    break
                await asyncio.sleep(0.2)
            r.raise_for_status()
            await load(client, "/health", 2, args.concurrency)  # warm up connections
            print(f"API on uvicorn (1 process), {args.concurrency} concurrent connections, {args.seconds:g} s each;"
                  f" SSH server: {ssh.kind}")
            health_rps, health_lat = await load(client, "/health", args.seconds, args.concurrency)
            cached_rps, cached_lat = await load(client, data, args.seconds, args.concurrency)
            metrics_rps, metrics_lat = await load(client, "/devices/bench/metrics", args.seconds, args.concurrency)
            report("GET /health (bare)", health_rps, health_lat)
            report(f"GET {data} (cache)", cached_rps, cached_lat)
            report("GET /devices/bench/metrics (cache)", metrics_rps, metrics_lat)
            print(f"  cached read / bare endpoint throughput ratio: {cached_rps / health_rps:.2f}"
                  f" (metrics: {metrics_rps / health_rps:.2f})")

            lat = []
            for _ in range(args.refreshes):
                t = time.perf_counter()
                r = await client.get(data, params={"force_refresh": "true"})
                lat.append((time.perf_counter() - t) * 1000)
                r.raise_for_status()
            print(f"force_refresh round trip over SSH ({args.refreshes} sequential): p50 {pct(lat, 50):.0f} ms,"
                  f" p99 {pct(lat, 99):.0f} ms, mean {statistics.mean(lat):.0f} ms")
            cond = (f"uvicorn 1 process, {args.concurrency} concurrent connections, {args.seconds:g}s each, load "
                    f"generator on the same machine; SSH server: {ssh.kind}")
            for label, path, rps, lats in (("cached_read", data, cached_rps, cached_lat),
                                           ("cached_metrics", "/devices/bench/metrics", metrics_rps, metrics_lat)):
                c = f"GET {path} vs GET /health; {cond}"
                record(f"api_{label}_req_per_s", rps, "req/s", health_rps, c)
                record(f"api_{label}_p50_ms", pct(lats, 50), "ms", pct(health_lat, 50), c)
                record(f"api_{label}_p99_ms", pct(lats, 99), "ms", pct(health_lat, 99), c)
            record("api_health_req_per_s", health_rps, "req/s", None, f"GET /health (the bare endpoint); {cond}")
            c = (f"{args.refreshes} sequential GET {data}?force_refresh=true through the collector over SSH"
                 f" ({ssh.kind}); limit: the API's refresh wait")
            record("api_force_refresh_p50_ms", pct(lat, 50), "ms", REFRESH_LIMIT_MS, c)
            record("api_force_refresh_p99_ms", pct(lat, 99), "ms", REFRESH_LIMIT_MS, c)
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
    parser.add_argument("--seconds", type=float, default=10)
    parser.add_argument("--concurrency", type=int, default=50)
    parser.add_argument("--refreshes", type=int, default=30)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="infrawatch-bench-") as work:
        Path(work).chmod(0o755)
        asyncio.run(bench(args, Path(work)))


if __name__ == "__main__":
    main()
