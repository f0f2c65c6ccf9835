"""SSH connections the collector opens per host per hour, with every data type polled.

Starts a nats-server, `infrawatch simulate` children serving the hosts, and the collector as
its own process with all its data types, each polled every min(its interval, --max-interval)
seconds. After a warm-up (every host has connected and polled), it counts the connections the
collector creates during ``--seconds`` from its /metrics counters (the transport pool's
totals). Per host per hour = the first connection + the steady-state rate extrapolated to one
hour; the limit, 1, is one long-lived connection per host.

    .venv/bin/python bench/ssh_connections.py [--hosts 100] [--seconds 120] [--max-interval 60]
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import nats

from bench.common import (
    Simulators,
    check_alive,
    free_port,
    load_arguments,
    record,
    scrape,
    servers,
    service_env,
    start_service,
    stop_procs,
)
from services.collector.registry import DATA_TYPES
from shared import events
from shared.names import Names

PERF_INTERVAL_S = 1.0  # how often the collector brings its connection counters to /metrics
CREATED = "infrawatch_ssh_connections_created_total"
REUSED = "infrawatch_ssh_connections_reused_total"
COMMANDS = "infrawatch_ssh_commands_executed_total"


async def counters(port: int) -> dict[str, float]:
    """The collector's counters once a fresh sample has reached /metrics."""
    await asyncio.sleep(PERF_INTERVAL_S + 0.5)
    return await asyncio.to_thread(scrape, port)


async def bench(args) -> None:
    intervals = {t: float(min(m.INTERVAL_S, args.max_interval)) for t, m in DATA_TYPES.items()}
    with servers(postgres=False) as (nats_srv, _, tmp):
        env = service_env(nats_srv.url, tmp)
        with Simulators(tmp, args.hosts, args.simulators, env) as sim:
            nc = await nats.connect(nats_srv.url)
            polls: dict[str, int] = {}

            async def on_event(msg) -> None:
                status = events.decode(msg.data).status
                polls[status] = polls.get(status, 0) + 1

            await nc.subscribe(Names("bench").all("collected"), cb=on_event)
            port = free_port()
            cenv = {**env, **sim.ssh_env(), **service_env(
                nats_srv.url, tmp, collector_interval_overrides=intervals,
                freshness_overrides={t: int(v) for t, v in intervals.items()},
                collector_first_poll_within_s=args.warmup / 2, ssh_connect_timeout_s=30, metrics_port=port,
                perf_interval_s=PERF_INTERVAL_S)}
            collector = start_service("collector", cenv, tmp / "collector.log")
            try:
                print(f"{args.hosts} hosts, all {len(intervals)} data types (every "
                      f"{', '.join(f'{t} {v:g}s' for t, v in intervals.items())}); warm-up {args.warmup:g}s",
                      flush=True)
                await asyncio.sleep(args.warmup)
                check_alive({"collector": collector}, tmp)
                c0 = await counters(port)
                t0 = time.monotonic()
                await asyncio.sleep(args.seconds)
                check_alive({"collector": collector}, tmp)
                c1 = await counters(port)
                t1 = time.monotonic()
            finally:
                stop_procs([collector])
                await nc.close()

    elapsed = t1 - t0
    first = c0.get(CREATED, 0) / args.hosts
    steady = c1.get(CREATED, 0) - c0.get(CREATED, 0)
    per_hour = first + steady / args.hosts / elapsed * 3600
    commands = c1.get(COMMANDS, 0) - c0.get(COMMANDS, 0)
    bad = sum(n for s, n in polls.items() if s != "success")
    total = sum(polls.values())
    print(f"connections at warm-up end   {c0.get(CREATED, 0):.0f}  ({first:.2f} per host)")
    print(f"connections in {elapsed:.0f}s window   {steady:.0f}  (reused {c1.get(REUSED, 0) - c0.get(REUSED, 0):.0f})")
    print(f"commands in window           {commands:.0f}  ({commands / args.hosts / elapsed * 3600:.0f} per host per hour)")
    print(f"polls by status              {polls}")
    print(f"connections per host per hour {per_hour:.3f}")
    cond = (f"{args.hosts} simulated hosts, all data types every min(interval, {args.max_interval:g}s), "
            f"{elapsed:.0f}s measured after a {args.warmup:g}s warm-up; first connection + steady rate x 1 h "
            f"({steady:.0f} opened in the window, {commands:.0f} commands); {bad} of {total} polls not success")
    record("ssh_connections_per_host_per_hour", per_hour, "connections/host/h", 1, cond)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    load_arguments(parser)
    asyncio.run(bench(parser.parse_args()))


if __name__ == "__main__":
    main()
