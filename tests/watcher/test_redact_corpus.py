"""Redaction properties on every file of the real-world corpus (tests/corpus/{nginx,compose,
systemd}; tests/watcher/testdata until the corpus exists) and on generated secrets:

- the redacted text has the original's line count and parses to the same keys, services and
  directives;
- secrets planted into the real files (compose environment lists and maps, block scalars, PEM
  blocks, nginx headers and ``set``, unit ``Environment=`` and command lines) appear in no
  string of the events the watcher builds from them (content, parsed data, impact and diff),
  of the rows the writer stores from them, or of the diff the API builds from stored content.
"""

from __future__ import annotations

import difflib
import hashlib
import json
import re
import uuid
from pathlib import Path

import msgspec
import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

from services.watcher.changes import Context, Item, Seen, decide, diff, known_after
from services.watcher.configtypes import CONFIG_TYPES, docker_compose, proxy_configs as nginx, systemd_units
from services.watcher.redact import _structure, redact
from services.watcher.redaction.text import lower
from services.watcher.remote import FileStat
from services.writer.projections.config import config_changed
from shared.events import DeviceSpec

ROOT = Path(__file__).resolve().parents[1]
CORPUS = {"nginx": "proxy_configs", "compose": "docker_compose", "systemd": "systemd_units"}
FALLBACK = ROOT / "watcher" / "testdata"
DEV = DeviceSpec(id=uuid.UUID(int=11), name="box")
NOW = 1_800_000_000.0


def corpus_files(kind: str) -> list[Path]:
    """Every file of tests/corpus/<kind>, or the watcher's own test files while it does not exist."""
    base = ROOT / "corpus" / kind
    if base.is_dir():
        return sorted(p for p in base.rglob("*") if p.is_file())
    return sorted(p for p in (FALLBACK / CORPUS[kind]).iterdir() if p.suffix != ".json")


FILES = [(CORPUS[kind], p) for kind in CORPUS for p in corpus_files(kind)]


def _id(p: Path) -> str:
    return str(p.relative_to(ROOT))


@pytest.mark.parametrize("kind", sorted(CORPUS))
def test_corpus_directories_are_not_empty(kind: str) -> None:
    assert corpus_files(kind), f"no files for {kind}"


# ------------------------------------------------------------------ shapes


def _directives(tree: list[dict], depth: int = 0) -> list[tuple[int, str, int]]:
    out = []
    for d in tree:
        out.append((depth, d["directive"], len(d["args"])))
        out.extend(_directives(d.get("block", []), depth + 1))
    return out


def shape(config_type: str, text: str, path: str):
    """What redaction must not change: keys, services, directives."""
    if config_type == "proxy_configs":
        parsed = nginx.parse(text, path)
        return _directives(nginx._crossplane(text)), parsed["servers"].keys(), parsed["upstreams"].keys()
    if config_type == "docker_compose":
        parsed = docker_compose.parse(text, path)
        services = {name: {k: s[k] for k in ("environment", "networks", "depends_on", "ports", "volumes")}
                    for name, s in parsed["services"].items()}
        return services, parsed["networks"], parsed["volumes"], parsed["secrets"]
    parsed = systemd_units.parse(text, path)
    return ({sec: sorted(keys) for sec, keys in parsed["sections"].items()}, parsed["environment_keys"],
            len(parsed["exec_start"]))


def _parses(config_type: str, text: str, path: str) -> bool:
    try:
        CONFIG_TYPES[config_type].parse(text, path)
        return True
    except Exception:
        return False


@pytest.mark.parametrize("config_type, path", FILES, ids=[_id(p) for _, p in FILES])
def test_redacted_corpus_file_keeps_lines_and_structure(config_type: str, path: Path) -> None:
    text = path.read_text(encoding="utf-8", errors="replace")
    out, _ = redact(text, config_type=config_type, path=str(path))
    assert out.count("\n") == text.count("\n")
    if _parses(config_type, text, str(path)):
        assert shape(config_type, out, str(path)) == shape(config_type, text, str(path))


# ------------------------------------------------------------------ planted secrets

PEM = ("{i}-----BEGIN RSA PRIVATE KEY-----\n{i}MIIEpQIBAAKCAQEAzebraPEMline1\n{i}Qx7horsePEMline2==\n"
       "{i}-----END RSA PRIVATE KEY-----\n")


