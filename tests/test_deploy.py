"""The deploy files are valid and secure by default: nats-server accepts its config (monitoring on
loopback), the Grafana dashboard's SQL names real tables and columns of the migrated schema and
runs as the read-only role; each systemd unit has a user and state of its own; compose publishes
the API over TLS only and Grafana on loopback with a required password; the bootstrap step gives
each database role only its own rights."""

from __future__ import annotations

import asyncio
import json
import os
import re
import shutil
import subprocess
import sys
import uuid
from pathlib import Path

import asyncpg
import pytest
import yaml

from shared.runtime.db_roles import API_TABLES, ROLES, SECRET_TABLES, create_roles, grant
from shared.runtime.embedded import nats_server_binary
from shared.settings import Settings, api_bind_problem
from tests.nats_cluster import password_env, passwords

DEPLOY = Path(__file__).resolve().parent.parent / "deploy"


def test_nats_configs_are_valid():
    env = {**os.environ, **password_env(passwords())}  # accounts.conf reads its passwords from the environment
    confs = sorted((DEPLOY / "nats").rglob("*.conf"))
    assert {"single.conf", "accounts.conf", "n1.conf", "n2.conf", "n3.conf"} <= {c.name for c in confs}
    for conf in confs:
        r = subprocess.run([nats_server_binary(), "-t", "-c", str(conf)], capture_output=True, text=True, env=env)
        assert r.returncode == 0, f"{conf.name}: {r.stderr}"


def test_compose_file_names_every_service():
    compose = yaml.safe_load((DEPLOY / "docker-compose.yml").read_text())
    assert {"timescaledb", "nats", "bootstrap", "writer", "collector", "watcher", "api", "api-tls",
            "grafana"} <= set(compose["services"])
    for name in ("writer", "collector", "watcher", "api"):
        assert compose["services"][name]["command"] == [name]


async def test_grafana_queries_run_against_the_schema_as_the_read_only_role(database_url):
    dash = json.loads((DEPLOY / "grafana" / "dashboards" / "infrawatch.json").read_text())
    macros = {
        r"\$__timeGroupAlias\((\w+), \$__interval\)": r"date_trunc('minute', \1) AS time",
        r"\$__timeFilter\((\w+)\)": r"\1 > now() - interval '1 day'",
        r"\$device": "'local'",
    }
    # as Grafana's read-only role, as deploy/grafana's datasource logs in
    await create_roles(database_url, {k: uuid.uuid4().hex for k in ROLES})
    assert await grant(database_url)
    conn = await asyncpg.connect(database_url)
    await conn.execute(f"SET ROLE {ROLES['reader']}")
    try:
        for panel in dash["panels"]:
            sql = panel["targets"][0]["rawSql"]
            for pattern, repl in macros.items():
                sql = re.sub(pattern, repl, sql)
            await conn.fetch(sql)  # raises on an unknown table or column
        await conn.fetch(re.sub(r"\$\w+", "x", dash["templating"]["list"][0]["query"]))
    finally:
        await conn.close()


SERVICE_UNITS = ("collector", "watcher", "writer", "api", "alerts", "policy")


def _unit(name: str) -> dict[str, list[str]]:
    """A systemd unit's keys, each with every value it is given (keys repeat in units)."""
    out: dict[str, list[str]] = {}
    for line in (DEPLOY / "systemd" / f"infrawatch-{name}.service").read_text().splitlines():
        if "=" in line and not line.lstrip().startswith("#"):
            key, _, value = line.partition("=")
            out.setdefault(key.strip(), []).append(value.strip())
    return out


