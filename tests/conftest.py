"""Real servers for the tests: nats-server with JetStream, PostgreSQL, TimescaleDB (tests/timescale.py)
and an SSH server, each started on a free loopback port when first needed (or taken from
INFRAWATCH_TEST_DATABASE_URL / INFRAWATCH_TEST_TIMESCALEDB_URL)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import shutil
import tempfile
import uuid
from pathlib import Path

import asyncpg
import pytest
import pytest_asyncio

from shared.runtime.embedded import NatsServer, PostgresServer, ServerError
from shared.settings import Settings
from tests import timescale
from tests.sshd import start_ssh_server

log = logging.getLogger("tests")

TEMPLATE_DB = "infrawatch_test_template"
TIMESCALEDB_SKIPPED = "TimescaleDB runs skipped"
# Test files (paths under tests/) whose database tests run on both servers: the embedded
# PostgreSQL and TimescaleDB. Other database tests run on the embedded PostgreSQL only; tests
# needing TimescaleDB (the ``timescaledb`` fixture, tests/test_timescaledb*.py) on TimescaleDB only.
BOTH_BACKENDS = (
    "test_migrations.py", "writer/", "api/test_collected_reads.py", "api/test_metrics.py", "api/test_timeline.py",
    "api/test_audit.py", "api/test_config.py", "policy/test_pack.py",
)
TESTS = Path(__file__).parent


def _backends(path: Path, fixturenames) -> tuple[str, ...]:
    rel = path.relative_to(TESTS).as_posix() if path.is_relative_to(TESTS) else ""
    if "timescaledb" in fixturenames or rel.startswith("test_timescaledb"):
        return ("timescaledb",)
    if rel.startswith(BOTH_BACKENDS):
        return ("postgres", "timescaledb")
    return ()


def pytest_generate_tests(metafunc) -> None:
    if "db_backend" in metafunc.fixturenames:
        backends = _backends(Path(str(metafunc.definition.fspath)), metafunc.fixturenames)
        if backends:
            metafunc.parametrize("db_backend", backends, indirect=True)


_backend_of: dict[str, str] = {}
_backend_runs: dict[str, dict] = {}


def pytest_collection_modifyitems(items) -> None:
    for item in items:
        callspec = getattr(item, "callspec", None)
        if callspec is not None and "db_backend" in callspec.params:
            _backend_of[item.nodeid] = callspec.params["db_backend"]


def pytest_runtest_logreport(report) -> None:
    backend = _backend_of.get(report.nodeid)
    if backend is None:
        return
    run = _backend_runs.setdefault(backend, {"passed": 0, "failed": 0, "skipped": 0, "xfailed": 0, "seconds": 0.0})
    run["seconds"] += report.duration
    if report.failed:
        run["failed"] += 1
    elif hasattr(report, "wasxfail"):
        run["xfailed"] += report.skipped
    elif report.skipped:
        run["skipped"] += 1
    elif report.when == "call":
        run["passed"] += 1


def pytest_terminal_summary(terminalreporter) -> None:
    """One line per database server: the tests parametrized over both, and why TimescaleDB was skipped."""
    for backend, run in sorted(_backend_runs.items()):
        terminalreporter.write_line(
            f"database tests on {backend}: {run['passed']} passed, {run['failed']} failed, "
            f"{run['skipped']} skipped, {run['xfailed']} xfailed, {run['seconds']:.0f} s")
    lack = timescale.missing()
    if lack and _backend_runs.get("timescaledb", {}).get("skipped") and not os.environ.get(
            "INFRAWATCH_TEST_TIMESCALEDB_URL"):
        terminalreporter.write_sep("=", f"{TIMESCALEDB_SKIPPED}: missing {lack}", yellow=True, bold=True)


def _backend() -> str:
    return os.environ.get("INFRAWATCH_TEST_BACKEND", "local")


@pytest.fixture(scope="session")
def workdir():
    path = Path(tempfile.mkdtemp(prefix="infrawatch-test-"))
    path.chmod(0o755)
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture(scope="session")
def nats_server(workdir):
    """A nats-server with JetStream for the whole test session."""
    if _backend() == "docker":
        from testcontainers.nats import NatsContainer  # untested here: no Docker engine

        with NatsContainer("nats:2-alpine", jetstream=True) as c:
            yield c.nats_uri()
        return
    server = NatsServer(workdir / "nats").start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def nats_url(nats_server) -> str:
    return nats_server if isinstance(nats_server, str) else nats_server.url


class Databases:
    """The database servers of the session, each started on first use: the embedded PostgreSQL
    ("postgres") and a TimescaleDB server ("timescaledb", see tests/timescale.py)."""

    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self.stack = contextlib.ExitStack()
        self.urls: dict[str, str] = {}
        self.errors: dict[str, str] = {}
        self.templates: dict[str, str] = {}
        self.extension: dict[str, bool] = {}

    def admin_url(self, backend: str) -> str:
        """URL of a maintenance database on ``backend``'s server."""
        if backend in self.errors:
            raise ServerError(self.errors[backend])
        if backend not in self.urls:
            try:
                self.urls[backend] = self._start(backend)
            except ServerError as exc:
                self.errors[backend] = str(exc)
                raise
        return self.urls[backend]

    def _start(self, backend: str) -> str:
        if backend == "timescaledb":
            external = os.environ.get("INFRAWATCH_TEST_TIMESCALEDB_URL")
            if external:
                log.warning("TimescaleDB tests use the server of INFRAWATCH_TEST_TIMESCALEDB_URL")
                return external.replace("postgresql+asyncpg://", "postgresql://")
            lack = timescale.missing()
            if lack:
                pytest.skip(reason=f"{TIMESCALEDB_SKIPPED}: missing {lack}")
            server = timescale.TimescaleServer(self.workdir / "timescaledb").start()
            self.stack.callback(server.stop)
            return server.admin_url()
        external = os.environ.get("INFRAWATCH_TEST_DATABASE_URL")
        if external:
            log.warning("tests use the PostgreSQL server of INFRAWATCH_TEST_DATABASE_URL")
            return external.replace("postgresql+asyncpg://", "postgresql://")
        if _backend() == "docker":
            from testcontainers.postgres import PostgresContainer  # untested here: no Docker engine

            c = self.stack.enter_context(PostgresContainer("timescale/timescaledb:latest-pg16", driver=None))
            return c.get_connection_url()
        server = PostgresServer(self.workdir / "pg").start()
        self.stack.callback(server.stop)
        return server.admin_url()

    def has_timescaledb(self, backend: str) -> bool:
        if backend not in self.extension:
            self.extension[backend] = asyncio.run(_extension_available(self.admin_url(backend)))
        return self.extension[backend]

    def template(self, backend: str) -> str:
        """A database migrated to head once per session and server; tests get copies of it."""
        if backend not in self.templates:
            _make_template(self.admin_url(backend))
            self.templates[backend] = TEMPLATE_DB
        return self.templates[backend]

    def close(self) -> None:
        self.stack.close()


