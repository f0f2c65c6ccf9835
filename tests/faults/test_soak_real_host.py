"""Soak on this machine's real host: `infrawatch up` on embedded defaults watches the host's real
configuration trees — nginx's from Debian's nginx-common, compose projects and systemd units of
the real-world corpus installed where the watcher looks — through minutes of changes and one
restart of the whole system. Then: nothing dead-lettered, every watched file has its baseline
row, every collection its audit row, and no ERROR in any service's log.

Needs root (it writes under /etc and /opt, and removes what it wrote) and /etc/nginx (`apt-get
install nginx-common`; .ci/run does). INFRAWATCH_SOAK_S sets the duration (default 150 s).
"""

from __future__ import annotations

import asyncio
import glob
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import asyncpg
import pytest

from services.up import login_from_up
from services.watcher.paths import DEFAULT_GLOBS
from shared.names import Names
from shared.runtime.embedded import free_port
from shared.runtime.nats_conn import connect
from shared.settings import Settings
from tests.util import wait_until

CORPUS = Path(__file__).resolve().parents[1] / "corpus"
SOAK_S = float(os.environ.get("INFRAWATCH_SOAK_S", "150"))
TAG = "infrawatch-soak"
INTERVALS = {"system_metrics": 10, "containers": 10, "network": 20, "systemd_services": 30, "inventory": 60,
             "drive_health": 60, "zfs": 60}


def _requirements() -> str | None:
    if os.geteuid() != 0:
        return "needs root: it installs configuration trees under /etc and /opt of this host"
    if not Path("/etc/nginx/nginx.conf").is_file():
        return "needs nginx's configuration tree in /etc/nginx: apt-get install nginx-common"
    for kind in ("compose", "systemd", "nginx"):
        if not any((CORPUS / kind).iterdir()):
            return f"needs the real-world corpus in {CORPUS / kind}"
    return None


def _pick(kind: str, pattern: str, n: int) -> list[Path]:
    files = sorted((CORPUS / kind).rglob(pattern))
    return random.Random(7).sample(files, min(n, len(files)))


@pytest.fixture
def real_trees():
    """Corpus files installed where the watcher's default globs look; removed afterwards."""
    if (why := _requirements()) is not None:
        pytest.skip(reason=why)
    written: list[Path] = []
    for i, src in enumerate(_pick("compose", "*.y*ml", 3)):
        d = Path(f"/opt/{TAG}-{i}")
        d.mkdir(exist_ok=True)
        written.append(d)
        shutil.copyfile(src, d / "docker-compose.yml")
    for src in _pick("systemd", "*.service", 3):
        dst = Path(f"/etc/systemd/system/{TAG}-{src.name}")
        shutil.copyfile(src, dst)
        written.append(dst)
    nginx = Path(f"/etc/nginx/conf.d/{TAG}.conf")
    nginx.parent.mkdir(exist_ok=True)
    shutil.copyfile(_pick("nginx", "*.conf*", 1)[0], nginx)
    written.append(nginx)
    yield written
    for p in [*written, Path(f"/etc/systemd/system/{TAG}-extra.service")]:  # the unit _change creates
        shutil.rmtree(p) if p.is_dir() else p.unlink(missing_ok=True)


def _start_up(data: Path, api_port: int) -> subprocess.Popen:
    env = {**os.environ, "INFRAWATCH_DATA_DIR": str(data), "INFRAWATCH_API_PORT": str(api_port),
           "INFRAWATCH_COLLECTOR_INTERVAL_OVERRIDES": json.dumps(INTERVALS), "INFRAWATCH_LOG_LEVEL": "INFO"}
    for var in ("INFRAWATCH_DATABASE_URL", "INFRAWATCH_NATS_URL"):
        env.pop(var, None)
    with open(data.parent / "up.out", "ab") as out:  # the child keeps its own copy of the descriptor
        return subprocess.Popen([sys.executable, "-m", "services.cli", "up"], env=env, stdout=out,
                                stderr=subprocess.STDOUT, start_new_session=True)


def _stop_up(proc: subprocess.Popen) -> None:
    proc.send_signal(signal.SIGINT)
    try:
        proc.wait(60)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        raise


