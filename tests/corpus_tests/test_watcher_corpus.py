"""The watcher's parsers on every real file of the corpus: nginx, docker compose, systemd units.

Each field checked is computed here from the source text by code that shares nothing with
the parser (a quote-aware scan for nginx, plain YAML for compose, a line scan for units).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from services.watcher.configtypes import docker_compose, proxy_configs as nginx, systemd_units
from shared.errors import ParseError
from tests.corpus_tests.common import Tally, files, rel, run


def _tally(kind: str, paths: list[Path], parse: Callable[[str, str], Any], errors: str = "strict") -> Tally:
    """Every file through ``parse(text, name)``; only a ParseError may refuse one."""
    items = [(rel(p), lambda p=p: parse(p.read_text(encoding="utf-8", errors=errors), p.name)) for p in paths]
    return run(kind, items, (ParseError,))


def _mismatches(tally: Tally, paths: list[Path], check: Callable[[Path, Any], Any]) -> dict[str, Any]:
    """What ``check(path, parsed)`` found wrong (anything but None) in each parsed file, by corpus path."""
    wrong = {}
    for p in paths:
        parsed = tally.parsed.get(rel(p))
        if parsed is not None and (found := check(p, parsed)) is not None:
            wrong[rel(p)] = found
    return wrong

# ---------------------------------------------------------------- nginx


def _nginx_code(text: str) -> str:
    """The text with comments removed and quoted strings kept whole (quotes stripped later)."""
    out, i, n = [], 0, len(text)
    while i < n:
        ch = text[i]
        if ch in "\"'":
            end = i + 1
            while end < n and text[end] != ch:
                end += 2 if text[end] == "\\" else 1
            out.append(text[i:end + 1])
            i = end + 1
        elif ch == "#":
            while i < n and text[i] != "\n":
                i += 1
        else:
            out.append(ch)
            i += 1
    return "".join(out)


# a directive starts a statement: at the start, or after ; { } or whitespace, never after $ (a variable)
def _directive_args(code: str, name: str) -> list[list[str]]:
    found = re.finditer(rf"(?:^|(?<=[;{{}}\s])){name}\s+((?:\"[^\"]*\"|'[^']*'|[^;{{}}\"'])*);", code)
    return [[a.strip("\"'") for a in re.findall(r"\"[^\"]*\"|'[^']*'|[^\s]+", m.group(1))] for m in found]


NGINX = files("nginx")


@pytest.fixture(scope="module")
def nginx_tally() -> Tally:
    return _tally("nginx", NGINX, nginx.parse, errors="replace")


def test_nginx_corpus_parses(nginx_tally) -> None:
    assert len(NGINX) >= 300
    nginx_tally.check_share()


def test_nginx_server_names_and_includes_match_the_source(nginx_tally) -> None:
    def check(p: Path, parsed: dict):
        code = _nginx_code(p.read_text(encoding="utf-8", errors="replace"))
        names = sorted({a for args in _directive_args(code, "server_name") for a in args})
        includes = sorted({" ".join(args) for args in _directive_args(code, "include")})
        if (parsed["server_names"], parsed["includes"]) != (names, includes):
            return (parsed["server_names"], names), (parsed["includes"], includes)
        return None

    wrong = _mismatches(nginx_tally, NGINX, check)
    assert not wrong, wrong
    assert sum(bool(r["server_names"]) for r in nginx_tally.parsed.values()) >= 50


def test_nginx_proxied_containers_match_the_source(nginx_tally) -> None:
    """SWAG style: `set $upstream_app radarr;` then `proxy_pass http://$upstream_app:7878;` proxies to radarr."""
    checked = []

    def check(p: Path, parsed: dict):
        code = _nginx_code(p.read_text(encoding="utf-8", errors="replace"))
        sets = {m.group(1): m.group(2) for m in re.finditer(r"(?:^|(?<=[;{}\s]))set\s+\$(\w+)\s+([\w.-]+);", code)}
        hosts = {sets[v] for v in re.findall(r"(?:^|(?<=[;{}\s]))proxy_pass\s+[^;]*://\$(\w+)", code) if v in sets}
        hosts = {h for h in hosts if not h.replace(".", "").isdigit()}
        if not hosts:
            return None
        checked.append(p)
        return None if hosts <= set(parsed["upstream_hosts"]) else (parsed["upstream_hosts"], sorted(hosts))

    wrong = _mismatches(nginx_tally, NGINX, check)
    assert not wrong, wrong
    assert len(checked) >= 15


# ---------------------------------------------------------------- docker compose

COMPOSE = files("compose")
# Invalid by design in their source: docker-compose's own test of a rejected file.
COMPOSE_INVALID = {"compose/docker-compose-1.29.2/invalid-composefile/invalid.yml"}


def _compose_services(doc) -> dict:
    """The services of a compose document: under `services:`, or at the top of a version-1 file."""
    if not isinstance(doc, dict):
        return {}
    if "services" in doc or "version" in doc:
        return doc.get("services") or {}
    return {k: v for k, v in doc.items() if isinstance(v, dict)}


@pytest.fixture(scope="module")
def compose_tally() -> Tally:
    return _tally("compose", COMPOSE, docker_compose.parse)


def test_compose_corpus_parses(compose_tally) -> None:
    projects = [p for p in COMPOSE if "docker-compose-1.29.2" not in p.parts]
    assert len(projects) >= 50 and len({p.parent for p in projects}) >= 20
    compose_tally.check_share(COMPOSE_INVALID)


def test_compose_services_images_and_env_keys_match_the_source(compose_tally) -> None:
    def check(p: Path, parsed: dict):
        problems = {}
        services = _compose_services(yaml.safe_load(p.read_text(encoding="utf-8")))
        expected = {str(k): (v or {}).get("image") for k, v in services.items()}
        got = {k: s["image"] for k, s in parsed["services"].items()}
        if got != expected:
            problems["images"] = (got, expected)
        for name, svc in parsed["services"].items():
            env = (services.get(name) or {}).get("environment") or []
            values = [str(e).split("=", 1)[1] for e in env if isinstance(e, str) and "=" in e and len(e.split("=", 1)[1]) > 3]
            if isinstance(env, dict):
                values = [str(v) for v in env.values() if v is not None and len(str(v)) > 3]
            leaked = [v for v in values if v in svc["environment"]]
            if leaked or any("=" in k for k in svc["environment"]):
                problems[f"{name} environment"] = svc["environment"]
        return problems or None

    wrong = _mismatches(compose_tally, COMPOSE, check)
    assert not wrong, wrong


# ---------------------------------------------------------------- systemd units

UNITS = files("systemd")


def _unit_keys(text: str, section: str, key: str) -> list[str]:
    """Values of `key` in `[section]`, continuation lines joined, an empty value resetting."""
    values: list[str] = []
    current, lines = None, iter(text.splitlines())
    for raw in lines:
        line = raw.strip()
        if line.startswith("[") and line.endswith("]"):
            current = line[1:-1]
            continue
        if current != section or not line.startswith(key + "="):
            continue
        value = line[len(key) + 1:]
        while value.endswith("\\"):
            nxt = next(lines, "").strip()
            if nxt.startswith(("#", ";")):
                continue
            value = value[:-1] + " " + nxt
        value = " ".join(value.split())
        values = [*values, value] if value else []
    return values


@pytest.fixture(scope="module")
def systemd_tally() -> Tally:
    return _tally("systemd", UNITS, systemd_units.parse)


def test_systemd_corpus_parses(systemd_tally) -> None:
    assert len(UNITS) >= 150
    systemd_tally.check_share()


def test_systemd_exec_start_and_description_match_the_source(systemd_tally) -> None:
    def check(p: Path, parsed: dict):
        text = p.read_text(encoding="utf-8")
        got = [" ".join(v.split()) for v in parsed["exec_start"]]
        description = (_unit_keys(text, "Unit", "Description") or [None])[-1]
        if got != _unit_keys(text, "Service", "ExecStart") or parsed["description"] != description:
            return got, parsed["description"]
        return None

    wrong = _mismatches(systemd_tally, UNITS, check)
    assert not wrong, wrong
    assert sum(bool(r["exec_start"]) for r in systemd_tally.parsed.values()) >= 150
