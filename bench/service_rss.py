"""Resident memory of each service under load: collector, watcher, writer, api and alerts as
separate processes against a nats-server and PostgreSQL, over simulated hosts.

Starts the servers, migrates, starts `infrawatch simulate` children (hosts registered as
devices, one file changed per host every ``--change-every`` s), then every service as
`python -m services.cli <service>`. The collector polls every data type every min(its
interval, ``--max-interval``) s, the watcher watches every host's files, the writer projects
everything, the alerts service evaluates it and API clients read devices, cached data,
metrics, timelines and config (one of them forcing refreshes). RSS is sampled every second
for ``--seconds`` after a ``--warmup``; each service's peak and end RSS are recorded against
the budget bench.common.RSS_BUDGET_MIB.

    .venv/bin/python bench/service_rss.py [--hosts 100] [--seconds 120] [--warmup 30]
"""

from __future__ import annotations

import argparse
import asyncio
import random
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import httpx
import nats

from bench.common import (
    RSS_BUDGET_MIB,
    Simulators,
    check_alive,
    cpu_seconds,
    free_port,
    load_arguments,
    record,
    rss_mib,
    servers,
    service_env,
    start_service,
    stop_procs,
)
from schema.migrate import upgrade
from services.api.keys import create_api_key
from services.collector.registry import DATA_TYPES
from shared.names import Names

SERVICES = ("writer", "alerts", "api", "watcher", "collector")
READS = ("/devices/{d}", "/devices/{d}/data/system_metrics", "/devices/{d}/containers", "/devices/{d}/metrics",
         "/devices/{d}/timeline", "/devices/{d}/config", "/devices/{d}/network", "/alerts?device={d}")


async def api_load(base: str, key: str, devices: list[str], concurrency: int, stop: asyncio.Event,
                   counts: dict[str, int]) -> None:
    """``concurrency`` clients reading until ``stop``; one more forcing container refreshes."""
    rng = random.Random(0)
    async with httpx.AsyncClient(base_url=base, timeout=30, headers={"Authorization": f"Bearer {key}"}) as client:
        async def reader() -> None:
            while not stop.is_set():
                path = rng.choice(READS).format(d=rng.choice(devices))
                try:
                    r = await client.get(path)
                    k = str(r.status_code)
                except httpx.HTTPError as exc:
                    k = type(exc).__name__
                counts[k] = counts.get(k, 0) + 1

        async def refresher() -> None:
            while not stop.is_set():
                try:
                    r = await client.get(f"/devices/{rng.choice(devices)}/data/containers",
                                         params={"force_refresh": "true"})
                    k = f"refresh {r.status_code}"
                except httpx.HTTPError as exc:
                    k = f"refresh {type(exc).__name__}"
                counts[k] = counts.get(k, 0) + 1
                await asyncio.sleep(0.5)

        await asyncio.gather(*(reader() for _ in range(concurrency)), refresher())


