"""Fan-out of the collector: N simulated hosts polled for containers every 30 s over SSH.

For each fleet size in ``--hosts``: starts a nats-server and `infrawatch simulate` children
serving a share of the hosts each (their CPU is not counted as the collector's), which register
the hosts as devices. Runs the collector as its own process (`infrawatch collector`, containers
only), waits one interval while the first polls spread over it and then until every host is
connected (at most six intervals more) and one interval after that, then measures ``--cycles``
intervals: polls/s (limit: hosts / interval), the collector's CPU % of one core and CPU ms per
poll, its peak RSS and the SSH connections it opened (limit: one per host). With several sizes
it prints the curve: each size's poll rate against the ideal (goal >= 0.95, below one core) and
its CPU per poll against the smallest size's (goal <= 1.5). ``--profile DIR`` records the
collector with py-spy over the measured window (collapsed stacks, one file per size).

    .venv/bin/python bench/collector_fanout.py [--hosts 1000 3000 5000] [--simulators 4] [--interval 30] [--cycles 3]
"""

from __future__ import annotations

import argparse
import asyncio
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import nats
import psutil

from bench import common
from shared import events
from shared.names import Names

PERF_INTERVAL_S = 2.0  # how often the collector brings its connection counters to /metrics


def open_connections(pid: int, first_port: int, hosts: int) -> int:
    """TCP connections of ``pid`` established to the simulated hosts' ports."""
    try:
        conns = psutil.Process(pid).net_connections(kind="tcp")
    except psutil.Error:
        return -1
    return sum(1 for c in conns if c.raddr and first_port <= c.raddr.port < first_port + hosts
               and c.status == psutil.CONN_ESTABLISHED)


async def bench(args, hosts: int) -> dict:
    with common.servers(postgres=False) as (nats_srv, _, tmp):
        env = common.service_env(nats_srv.url, tmp)
        with common.Simulators(tmp, hosts, args.simulators, env) as sim:
            names = Names("bench")
            nc = await nats.connect(nats_srv.url)
            polls = {"n": 0, "errors": 0, "skipped": 0}
            ended: list[float] = []

            async def on_event(msg) -> None:
                ev = events.decode(msg.data)
                if getattr(ev, "skipped_fresh", False):  # an event, but no collection
                    polls["skipped"] += 1
                    return
                polls["n"] += 1
                ended.append(ev.occurred_at.timestamp())  # counted by when it happened, not when it arrived
                if ev.status != "success":
                    polls["errors"] += 1
                    if polls["errors"] <= 3:
                        print(f"  {ev.device}: {ev.status}: {ev.error}", file=sys.stderr)

            await nc.subscribe(names.all("collected"), cb=on_event)
            port = common.free_port()
            cenv = {**env, **sim.ssh_env(), **common.service_env(
                nats_srv.url, tmp, collector_data_types=["containers"],
                collector_interval_overrides={"containers": args.interval},
                freshness_overrides={"containers": int(args.interval)},
                collector_first_poll_within_s=args.interval,  # spread the fleet over one interval
                collector_max_concurrent=256, ssh_connect_timeout_s=30, metrics_port=port,
                perf_interval_s=PERF_INTERVAL_S)}
            collector = common.start_service("collector", cenv, tmp / "collector.log")
            procs = {"collector": collector}
            try:
                print(f"{hosts} hosts on {sim.processes} simulator processes, containers every "
                      f"{args.interval:g}s; warming up for one interval...", flush=True)
                await asyncio.sleep(args.interval)
                warm = await connected(port, hosts, args.interval * 6, procs, tmp)
                print(f"  {warm['connected']:.0f} of {hosts} connections after {warm['seconds']:.0f} s of warm-up; "
                      "one more interval for the polls delayed by the connects to catch up", flush=True)
                await asyncio.sleep(args.interval)
                spy = profile(args, collector.pid, hosts)
                w0, cpu0, t0, sim0 = time.time(), common.cpu_seconds(collector.pid), time.monotonic(), sim.cpu_seconds()
                peak = 0.0
                end = t0 + args.interval * args.cycles
                while time.monotonic() < end:
                    await asyncio.sleep(1)
                    peak = max(peak, common.rss_mib(collector.pid))
                common.check_alive(procs, tmp)
                w1, cpu1, t1, sim1 = time.time(), common.cpu_seconds(collector.pid), time.monotonic(), sim.cpu_seconds()
                opened = open_connections(collector.pid, sim.base_port, hosts)
                if spy is not None:
                    spy.wait()
                await asyncio.sleep(PERF_INTERVAL_S + 0.5)  # counters reach /metrics every perf interval
                drained = time.monotonic() + 60  # events of the window still on their way to this process
                while not (ended and max(ended[-100:]) >= w1) and time.monotonic() < drained:
                    await asyncio.sleep(0.5)
                m = common.scrape(port)
            finally:
                common.stop_procs([collector])
                await nc.close()

    elapsed = t1 - t0
    polled = sum(1 for x in ended if w0 <= x < w1)
    rate = polled / elapsed
    ideal = hosts / args.interval
    cpu = (cpu1 - cpu0) / elapsed * 100
    per_poll_ms = (cpu1 - cpu0) / max(polled, 1) * 1000
    created = m.get("infrawatch_ssh_connections_created_total", 0)
    reused = m.get("infrawatch_ssh_connections_reused_total", 0)
    commands = m.get("infrawatch_ssh_commands_executed_total", 0)
    print(f"hosts                {hosts}")
    print(f"polls/s              {rate:.2f}  (ideal {ideal:.2f}; ratio {rate / ideal:.3f})")
    print(f"polls not success    {polls['errors']} (of {polls['n']}; {polls['skipped']} skipped as fresh)")
    print(f"collector CPU        {cpu:.1f} % of one core, {per_poll_ms:.2f} ms per poll"
          f"   (simulators: {(sim1 - sim0) / elapsed * 100:.0f} %)")
    print(f"collector RSS        {peak:.0f} MiB peak")
    print(f"connections opened   {created:.0f}  (reused {reused:.0f}; {opened} open at the end)")
    print(f"commands executed    {commands:.0f}", flush=True)
    cond = (f"{hosts} simulated hosts on {sim.processes} simulator processes, containers every "
            f"{args.interval:g}s, {args.cycles} intervals measured after one; {polls['errors']} of {polls['n']} "
            f"polls not success")
    suffix = "" if len(args.hosts) == 1 or hosts == 1000 else f"_{hosts}"
    common.record(f"collector_fanout_polls_per_s{suffix}", rate, "polls/s", ideal, cond)
    common.record(f"collector_fanout_cpu_pct{suffix}", cpu, "% of one core", 100, cond)
    common.record(f"collector_fanout_rss_mib{suffix}", peak, "MiB", common.RSS_BUDGET_MIB, cond + "; peak over the measured intervals")
    common.record(f"collector_fanout_connections_opened{suffix}", created, "connections", hosts,
           cond + f"; over the whole run; {reused:.0f} reused, {opened} open at the end")
    return {"hosts": hosts, "rate": rate, "ideal": ideal, "cpu": cpu, "per_poll_ms": per_poll_ms, "cond": cond}