def _change(step: int, trees: list[Path]) -> None:
    """One real-world edit: append, rename-replace (vim), in-place rewrite (sed -i), create, delete."""
    compose = [p / "docker-compose.yml" for p in trees if p.is_dir()]
    units = [p for p in trees if p.suffix == ".service"]
    nginx = next(p for p in trees if p.suffix == ".conf")
    match step % 5:
        case 0:
            with open(compose[step % len(compose)], "a") as f:
                f.write(f"# soak edit {step}\n")
        case 1:
            target = compose[(step + 1) % len(compose)]
            tmp = target.with_name(".docker-compose.yml.swp")
            tmp.write_text(target.read_text() + f"# rename-replace {step}\n")
            os.replace(tmp, target)
        case 2:
            subprocess.run(["sed", "-i", f"1i # sed -i {step}", str(nginx)], check=True)
        case 3:
            extra = units[0].with_name(f"{TAG}-extra.service")
            extra.write_text(units[0].read_text())
        case 4:
            Path(units[0].with_name(f"{TAG}-extra.service")).unlink(missing_ok=True)


def _watched_files() -> set[str]:
    """Regular files (not symlinks) the default globs of every config type match on this host."""
    out: set[str] = set()
    for globs in DEFAULT_GLOBS.values():
        for g in globs:
            for p in glob.glob(g, recursive=True):
                if os.path.isfile(p) and not os.path.islink(p):
                    out.add(p)
    return out


async def _check(data: Path) -> None:
    s = login_from_up(Settings(data_dir=data), "owner")
    names = Names(s.subject_prefix)
    nc = await connect(s, "soak-check")
    js = nc.jetstream()
    db = await asyncpg.connect(s.database_url)
    try:
        device_id = await db.fetchval("SELECT id FROM devices WHERE name = 'local' AND deleted_at IS NULL")
        assert device_id is not None, "the local device never reached the database"
        info = await js.stream_info(names.stream_collected, subjects_filter=f"{names.prefix}.collected.local.>")
        collections = sum((info.state.subjects or {}).values())
        assert collections > 0, "no collection was published"

        async def audited() -> bool:
            n = await db.fetchval("SELECT count(*) FROM data_collection_audit WHERE device_id = $1 "
                                  "AND collection_method IN ('ssh', 'local')", device_id)
            return n == collections

        await wait_until(audited, timeout=60)

        expected = _watched_files()

        async def baselined() -> bool:
            stored = {r["file_path"] for r in await db.fetch(
                "SELECT DISTINCT file_path FROM configuration_snapshots WHERE device_id = $1", device_id)}
            return expected <= stored

        try:
            await wait_until(baselined, timeout=60)
        except AssertionError:
            stored = {r["file_path"] for r in await db.fetch(
                "SELECT DISTINCT file_path FROM configuration_snapshots WHERE device_id = $1", device_id)}
            raise AssertionError(f"watched files without a row: {sorted(expected - stored)[:20]}") from None
        dlq = await js.stream_info(names.stream_dlq)
        assert dlq.state.messages == 0, f"{dlq.state.messages} messages were dead-lettered"
    finally:
        await db.close()
        await nc.close()


@pytest.fixture
def base_dir():
    """A directory PostgreSQL's own OS user can traverse (pytest's tmp_path is private to root)."""
    d = Path(tempfile.mkdtemp(prefix="infrawatch-soak-"))
    d.chmod(0o711)
    yield d
    shutil.rmtree(d, ignore_errors=True)


def test_soak_on_the_real_host(real_trees, base_dir):
    data = base_dir / "infrawatch"
    api_port = free_port()
    proc = _start_up(data, api_port)
    try:
        asyncio.run(wait_until(lambda: _up_ready(data, 1), timeout=120, interval=0.5))
        start, step, restarted = time.monotonic(), 0, False
        while time.monotonic() - start < SOAK_S:
            _change(step, real_trees)
            step += 1
            time.sleep(2)
            if not restarted and time.monotonic() - start > SOAK_S / 2:
                _stop_up(proc)
                proc = _start_up(data, api_port)
                asyncio.run(wait_until(lambda: _up_ready(data, 2), timeout=120, interval=0.5))
                restarted = True
        time.sleep(5)  # the last changes reach the stream
        asyncio.run(_check(data))
    finally:
        if proc.poll() is None:
            _stop_up(proc)
    errors = [f"{log.name}: {line}" for log in sorted((data / "logs").glob("*.log"))
              for line in log.read_text(errors="replace").splitlines() if " ERROR " in line]
    assert errors == [], "\n".join(errors[:20])
    assert restarted and step > 20


async def _up_ready(data: Path, runs: int) -> bool:
    """`up` has printed that it is up ``runs`` times."""
    out = data.parent / "up.out"
    return out.exists() and out.read_text(errors="replace").count("infrawatch is up") >= runs