async def wait_ready(base: str, proc, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    async with httpx.AsyncClient(base_url=base, timeout=5) as client:
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                raise RuntimeError(f"api exited with {proc.returncode}")
            try:
                if (await client.get("/ready")).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            await asyncio.sleep(0.3)
    raise RuntimeError("the API did not become ready")


async def bench(args) -> None:
    intervals = {t: float(min(m.INTERVAL_S, args.max_interval)) for t, m in DATA_TYPES.items()}
    with servers() as (nats_srv, pg, tmp):
        await asyncio.to_thread(upgrade, pg.url)
        key, _ = await create_api_key(pg.url, "admin", "bench")
        env = service_env(nats_srv.url, tmp, pg.url)
        (tmp / "no-default-paths").mkdir()
        with Simulators(tmp, args.hosts, args.simulators, env, change_every=args.change_every) as sim:
            api_port = free_port()
            env = {**env, **sim.ssh_env(), **service_env(
                nats_srv.url, tmp, pg.url, api_port=api_port, collector_interval_overrides=intervals,
                freshness_overrides={t: int(v) for t, v in intervals.items()},
                collector_first_poll_within_s=args.warmup / 2, ssh_connect_timeout_s=30,
                # the defaults globs would read this machine's /etc once per host: only the hosts' own files
                watcher_root_prefix=str(tmp / "no-default-paths"))}
            procs = {name: start_service(name, env, tmp / f"{name}.log") for name in SERVICES}
            stop = asyncio.Event()
            counts: dict[str, int] = {}
            load = None
            try:
                base = f"http://127.0.0.1:{api_port}"
                await wait_ready(base, procs["api"])
                load = asyncio.create_task(api_load(base, key, sim.names(), args.concurrency, stop, counts))
                print(f"{args.hosts} simulated hosts; {', '.join(SERVICES)} running; API under "
                      f"{args.concurrency} readers + 1 refresher; warm-up {args.warmup:g}s", flush=True)
                peak = dict.fromkeys(SERVICES, 0.0)
                deadline = time.monotonic() + args.warmup
                while time.monotonic() < deadline:
                    await asyncio.sleep(1)
                    check_alive(procs, tmp)
                cpu0 = {n: cpu_seconds(p.pid) for n, p in procs.items()}
                t0 = time.monotonic()
                nc = await nats.connect(nats_srv.url)
                js = nc.jetstream()
                names = Names("bench")
                ev0 = {k: (await js.stream_info(getattr(names, f"stream_{k}"))).state.messages
                       for k in ("collected", "config")}
                while time.monotonic() < t0 + args.seconds:
                    await asyncio.sleep(1)
                    check_alive(procs, tmp)
                    for n, p in procs.items():
                        peak[n] = max(peak[n], rss_mib(p.pid))
                end = {n: rss_mib(p.pid) for n, p in procs.items()}
                peak = {n: max(peak[n], end[n]) for n in SERVICES}
                elapsed = time.monotonic() - t0
                cpu = {n: (cpu_seconds(p.pid) - cpu0[n]) / elapsed * 100 for n, p in procs.items()}
                ev1 = {k: (await js.stream_info(getattr(names, f"stream_{k}"))).state.messages
                       for k in ("collected", "config")}
                await nc.close()
            finally:
                stop.set()
                if load is not None:
                    await asyncio.gather(load, return_exceptions=True)
                stop_procs(list(procs.values()))

    events = {k: ev1[k] - ev0[k] for k in ev0}
    reads = sum(n for k, n in counts.items() if not k.startswith("refresh"))
    refreshes = sum(n for k, n in counts.items() if k.startswith("refresh"))
    failed = sum(n for k, n in counts.items() if not k.endswith("200"))
    print(f"in {elapsed:.0f}s: {events['collected']} collected and {events['config']} config events; "
          f"API answers {dict(sorted(counts.items()))}")
    print(f"{'service':10} {'peak MiB':>9} {'end MiB':>8} {'CPU %':>6}")
    for n in SERVICES:
        print(f"{n:10} {peak[n]:9.1f} {end[n]:8.1f} {cpu[n]:6.1f}")
    cond = (f"{args.hosts} simulated hosts, every data type every min(interval, {args.max_interval:g}s), a file "
            f"changed per host every {args.change_every:g}s; {elapsed:.0f}s after a {args.warmup:g}s warm-up: "
            f"{events['collected']} collected + {events['config']} config events, {reads} API reads "
            f"({args.concurrency} clients) + {refreshes} refreshes, {failed} answers not 200")
    for n in SERVICES:
        record(f"service_rss_{n}_peak_mib", peak[n], "MiB", RSS_BUDGET_MIB, cond + f"; CPU {cpu[n]:.0f}% of a core")
        record(f"service_rss_{n}_end_mib", end[n], "MiB", RSS_BUDGET_MIB, cond)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    load_arguments(parser)
    parser.add_argument("--change-every", type=float, default=20, help="seconds between file changes per host")
    parser.add_argument("--concurrency", type=int, default=4, help="API readers")
    asyncio.run(bench(parser.parse_args()))


if __name__ == "__main__":
    main()
