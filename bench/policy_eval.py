"""Policy evaluator: change throughput, change -> violation latency, and a fleet re-evaluation.

Starts its own nats-server and PostgreSQL, migrates, seeds the default pack into
``config_policies`` as the API does, and runs the writer and one policy evaluator as
``infrawatch`` children; one device is registered. The changes are ``ConfigChanged`` events of
real corpus files (tests/corpus compose, nginx and systemd files), each decided by the watcher's
own ``changes.diff`` and built before any timing starts.

1. throughput: ``--events`` CREATEs, each of its own path, published at once; timed from the
   first publish until the durable consumer ``policy`` has acknowledged them all;
2. latency: ``--changes`` changes one at a time of one compose file, alternately with and
   without ``privileged: true`` (each fires or resolves ``compose-privileged``), from the publish
   to the ``ConfigViolation`` arriving on a core subscription of ``<prefix>.alert.>``;
3. fleet: one evaluation of every current file, requested on ``<prefix>.policy.evaluate`` (what
   ``POST /config/policies/evaluate`` sends).

    .venv/bin/python bench/policy_eval.py [--events 2000] [--changes 200]

No limits: the figures are recorded for comparison between runs.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
import uuid
from datetime import datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import asyncpg
import msgspec
import yaml
from nats.js.errors import NotFoundError
from sqlalchemy.ext.asyncio import create_async_engine

from bench.common import check_alive, pct, record, servers, service_env, start_service, stop_procs
from schema.migrate import upgrade
from services.api.policy_seed import default_pack, seed
from services.policy.fleet import Outcome
from shared import events
from shared.config_events import ConfigChanged
from shared.names import Names
from shared.policy_events import ConfigViolation
from shared.runtime import devices
from shared.runtime.bootstrap import ensure
from shared.runtime.nats_conn import connect
from shared.runtime.publish import publish_event
from shared.settings import Settings
from tests.policy.conftest import CORPUS, WatchedHost

PREFIX = "bench"
DEVICE = "policy-bench"
WINDOW = 200  # publishes in flight
SOURCES = {  # config type, corpus files, the path each copy gets
    "docker_compose": (lambda: sorted((CORPUS / "compose").rglob("*.y*ml")), "/srv/{i}-{stem}/docker-compose.yml"),
    "proxy_configs": (lambda: sorted(p for p in (CORPUS / "nginx").rglob("*") if p.is_file()),
                      "/etc/nginx/conf.d/{i}-{stem}.conf"),
    "systemd_units": (lambda: sorted(p for p in (CORPUS / "systemd").rglob("*") if p.is_file()
                                     and p.suffix in (".service", ".socket", ".timer", ".mount")),
                      "/etc/systemd/system/{i}-{stem}{suffix}"),
}


def creates(host: WatchedHost, n: int, at: datetime) -> list[ConfigChanged]:
    """``n`` CREATEs, a third of each type, cycling through its corpus files, each to a path of its own."""
    kinds = [(ctype, find(), path) for ctype, (find, path) in SOURCES.items()]
    out = []
    for i in range(n):
        ctype, files, path = kinds[i % len(kinds)]
        f = files[i // len(kinds) % len(files)]
        p = path.format(i=i, stem=f.stem.replace(".", "-"), suffix=f.suffix)
        out.append(host.change(ctype, p, f.read_bytes(), at + timedelta(milliseconds=i)))
    return out


def privileged_pair() -> tuple[bytes, bytes]:
    """A corpus compose file without ``privileged`` and the same with its first service privileged."""
    for f in sorted((CORPUS / "compose").rglob("docker-compose.y*ml")):
        try:
            doc = yaml.safe_load(f.read_text())
        except yaml.YAMLError:
            continue
        svcs = doc.get("services") if isinstance(doc, dict) else None
        if isinstance(svcs, dict) and svcs and all(isinstance(s, dict) and "privileged" not in s
                                                   for s in svcs.values()):
            plain = yaml.safe_dump(doc, sort_keys=False)
            next(iter(svcs.values()))["privileged"] = True
            return plain.encode(), yaml.safe_dump(doc, sort_keys=False).encode()
    raise RuntimeError("no compose file without privileged in the corpus")


async def wait_for(check, timeout: float, what: str, procs, logs: Path, interval: float = 0.05):
    deadline = time.monotonic() + timeout
    while not (result := await check()):
        check_alive(procs, logs)
        if time.monotonic() > deadline:
            raise RuntimeError(f"timed out waiting for {what}")
        await asyncio.sleep(interval)
    return result


async def bench(nats_url: str, pg_url: str, tmp: Path, n_events: int, n_changes: int) -> None:
    names = Names(PREFIX)
    engine = create_async_engine("postgresql+asyncpg://" + pg_url.split("://", 1)[1])
    policies = await seed(engine, default_pack())
    await engine.dispose()
    host = WatchedHost(DEVICE)
    t_base = events.utcnow().replace(microsecond=0) - timedelta(hours=1)
    batch = creates(host, n_events, t_base)
    kinds = {c: sum(ev.config_type == c for ev in batch) for c in SOURCES}
    plain, privileged = privileged_pair()

    env = service_env(nats_url, tmp / "data", pg_url, PREFIX)
    procs = {"writer": start_service("writer", env, tmp / "writer.log")}
    nc = await connect(Settings(nats_url=nats_url, subject_prefix=PREFIX), "bench")
    db = await asyncpg.connect(pg_url)
    try:
        js = nc.jetstream()
        violations: list[ConfigViolation] = []
        waiting: dict[uuid.UUID, asyncio.Future[float]] = {}

        async def on_alert(msg) -> None:
            t = time.perf_counter()
            ev = events.decode(msg.data)
            if not isinstance(ev, ConfigViolation):
                return
            violations.append(ev)
            ref = ev.introduced_by if ev.state == "fired" else ev.fixed_by
            fut = waiting.pop(ref.event_id, None) if ref and ev.policy == "compose-privileged" else None
            if fut and not fut.done():
                fut.set_result(t)

        await nc.subscribe(f"{PREFIX}.alert.>", cb=on_alert)
        await ensure(js, Settings(nats_url=nats_url, subject_prefix=PREFIX))
        await devices.register(js, names, events.DeviceSpec(id=host.id, name=host.name), "bench", "bench")
        await wait_for(lambda: db.fetchval("SELECT 1 FROM devices WHERE id = $1", host.id), 60,
                       "the writer to record the device", procs, tmp)
        procs["policy"] = start_service("policy", env, tmp / "policy.log")

        async def consumer_ready() -> bool:
            try:
                await js.consumer_info(names.stream_config, "policy")
                return True
            except NotFoundError:
                return False

        await wait_for(consumer_ready, 120, "the policy evaluator's consumer", procs, tmp, 0.2)
        await asyncio.sleep(1)  # its first (empty) fleet evaluation

        # 1. throughput
        print(f"{n_events} CREATEs ({', '.join(f'{v} {k}' for k, v in kinds.items())}), {policies} policies")
        subject = {c: names.config(host.name, c) for c in SOURCES}
        t0 = time.perf_counter()
        last = 0
        for i in range(0, n_events, WINDOW):
            acks = await asyncio.gather(*(publish_event(js, subject[ev.config_type], ev)
                                          for ev in batch[i:i + WINDOW]))
            last = max(last, *(a.seq for a in acks))
        published = time.perf_counter() - t0

        async def all_acked() -> bool:
            info = await js.consumer_info(names.stream_config, "policy")
            return info.ack_floor.stream_seq >= last and not info.num_ack_pending and not info.num_pending

        await wait_for(all_acked, 1800, "the evaluator to acknowledge every change", procs, tmp, 0.02)
        seconds = time.perf_counter() - t0
        opened = await db.fetchval("SELECT count(*) FROM config_violations")

        async def all_events() -> bool:
            return len(violations) >= opened

        await wait_for(all_events, 30, "the violation events", procs, tmp)
        rate = n_events / seconds
        cond = (f"{n_events} ConfigChanged CREATEs of corpus files ({', '.join(f'{v} {k}' for k, v in kinds.items())}), "
                f"the default pack ({policies} policies), one evaluator and the writer as processes")
        print(f"  published in {published:.2f} s; all acknowledged by 'policy' after {seconds:.2f} s: "
              f"{rate:,.0f} events/s; {opened} violations opened, {len(violations)} ConfigViolation events")
        record("policy_eval_events_per_s", rate, "events/s", None, cond + "; publish to the last acknowledgement")
        record("policy_eval_violations_opened", opened, "violations", None, cond)
        record("policy_eval_violation_events", len(violations), "events", None, cond)

        # 2. latency, one change at a time
        path = "/srv/privileged-bench/docker-compose.yml"
        at = events.utcnow()
        ms: list[float] = []
        for i in range(n_changes):
            ev = host.change("docker_compose", path, privileged if i % 2 == 0 else plain, at + timedelta(seconds=i))
            fut = waiting[ev.event_id] = asyncio.get_running_loop().create_future()
            t = time.perf_counter()
            await publish_event(js, subject["docker_compose"], ev)
            try:
                arrived = await asyncio.wait_for(fut, 60)
            except TimeoutError:
                check_alive(procs, tmp)
                raise RuntimeError(f"no ConfigViolation for change {i} within 60 s") from None
            ms.append((arrived - t) * 1000)
            await asyncio.sleep(0.02)
        p50, p99 = pct(ms, 50), pct(ms, 99)
        cond = (f"{n_changes} changes one at a time of one compose file, alternately with and without "
                f"privileged: true (fires / resolves compose-privileged), publish -> ConfigViolation on "
                f"{PREFIX}.alert.>, {len(batch)} files stored, one evaluator process")
        print(f"  change -> violation published: p50 {p50:.1f} ms, p99 {p99:.1f} ms (n={len(ms)})")
        record("policy_eval_change_to_violation_p50_ms", p50, "ms", None, cond)
        record("policy_eval_change_to_violation_p99_ms", p99, "ms", None, cond)

        # 3. the fleet again
        files = n_events + 1
        await wait_for(lambda: db.fetchval("SELECT count(*) = $1 FROM config_current", files), 600,
                       "the writer to store every file", procs, tmp, 0.2)
        t = time.perf_counter()
        reply = await nc.request(names.policy_evaluate, b"{}", timeout=1800)
        seconds = time.perf_counter() - t
        out = msgspec.json.decode(reply.data, type=Outcome)
        cond = (f"one fleet evaluation requested on {names.policy_evaluate} over {files} current files, the default "
                f"pack ({policies} policies), {out.files} files decided, {out.open} violations open")
        print(f"  fleet evaluation: {seconds:.2f} s, {files / seconds:,.0f} files/s ({out.files} files decided, "
              f"{out.opened} opened, {out.resolved} resolved, {out.open} open, failed {out.failed_policies})")
        record("policy_eval_fleet_s", seconds, "s", None, cond)
        record("policy_eval_fleet_files_per_s", files / seconds, "files/s", None, cond)
    finally:
        await db.close()
        await nc.close()
        stop_procs(list(procs.values()))


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--events", type=int, default=2000, help="CREATEs of the throughput run")
    p.add_argument("--changes", type=int, default=200, help="changes of the latency run, one at a time")
    args = p.parse_args()
    with servers() as (nats, pg, tmp):
        upgrade(pg.url)
        (tmp / "data").mkdir()
        asyncio.run(bench(nats.url, pg.url, tmp, args.events, args.changes))
    return 0


if __name__ == "__main__":
    sys.exit(main())