@pytest.fixture(scope="session")
def databases(workdir):
    dbs = Databases(workdir)
    yield dbs
    dbs.close()


@pytest.fixture
def db_backend(request) -> str:
    """The database server of a test: "postgres" unless the test is parametrized (see pytest_generate_tests)."""
    return getattr(request, "param", "postgres")


@pytest.fixture
def pg_admin_url(databases, db_backend) -> str:
    """URL of a maintenance database on the test's database server."""
    return databases.admin_url(db_backend)


def _db_url(admin_url: str, name: str) -> str:
    base, _, _ = admin_url.rpartition("/")
    return f"{base}/{name}"


async def _exec_admin(admin_url: str, sql: str) -> None:
    conn = await asyncpg.connect(admin_url)
    try:
        await conn.execute(sql)
    finally:
        await conn.close()


async def _extension_available(admin_url: str) -> bool:
    conn = await asyncpg.connect(admin_url)
    try:
        return bool(await conn.fetchval("SELECT count(*) FROM pg_available_extensions WHERE name = 'timescaledb'"))
    finally:
        await conn.close()


@pytest.fixture
def has_timescaledb(databases, db_backend) -> bool:
    return databases.has_timescaledb(db_backend)


@pytest.fixture
def timescaledb(has_timescaledb):
    """Marks a test that needs TimescaleDB; such tests run on the TimescaleDB server only."""
    if not has_timescaledb:
        pytest.skip(reason="needs TimescaleDB: this test's database server does not have it")


