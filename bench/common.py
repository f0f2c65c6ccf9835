"""Helpers shared by the benchmarks: percentiles, local servers, and bench/results.json."""

from __future__ import annotations

import json
import os
import platform
import sys
import tempfile
from contextlib import contextmanager
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from shared.embedded import NatsServer, PostgresServer  # noqa: E402

RESULTS = ROOT / "bench" / "results.json"


def pct(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(p / 100 * (len(ordered) - 1))))]


def machine() -> str:
    return f"{os.cpu_count()} cores, {platform.machine()}, Python {platform.python_version()}"


def record(name: str, value: float, unit: str, limit: float | None = None, conditions: str = "") -> None:
    """Merge one figure into bench/results.json as {name: {value, unit, limit, ratio, conditions}}."""
    data = json.loads(RESULTS.read_text()) if RESULTS.exists() else {}
    data[name] = {
        "value": round(value, 3), "unit": unit, "limit": None if limit is None else round(limit, 3),
        "ratio": None if not limit else round(value / limit, 3), "conditions": f"{conditions}; {machine()}".strip("; "),
    }
    RESULTS.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n")


@contextmanager
def servers(postgres: bool = True):
    """A nats-server and (optionally) a PostgreSQL in a temporary directory."""
    tmp = Path(tempfile.mkdtemp(prefix="infrawatch-bench-"))
    tmp.chmod(0o755)
    nats = NatsServer(tmp / "nats").start()
    pg = PostgresServer(tmp / "pg").start() if postgres else None
    try:
        yield nats, pg, tmp
    finally:
        if pg:
            pg.stop()
        nats.stop()
