"""Fleet configuration search: JSONPath over 10,000 current files, with and without the GIN index.

Starts its own nats-server and PostgreSQL, migrates, and fills ``config_current`` with parsed
documents made from the real corpus (tests/corpus: compose files, nginx confs, systemd units),
varied per row (images, tags, privileged flags, ports) so that the selective queries match a few
percent of the files. Then, after ANALYZE, each query runs as the API runs it
(``services.api.routes.fleet.run_search``: the bounded count and the first page, over SQLAlchemy
and asyncpg) sequentially, in three plans: the planner's choice, the GIN index (sequential scans
off) and no index (bitmap scans off, the only way a GIN index is read), and the ratio of the last
two. Last, wrk loads
``GET /config/search`` on the API (a real process). Run from the repository root:

    .venv/bin/python bench/config_search.py [--rows 10000] [--runs 200] [--seconds 10] [--connections 10]

Recorded: p99 of each query in the planner's plan and p50/p99 with and without the index (limit:
p99 100 ms), the no-index / index ratio, and the API's req/s and p99 under wrk.
"""

from __future__ import annotations

import argparse
import asyncio
import copy
import hashlib
import json
import random
import sys
import time
import uuid
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import asyncpg
import httpx
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession, create_async_engine

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench import wrk
from bench.api_bench import wait_ready
from bench.common import pct, record, servers, service_env, start_service, stop_procs, tail
from schema.migrate import upgrade
from services.api.keys import create_api_key
from services.api.routes.fleet import SearchFilter, run_search
from services.watcher.configtypes import config_type
from shared.policy_events import path_key
from shared.runtime.embedded import free_port

CORPUS = ROOT / "tests" / "corpus"
P99_LIMIT_MS = 100.0
PAGE_SIZE = 50
QUERIES = {
    "privileged": "$.services.* ? (@.privileged == true)",
    "image": '$.services.*.image ? (@ == "nginx:latest")',
}
IMAGES = ["nginx:1.25.{}", "postgres:16.{}", "redis:7.{}", "ghcr.io/app/web:2.{}", "traefik:v3.{}", "alpine:3.{}"]
COLUMNS = ("device_id", "path_key", "file_path", "config_type", "time", "snapshot_id", "event_id", "change_type",
           "content_hash", "parsed")


def corpus() -> dict[str, list[tuple[str, dict[str, Any]]]]:
    """(name, parsed data) of every corpus file the watcher's parsers read, by config type."""
    sources = {"docker_compose": sorted((CORPUS / "compose").rglob("*.y*ml")),
               "proxy_configs": sorted(p for p in (CORPUS / "nginx").rglob("*") if p.is_file()),
               "systemd_units": sorted(p for p in (CORPUS / "systemd").rglob("*") if p.is_file()
                                       and p.suffix in (".service", ".socket", ".timer", ".mount"))}
    out: dict[str, list[tuple[str, dict[str, Any]]]] = {}
    for ctype, files in sources.items():
        parse = config_type(ctype).parse
        assert parse is not None
        docs = []
        for f in files:
            try:
                docs.append((f.stem.replace(".", "-"), parse(f.read_text(errors="replace"), str(f))))
            except Exception:  # a file the parser refuses is no document
                continue
        out[ctype] = docs
    return out


def vary(ctype: str, doc: dict[str, Any], rng: random.Random) -> dict[str, Any]:
    """A copy of ``doc`` as another host might have it: for compose, other images (nginx:latest
    for about 3 % of the services) and a privileged service in about 2 % of the files."""
    doc = copy.deepcopy(doc)
    services = doc.get("services") if ctype == "docker_compose" else None
    if isinstance(services, dict):
        for svc in services.values():
            if not isinstance(svc, dict):
                continue
            svc["image"] = ("nginx:latest" if rng.random() < 0.03
                            else rng.choice(IMAGES).format(rng.randrange(10)))
            svc["privileged"] = False
        if services and rng.random() < 0.02:
            next(s for s in services.values() if isinstance(s, dict))["privileged"] = True
        doc["images"] = sorted({s["image"] for s in services.values() if isinstance(s, dict)})
    else:
        doc["listen_extra"] = [str(rng.choice((80, 443, 8080, 8443)))]
    return doc


