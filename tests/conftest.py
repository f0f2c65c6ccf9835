"""Real servers for the tests: nats-server with JetStream, PostgreSQL and an SSH server,
each started on a free loopback port (or taken from INFRAWATCH_TEST_DATABASE_URL)."""

from __future__ import annotations

import asyncio
import logging
import os
import shutil
import tempfile
import uuid
from pathlib import Path

import asyncpg
import pytest
import pytest_asyncio

from shared.embedded import NatsServer, PostgresServer
from shared.settings import Settings
from tests.sshd import start_ssh_server

log = logging.getLogger("tests")

TEMPLATE_DB = "infrawatch_test_template"


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


@pytest.fixture(scope="session")
def pg_admin_url(workdir):
    """URL of a maintenance database on the test PostgreSQL server."""
    external = os.environ.get("INFRAWATCH_TEST_DATABASE_URL")
    if external:
        log.warning("tests use the PostgreSQL server of INFRAWATCH_TEST_DATABASE_URL")
        yield external.replace("postgresql+asyncpg://", "postgresql://")
        return
    if _backend() == "docker":
        from testcontainers.postgres import PostgresContainer  # untested here: no Docker engine

        with PostgresContainer("timescale/timescaledb:latest-pg16", driver=None) as c:
            yield c.get_connection_url()
        return
    server = PostgresServer(workdir / "pg").start()
    yield server.admin_url()
    server.stop()


def _db_url(admin_url: str, name: str) -> str:
    base, _, _ = admin_url.rpartition("/")
    return f"{base}/{name}"


async def _exec_admin(admin_url: str, sql: str) -> None:
    conn = await asyncpg.connect(admin_url)
    try:
        await conn.execute(sql)
    finally:
        await conn.close()


@pytest.fixture(scope="session")
def has_timescaledb(pg_admin_url) -> bool:
    async def check() -> bool:
        conn = await asyncpg.connect(pg_admin_url)
        try:
            return bool(await conn.fetchval(
                "SELECT count(*) FROM pg_available_extensions WHERE name = 'timescaledb'"))
        finally:
            await conn.close()

    return asyncio.run(check())


@pytest.fixture
def timescaledb(has_timescaledb):
    """Marks a test that needs TimescaleDB; such tests run only against a server that has it."""
    if not has_timescaledb:
        pytest.skip(reason="needs TimescaleDB: set INFRAWATCH_TEST_DATABASE_URL to a TimescaleDB server")


@pytest.fixture(scope="session")
def migrated_template(pg_admin_url) -> str:
    """A database migrated to head once per session; tests get copies of it."""
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
    url = _db_url(pg_admin_url, TEMPLATE_DB)
    upgrade(url)
    asyncio.run(seal())
    return TEMPLATE_DB


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
    from shared.nats_conn import connect

    conn = await connect(settings, "test")
    yield conn
    await conn.close()


@pytest_asyncio.fixture
async def js(nc, settings):
    from shared.bootstrap import ensure

    ctx = nc.jetstream()
    await ensure(ctx, settings)
    return ctx