async def connected(port: int, hosts: int, limit_s: float, procs, tmp) -> dict:
    """Wait (at most ``limit_s``) until the collector has a connection to every host: the
    measured intervals are the steady state, not the first connects of the fleet."""
    start = time.monotonic()
    created = 0.0
    while time.monotonic() - start < limit_s:
        common.check_alive(procs, tmp)
        try:
            created = common.scrape(port).get("infrawatch_ssh_connections_created_total", 0)
        except OSError:
            created = 0.0
        if created >= hosts:
            break
        await asyncio.sleep(PERF_INTERVAL_S)
    return {"connected": created, "seconds": time.monotonic() - start}


def profile(args, pid: int, hosts: int):
    """py-spy over the measured window, when asked for (``--profile DIR``)."""
    if not args.profile:
        return None
    out = Path(args.profile) / f"collector-{hosts}.txt"  # collapsed stacks, for any flame graph tool
    out.parent.mkdir(parents=True, exist_ok=True)
    spy = Path(sys.executable).parent / "py-spy"
    return subprocess.Popen([str(spy), "common.record", "-p", str(pid), "-d", str(int(args.interval * args.cycles)),
                             "-o", str(out), "--format", "raw", "--nonblocking"], stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)


def curve(results: list[dict]) -> None:
    """Each size against the ideal rate, and its CPU per poll against the smallest size's."""
    base = min(results, key=lambda r: r["hosts"])
    print("\nhosts   polls/s  ideal    rate/ideal  CPU %   ms/poll  ms/poll vs " + str(base["hosts"]))
    for r in sorted(results, key=lambda r: r["hosts"]):
        growth = r["per_poll_ms"] / base["per_poll_ms"] if base["per_poll_ms"] else float("nan")
        print(f"{r['hosts']:>5}  {r['rate']:>8.2f}  {r['ideal']:>6.2f}  {r['rate'] / r['ideal']:>10.3f}  "
              f"{r['cpu']:>5.1f}  {r['per_poll_ms']:>8.2f}  {growth:>8.2f}")
        if r is not base:
            common.record(f"collector_fanout_cpu_per_poll_growth_{r['hosts']}", growth, f"x of {base['hosts']} hosts", 1.5,
                   f"CPU per poll at {r['hosts']} hosts / at {base['hosts']} hosts ({base['per_poll_ms']:.2f} ms); "
                   + r["cond"])
    print("goals: rate/ideal >= 0.95 below 100 % of one core; ms/poll growth <= 1.5", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--hosts", type=int, nargs="+", default=[1000, 3000, 5000])
    parser.add_argument("--simulators", type=int, default=4, help="simulator processes")
    parser.add_argument("--interval", type=float, default=30.0)
    parser.add_argument("--cycles", type=int, default=3)
    parser.add_argument("--profile", help="a directory for py-spy flame graphs of the collector")
    args = parser.parse_args()
    results = [asyncio.run(bench(args, n)) for n in args.hosts]
    if len(results) > 1:
        curve(results)


if __name__ == "__main__":
    main()
