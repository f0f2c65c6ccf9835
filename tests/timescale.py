"""A TimescaleDB server for the tests: Debian's PostgreSQL 15 with the timescaledb library preloaded.

``../shared/timescaledb/install.sh`` (run by ``.ci/run``) installs the extension into that
PostgreSQL. The server listens on a free loopback port with a random password (SCRAM); under
root it runs as the same unprivileged OS user as the embedded PostgreSQL (postgres refuses root).
"""

from __future__ import annotations

import logging
import os
import re
import secrets
import signal
import subprocess
import time
from pathlib import Path

from shared.runtime.embedded import ServerError, free_port, pg_os_user, stop_process, wait_for_port

log = logging.getLogger("tests")

BIN = Path(os.environ.get("INFRAWATCH_TEST_TIMESCALEDB_BIN", "/usr/lib/postgresql/15/bin"))
INSTALL = "../shared/timescaledb/install.sh"
BUILT_FOR = (15, 20)  # the PostgreSQL version the shared TimescaleDB build was compiled against
SETTINGS = {
    "shared_preload_libraries": "timescaledb",
    "timescaledb.telemetry_level": "off",
    "fsync": "off",
    "synchronous_commit": "off",
    "full_page_writes": "off",
    "max_connections": "200",
    "shared_buffers": "128MB",
    # Every test database at the head migration runs its own job scheduler (a background worker).
    "max_worker_processes": "40",
    "timescaledb.max_background_workers": "32",
}

# Compresses every chunk of the current schema's hypertables that ended over 7 days ago (the
# migrations' compression threshold); returns how many chunks it compressed.
COMPRESS_OLD_CHUNKS = """
SELECT count(compress_chunk(c, if_not_compressed => true))
FROM timescaledb_information.hypertables h,
     show_chunks(format('%I.%I', h.hypertable_schema, h.hypertable_name)::regclass,
                 older_than => INTERVAL '7 days') c
WHERE h.hypertable_schema = current_schema()"""


def _pg_config(option: str, default: Path) -> Path:
    try:
        out = subprocess.run([str(BIN / "pg_config"), option], capture_output=True, text=True, check=True)
    except (OSError, subprocess.CalledProcessError):
        return default
    return Path(out.stdout.strip())


def _server_version() -> tuple[int, ...]:
    try:
        out = subprocess.run([str(BIN / "postgres"), "--version"], capture_output=True, text=True, check=True)
    except (OSError, subprocess.CalledProcessError):
        return ()
    # "postgres (PostgreSQL) 15.20 (Debian 15.20-0+deb12u1)"
    match = re.search(r"\) (\d+)\.(\d+)", out.stdout)
    return (int(match[1]), int(match[2])) if match else ()


def missing() -> str | None:
    """What this machine lacks to run the TimescaleDB server, or None when nothing is missing."""
    if not (BIN / "postgres").exists():
        return f"PostgreSQL 15 server ({BIN / 'postgres'} not found; `bash {INSTALL}` as root installs it)"
    version = _server_version()
    if version < BUILT_FOR:
        found = ".".join(map(str, version)) or "an unknown version"
        return (f"PostgreSQL {BUILT_FOR[0]}.{BUILT_FOR[1]} or newer (found {found}; the TimescaleDB library "
                "does not load into older minor versions: apt-get install postgresql-15)")
    lib = _pg_config("--pkglibdir", BIN.parent / "lib") / "timescaledb.so"
    control = _pg_config("--sharedir", Path("/usr/share/postgresql/15")) / "extension" / "timescaledb.control"
    for path in (lib, control):
        if not path.exists():
            return f"the TimescaleDB extension ({path} not found; `bash {INSTALL}` as root installs it)"
    return None


def _give(path: Path, user) -> None:
    """Own ``path`` by the server's OS user and let that user traverse every parent directory."""
    os.chown(path, user.pw_uid, user.pw_gid)
    for parent in path.parents:
        mode = parent.stat().st_mode
        if not mode & 0o001:
            parent.chmod(mode | 0o001)


class TimescaleServer:
    """``postgres`` with TimescaleDB preloaded, on loopback, with one password-protected superuser."""

    def __init__(self, base_dir: Path) -> None:
        self.base_dir = Path(base_dir).resolve()
        self.data_dir = self.base_dir / "data"
        self.log_file = self.base_dir / "postgres.log"
        self.port = free_port()
        self.password = secrets.token_urlsafe(18)
        self.proc: subprocess.Popen | None = None
        self.user = pg_os_user()

    def admin_url(self) -> str:
        return f"postgresql://postgres:{self.password}@127.0.0.1:{self.port}/postgres"

    def _as_user(self) -> dict:
        if self.user is None:
            return {}
        return {"user": self.user.pw_uid, "group": self.user.pw_gid, "extra_groups": []}

    def start(self) -> TimescaleServer:
        lack = missing()
        if lack:
            raise ServerError(f"cannot start TimescaleDB: missing {lack}")
        self.base_dir.mkdir(parents=True, exist_ok=True)
        pwfile = self.base_dir / "pwfile"
        pwfile.write_text(self.password + "\n")
        pwfile.chmod(0o600)
        if self.user is not None:
            _give(self.base_dir, self.user)
            os.chown(pwfile, self.user.pw_uid, self.user.pw_gid)
        try:
            res = subprocess.run(
                [str(BIN / "initdb"), "-D", str(self.data_dir), "-U", "postgres", "--pwfile", str(pwfile),
                 "--auth=scram-sha-256", "-E", "UTF8", "--locale=C", "--no-sync"],
                capture_output=True, text=True, cwd=self.base_dir, **self._as_user())
        finally:
            pwfile.unlink()
        if res.returncode != 0:
            raise ServerError(f"initdb of the TimescaleDB server failed:\n{res.stdout}\n{res.stderr}")
        args = [str(BIN / "postgres"), "-D", str(self.data_dir), "-h", "127.0.0.1", "-p", str(self.port),
                "-k", str(self.base_dir)]
        for name, value in SETTINGS.items():
            args += ["-c", f"{name}={value}"]
        with open(self.log_file, "ab") as out:
            self.proc = subprocess.Popen(args, stdout=out, stderr=subprocess.STDOUT, cwd=self.base_dir,
                                         start_new_session=True, **self._as_user())
        wait_for_port(self.port, self.proc, "postgres (TimescaleDB)", self.log_file)
        self._wait_ready()
        log.warning("TimescaleDB server on 127.0.0.1:%d (%s, log %s)", self.port, BIN, self.log_file)
        return self

    def _wait_ready(self, timeout: float = 60) -> None:
        """Wait until queries are answered (the port opens before recovery ends)."""
        cmd = [str(BIN / "psql"), "-h", "127.0.0.1", "-p", str(self.port), "-U", "postgres", "-d", "postgres",
               "-tAc", "SELECT 1"]
        env = {**os.environ, "PGPASSWORD": self.password, "PGCONNECT_TIMEOUT": "5"}
        deadline = time.monotonic() + timeout
        while True:
            res = subprocess.run(cmd, capture_output=True, text=True, env=env)
            if res.returncode == 0:
                return
            if (self.proc is not None and self.proc.poll() is not None) or time.monotonic() > deadline:
                raise ServerError(f"the TimescaleDB server does not answer: {res.stderr.strip()}")
            time.sleep(0.1)

    def stop(self) -> None:
        stop_process(self.proc, 20, signal.SIGINT)
