"""Fan-out of the collector: N hosts polled for containers every 30 s over SSH.

Starts its own nats-server and SSH servers (asyncssh, in separate processes so their CPU is
not counted as the collector's) that answer docker's commands with captured JSON (the
``docker-24-compose`` sample: 4 containers). Registers N devices spread over the servers, runs
the collector in this process (containers only) for ``--cycles`` intervals after a warm-up
cycle, and prints polls/s, the collector's CPU %, its RSS and the SSH connections it opened.

    .venv/bin/python bench/collector_fanout.py [--hosts 100] [--servers 4] [--interval 30] [--cycles 3]
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import multiprocessing
import sys
import tempfile
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import asyncssh
import psutil

from services.collector.capture import read
from services.collector.service import CollectorStats, run
from services.collector.settings import CollectorSettings
from shared import events
from shared.bootstrap import ensure
from shared.devices import register
from shared.embedded import NatsServer, free_port
from shared.events import DeviceSpec
from shared.names import Names
from shared.nats_conn import connect
from shared.transport import TransportPool

SAMPLE = ROOT / "tests" / "collector" / "testdata" / "containers" / "docker-24-compose.txt"


def serve(port: int, host_key: str, client_pub: str, ready) -> None:
    """An SSH server answering docker ps/stats/inspect from the captured sample (child process)."""
    outputs = read(SAMPLE.read_text())

    async def answer(process: asyncssh.SSHServerProcess) -> None:
        command = process.command or ""
        for key, words in (("ps", "docker ps"), ("stats", "docker stats"), ("inspect", "docker inspect")):
            if command.startswith(words):
                process.stdout.write(outputs[key].stdout.encode())
                process.exit(0)
                return
        process.stderr.write(b"sh: 1: command not found\n")
        process.exit(127)

    class Server(asyncssh.SSHServer):
        def begin_auth(self, username: str) -> bool:
            return True

    async def main() -> None:
        await asyncssh.create_server(
            Server, "127.0.0.1", port, server_host_keys=[host_key],
            authorized_client_keys=asyncssh.import_authorized_keys(client_pub), process_factory=answer,
            encoding=None, keepalive_interval=0,
        )
        ready.set()
        await asyncio.Event().wait()

    asyncio.run(main())


async def bench(args) -> None:
    tmp = Path(tempfile.mkdtemp(prefix="iw-fanout-"))
    nats = NatsServer(tmp / "nats").start()
    client_key = asyncssh.generate_private_key("ssh-ed25519")
    client_path = tmp / "id_ed25519"
    client_key.write_private_key(str(client_path))
    known = tmp / "known_hosts"
    servers, ports, lines = [], [], []
    for _ in range(args.servers):
        key = asyncssh.generate_private_key("ssh-ed25519")
        path = tmp / f"host_{len(ports)}"
        key.write_private_key(str(path))
        port = free_port()
        ready = multiprocessing.Event()
        proc = multiprocessing.Process(target=serve, args=(port, str(path),
                                       client_key.export_public_key().decode(), ready), daemon=True)
        proc.start()
        ready.wait(30)
        servers.append(proc)
        ports.append(port)
        lines.append(f"[127.0.0.1]:{port} {key.export_public_key().decode().strip()}")
    known.write_text("\n".join(lines) + "\n")

    settings = CollectorSettings(
        nats_url=nats.url, subject_prefix="bench", data_dir=tmp, instance="bench", ssh_client_keys=[client_path],
        ssh_known_hosts=known, collector_data_types=["containers"],
        collector_interval_overrides={"containers": args.interval},
        freshness_overrides={"containers": args.interval},
        collector_first_poll_within_s=args.interval,  # spread the fleet over one interval
        collector_max_concurrent=256, ssh_connect_timeout_s=30,
    )
    names = Names(settings.subject_prefix)
    nc = await connect(settings, "bench")
    js = nc.jetstream()
    await ensure(js, settings)
    for i in range(args.hosts):
        spec = DeviceSpec(id=uuid.uuid4(), name=f"host-{i:04d}", address="127.0.0.1", port=ports[i % len(ports)],
                          username="bench")
        await register(js, names, spec, "bench", "bench")

    polls = {"n": 0, "errors": 0}

    async def on_event(msg) -> None:
        ev = events.decode(msg.data)
        polls["n"] += 1
        if ev.status != "success":
            polls["errors"] += 1
            if polls["errors"] <= 3:
                print(f"  {ev.device}: {ev.status}: {ev.error}", file=sys.stderr)

    await nc.subscribe(names.all("collected"), cb=on_event)
    pool, stats, stop = TransportPool(), CollectorStats(), asyncio.Event()
    me = psutil.Process()
    task = asyncio.create_task(run(settings, stop, stats=stats, pool=pool))
    print(f"{args.hosts} hosts on {args.servers} SSH servers, containers every {args.interval:g}s; "
          f"warming up for one interval...")
    await asyncio.sleep(args.interval)
    n0, cpu0, t0 = polls["n"], me.cpu_times(), time.monotonic()
    await asyncio.sleep(args.interval * args.cycles)
    n1, cpu1, t1 = polls["n"], me.cpu_times(), time.monotonic()
    rss = me.memory_info().rss
    totals = pool.totals()
    elapsed = t1 - t0
    cpu = (cpu1.user + cpu1.system - cpu0.user - cpu0.system) / elapsed * 100
    print(f"hosts                {args.hosts}")
    print(f"polls/s              {(n1 - n0) / elapsed:.2f}  (expected {args.hosts / args.interval:.2f})")
    print(f"polls not success    {polls['errors']}")
    print(f"collector CPU        {cpu:.1f} % of one core")
    print(f"collector RSS        {rss / 2**20:.0f} MiB")
    print(f"connections opened   {totals['connections_created']}  (reused {totals['connections_reused']})")
    print(f"commands executed    {totals['commands_executed']}")
    stop.set()
    await asyncio.wait_for(task, 120)
    await nc.close()
    for proc in servers:
        proc.kill()
    nats.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--hosts", type=int, default=100)
    parser.add_argument("--servers", type=int, default=4)
    parser.add_argument("--interval", type=float, default=30.0)
    parser.add_argument("--cycles", type=int, default=3)
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    logging.getLogger("asyncssh").setLevel(logging.ERROR)
    asyncio.run(bench(args))


if __name__ == "__main__":
    main()