def rows(n: int, seed: int = 1) -> list[tuple]:
    """``n`` config_current rows: 20 files per device, 45 % compose, 40 % nginx, 15 % systemd."""
    rng = random.Random(seed)
    docs = corpus()
    kinds = rng.choices(list(docs), weights=[45, 40, 15], k=n)
    devices = [uuid.UUID(int=rng.getrandbits(128)) for _ in range(max(1, n // 20))]
    t0 = datetime(2026, 1, 1, tzinfo=timezone.utc)
    out, seen = [], set()
    for i, ctype in enumerate(kinds):
        name, base = rng.choice(docs[ctype])
        device = devices[i % len(devices)]
        path = {"docker_compose": f"/srv/{name}-{i % 7}/docker-compose.yml",
                "proxy_configs": f"/etc/nginx/conf.d/{name}-{i % 5}.conf",
                "systemd_units": f"/etc/systemd/system/{name}-{i % 3}.service"}[ctype]
        if (device, path) in seen:
            path = f"/opt/copy-{i}{path}"
        seen.add((device, path))
        parsed = json.dumps(vary(ctype, base, rng))
        out.append((device, path_key(path), path, ctype, t0 + timedelta(seconds=i), uuid.uuid4(), uuid.uuid4(),
                    "MODIFY", hashlib.sha256(parsed.encode()).hexdigest(), parsed))
    return out


async def fill(url: str, n: int) -> dict[str, int]:
    conn = await asyncpg.connect(url)
    try:
        await conn.copy_records_to_table("config_current", records=rows(n), columns=COLUMNS)
        await conn.execute("ANALYZE config_current")
        counts = {q: await conn.fetchval("SELECT count(*) FROM config_current WHERE parsed @? $1::jsonpath", p)
                  for q, p in QUERIES.items()}
        counts["all"] = await conn.fetchval("SELECT count(*) FROM config_current")
        for q, p in QUERIES.items():
            plan = [r[0] for r in await conn.fetch("EXPLAIN SELECT * FROM config_current WHERE parsed @? $1::jsonpath", p)]
            print(f"{q}: the planner's plan at {counts['all']} rows: {plan[0].split('  (')[0]}")
        return counts
    finally:
        await conn.close()


# planner: its own choice; gin: the index whenever it can serve (sequential scans off); scan: never the index
MODES = {"planner": None, "gin": "enable_seqscan", "scan": "enable_bitmapscan"}


async def timed(url: str, query: str, runs: int, mode: str) -> list[float]:
    """Milliseconds of each of ``runs`` searches as the API runs them (the total and the first page).

    A connection of its own: the prepared statements' cached plans ignore a later planner setting."""
    engine = create_async_engine("postgresql+asyncpg://" + url.split("://", 1)[1], pool_size=1)
    out = []
    try:
        for _ in range(runs + 10):
            async with AsyncSession(engine) as session:
                t = time.perf_counter()
                if MODES[mode]:
                    await session.execute(text(f"SET LOCAL {MODES[mode]} = off"))
                await run_search(session, SearchFilter(jsonpath=query), 0, PAGE_SIZE)
                out.append((time.perf_counter() - t) * 1000)
    finally:
        await engine.dispose()
    return out[10:]  # the first runs prepare the statement and settle on its plan


async def sql_figures(url: str, runs: int, counts: dict[str, int]) -> None:
    for name, query in QUERIES.items():
        ms = {mode: await timed(url, query, runs, mode) for mode in MODES}
        ratio = pct(ms["scan"], 50) / pct(ms["gin"], 50)
        print(f"{name} {query!r}: {counts[name]} of {counts['all']} files ({counts[name] / counts['all']:.1%})")
        for mode, v in ms.items():
            print(f"  {mode:<8} p50 {pct(v, 50):7.2f} ms   p99 {pct(v, 99):7.2f} ms")
        print(f"  p50 without the index / with it: {ratio:.2f}")
        cond = (f"{query} over {counts['all']} config_current rows ({counts[name]} match), the total and the first page of "
                f"{PAGE_SIZE} as the API runs them, {runs} sequential runs")
        record(f"config_search_{name}_p99_ms", pct(ms["planner"], 99), "ms", P99_LIMIT_MS,
               cond + "; the planner's choice of plan")
        record(f"config_search_{name}_gin_p50_ms", pct(ms["gin"], 50), "ms", None, cond + "; sequential scans off")
        record(f"config_search_{name}_gin_p99_ms", pct(ms["gin"], 99), "ms", P99_LIMIT_MS,
               cond + "; sequential scans off (the GIN index)")
        record(f"config_search_{name}_noindex_p50_ms", pct(ms["scan"], 50), "ms", None,
               cond + "; bitmap scans off (the GIN index unused)")
        record(f"config_search_{name}_noindex_p99_ms", pct(ms["scan"], 99), "ms", None,
               cond + "; bitmap scans off (the GIN index unused)")
        record(f"config_search_{name}_noindex_vs_gin", ratio, "ratio", None, "p50 without / with the index; " + cond)


async def _ready(base: str) -> None:
    async with httpx.AsyncClient(base_url=base, timeout=60) as client:
        await wait_ready(client)


def api_figures(nats_url: str, pg_url: str, tmp: Path, seconds: float, connections: int, total: int) -> None:
    key, _ = asyncio.run(create_api_key(pg_url, "viewer", "bench"))
    port = free_port()
    api = start_service("api", service_env(nats_url, tmp, pg_url, api_port=str(port), api_workers="1"), tmp / "api.log")
    base = f"http://127.0.0.1:{port}"
    try:
        try:
            asyncio.run(_ready(base))
        except RuntimeError:
            raise RuntimeError("the API did not start:\n" + tail(tmp / "api.log")) from None
        route = "/config/search?" + str(httpx.QueryParams({"jsonpath": QUERIES["image"]}))
        headers = {"Authorization": f"Bearer {key}"}
        wrk.run(base + route, 2, connections, headers)  # warm up
        r = wrk.run(base + route, seconds, connections, headers)
        print(r.line(f"GET /config/search image ({total} files)"))
        cond = (f"GET {route} over {total} files; wrk 1 thread, {connections} connections, {seconds:g} s; "
                "uvicorn 1 worker; load generator on the same machine")
        record("config_search_api_req_per_s", r.rps, "req/s", None, cond)
        record("config_search_api_p99_ms", r.p99_ms, "ms", None, cond)
    finally:
        stop_procs([api])


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--rows", type=int, default=10_000)
    p.add_argument("--runs", type=int, default=200, help="sequential runs of each query, with and without the index")
    p.add_argument("--seconds", type=float, default=10, help="wrk duration")
    p.add_argument("--connections", type=int, default=10)
    args = p.parse_args()
    with servers() as (nats, pg, tmp):
        upgrade(pg.url)
        counts = asyncio.run(fill(pg.url, args.rows))
        asyncio.run(sql_figures(pg.url, args.runs, counts))
        if wrk.available():
            api_figures(nats.url, pg.url, tmp, args.seconds, args.connections, counts["all"])
        else:
            print(wrk.MISSING)
    return 0


if __name__ == "__main__":
    sys.exit(main())