def plant(config_type: str, text: str, tag: str) -> tuple[str, list[str]]:
    """The file with secrets (marked with ``tag``) added where real files hold them, and the
    secret words that must not survive."""
    words = [f"zebra{tag}", f"horse{tag}", f"battery{tag}", f"quote{tag}", f"block{tag}", f"bearer{tag}",
             f"url{tag}", f"flag{tag}", f"cred{tag}"]
    body = f"# revision {tag}\n" + (text if text.endswith("\n") or not text else text + "\n")
    if config_type == "docker_compose":
        lines = body.split("\n")
        out = []
        for i, line in enumerate(lines):
            out.append(line)
            m = re.fullmatch(r"(\s*)environment:\s*", line)
            nxt = next((x for x in lines[i + 1:] if x.strip() and not x.strip().startswith("#")), "")
            ind = re.match(r"\s*", nxt).group()
            if m and len(ind) > len(m.group(1)):
                as_list = nxt.strip().startswith("-")
                out.append(f"{ind}- PLANTED_DB_PASSWORD=zebra{tag} horse{tag} battery{tag}" if as_list
                           else f'{ind}PLANTED_API_TOKEN: "quote{tag}\\"zebra{tag}"')
        planted = "\n".join(out)
        extra = (f"x-planted:\n  password: |\n    block{tag}\n    horse{tag}\n  key: |\n"
                 + PEM.format(i="    ").replace("zebra", f"zebra{tag}")
                 + f"  DATABASE_URL: postgres://app:url{tag}@db/app\n"
                 + f"  command: [\"--db-password\", \"flag{tag}\"]\n"
                 + f"  traefik.basicauth.users: \"u:$$apr1$$cred{tag}$$x\"\n")
        if not _parses(config_type, planted, "c.yml"):
            planted = body
        return planted + extra, words
    if config_type == "proxy_configs":
        ins = (f'  proxy_set_header Authorization "Bearer bearer{tag}";\n  set $api_token zebra{tag};\n'
               f"  proxy_pass http://u:url{tag}@backend;\n  # password: horse{tag}\n")
        planted = re.sub(r"(?m)^(\s*(?:server|location)\b[^#\n;{]*\{[ \t]*\n)", lambda m: m.group(1) + ins, body)
        extra = f'proxy_set_header X-Api-Key "battery{tag} quote{tag}";\nfastcgi_param DB_PASSWORD flag{tag};\n'
        return planted + extra, [w for w in words if not w.startswith(("block", "cred"))]
    ins = (f'Environment=PLANTED_PASSWORD=zebra{tag} horse{tag} LANG=C "PLANTED_TOKEN=battery{tag} quote{tag}"\n'
           f"ExecStartPre=/bin/true --password=flag{tag} postgres://app:url{tag}@db/app\nSetCredential=db:cred{tag}\n")
    if re.search(r"(?m)^\[Service\][ \t]*$", body):
        planted = re.sub(r"(?m)^\[Service\][ \t]*\n", lambda m: m.group(0) + ins, body, count=1)
    else:
        planted = body + "[Service]\n" + ins
    return planted, [w for w in words if not w.startswith(("block", "bearer"))]


def ctx() -> Context:
    return Context(device=DEV, instance="t", watch_mode="inotifywait", trigger="watch", now=NOW)


def seen(path: str, data: bytes) -> Seen:
    return Seen(FileStat(path, len(data), NOW - 1, "root", "0644", hashlib.sha256(data).hexdigest()), data)


def strings(value) -> str:
    """Every string of an event (keys too), joined."""
    if isinstance(value, str):
        return value
    if isinstance(value, dict):
        return "\x00".join(strings(k) + "\x00" + strings(v) for k, v in value.items())
    if isinstance(value, list | tuple):
        return "\x00".join(strings(v) for v in value)
    return ""


def events(config_type: str, path: str, old: str, new: str) -> list:
    """The CREATE of ``old``, and the MODIFY from ``old`` to ``new`` with its diff."""
    create = decide([Item(config_type, path, None, seen(path, old.encode()))], ctx())
    assert len(create) == 1
    modify = diff(Item(config_type, path, known_after(create[0], 1), seen(path, new.encode()), NOW - 0.5), ctx())
    assert modify is not None and modify.change_type == "MODIFY"
    return [*create, modify]


@pytest.mark.parametrize("config_type, path", FILES, ids=[_id(p) for _, p in FILES])
def test_no_planted_secret_survives_in_any_event(config_type: str, path: Path) -> None:
    text = path.read_text(encoding="utf-8", errors="replace")
    old, old_words = plant(config_type, text, "A1")
    new, new_words = plant(config_type, text, "B2")
    if _parses(config_type, text, str(path)):
        assert _parses(config_type, new, str(path)), "the planted file must still parse"
    evs = events(config_type, str(path), old, new)
    rows = [config_changed(ev, i) for i, ev in enumerate(evs, 1)]  # what the writer stores
    api_diff = difflib.unified_diff(evs[0].content.splitlines(), evs[1].content.splitlines())  # as the API builds it
    found = strings(msgspec.to_builtins(evs)) + strings(msgspec.to_builtins(rows)) + "\n".join(api_diff)
    assert "revision B2" in evs[1].impact.unified_diff, "the diff of the redacted texts of both versions"
    leaked = [w for w in old_words + new_words if w in found]
    assert not leaked
    if _parses(config_type, new, str(path)):
        assert evs[1].parse_error is None and evs[1].parsed is not None
        assert shape(config_type, evs[1].content, str(path)) == shape(config_type, new, str(path))


