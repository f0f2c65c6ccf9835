"""Fan-out of the collector: N simulated hosts polled for containers every 30 s over SSH.

Starts a nats-server and `infrawatch simulate` children serving a share of the hosts each
(their CPU is not counted as the collector's), which register the hosts as devices. Runs the
collector as its own process (`infrawatch collector`, containers only), waits one interval
while the first polls spread over it, then measures ``--cycles`` intervals: polls/s (limit:
hosts / interval), the collector's CPU % of one core, its peak RSS and the SSH connections it
opened (limit: one per host, from its /metrics counters).

    .venv/bin/python bench/collector_fanout.py [--hosts 1000] [--simulators 4] [--interval 30] [--cycles 3]
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import nats  # noqa: E402
import psutil  # noqa: E402

from bench.common import (RSS_BUDGET_MIB, Simulators, check_alive, cpu_seconds, free_port, record,  # noqa: E402
                          rss_mib, scrape, servers, service_env, start_service, stop_procs)
from shared import events  # noqa: E402
from shared.names import Names  # noqa: E402

PERF_INTERVAL_S = 2.0  # how often the collector brings its connection counters to /metrics


def open_connections(pid: int, first_port: int, hosts: int) -> int:
    """TCP connections of ``pid`` established to the simulated hosts' ports."""
    try:
        conns = psutil.Process(pid).net_connections(kind="tcp")
    except psutil.Error:
        return -1
    return sum(1 for c in conns if c.raddr and first_port <= c.raddr.port < first_port + hosts
               and c.status == psutil.CONN_ESTABLISHED)


async def bench(args) -> None:
    with servers(postgres=False) as (nats_srv, _, tmp):
        env = service_env(nats_srv.url, tmp)
        with Simulators(tmp, args.hosts, args.simulators, env) as sim:
            names = Names("bench")
            nc = await nats.connect(nats_srv.url)
            polls = {"n": 0, "errors": 0}

            async def on_event(msg) -> None:
                ev = events.decode(msg.data)
                polls["n"] += 1
                if ev.status != "success":
                    polls["errors"] += 1
                    if polls["errors"] <= 3:
                        print(f"  {ev.device}: {ev.status}: {ev.error}", file=sys.stderr)

            await nc.subscribe(names.all("collected"), cb=on_event)
            port = free_port()
            cenv = {**env, **sim.ssh_env(), **service_env(
                nats_srv.url, tmp, collector_data_types=["containers"],
                collector_interval_overrides={"containers": args.interval},
                freshness_overrides={"containers": int(args.interval)},
                collector_first_poll_within_s=args.interval,  # spread the fleet over one interval
                collector_max_concurrent=256, ssh_connect_timeout_s=30, metrics_port=port,
                perf_interval_s=PERF_INTERVAL_S)}
            collector = start_service("collector", cenv, tmp / "collector.log")
            procs = {"collector": collector}
            try:
                print(f"{args.hosts} hosts on {sim.processes} simulator processes, containers every "
                      f"{args.interval:g}s; warming up for one interval...", flush=True)
                await asyncio.sleep(args.interval)
                check_alive(procs, tmp)
                n0, cpu0, t0, sim0 = polls["n"], cpu_seconds(collector.pid), time.monotonic(), sim.cpu_seconds()
                peak = 0.0
                end = t0 + args.interval * args.cycles
                while time.monotonic() < end:
                    await asyncio.sleep(1)
                    peak = max(peak, rss_mib(collector.pid))
                check_alive(procs, tmp)
                n1, cpu1, t1, sim1 = polls["n"], cpu_seconds(collector.pid), time.monotonic(), sim.cpu_seconds()
                opened = open_connections(collector.pid, sim.base_port, args.hosts)
                await asyncio.sleep(PERF_INTERVAL_S + 0.5)  # counters reach /metrics every perf interval
                m = scrape(port)
            finally:
                stop_procs([collector])
                await nc.close()

    elapsed = t1 - t0
    rate = (n1 - n0) / elapsed
    ideal = args.hosts / args.interval
    cpu = (cpu1 - cpu0) / elapsed * 100
    created = m.get("infrawatch_ssh_connections_created_total", 0)
    reused = m.get("infrawatch_ssh_connections_reused_total", 0)
    commands = m.get("infrawatch_ssh_commands_executed_total", 0)
    print(f"hosts                {args.hosts}")
    print(f"polls/s              {rate:.2f}  (ideal {ideal:.2f})")
    print(f"polls not success    {polls['errors']} (of {polls['n']})")
    print(f"collector CPU        {cpu:.1f} % of one core   (simulators: {(sim1 - sim0) / elapsed * 100:.0f} %)")
    print(f"collector RSS        {peak:.0f} MiB peak")
    print(f"connections opened   {created:.0f}  (reused {reused:.0f}; {opened} open at the end)")
    print(f"commands executed    {commands:.0f}")
    cond = (f"{args.hosts} simulated hosts on {sim.processes} simulator processes, containers every "
            f"{args.interval:g}s, {args.cycles} intervals measured after one; {polls['errors']} of {polls['n']} "
            f"polls not success")
    record("collector_fanout_polls_per_s", rate, "polls/s", ideal, cond)
    record("collector_fanout_cpu_pct", cpu, "% of one core", 100, cond)
    record("collector_fanout_rss_mib", peak, "MiB", RSS_BUDGET_MIB, cond + "; peak over the measured intervals")
    record("collector_fanout_connections_opened", created, "connections", args.hosts,
           cond + f"; over the whole run; {reused:.0f} reused, {opened} open at the end")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--hosts", type=int, default=1000)
    parser.add_argument("--simulators", type=int, default=4, help="simulator processes")
    parser.add_argument("--interval", type=float, default=30.0)
    parser.add_argument("--cycles", type=int, default=3)
    asyncio.run(bench(parser.parse_args()))


if __name__ == "__main__":
    main()
