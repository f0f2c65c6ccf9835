"""`infrawatch up` is secure by default: a real `up` runs for this module, and nothing it starts
lets in a client without the credentials it generated; the command line uses them."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import signal
import stat
import subprocess
import sys
import time
from pathlib import Path

import asyncpg
import httpx
import nats
import pytest

from shared.names import Names
from shared.runtime.db_roles import ROLES, role_url
from shared.runtime.embedded import free_port, pg_os_user, postgres_bin_dir, stop_process
from tests.util import wait_until

NAMES = Names("infra")
SERVICES = ("collector", "watcher", "writer", "api", "alerts")
ROOT = Path(__file__).resolve().parent.parent


def _clean_env(data: Path) -> dict[str, str]:
    """The environment of a user who set nothing but the data directory."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("INFRAWATCH_")}
    return {**env, "INFRAWATCH_DATA_DIR": str(data), "INFRAWATCH_PERF_INTERVAL_S": "5"}


@pytest.fixture(scope="module")
def up(tmp_path_factory):
    """`infrawatch up` on free ports (given as the ports of an earlier run), until the module ends."""
    base = tmp_path_factory.mktemp("up")
    base.chmod(0o755)  # PostgreSQL's OS user traverses it
    data = base / "state"
    data.mkdir()
    ports = {"nats_port": free_port(), "postgres_port": free_port(), "api_port": free_port()}
    (data / "up.json").write_text(json.dumps(ports))
    with open(base / "up.out", "wb") as out:  # the child keeps its own copy of the descriptor
        proc = subprocess.Popen([sys.executable, "-m", "services.cli", "up"], cwd=base, env=_clean_env(data),
                                stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    deadline = time.monotonic() + 180
    state = {}
    while "api_key" not in state:
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            pytest.fail(f"infrawatch up did not come up:\n{(base / 'up.out').read_text()[-4000:]}")
        time.sleep(0.5)
        try:
            state = json.loads((data / "up.json").read_text())
        except ValueError:
            state = {}
    creds = json.loads(Path(state["credentials"]).read_text()) if state.get("credentials") else {}
    creds.setdefault("nats", {})
    creds.setdefault("postgres", {})
    yield {"data": data, "state": state, "creds": creds, "proc": proc, "base": base}
    stop_process(proc, 60, signal.SIGINT)


def _cli(up, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "services.cli", *args], cwd=up["base"], env=_clean_env(up["data"]),
                          capture_output=True, text=True, timeout=120)


def test_credentials_are_private_files(up):
    data = up["data"]
    # 0700; under root PostgreSQL's OS user needs to traverse it (0701), never to list or write
    assert stat.S_IMODE(data.stat().st_mode) in ((0o700, 0o701) if os.geteuid() == 0 else (0o700,))
    for d in ("secrets", "logs", "nats"):
        assert stat.S_IMODE((data / d).stat().st_mode) == 0o700, d
    for name in ("secrets/credentials.json", "up.json", "postgres/postgres.log"):
        assert stat.S_IMODE((data / name).stat().st_mode) == 0o600, name
    assert stat.S_IMODE((data / "postgres" / "socket").stat().st_mode) == 0o700
    assert set(up["creds"]["nats"]) >= {"admin", *SERVICES}
    assert set(up["creds"]["postgres"]) >= {"superuser", *ROLES}
    assert "password" not in json.dumps(up["state"]) and up["creds"]["nats"]["admin"] not in json.dumps(up["state"])


async def test_nats_refuses_clients_without_a_password(up):
    url = up["state"]["nats_url"]
    with pytest.raises(Exception, match=r"(?i)authorization"):
        await nats.connect(url, allow_reconnect=False, max_reconnect_attempts=0, connect_timeout=5)
    with pytest.raises(Exception):
        await nats.connect(url, user="admin", password=up["creds"]["nats"]["collector"], allow_reconnect=False,
                           max_reconnect_attempts=0, connect_timeout=5)


def _psql_as(os_user: str, host: str, port: int, role: str) -> subprocess.CompletedProcess:
    psql = postgres_bin_dir() / "psql"
    return subprocess.run(["runuser", "-u", os_user, "--", "env", "-i", "HOME=/nonexistent", "PATH=/usr/bin:/bin",
                           str(psql), "-w", "-h", host, "-p", str(port), "-U", role, "-d", "infrawatch",
                           "-tAc", "SELECT 1"], capture_output=True, text=True, timeout=60)


@pytest.mark.skipif(os.geteuid() != 0 or not shutil.which("runuser"), reason="needs root and runuser")
def test_postgres_refuses_another_local_user_without_a_password(up):
    port = up["state"]["postgres_port"]
    socket_dir = str(up["data"] / "postgres" / "socket")
    pg_user = pg_os_user().pw_name
    for os_user in ("nobody", pg_user):
        for role in ("postgres", *ROLES.values()):
            r = _psql_as(os_user, "127.0.0.1", port, role)
            assert r.returncode != 0 and "password" in r.stderr, (os_user, role, r.stdout, r.stderr)
    r = _psql_as("nobody", socket_dir, port, "postgres")  # the socket directory is closed to others
    assert r.returncode != 0 and "ermission denied" in r.stderr, r.stderr
    r = _psql_as(pg_user, socket_dir, port, "postgres")  # its owner reaches the socket, and needs a password
    assert r.returncode != 0 and "password" in r.stderr, r.stderr