def test_each_systemd_unit_runs_as_its_own_user_with_its_own_state():
    units = {name: _unit(name) for name in SERVICE_UNITS}
    states = set()
    for name, u in units.items():
        assert u.get("DynamicUser") == ["yes"] and "User" not in u, name  # a user allocated per unit
        assert u["StateDirectory"] == [f"infrawatch-{name}"] and u["StateDirectoryMode"] == ["0700"], name
        assert "ReadWritePaths" not in u, name
        states.add(u["StateDirectory"][0])
        assert u["Requires"] == ["infrawatch-bootstrap.service"], name  # streams come from bootstrap
        assert f"INFRAWATCH_NATS_USER={name}" in u["Environment"], name
    assert len(states) == len(SERVICE_UNITS)
    # the SSH key reaches the collector and the watcher alone, as a credential of their unit
    for name, u in units.items():
        creds = " ".join(u.get("LoadCredential", []))
        assert ("id_ed25519" in creds) == (name in ("collector", "watcher")), name
        assert "/etc/infrawatch/ssh" not in " ".join(u.get("Environment", [])), name
    assert "id_ed25519" not in (DEPLOY / "systemd" / "infrawatch-api.service").read_text()


@pytest.mark.skipif(not shutil.which("systemd-analyze"), reason="needs systemd-analyze")
def test_systemd_units_are_valid_and_confined(tmp_path):
    """systemd's own checks: no unknown or malformed setting, and its offline exposure score
    (0 = fully confined, 10 = exposed) at most 2.5 for every unit."""
    names = [*SERVICE_UNITS, "bootstrap"]
    for name in names:
        shutil.copy(DEPLOY / "systemd" / f"infrawatch-{name}.service", tmp_path)
    files = [f"./infrawatch-{n}.service" for n in names]
    r = subprocess.run(["systemd-analyze", "verify", "--man=no", *files], capture_output=True, text=True,
                       cwd=tmp_path)
    problems = [line for line in (r.stdout + r.stderr).splitlines() if "is not executable" not in line]
    assert not problems, "\n".join(problems)  # the venv is not installed here: that one is expected
    for f in files:
        r = subprocess.run(["systemd-analyze", "security", "--offline=true", f], capture_output=True, text=True,
                           cwd=tmp_path)
        score = re.search(r"Overall exposure level for \S+: ([\d.]+)", r.stdout)
        assert score, r.stdout[-500:] + r.stderr
        assert float(score.group(1)) <= 2.5, (f, score.group(0))


def test_compose_publishes_the_api_over_tls_only_and_grafana_on_loopback_with_a_password():
    compose = yaml.safe_load((DEPLOY / "docker-compose.yml").read_text())
    services = compose["services"]
    api, tls, grafana = services["api"], services["api-tls"], services["grafana"]
    assert api["environment"]["INFRAWATCH_API_HOST"] == "127.0.0.1"  # plain HTTP stays in its namespace
    assert tls["network_mode"] == "service:api"  # the proxy shares it, and owns the published port
    assert api["ports"] == ["8443:8443"]
    caddy = (DEPLOY / "caddy" / "Caddyfile").read_text()
    assert re.search(r"(?m)^:8443 \{", caddy) and re.search(r"(?m)^\s*tls /etc/caddy/tls/cert.pem", caddy)
    assert "reverse_proxy 127.0.0.1:8000" in caddy and "admin off" in caddy
    assert grafana["ports"] == ["127.0.0.1:3000:3000"]
    env = grafana["environment"]
    assert env["GF_SECURITY_ADMIN_PASSWORD"].startswith("${GRAFANA_ADMIN_PASSWORD:?")  # no default password
    assert env["GF_AUTH_ANONYMOUS_ENABLED"] == "false" and env["GF_USERS_ALLOW_SIGN_UP"] == "false"
    for name, svc in services.items():
        for port in svc.get("ports", []):
            assert str(port).startswith("127.0.0.1:") or (name, port) == ("api", "8443:8443"), (name, port)
    # each service gets its own NATS user, and those with a database their own role
    for name in ("writer", "collector", "watcher", "api", "alerts", "policy"):
        assert services[name]["environment"]["INFRAWATCH_NATS_USER"] == name
    assert "infrawatch_writer:" in services["writer"]["environment"]["INFRAWATCH_DATABASE_URL"]
    assert "infrawatch_writer:" in services["policy"]["environment"]["INFRAWATCH_DATABASE_URL"]
    assert "infrawatch_api:" in services["api"]["environment"]["INFRAWATCH_DATABASE_URL"]
    assert "INFRAWATCH_DATABASE_URL" not in (DEPLOY / "infrawatch.env.example").read_text()
    assert "volumes" not in services["api"]  # no SSH key in the API's container


