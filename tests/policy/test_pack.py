"""The default policy pack on real files: PostgreSQL evaluates each rule's JSONPath, as the policy
evaluator does, over what the watcher's parsers make of files written by others (tests/corpus,
their origins in tests/corpus/SOURCES.md).

Every rule has at least one real file that violates it, with the exact values it must return,
and a real file that complies. A few cases are a real file with a minimal edit made here, to show
that the fix (or the mistake) is what the rule turns on; each says which edit.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import asyncpg
import pytest

from services.policy.pack import PACK
from services.watcher.configtypes import CONFIG_TYPES
from shared.errors import ParseError
from shared.policy_events import SEVERITIES

CORPUS = Path(__file__).resolve().parents[1] / "corpus"
KIND = {"docker_compose": "compose", "proxy_configs": "nginx", "systemd_units": "systemd"}
RULES = {p.name: p for p in PACK}
EVALUATE = "SELECT jsonb_path_query_array($1::jsonb, $2::jsonpath, '{}', true)"

Edit = Callable[[str], str]


def _drop(*lines: str) -> Edit:
    """Remove these lines (stripped text) from the file."""
    def edit(text: str) -> str:
        kept = [ln for ln in text.splitlines(keepends=True) if ln.strip() not in lines]
        assert len(kept) < len(text.splitlines()), f"none of {lines} in the file"
        return "".join(kept)
    return edit


def _after(line: str, added: str) -> Edit:
    """Insert ``added`` as a new line after the first line whose stripped text is ``line``."""
    def edit(text: str) -> str:
        out, done = [], False
        for ln in text.splitlines(keepends=True):
            out.append(ln)
            if not done and ln.strip() == line:
                out.append(added + "\n")
                done = True
        assert done, f"{line!r} not in the file"
        return "".join(out)
    return edit


# (rule, corpus file, expected matching values, edit of the file or None)
CASES: list[tuple[str, str, list[str], Edit | None]] = [
    ("compose-privileged", "compose/dockprom/docker-compose.yml", ["nodeexporter"], None),
    ("compose-privileged", "compose/awesome-compose/netdata.compose.yaml", [], None),  # cap_add, not privileged
    ("compose-docker-socket", "compose/nginx-proxy/docker-compose.yml", ["nginx-proxy"], None),
    ("compose-docker-socket", "compose/nextcloud/with-nginx-proxy-mariadb-apache.compose.yaml",
     ["proxy", "letsencrypt-companion"], None),
    ("compose-docker-socket", "compose/awesome-compose/portainer.docker-compose.yaml", ["portainer"], None),
    ("compose-docker-socket", "compose/gitea/docker-compose.yml", [], None),
    ("compose-host-network", "compose/awesome-compose/plex.compose.yaml", ["plex"], None),
    ("compose-host-network", "compose/jellyfin/docker-compose.yml", [], None),
    ("compose-unpinned-image", "compose/zulip/docker-compose.yml", ["camo", "redis", "zulip", "memcache"], None),
    # redis and postgres are untagged; outline's "${...}/outline:${IMAGE_TAG:-latest}" has a tag
    ("compose-unpinned-image", "compose/outline/docker-compose.yml", ["redis", "postgres"], None),
    ("compose-unpinned-image", "compose/dockprom/docker-compose.yml", ["caddy"], None),
    ("compose-unpinned-image", "compose/immich/docker-compose.yml", [], None),
    ("compose-unpinned-image", "compose/docker-compose-1.29.2/simple-composefile/digest.yml", [], None),
    ("compose-database-port-public", "compose/awesome-compose/postgresql-pgadmin.compose.yaml", ["postgres"], None),
    ("compose-database-port-public", "compose/gitea/docker-compose.yml", ["gitea-mysql-database"], None),
    # outline publishes redis and postgres on 127.0.0.1 only
    ("compose-database-port-public", "compose/outline/docker-compose.yml", [], None),
    ("compose-plaintext-secret", "compose/awesome-compose/wordpress-mysql.compose.yaml",
     ["db", "wordpress", "phpmyadmin"], None),
    ("compose-plaintext-secret", "compose/zulip/docker-compose.yml", ["database"], None),
    # authentik takes its passwords from ${PG_PASS:?...} and an env_file
    ("compose-plaintext-secret", "compose/authentik/docker-compose.yml", [], None),
    ("nginx-tls-without-certificate", "nginx/gixy-ng/plugins/simply/hsts_header/missing_hsts.conf", ["_"], None),
    ("nginx-tls-without-certificate", "nginx/swag/grafana.subdomain.conf.sample", [], None),  # include ssl.conf
    # edit: without SWAG's ssl.conf include the server has no certificate
    ("nginx-tls-without-certificate", "nginx/swag/grafana.subdomain.conf.sample", ["grafana.*"],
     _drop("include /config/nginx/ssl.conf;")),
    ("nginx-tls-without-certificate", "nginx/debian/nginx-common/etc/nginx/sites-available/default", [], None),
    ("nginx-autoindex", "nginx/nginx.autoindex/nginx.autoindex.conf", ["~ \\/$"], None),
    ("nginx-autoindex", "nginx/debian/nginx-common/etc/nginx/sites-available/default", [], None),
    # edit: "autoindex on;" in the default site's location / names the server
    ("nginx-autoindex", "nginx/debian/nginx-common/etc/nginx/sites-available/default", ["_"],
     _after("try_files $uri $uri/ =404;", "autoindex on;")),
    # its location sets X-Bucket only, so the server's headers are not inherited and Host is unset
    ("nginx-proxy-without-host", "nginx/gixy-ng/integration/issue100_set_scope.conf", ["example.com"], None),
    ("nginx-proxy-without-host", "nginx/swag/grafana.subdomain.conf.sample", [], None),  # include proxy.conf
    # edit: without proxy.conf both proxied locations of the server lack Host
    ("nginx-proxy-without-host", "nginx/swag/grafana.subdomain.conf.sample", ["grafana.*"],
     _drop("include /config/nginx/proxy.conf;")),
    # edit: a snippet of location blocks (SWAG subfolder) names the location itself
    ("nginx-proxy-without-host", "nginx/swag/bazarr.subfolder.conf.sample", ["^~ /bazarr/"],
     _drop("include /config/nginx/proxy.conf;")),
    ("nginx-tls-without-hsts", "nginx/swag/grafana.subdomain.conf.sample", ["grafana.*"], None),
    ("nginx-tls-without-hsts", "nginx/gixy-ng/plugins/simply/hsts_header/missing_hsts.conf", ["_"], None),
    ("nginx-tls-without-hsts", "nginx/gixy-ng/plugins/simply/hsts_header/with_hsts_fp.conf", [], None),
    ("nginx-tls-without-hsts", "nginx/debian/nginx-common/etc/nginx/sites-available/default", [], None),
    ("systemd-root-unhardened", "systemd/cron/cron.service", ["cron.service"], None),
    ("systemd-root-unhardened", "systemd/prometheus/prometheus.service", [], None),  # User=prometheus
    ("systemd-root-unhardened", "systemd/bluez/bluetooth.service", [], None),  # root, ProtectSystem=strict
    # edit: the same unit without its sandboxing
    ("systemd-root-unhardened", "systemd/bluez/bluetooth.service", ["bluetooth.service"],
     _drop("ProtectSystem=strict", "NoNewPrivileges=true")),
    ("systemd-root-unhardened", "systemd/systemd/rc-local.service.d/debian.conf", [], None),  # a drop-in
    ("systemd-no-restart", "systemd/nginx-common/nginx.service", ["nginx.service"], None),
    ("systemd-no-restart", "systemd/bluez/bluetooth.service", ["bluetooth.service"], None),  # "#Restart=" only
    ("systemd-no-restart", "systemd/openssh-server/ssh.service", [], None),
    ("systemd-no-restart", "systemd/apt/apt-daily.service", [], None),  # Type=oneshot
    ("systemd-no-restart", "systemd/systemd/rc-local.service.d/debian.conf", [], None),
]


def _parsed(config_type: str, rel: str, edit: Edit | None = None) -> dict[str, Any]:
    path = CORPUS / rel
    text = path.read_text(encoding="utf-8", errors="replace")
    parse = CONFIG_TYPES[config_type].parse
    assert parse is not None
    return parse(edit(text) if edit else text, path.name)


@pytest.fixture
async def conn(database_url):
    c = await asyncpg.connect(database_url)
    yield c
    await c.close()


async def test_the_pack_is_well_formed(conn) -> None:
    assert len(RULES) == len(PACK), "policy names must be unique"
    for spec in PACK:
        assert re.fullmatch(r"[a-z0-9][a-z0-9-]{0,62}", spec.name), spec.name
        assert spec.severity in SEVERITIES and spec.config_type in CONFIG_TYPES, spec
        assert spec.message and "\n" not in spec.message and spec.description, spec.name
        await conn.execute("SELECT $1::jsonpath", spec.jsonpath)  # compiles, or raises


@pytest.mark.parametrize("rule", sorted(RULES))
async def test_rule_on_real_files(conn, rule: str) -> None:
    spec = RULES[rule]
    cases = [c for c in CASES if c[0] == rule]
    assert any(c[2] and c[3] is None for c in cases), "a real file that violates the rule, unchanged"
    assert any(not c[2] and c[3] is None for c in cases), "a real file that complies, unchanged"
    for _, rel, expected, edit in cases:
        got = json.loads(await conn.fetchval(EVALUATE, json.dumps(_parsed(spec.config_type, rel, edit)), spec.jsonpath))
        assert got == expected, (rel, "edited" if edit else "as published")


async def test_every_rule_over_its_whole_corpus(conn) -> None:
    """Evaluated without error suppression over every parsed corpus file of its type: no rule
    relies on an error to decide. Each matches some files and not all; no unit rule matches a
    drop-in or a unit that is not a .service."""
    docs: dict[str, list[tuple[str, str]]] = {}
    for config_type, kind in KIND.items():
        for path in sorted(p for p in (CORPUS / kind).rglob("*") if p.is_file()):
            rel = str(path.relative_to(CORPUS))
            try:
                docs.setdefault(config_type, []).append((rel, json.dumps(_parsed(config_type, rel))))
            except ParseError:
                continue
    counts = {}
    for spec in PACK:
        files = docs[spec.config_type]
        rows = await conn.fetch(
            "SELECT i, jsonb_path_query_array(d, $2::jsonpath, '{}', false) AS m "
            "FROM unnest($1::jsonb[]) WITH ORDINALITY AS t(d, i)", [d for _, d in files], spec.jsonpath)
        matched = [files[r["i"] - 1][0] for r in rows if json.loads(r["m"])]
        counts[spec.name] = f"{len(matched)}/{len(files)}"
        assert 0 < len(matched) < len(files), (spec.name, counts[spec.name])
        if spec.config_type == "systemd_units":
            assert all(m.endswith(".service") and ".d/" not in m for m in matched), spec.name
    print(counts)
