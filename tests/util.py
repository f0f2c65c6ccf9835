"""Small helpers for tests that wait on real servers."""

from __future__ import annotations

import asyncio
import inspect
import os
import sys
import urllib.request
from collections.abc import Awaitable, Callable
from pathlib import Path

import asyncpg

ROOT = Path(__file__).resolve().parent.parent


async def wait_until(check: Callable[[], Awaitable[object] | object], timeout: float = 15, interval: float = 0.1,
                     what: str = "condition"):
    """Poll ``check`` (a function or a coroutine function) until it returns something truthy; the
    timeout only bounds the wait."""
    deadline = asyncio.get_running_loop().time() + timeout
    last = None
    while True:
        last = check()
        if inspect.isawaitable(last):
            last = await last
        if last:
            return last
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"timed out waiting for {what}; last value {last!r}")
        await asyncio.sleep(interval)


async def _query(url: str, method: str, sql: str, *args):
    conn = await asyncpg.connect(url)
    try:
        return await getattr(conn, method)(sql, *args)
    finally:
        await conn.close()


async def fetchval(url: str, sql: str, *args):
    return await _query(url, "fetchval", sql, *args)


async def fetch(url: str, sql: str, *args):
    return await _query(url, "fetch", sql, *args)


async def perf_row(url: str, service: str, counter: str, timeout: float = 60):
    """The first performance row of ``service`` whose ``counter`` column is above zero, waited for."""
    async def row():
        rows = await fetch(url, f"SELECT * FROM service_performance_metrics WHERE service_name = $1 AND {counter} > 0",
                           service)
        return rows[0] if rows else None

    return await wait_until(row, timeout=timeout, what=f"a {service} perf row with {counter}")


def metrics_text(port: int) -> str:
    """What a service serves at http://127.0.0.1:<port>/metrics."""
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as r:
        return r.read().decode()


async def metric_families(port: int) -> dict:
    """The Prometheus metric families a service serves on ``port``, by name (parsed: valid text)."""
    from prometheus_client.parser import text_string_to_metric_families

    return {f.name: f for f in text_string_to_metric_families(await asyncio.to_thread(metrics_text, port))}


def service_env(settings) -> dict[str, str]:
    """Environment that makes a child `infrawatch` process use the test's settings."""
    return {
        **os.environ,
        "PYTHONPATH": str(ROOT),
        "INFRAWATCH_NATS_URL": settings.nats_url,
        "INFRAWATCH_DATABASE_URL": settings.database_url,
        "INFRAWATCH_SUBJECT_PREFIX": settings.subject_prefix,
        "INFRAWATCH_DATA_DIR": str(settings.data_dir),
        "INFRAWATCH_WRITER_BATCH_WAIT_S": str(settings.writer_batch_wait_s),
        "INFRAWATCH_LOG_LEVEL": "INFO",
    }


async def start_service(name: str, settings, log_path: Path, extra_env: dict[str, str] | None = None):
    """Start ``infrawatch <name>`` as a child process with the test's settings."""
    env = {**service_env(settings), **(extra_env or {})}
    with open(log_path, "ab") as out:  # the child keeps its own copy of the descriptor
        return await asyncio.create_subprocess_exec(sys.executable, "-m", "services.cli", name, env=env,
                                                    stdout=out, stderr=asyncio.subprocess.STDOUT, cwd=ROOT)


async def publish_many(js, subject: str, evs, window: int = 500) -> None:
    """Publish events with up to ``window`` acknowledgements outstanding."""
    from shared.runtime.publish import publish_event

    evs = list(evs)
    for i in range(0, len(evs), window):
        await asyncio.gather(*(publish_event(js, subject, ev) for ev in evs[i:i + window]))


async def stream_events(js, stream: str, subject: str, timeout: float = 60) -> list:
    """Every event stored in ``stream`` under ``subject``, decoded, in stream order."""
    from shared import events

    total = (await js.stream_info(stream)).state.messages
    sub = await js.subscribe(subject, ordered_consumer=True)
    try:
        return [events.decode((await sub.next_msg(timeout=timeout)).data) for _ in range(total)]
    finally:
        await sub.unsubscribe()