def test_nats_monitoring_listens_on_loopback_only():
    for conf in sorted((DEPLOY / "nats").rglob("*.conf")):
        text = conf.read_text()
        assert not re.search(r"(?m)^\s*(http_port|monitor_port|https_port)\s*:", text), conf.name
        for m in re.finditer(r"(?m)^\s*https?\s*:\s*(\S+)", text):
            assert m.group(1).startswith("127.0.0.1:"), (conf.name, m.group(0))


def test_the_api_does_not_serve_plain_http_beyond_loopback(tmp_path):
    for host in ("127.0.0.1", "::1", "[::1]", "localhost"):
        assert api_bind_problem(Settings(api_host=host)) is None
    for host in ("0.0.0.0", "::", "192.0.2.1"):
        assert "plain HTTP" in api_bind_problem(Settings(api_host=host))
    assert api_bind_problem(Settings(api_host="0.0.0.0", api_plain_http_public=True)) is None
    env = {**os.environ, "INFRAWATCH_API_HOST": "0.0.0.0", "INFRAWATCH_NATS_URL": "nats://127.0.0.1:1"}
    for command in ("api", "up"):  # refused before anything starts
        r = subprocess.run([sys.executable, "-m", "services.cli", command], capture_output=True, text=True,
                           env={**env, "INFRAWATCH_DATA_DIR": str(tmp_path / command)})
        assert r.returncode == 1 and "plain HTTP" in r.stderr, (command, r.stderr)
        assert not (tmp_path / command).exists()


async def test_bootstrap_gives_each_database_role_only_its_own_rights(empty_database_url, tmp_path):
    """`infrawatch bootstrap` on an empty database: roles, schema migrated as the owner, grants."""
    pw = {k: uuid.uuid4().hex for k in ROLES}
    env = {**os.environ, "INFRAWATCH_DATABASE_URL": empty_database_url, "INFRAWATCH_DATA_DIR": str(tmp_path),
           **{f"INFRAWATCH_DB_{k.upper()}_PASSWORD": v for k, v in pw.items()}}
    cli = [sys.executable, "-m", "services.cli", "bootstrap", "--no-nats"]
    r = await asyncio.to_thread(subprocess.run, cli, capture_output=True, text=True,
                                env={k: v for k, v in env.items() if k != "INFRAWATCH_DB_API_PASSWORD"})
    assert r.returncode == 1 and "INFRAWATCH_DB_API_PASSWORD" in r.stderr, r.stderr  # no role without one
    r = await asyncio.to_thread(subprocess.run, cli, capture_output=True, text=True, env=env)
    assert r.returncode == 0, r.stderr
    conn = await asyncpg.connect(empty_database_url)
    try:
        tables = [r["relname"] for r in await conn.fetch(
            "SELECT c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
            "WHERE n.nspname = 'public' AND c.relkind IN ('r', 'p') AND c.relname <> 'alembic_version'")]
        assert {"system_metrics", "devices", "api_keys", "alert_rules"} <= set(tables)
        owners = {r["o"] for r in await conn.fetch(
            "SELECT pg_get_userbyid(c.relowner) AS o FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
            "WHERE n.nspname = 'public' AND c.relkind IN ('r', 'p', 'v', 'm', 'S')")}
        assert owners == {ROLES["owner"]}

        async def may(role: str, table: str, priv: str) -> bool:
            return await conn.fetchval("SELECT has_table_privilege($1, $2, $3)", ROLES[role], table, priv)

        for t in tables:
            projection = t not in API_TABLES
            assert await may("writer", t, "INSERT") == projection, t
            assert await may("api", t, "INSERT") == (not projection), t
            assert await may("api", t, "SELECT"), t
            assert await may("writer", t, "SELECT") == (t not in SECRET_TABLES), t
            assert await may("reader", t, "SELECT") == (t not in SECRET_TABLES), t
            assert not await may("reader", t, "INSERT"), t
            for role in ("writer", "api", "reader"):
                assert not await may(role, t, "TRUNCATE") and not await may(role, t, "REFERENCES"), (role, t)
        db = await conn.fetchval("SELECT current_database()")
        for role in ("writer", "api", "reader"):
            assert not await conn.fetchval("SELECT has_schema_privilege($1, 'public', 'CREATE')", ROLES[role])
            assert not await conn.fetchval("SELECT has_database_privilege($1, $2, 'CREATE')", ROLES[role], db)
        assert not await conn.fetchval("SELECT has_database_privilege('public', $1, 'CONNECT')", db)
        assert not await conn.fetchval("SELECT bool_or(rolsuper OR rolcreaterole OR rolcreatedb) FROM pg_roles "
                                       "WHERE rolname = ANY($1::text[])", list(ROLES.values()))
    finally:
        await conn.close()