# ------------------------------------------------------------------ generated secrets

NAMES = ["DB_PASSWORD", "API_TOKEN", "client_secret", "apiKey", "X-Api-Key", "MYSQL_ROOT_PASSWORD", "passphrase"]
# printable, no line breaks; starting with a letter (a value that is only "$NAME" is a reference, by design)
VALUES = st.text(st.characters(max_codepoint=0x2FF, blacklist_categories=("Cc", "Cs")), min_size=0,
                 max_size=40).map(lambda s: "Q" + s + "z").filter(lambda s: s == s.strip())
FAST = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def _absent(value: str, config_type: str, text: str, path: str) -> None:
    evs = decide([Item(config_type, path, None, seen(path, text.encode()))], ctx())
    found = strings(msgspec.to_builtins(evs))
    assert value not in found and json.dumps(value)[1:-1] not in found


@FAST
@given(name=st.sampled_from(NAMES), value=VALUES)
def test_generated_env_file_values_are_hidden(name: str, value: str) -> None:
    text = f"# settings\nHOST=db\n{name}={value}\nexport {name}_2={value}\nPORT=5432\n"
    out, _ = redact(text, path="app.env")
    assert value not in out and out.count("\n") == text.count("\n")
    _absent(value, "app", text, "/srv/app.env")


@FAST
@given(name=st.sampled_from(NAMES), value=VALUES, as_list=st.booleans())
def test_generated_compose_values_are_hidden(name: str, value: str, as_list: bool) -> None:
    quoted = json.dumps(value, ensure_ascii=False)  # a JSON string is a YAML double-quoted scalar
    env = (f"      - {json.dumps(f'{name}={value}', ensure_ascii=False)}\n" if as_list
           else f"      {name}: {quoted}\n")
    text = (f"services:\n  web:\n    image: nginx\n    environment:\n{env}    secrets:\n      - web_pw\n"
            f"  db:\n    image: postgres\n    command: [\"--db-password\", {quoted}]\nsecrets:\n  web_pw:\n"
            f"    file: ./web_pw.txt\n")
    _absent(value, "docker_compose", text, "/c/docker-compose.yml")
    out, _ = redact(text, config_type="docker_compose")
    assert shape("docker_compose", out, "c.yml") == shape("docker_compose", text, "c.yml")


@FAST
@given(value=VALUES.filter(lambda s: not set(s) & set('"\\=')), name=st.sampled_from(NAMES[:2] + NAMES[5:6]))
def test_generated_unit_environment_values_are_hidden(name: str, value: str) -> None:
    text = f'[Unit]\nDescription=x\n[Service]\nEnvironment="{name}={value}" LANG=C\nExecStart=/bin/x\n'
    _absent(value, "systemd_units", text, "/etc/systemd/system/x.service")


@FAST
@given(value=VALUES.filter(lambda s: not set(s) & set('"\\${}')))
def test_generated_nginx_header_values_are_hidden(value: str) -> None:
    text = (f'server {{\n  listen 80;\n  location / {{\n    proxy_set_header Authorization "Bearer {value}";\n'
            f'    proxy_set_header X-Api-Key "{value}";\n    proxy_pass http://app;\n  }}\n}}\n')
    _absent(value, "proxy_configs", text, "/etc/nginx/conf.d/x.conf")
    out, _ = redact(text, config_type="proxy_configs")
    assert shape("proxy_configs", out, "x.conf") == shape("proxy_configs", text, "x.conf")


# pieces of each format, shuffled into texts that are often broken: redaction must never fail
# nor change the line count, whatever the reader of the format meets
PIECES = ["\n", " ", "\t", "\r\n", ":", "=", '"', "'", "\\", "#", ";", "{", "}", "[", "]", "- ", "|", ">", "&a ", "*a",
          "!!str ", "password", "DB_PASSWORD", "token", "Environment=", "[Service]", "proxy_set_header ",
          "Authorization",
          "Bearer ", "$http_x", "${X}", "://u:p@h", "-----BEGIN RSA PRIVATE KEY-----", "-----END RSA PRIVATE KEY-----",
          "MIIEabc", "$apr1$abcdefgh$xyz", "\ufeff", "é", "--password", "set $api_key", "x:5432:db:u:", "'''"]


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(pieces=st.lists(st.sampled_from(PIECES), max_size=60),
       config_type=st.sampled_from([None, "docker_compose", "proxy_configs", "systemd_units"]))
def test_redaction_never_fails_and_keeps_lines(pieces: list[str], config_type: str | None) -> None:
    text = "".join(pieces)
    path = "f.yml" if config_type == "docker_compose" else "f"
    _structure(text, lower(text), config_type, path)  # the format's reader itself raises nothing
    out, found = redact(text, config_type=config_type, path=path)
    assert out.count("\n") == text.count("\n") and out.count("\r\n") == text.count("\r\n")
    assert all(r.line >= 1 for r in found)
