"""Config diffs against /health: two 1 MiB snapshots diffed through the API while wrk measures /health.

Starts its own nats-server and PostgreSQL, migrates, and runs the API as a real process. Two pairs
of 1 MiB snapshots are stored: a realistic one (1 % of the lines changed, the diff completes) and
a pathological one (every tenth line changed: difflib's matching is quadratic on it, so the API
stops at its time budget and answers 422). While wrk loads /health, a client diffs back to back.
Run from the repository root:

    .venv/bin/python bench/diff_bench.py [--seconds 10] [--connections 20]

Recorded: /health p99 without and with diffs running, their ratio, and the diffs' latencies. Then,
in this process, the event loop's lag (a 1 ms sleep's overshoot) while the realistic diff runs
back to back in a thread and in a worker process: why the API runs diffs in processes.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import statistics
import sys
import threading
import time
import uuid
from concurrent.futures import Executor, ThreadPoolExecutor
from datetime import datetime, timedelta, timezone
from pathlib import Path

import asyncpg
import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench import wrk
from bench.common import pct, record, servers, service_env, start_service, stop_procs, tail
from schema.migrate import upgrade
from services.api import diffs
from services.api.keys import create_api_key
from shared.runtime.embedded import free_port

SIZE = 1 << 20
T0 = datetime(2026, 1, 1, tzinfo=timezone.utc)
INSERT = (
    "INSERT INTO configuration_snapshots (id, time, device_id, event_id, config_type, file_path, content_hash, "
    "file_size_bytes, raw_content, content_truncated, change_type, collection_source, requires_restart, risk_level) "
    "VALUES ($1, $2, $3, $4, 'app', $5, $6, $7, $8, false, 'modified', 'bench', false, 'LOW')"
)


def config_lines(seed: int) -> list[str]:
    rng = random.Random(seed)
    lines, size = [], 0
    while size < SIZE:
        line = f"option_{len(lines)} = value-{rng.randrange(10**9)}  # setting {len(lines) % 97}\n"
        lines.append(line)
        size += len(line)
    return lines


def pairs() -> dict[str, tuple[str, str]]:
    base = config_lines(1)
    rng = random.Random(2)
    realistic = list(base)
    for i in rng.sample(range(len(base)), len(base) // 100):
        realistic[i] = f"option_{i} = changed-{rng.randrange(10**6)}\n"
    pathological = [f"changed {i}\n" if i % 10 == 0 else line for i, line in enumerate(base)]
    return {"realistic": ("".join(base), "".join(realistic)), "pathological": ("".join(base), "".join(pathological))}


async def store(url: str, device_id: str) -> dict[str, str]:
    """Both pairs as snapshots of the device; the id of each pair's newer snapshot."""
    conn = await asyncpg.connect(url)
    out = {}
    try:
        for n, (name, (old, new)) in enumerate(pairs().items()):
            path = f"/etc/bench/{name}.conf"
            for k, text in enumerate((old, new)):
                sid = uuid.uuid4()
                await conn.execute(INSERT, sid, T0 + timedelta(minutes=2 * n + k), uuid.UUID(device_id), uuid.uuid4(),
                                   path, f"{hash(text):x}", len(text), text)
            out[name] = str(sid)
    finally:
        await conn.close()
    return out


def diff_loop(base: str, key: str, paths: list[str], stop: threading.Event, seen: list[tuple[str, int, float]]):
    """Diff the pairs in turn, back to back, until ``stop``."""
    with httpx.Client(base_url=base, timeout=120, headers={"Authorization": f"Bearer {key}"}) as client:
        i = 0
        while not stop.is_set():
            path = paths[i % len(paths)]
            t = time.perf_counter()
            r = client.get(path)
            seen.append((path, r.status_code, (time.perf_counter() - t) * 1000))
            i += 1


async def _lag(seconds: float) -> list[float]:
    out, end = [], time.perf_counter() + seconds
    while time.perf_counter() < end:
        t = time.perf_counter()
        await asyncio.sleep(0.001)
        out.append((time.perf_counter() - t - 0.001) * 1000)
    return out