def test_up_renders_the_nats_permissions_for_another_subject_prefix(tmp_path):
    """`infrawatch up` runs accounts.conf itself; with INFRAWATCH_SUBJECT_PREFIX=acme every
    subject, stream and bucket name follows, and nats-server accepts the result."""
    from shared.runtime.embedded import accounts_conf

    text = accounts_conf("acme")
    assert not re.search(r"(?<![A-Za-z0-9])(infra[._]|INFRA_)", text)
    for name in ('"acme.collected.>"', '"$KV.acme_cache.>"', '"$JS.API.STREAM.PURGE.KV_acme_cache"',
                 '"$JS.API.CONSUMER.CREATE.ACME_DEVICES"', '"$JS.API.CONSUMER.MSG.NEXT.*.writer"'):
        assert name in text, name
    (tmp_path / "accounts.conf").write_text(text)
    (tmp_path / "nats.conf").write_text("listen: 127.0.0.1:4222\ninclude ./accounts.conf\n")
    env = {**os.environ, **password_env(passwords())}
    r = subprocess.run([nats_server_binary(), "-t", "-c", str(tmp_path / "nats.conf")], capture_output=True,
                       text=True, env=env)
    assert r.returncode == 0, r.stderr


async def test_bootstrap_creates_the_streams_and_buckets(nats_url, tmp_path):
    import nats

    from shared.names import Names
    from shared.runtime.bootstrap import kv_configs, stream_configs

    prefix = f"b{uuid.uuid4().hex[:8]}"
    env = {**os.environ, "INFRAWATCH_NATS_URL": nats_url, "INFRAWATCH_SUBJECT_PREFIX": prefix,
           "INFRAWATCH_DATA_DIR": str(tmp_path)}
    r = await asyncio.to_thread(subprocess.run, [sys.executable, "-m", "services.cli", "bootstrap", "--no-database"],
                                capture_output=True, text=True, env=env)
    assert r.returncode == 0, r.stderr
    settings = Settings(subject_prefix=prefix)
    nc = await nats.connect(nats_url)
    try:
        js = nc.jetstream()
        for cfg in stream_configs(settings):
            assert (await js.stream_info(cfg.name)).config.subjects == cfg.subjects
        for kv in kv_configs(settings):
            await js.key_value(kv.bucket)  # raises when missing
        assert Names(prefix).stream_devices in {c.name for c in stream_configs(settings)}
    finally:
        await nc.close()
