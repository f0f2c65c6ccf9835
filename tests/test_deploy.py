"""The deploy files are valid: nats-server accepts its config, the Grafana dashboard's SQL names
real tables and columns of the migrated schema."""

from __future__ import annotations

import json
import os
import re
import subprocess
from pathlib import Path

import asyncpg
import yaml

from shared.embedded import nats_server_binary
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
    assert {"timescaledb", "nats", "migrate", "writer", "collector", "watcher", "api", "grafana"} <= set(compose["services"])
    for name in ("writer", "collector", "watcher", "api"):
        assert compose["services"][name]["command"] == [name]


async def test_grafana_queries_run_against_the_schema(database_url):
    dash = json.loads((DEPLOY / "grafana" / "dashboards" / "infrawatch.json").read_text())
    macros = {
        r"\$__timeGroupAlias\((\w+), \$__interval\)": r"date_trunc('minute', \1) AS time",
        r"\$__timeFilter\((\w+)\)": r"\1 > now() - interval '1 day'",
        r"\$device": "'local'",
    }
    conn = await asyncpg.connect(database_url)
    try:
        for panel in dash["panels"]:
            sql = panel["targets"][0]["rawSql"]
            for pattern, repl in macros.items():
                sql = re.sub(pattern, repl, sql)
            await conn.fetch(sql)  # raises on an unknown table or column
        await conn.fetch(re.sub(r"\$\w+", "x", dash["templating"]["list"][0]["query"]))
    finally:
        await conn.close()