def _make_template(pg_admin_url: str) -> None:
    from schema.migrate import upgrade

    async def make() -> None:
        conn = await asyncpg.connect(pg_admin_url)
        try:
            if await conn.fetchval("SELECT 1 FROM pg_database WHERE datname = $1", TEMPLATE_DB):
                await conn.execute(f'ALTER DATABASE "{TEMPLATE_DB}" WITH IS_TEMPLATE false ALLOW_CONNECTIONS true')
                await conn.execute(f'DROP DATABASE "{TEMPLATE_DB}" WITH (FORCE)')
            await conn.execute(f'CREATE DATABASE "{TEMPLATE_DB}"')
        finally:
            await conn.close()

    async def seal() -> None:
        # No connections to the template (TimescaleDB's job scheduler would hold one), so copies never fail.
        await _exec_admin(pg_admin_url, f'ALTER DATABASE "{TEMPLATE_DB}" WITH IS_TEMPLATE true ALLOW_CONNECTIONS false')
        await _exec_admin(pg_admin_url, "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                                        f"WHERE datname = '{TEMPLATE_DB}' AND pid <> pg_backend_pid()")

    asyncio.run(make())
    upgrade(_db_url(pg_admin_url, TEMPLATE_DB))
    asyncio.run(seal())


@pytest.fixture
def migrated_template(databases, db_backend) -> str:
    """The name of a database at the head migration on the test's server (made once per server)."""
    return databases.template(db_backend)


async def _new_database(admin_url: str, template: str | None) -> tuple[str, str]:
    name = f"t_{uuid.uuid4().hex[:12]}"
    tpl = f' TEMPLATE "{template}"' if template else ""
    await _exec_admin(admin_url, f'CREATE DATABASE "{name}"{tpl}')
    return name, _db_url(admin_url, name)


@pytest_asyncio.fixture
async def database_url(pg_admin_url, migrated_template):
    """A fresh database at the head migration, dropped after the test."""
    name, url = await _new_database(pg_admin_url, migrated_template)
    yield url
    await _exec_admin(pg_admin_url, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest_asyncio.fixture
async def empty_database_url(pg_admin_url):
    """A fresh database with no schema at all."""
    name, url = await _new_database(pg_admin_url, None)
    yield url
    await _exec_admin(pg_admin_url, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(scope="session")
def ssh_server(workdir):
    """A real SSH server on loopback; OpenSSH when installed, else asyncssh (logged)."""
    d = workdir / "ssh"
    d.mkdir()
    server = start_ssh_server(d)
    yield server
    server.stop()


@pytest.fixture
def settings(nats_url, database_url, tmp_path) -> Settings:
    """Settings isolated per test: a unique subject prefix (so its own streams) and database."""
    return Settings(
        nats_url=nats_url,
        database_url=database_url,
        subject_prefix=f"t{uuid.uuid4().hex[:10]}",
        data_dir=tmp_path,
        instance="test",
        writer_batch_wait_s=0.2,
    )


@pytest_asyncio.fixture
async def nc(settings):
    from shared.runtime.nats_conn import connect

    conn = await connect(settings, "test")
    yield conn
    await conn.close()


@pytest_asyncio.fixture
async def js(nc, settings):
    from shared.runtime.bootstrap import ensure

    ctx = nc.jetstream()
    await ensure(ctx, settings)
    return ctx
