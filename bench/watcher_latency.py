"""Latency of the watcher over SSH: from a file write to its event on the subject, and to its
row in the database. Starts its own nats-server, PostgreSQL and sshd (this machine is the
device), runs the watcher and the writer in-process, writes files one at a time and prints
p50/p99. Both latencies are recorded against 1000 ms: changes are seen within a second.

    .venv/bin/python bench/watcher_latency.py [--count 200] [--mode inotifywait|python|poll] [--quiet-ms 200]

The figures include the debounce window (``--quiet-ms``): a change is published once its file
has been quiet that long.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import asyncpg
import msgspec
from nats.js.errors import KeyNotFoundError

from bench.common import record
from schema.migrate import upgrade
from services.watcher.service import run as run_watcher
from services.watcher.settings import WatcherSettings
from services.writer.service import run as run_writer
from shared import events
from shared.bootstrap import ensure
from shared.devices import register
from shared.embedded import NatsServer, PostgresServer
from shared.events import DeviceSpec
from shared.names import Names
from shared.nats_conn import connect
from tests.sshd import start_ssh_server

MISSING = "/nonexistent/bin/missing-program"
LIMIT_MS = 1000.0  # a change is seen within a second


def pct(values: list[float], p: float) -> float:
    s = sorted(values)
    return s[min(len(s) - 1, max(0, round(p / 100 * len(s) + 0.5) - 1))]


async def bench(work: Path, count: int, mode: str, quiet_ms: int) -> None:
    nats = NatsServer(work / "nats").start()
    pg = PostgresServer(work / "pg").start()
    (work / "ssh").mkdir()
    sshd = start_ssh_server(work / "ssh")
    try:
        await asyncio.to_thread(upgrade, pg.url)
        root = work / "root"
        (root / "etc/nginx/conf.d").mkdir(parents=True)
        overrides = {"python": {"watcher_inotifywait": MISSING},
                     "poll": {"watcher_inotifywait": MISSING, "watcher_python": MISSING}}.get(mode, {})
        settings = WatcherSettings(
            nats_url=nats.url, database_url=pg.url, subject_prefix="bench", data_dir=work, instance="bench",
            ssh_client_keys=[sshd.client_key], ssh_known_hosts=sshd.known_hosts, writer_batch_wait_s=0.2,
            watcher_root_prefix=str(root), watcher_quiet_ms=quiet_ms, watcher_poll_interval_s=1.0, **overrides,
        )
        names = Names(settings.subject_prefix)
        nc = await connect(settings, "bench")
        js = nc.jetstream()
        await ensure(js, settings)
        arrived: dict[str, tuple[float, events.Event]] = {}

        async def on_msg(msg) -> None:
            ev = events.decode(msg.data)
            arrived[ev.path] = (time.time(), ev)  # type: ignore[attr-defined]

        await nc.subscribe(names.all("config"), cb=on_msg)
        stop = asyncio.Event()
        tasks = [asyncio.create_task(run_watcher(settings, stop)), asyncio.create_task(run_writer(settings, stop))]
        spec = DeviceSpec(id=uuid.uuid4(), name="bench", address=sshd.host, port=sshd.port, username=sshd.username)
        await register(js, names, spec, "bench", "bench")
        kv = await js.key_value(names.watch_state_bucket)
        while True:  # until the device is watched
            try:
                st = msgspec.json.decode((await kv.get(f"{spec.name}._status")).value)
                if st.get("watch_mode") and st.get("scans", 0) >= 1:
                    break
            except KeyNotFoundError:
                pass
            await asyncio.sleep(0.1)
        print(f"device watched over {sshd.kind} ssh with {st['watch_mode']}; {count} writes, quiet {quiet_ms} ms")

        db = await asyncpg.connect(pg.url)
        to_event, to_row, reported = [], [], []
        for i in range(count):
            path = root / "etc/nginx/conf.d" / f"site{i}.conf"
            t0 = time.time()
            path.write_text(f"server {{ server_name s{i}.example.org; listen {8000 + i}; }}\n")
            while str(path) not in arrived:
                await asyncio.sleep(0.002)
            t1, ev = arrived[str(path)]
            while not await db.fetchval("SELECT 1 FROM configuration_snapshots WHERE event_id = $1", ev.event_id):
                await asyncio.sleep(0.005)
            t2 = time.time()
            to_event.append((t1 - t0) * 1000)
            to_row.append((t2 - t0) * 1000)
            reported.append(ev.detection_latency_ms)  # type: ignore[attr-defined]
        await db.close()
        for label, values in (("write -> event on subject", to_event), ("write -> row in database", to_row),
                              ("event's detection_latency_ms", reported)):
            print(f"{label:30s} p50 {pct(values, 50):7.1f} ms   p99 {pct(values, 99):7.1f} ms   "
                  f"mean {statistics.fmean(values):7.1f} ms   n={len(values)}")
        cond = (f"{count} file writes one at a time over {sshd.kind} ssh, watch mode {st['watch_mode']}, "
                f"quiet window {quiet_ms} ms included")
        for key, values in (("event", to_event), ("row", to_row)):
            for p in (50, 99):
                record(f"watcher_change_to_{key}_p{p}_ms", pct(values, p), "ms", LIMIT_MS, cond)
        stop.set()
        await asyncio.gather(*tasks)
        await nc.close()
    finally:
        sshd.stop()
        pg.stop()
        nats.stop()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--count", type=int, default=200)
    ap.add_argument("--mode", choices=["inotifywait", "python", "poll"], default="inotifywait")
    ap.add_argument("--quiet-ms", type=int, default=200)
    args = ap.parse_args()
    logging.basicConfig(level=logging.WARNING)
    with tempfile.TemporaryDirectory(prefix="iw-bench-") as d:
        work = Path(d)
        work.chmod(0o755)
        asyncio.run(bench(work, args.count, args.mode, args.quiet_ms))


if __name__ == "__main__":
    main()
