"""Three watcher processes share 60 simulated hosts: each host is watched by exactly one of them,
and when one is killed its hosts are taken over, a change made meanwhile published exactly once."""

from __future__ import annotations

import asyncio
import hashlib
import json
import random
import signal
import time
import uuid
from collections import Counter
from datetime import datetime
from pathlib import Path

import msgspec
import psutil
import pytest

from services.simulator import Simulator
from services.simulator.hosts import change_one
from services.watcher.settings import WatcherSettings
from services.watcher.state import MEMBERS_PREFIX, status_key
from shared import events
from shared.names import Names
from shared.runtime.bootstrap import ensure
from shared.runtime.nats_conn import connect
from tests.util import start_service, stream_events, wait_until

pytestmark = pytest.mark.ssh

HOSTS = 60
FILES_PER_HOST = 3  # the simulator's nginx conf, compose file and unit
INSTANCES = ("w1", "w2", "w3")
HEARTBEAT_S = 2.0
WAIT_S = 180  # bounds waits on a shared 2-core machine; not a performance assertion


def watch_streams() -> Counter:
    """Running inotifywait processes per simulated host (each watcher runs one per host here:
    the hosts' globs all lie in flat directories)."""
    out: Counter = Counter()
    for p in psutil.process_iter(["name"]):
        if p.info["name"] != "inotifywait":
            continue
        try:
            host = p.environ().get("SIMULATED_HOST")
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            continue
        if host:
            out[host] += 1
    return out