def test_the_command_line_works_with_the_generated_credentials(up):
    r = _cli(up, "status", "--json")
    assert r.returncode == 0, r.stderr
    status = json.loads(r.stdout)
    assert "local" in [d["device"] for d in status["devices"]]
    assert {"infra_cache", "infra_watch_state"} <= {b["bucket"] for b in status["buckets"]}
    r = _cli(up, "device", "add", "spare", "--address", "192.0.2.10")
    assert r.returncode == 0, r.stderr
    assert "spare" in _cli(up, "device", "list").stdout
    assert _cli(up, "device", "rm", "spare").returncode == 0
    assert "spare" not in _cli(up, "device", "list").stdout
    r = _cli(up, "apikey", "create", "--role", "viewer")
    assert r.returncode == 0 and r.stdout.startswith("iw_"), r.stderr
    r = _cli(up, "migrate")
    assert r.returncode == 0, r.stderr
    r = _cli(up, "replay", "--kind", "device")
    assert r.returncode == 0 and "device:" in r.stdout, r.stdout + r.stderr


async def test_the_local_device_reports_metrics_through_the_api(up):
    state = up["state"]
    async with httpx.AsyncClient(base_url=state["api_url"], timeout=10,
                                 headers={"Authorization": f"Bearer {state['api_key']}"}) as client:
        async def metrics():
            try:
                r = await client.get("/devices/local/metrics")
            except httpx.TransportError:
                return None
            return r.json() if r.status_code == 200 else None

        body = await wait_until(metrics, timeout=120, interval=1, what="metrics of the local device")
        assert body["cpu_count"] >= 1
        assert (await client.get("/devices/local/metrics", headers={"Authorization": "Bearer iw_0_x"})).status_code == 401


async def _login(up, user: str):
    return await nats.connect(up["state"]["nats_url"], user=user, password=up["creds"]["nats"][user],
                              allow_reconnect=False, max_reconnect_attempts=0, connect_timeout=5)


async def test_service_users_cannot_create_streams_delete_the_writers_consumer_or_forge_the_cache(up):
    admin = await _login(up, "admin")
    try:
        jsm = admin.jetstream()

        async def writer_consumer() -> bool:
            try:
                return (await jsm.consumer_info(NAMES.stream_collected, "writer")).name == "writer"
            except Exception:
                return False

        await wait_until(writer_consumer, timeout=60, what="the writer's durable consumer")
        for user in SERVICES:
            nc = await _login(up, user)
            try:
                js = nc.jetstream(timeout=2)
                with pytest.raises(Exception):
                    await js.add_stream(name="EVIL", subjects=["evil.>"])
                if user != "writer":
                    with pytest.raises(Exception):
                        await js.delete_consumer(NAMES.stream_collected, "writer")
                if user != "collector":
                    kv = await js.key_value(NAMES.cache_bucket)
                    with pytest.raises(Exception):
                        await kv.put("local.system_metrics", b"forged")
            finally:
                await nc.close()
            assert await writer_consumer(), user
        with pytest.raises(Exception):
            await jsm.stream_info("EVIL")
        entry = await (await jsm.key_value(NAMES.cache_bucket)).get("local.system_metrics")
        assert entry.value != b"forged"
    finally:
        await admin.close()


async def test_each_database_role_has_only_its_own_rights(up):
    pw = up["creds"]["postgres"]
    base = f"postgresql://127.0.0.1:{up['state']['postgres_port']}/infrawatch"
    api = await asyncpg.connect(role_url(base, ROLES["api"], pw["api"]))
    writer = await asyncpg.connect(role_url(base, ROLES["writer"], pw["writer"]))
    try:
        assert await api.fetchval("SELECT count(*) FROM api_keys") >= 1
        await api.fetchval("SELECT count(*) FROM system_metrics")
        with pytest.raises(asyncpg.InsufficientPrivilegeError):
            await api.execute("INSERT INTO devices (id, name, address) VALUES (gen_random_uuid(), 'x', 'y')")
        with pytest.raises(asyncpg.InsufficientPrivilegeError):
            await writer.fetchval("SELECT count(*) FROM api_keys")
        with pytest.raises(asyncpg.InsufficientPrivilegeError):
            await writer.execute("INSERT INTO alert_rules DEFAULT VALUES")
        for conn in (api, writer):
            with pytest.raises(asyncpg.InsufficientPrivilegeError):
                await conn.execute("CREATE TABLE evil (x int)")
            assert not await conn.fetchval("SELECT rolsuper FROM pg_roles WHERE rolname = current_user")
    finally:
        await asyncio.gather(api.close(), writer.close())


def test_sigint_stops_up_cleanly_and_no_service_was_refused_anything(up):
    """Every service ran under its own NATS user and database role without one refusal (the
    refusals the tests above provoked come from their own connections, not the services')."""
    proc = up["proc"]
    proc.send_signal(signal.SIGINT)
    assert proc.wait(90) == 0
    refused = [f"{p.name}: {line}" for p in (up["data"] / "logs").glob("*.log")
               for line in p.read_text(errors="replace").splitlines()
               if any(w in line.lower() for w in ("permission", "violation", "authorization", "nats error",
                                                  "insufficientprivilege", "password authentication"))]
    assert not refused, "\n".join(refused[:20])