async def loop_lag(seconds: float) -> dict[str, list[float]]:
    """The event loop's lag idle, and while the realistic diff runs back to back in a thread, then a process."""
    old, new = pairs()["realistic"]
    a, b = old.splitlines(keepends=True), new.splitlines(keepends=True)
    loop = asyncio.get_running_loop()
    out = {"idle": await _lag(seconds)}
    for name, ex in (("thread", ThreadPoolExecutor(1)), ("process", diffs._workers())):
        done = asyncio.Event()

        async def run(executor: Executor, done: asyncio.Event = done) -> None:
            while not done.is_set():
                await loop.run_in_executor(executor, diffs.unified, a, b, "a", "b", "", "", 3, diffs.DIFF_BUDGET_S)

        await loop.run_in_executor(ex, diffs.unified, a[:9], b[:9], "a", "b", "", "", 3, 1.0)  # worker started
        task = asyncio.create_task(run(ex))
        await asyncio.sleep(0.3)
        out[name] = await _lag(seconds)
        done.set()
        await task
    return out


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--seconds", type=float, default=10)
    p.add_argument("--connections", type=int, default=20)
    args = p.parse_args()
    if not wrk.available():
        print(wrk.MISSING)
        return 0
    with servers() as (nats, pg, tmp):
        upgrade(pg.url)
        key, _ = asyncio.run(create_api_key(pg.url, "admin", "bench"))
        port = free_port()
        env = service_env(nats.url, tmp, pg.url, api_port=str(port))
        api = start_service("api", env, tmp / "api.log")
        base = f"http://127.0.0.1:{port}"
        try:
            with httpx.Client(base_url=base, timeout=60, headers={"Authorization": f"Bearer {key}"}) as c:
                deadline = time.monotonic() + 60
                while True:
                    try:
                        if c.get("/ready").status_code == 200:
                            break
                    except httpx.TransportError:
                        pass
                    if time.monotonic() > deadline or api.poll() is not None:
                        raise RuntimeError("the API did not start:\n" + tail(tmp / "api.log"))
                    time.sleep(0.2)
                device_id = c.post("/devices", json={"name": "bench"}).raise_for_status().json()["id"]
                ids = asyncio.run(store(pg.url, device_id))
                paths = {name: f"/devices/bench/config/snapshots/{sid}/diff" for name, sid in ids.items()}
                for name, path in paths.items():
                    t = time.perf_counter()
                    r = c.get(path)
                    print(f"diff {name} (2 x {SIZE >> 10} KiB): HTTP {r.status_code} in "
                          f"{(time.perf_counter() - t) * 1000:.0f} ms"
                          + (f", {r.json()['added_lines']} lines added" if r.status_code == 200 else
                             f": {r.json().get('message', '')}"))
            wrk.run(base + "/health", 2, args.connections)  # warm up
            idle = wrk.run(base + "/health", args.seconds, args.connections)
            print(idle.line("GET /health, no diff running"))
            stop, seen = threading.Event(), []
            worker = threading.Thread(target=diff_loop, args=(base, key, list(paths.values()), stop, seen))
            worker.start()
            time.sleep(0.5)
            busy = wrk.run(base + "/health", args.seconds, args.connections)
            stop.set()
            worker.join()
            print(busy.line("GET /health, diffs running back to back"))
            by = {name: [ms for p_, _, ms in seen if p_ == path] for name, path in paths.items()}
            codes = sorted({(name, code) for name, path in paths.items() for p_, code, _ in seen if p_ == path})
            print(f"diffs during the run: {len(seen)} ({', '.join(f'{n}: HTTP {c}' for n, c in codes)}); "
                  + "; ".join(f"{n} p50 {pct(v, 50):.0f} ms" for n, v in by.items() if v))
            ratio = busy.p99_ms / idle.p99_ms
            print(f"/health p99 with diffs / without: {ratio:.2f} (the machine's other load included)")
            cond = (f"wrk 1 thread, {args.connections} connections, {args.seconds:g} s; 2 x 1 MiB snapshots diffed back "
                    f"to back (realistic and pathological pairs); uvicorn 1 worker; load generator on the same machine")
            record("api_health_p99_idle_ms", idle.p99_ms, "ms", None, "GET /health, no diff running; " + cond)
            record("api_health_p99_during_diffs_ms", busy.p99_ms, "ms", idle.p99_ms, "GET /health; " + cond)
            record("api_health_p99_diff_ratio", ratio, "ratio", None, "p99 during diffs / idle; " + cond)
            for name, v in by.items():
                if v:
                    record(f"api_diff_{name}_p50_ms", pct(v, 50), "ms", None, f"GET {name} 1 MiB diff; " + cond)
            lags = asyncio.run(loop_lag(args.seconds / 2))
            for name, v in lags.items():
                print(f"event loop lag, {name:<28} p50 {statistics.median(v):6.2f} ms   p99 {pct(v, 99):7.2f} ms")
                record(f"diff_loop_lag_{name}_p99_ms", pct(v, 99), "ms", pct(lags["idle"], 99),
                       f"1 ms sleep overshoot in one process, the realistic 1 MiB diff looping in a {name} "
                       "(idle: none)")
        finally:
            stop_procs([api])
    return 0


if __name__ == "__main__":
    sys.exit(main())