async def test_three_watchers_share_60_hosts_and_take_over_a_killed_one(nats_url, tmp_path) -> None:
    prefix = f"t{uuid.uuid4().hex[:10]}"
    names = Names(prefix)
    (tmp_path / "empty-root").mkdir()
    async with Simulator(HOSTS, tmp_path / "sim") as sim:
        settings = WatcherSettings(nats_url=nats_url, subject_prefix=prefix, data_dir=tmp_path / "data",
                                   database_url="postgresql://unused/unused")
        env = {**sim.settings_env(),
               "INFRAWATCH_WATCHER_ROOT_PREFIX": str(tmp_path / "empty-root"),  # the defaults match nothing
               "INFRAWATCH_WATCHER_HEARTBEAT_S": str(HEARTBEAT_S),
               "INFRAWATCH_WATCHER_MEMBER_TIMEOUT_S": str(1.5 * HEARTBEAT_S),
               "INFRAWATCH_METRICS_PORT": "-1", "INFRAWATCH_SSH_CONNECT_TIMEOUT_S": "30"}
        nc = await connect(settings, "test")
        js = nc.jetstream()
        await ensure(js, settings)
        kv = await js.key_value(names.watch_state_bucket)
        await sim.register(js, names)
        procs = {name: await start_service("watcher", settings, tmp_path / f"{name}.log",
                                           {**env, "INFRAWATCH_INSTANCE": name}) for name in INSTANCES}
        try:
            async def statuses() -> dict[str, dict]:
                out = {}
                for h in sim.hosts:
                    try:
                        out[h.name] = msgspec.json.decode((await kv.get(status_key(h.name))).value)
                    except Exception:
                        pass
                return out

            async def settled() -> dict[str, str] | None:
                """host -> instance, once every host has exactly one watch stream, its baseline is
                published, and the three instances each watch some hosts."""
                st = await statuses()
                streams = watch_streams()
                owners = {h: s["instance"] for h, s in st.items()}
                why[:] = [len(st), {h.name: streams[h.name] for h in sim.hosts if streams[h.name] != 1},
                          {h: (s["files"], s["error"]) for h, s in st.items() if s["files"] != FILES_PER_HOST
                           or s["error"]}, Counter(owners.values())]
                bad = [h.name for h in sim.hosts if streams[h.name] != 1]
                if bad:
                    why.append(_describe(bad[0]))
                if len(st) < HOSTS or any(streams[h.name] != 1 for h in sim.hosts):
                    return None
                if any(s["files"] != FILES_PER_HOST or s["error"] for s in st.values()):
                    return None
                return owners if set(owners.values()) == set(INSTANCES) else None

            why: list = []

            try:
                owners = await wait_until(settled, timeout=WAIT_S, interval=0.5, what="three watchers sharing the hosts")
            except AssertionError as exc:
                raise AssertionError(f"{exc}: {why}") from None
            members = [k for k in await kv.keys() if k.startswith(MEMBERS_PREFIX)]
            assert len(members) == len(INSTANCES), members
            assert all(n == 1 for n in watch_streams().values()), "each host is watched by exactly one watcher"

            # kill -9 one watcher: it cannot leave the member set or stop anything
            victim = "w3"
            lost = sorted(h for h, i in owners.items() if i == victim)
            kept = sorted(h for h, i in owners.items() if i != victim)[:5]
            procs[victim].send_signal(signal.SIGKILL)
            await procs[victim].wait()
            killed_at, killed_wall = time.monotonic(), time.time()
            rng = random.Random(1)
            changed = {}
            for name in lost + kept:  # changes made while the victim's hosts have no watcher
                path = change_one(sim.host(name), rng)
                changed[str(path)] = (name, path.read_bytes())

            async def published() -> bool:
                got = {(ev.path, ev.sha256) for ev in seen}
                return all((p, _sha(data)) in got for p, (_, data) in changed.items())

            seen: list = []

            async def on_msg(msg) -> None:
                seen.append(events.decode(msg.data))

            await js.subscribe(names.all("config"), ordered_consumer=True, cb=on_msg)
            await wait_until(published, timeout=WAIT_S, interval=0.2, what="every change published")
            took = time.monotonic() - killed_at
            noticed = [_noticed(tmp_path / f"{n}.log", victim, killed_wall) for n in INSTANCES if n != victim]
            print(f"\nkill -9 of {victim} noticed after {', '.join(f'{t:.1f}' for t in noticed)} s; its {len(lost)} "
                  f"hosts watched again and their changes published after {took:.1f} s "
                  f"(heartbeat {HEARTBEAT_S} s, member timeout {1.5 * HEARTBEAT_S} s)")

            async def one_stream_each() -> bool:
                st = await statuses()
                return all(watch_streams()[h.name] == 1 for h in sim.hosts) and \
                    all(st[h]["instance"] != victim for h in lost)

            await wait_until(one_stream_each, timeout=WAIT_S, interval=0.5, what="one watcher per host again")
            await asyncio.sleep(3 * HEARTBEAT_S)  # let a late or second publication arrive, if any
        finally:
            for p in procs.values():
                if p.returncode is None:
                    p.send_signal(signal.SIGTERM)
            for p in procs.values():
                await asyncio.wait_for(p.wait(), 60)
        everything = await stream_events(js, names.stream_config, names.all("config"))
        await nc.close()

    versions = Counter((ev.path, ev.sha256) for ev in everything)
    assert [v for v, n in versions.items() if n > 1] == [], "no version of a file is published twice"
    assert sum(ev.change_type == "CREATE" for ev in everything) == HOSTS * FILES_PER_HOST, "one baseline per file"
    for path, (host, data) in changed.items():
        evs = [ev for ev in everything if ev.path == path and ev.sha256 == _sha(data)]
        assert len(evs) == 1 and evs[0].change_type == "MODIFY", (path, evs)
        if host in lost:
            assert evs[0].instance != victim, "the killed watcher's host was taken over"
    assert all(p.returncode in (0, -signal.SIGKILL) for p in procs.values()), \
        {n: p.returncode for n, p in procs.items()}
    logs = {n: (tmp_path / f"{n}.log").read_text(errors="replace") for n in INSTANCES}
    assert all("Traceback" not in text for text in logs.values()), json.dumps(logs)[:4000]


def _describe(host: str) -> list:
    out = []
    for p in psutil.process_iter(["name", "cmdline", "ppid", "create_time"]):
        try:
            if p.info["name"] == "inotifywait" and p.environ().get("SIMULATED_HOST") == host:
                chain = [(q.pid, (q.cmdline() or [""])[0][:30], len(q.cmdline())) for q in p.parents()[:4]]
                out.append((p.pid, p.info["cmdline"][-3:], round(time.time() - p.info["create_time"], 1), chain))
        except psutil.Error:
            pass
    return out


def _noticed(log: Path, victim: str, after: float) -> float:
    """Seconds from ``after`` to the first member set without ``victim`` in a watcher's log."""
    for line in log.read_text(errors="replace").splitlines():
        if "watcher instances:" in line and f"{victim}-" not in line:
            at = datetime.strptime(line[:23], "%Y-%m-%d %H:%M:%S,%f").timestamp()
            if at >= after:
                return at - after
    return float("nan")


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()
