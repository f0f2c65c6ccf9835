"""``docker_compose``: docker compose files, redacted by their YAML structure.

Parsed: services, images, ports (also as structured ``port_bindings``), volumes, networks,
environment KEYS (never values), the names of environment variables that look like secrets and
hold a literal value in the file (``environment_literal_secrets``), depends_on. Both the short (string) and long (mapping) syntaxes are normalised, and the legacy version-1
format (services at the top level, no ``services:`` key) is read too."""

from __future__ import annotations

import re
from typing import Any

import yaml

from services.watcher.configtypes.base import ConfigType, Effects, Risk
from services.watcher.redaction import yaml_doc
from services.watcher.redaction.common import MASK, kept
from shared.config_events import ChangeType, DiffSummary
from shared.errors import ParseError

NAMES = ("docker-compose.yml", "docker-compose.yaml", "compose.yml", "compose.yaml")


def _load(text: str) -> Any:
    try:
        return yaml.safe_load(text)
    except yaml.MarkedYAMLError as exc:
        line = exc.problem_mark.line + 1 if exc.problem_mark else None
        raise ParseError(f"{exc.problem or exc.context or 'invalid YAML'}", line_no=line) from None
    except yaml.YAMLError as exc:
        raise ParseError(f"invalid YAML: {exc}") from None


def _names(value: Any) -> list[str]:
    """Names of a list-or-mapping field (networks, depends_on)."""
    if isinstance(value, dict):
        return [str(k) for k in value]
    if isinstance(value, list):
        return [str(v) for v in value]
    return []


def _env_keys(value: Any) -> list[str]:
    if isinstance(value, dict):
        return sorted(str(k) for k in value)
    if isinstance(value, list):
        return sorted(str(v).split("=", 1)[0] for v in value)
    return []


# A variable whose name ends in one of these words names a secret; ``*_FILE`` (a path to one) does not.
SECRET_NAME = re.compile(
    r"(?:^|_)(?:PASSWORD|PASSWD|PASS|SECRET|SECRET_KEY|SECRET_KEY_BASE|TOKEN|API_?KEY|PRIVATE_?KEY|"
    r"ACCESS_?KEY|AUTH_?KEY|ENCRYPTION_?KEY|MASTER_?KEY|SALT|CREDENTIALS?)$", re.IGNORECASE)


def _env_items(value: Any) -> list[tuple[str, str | None]]:
    """(name, value) of each variable; None when the file gives no value (taken from the shell)."""
    if isinstance(value, dict):
        return [(str(k), None if v is None else str(v)) for k, v in value.items()]
    if isinstance(value, list):
        return [(k, v if sep else None) for k, sep, v in (str(e).partition("=") for e in value)]
    return []


def _literal_secrets(value: Any) -> list[str]:
    """Names of the variables that look like secrets (``SECRET_NAME``) and whose value is written
    in the file: not empty, not a yes/no switch, not only a ``${VAR}``/``$VAR`` reference (what
    redaction keeps, ``redaction.common.kept``). A value redaction masked was such a literal, and so
    is the default of ``${VAR:-default}``, which redaction masks too."""
    return sorted({k for k, v in _env_items(value)
                   if SECRET_NAME.search(k) and v is not None and (v.strip() == MASK or not kept(v))})


_INTERPOLATION = re.compile(r"\$\{[^}]*\}")


def _port_binding(p: Any) -> dict[str, Any]:
    """One published port as {host_ip, host_port, container_port, protocol} (strings; None when unset)."""
    if isinstance(p, dict):
        published = p.get("published")
        return {"host_ip": str(p["host_ip"]) if p.get("host_ip") else None,
                "host_port": None if published in (None, "") else str(published),
                "container_port": str(p.get("target")), "protocol": str(p.get("protocol") or "tcp")}
    # [HOST_IP:][HOST_PORT:]CONTAINER_PORT[/PROTOCOL]; a ${VAR:-x} may hold colons: split around them
    text = str(p)
    held = _INTERPOLATION.findall(text)
    masked = _INTERPOLATION.sub("\0", text)

    def back(part: str) -> str:
        while "\0" in part:
            part = part.replace("\0", held.pop(0), 1)
        return part

    masked, _, proto = masked.partition("/")
    parts = [back(x) for x in masked.rsplit(":", 2)]  # [::1]:8080:80 splits after the address too
    return {"host_ip": parts[0].strip("[]") or None if len(parts) == 3 else None,
            "host_port": parts[-2] or None if len(parts) >= 2 else None,
            "container_port": parts[-1], "protocol": back(proto) or "tcp"}


def _port(p: Any) -> str:
    if isinstance(p, dict):
        host = f"{p['host_ip']}:" if p.get("host_ip") else ""
        published = f"{p['published']}:" if p.get("published") not in (None, "") else ""
        proto = f"/{p['protocol']}" if p.get("protocol") and p.get("protocol") != "tcp" else ""
        return f"{host}{published}{p.get('target')}{proto}"
    return str(p)


def _volume(v: Any) -> str:
    if isinstance(v, dict):
        parts = [str(x) for x in (v.get("source"), v.get("target")) if x]
        return ":".join(parts) + (":ro" if v.get("read_only") else "")
    return str(v)


def _list(value: Any) -> list[str]:
    if value is None:
        return []
    return [_path(v) for v in value] if isinstance(value, list) else [_path(value)]


def _path(v: Any) -> str:
    # env_file long syntax: {path: .env, required: false}
    return str(v.get("path")) if isinstance(v, dict) and "path" in v else str(v)


_V1_KEYS = {"image", "build", "command", "ports", "volumes", "environment", "links", "container_name", "restart",
            "expose", "env_file", "net", "volumes_from", "extends", "entrypoint", "labels"}


def _is_v1(doc: dict[str, Any]) -> bool:
    """A version-1 file: no ``version`` nor ``services``, and a top-level value that is a service."""
    if "version" in doc or "services" in doc:
        return False
    return any(isinstance(v, dict) and _V1_KEYS & set(v) for v in doc.values())


def parse(text: str, path: str = "docker-compose.yml") -> dict[str, Any]:
    doc = _load(text)
    if doc is None:
        doc = {}
    if not isinstance(doc, dict):
        raise ParseError(f"top level is a {type(doc).__name__}, not a mapping", line_no=1)
    v1 = _is_v1(doc)
    raw = doc if v1 else doc.get("services") or {}
    if not isinstance(raw, dict):
        raise ParseError("'services' is not a mapping")
    services: dict[str, Any] = {}
    for name, svc in raw.items():
        svc = svc or {}
        if not isinstance(svc, dict):
            raise ParseError(f"service {name!r} is not a mapping")
        build = svc.get("build")
        services[str(name)] = {
            "image": svc.get("image"),
            "build": build.get("context") if isinstance(build, dict) else build,
            "container_name": svc.get("container_name"),
            "ports": [_port(p) for p in svc.get("ports") or []],
            "port_bindings": [_port_binding(p) for p in svc.get("ports") or []],
            "volumes": [_volume(v) for v in svc.get("volumes") or []],
            "networks": _names(svc.get("networks")),
            "environment": _env_keys(svc.get("environment")),
            "environment_literal_secrets": _literal_secrets(svc.get("environment")),
            "env_file": _list(svc.get("env_file")),
            "depends_on": _names(svc.get("depends_on")),
            "restart": svc.get("restart"),
            "network_mode": svc.get("network_mode"),
            "privileged": bool(svc.get("privileged", False)),
        }
    top = {} if v1 else doc
    return {
        "name": top.get("name"),
        "services": services,
        "images": sorted({s["image"] for s in services.values() if s["image"]}),
        "networks": _names(top.get("networks")),
        "volumes": _names(top.get("volumes")),
        "secrets": _names(top.get("secrets")),
    }


def _service_of(key: str) -> str | None:
    """``web`` of ``services.web.image`` (or of ``services.[my.app].image``)."""
    if not key.startswith("services."):
        return None
    rest = key[len("services."):]
    if rest.startswith("["):
        return rest[1:rest.index("]")] if "]" in rest else None
    return rest.split(".", 1)[0] or None


def rules(change: ChangeType, old: dict[str, Any], new: dict[str, Any], s: DiffSummary, risk: Risk, fx: Effects, path: str) -> None:
    """The changed services (all of them for a new or deleted file) restart with ``up -d``;
    removed services, images, ports and privileged or host-network services raise the risk."""
    keys = s.added + s.removed + s.changed
    changed = sorted({n for k in keys if (n := _service_of(k))})
    keys = keys if change == "MODIFY" else []
    old_svcs, new_svcs = old.get("services", {}), new.get("services", {})
    affected = sorted(set(old_svcs) | set(new_svcs)) if change in ("CREATE", "DELETE") else changed
    fx.affected = affected
    svcs = {**old_svcs, **new_svcs}
    fx.dependencies = sorted({d for n in affected for d in (svcs.get(n) or {}).get("depends_on", [])})
    removed = sorted(set(old_svcs) - set(new_svcs))
    if affected and change != "MOVE":
        fx.restart = affected
        flags = " --remove-orphans" if removed else ""
        fx.actions = [f"docker compose -f {path} up -d{flags} " + " ".join(affected)]
    if change == "DELETE":
        risk.at_least("HIGH", "compose: file deleted, its services are no longer managed")
    elif removed:
        risk.at_least("HIGH", "compose: a service was removed (" + ", ".join(removed) + ")")
    if [k for k in keys if k.endswith(".image") and _service_of(k) in old_svcs and _service_of(k) in new_svcs]:
        risk.at_least("HIGH", "compose: an image changed")
    if [k for k in keys if k.endswith(".ports") and _service_of(k) in old_svcs and _service_of(k) in new_svcs]:
        risk.at_least("HIGH", "compose: published ports changed")
    risky = [n for n in changed if (new_svcs.get(n) or {}).get("privileged")
             or (new_svcs.get(n) or {}).get("network_mode") == "host"]
    if risky:
        risk.at_least("HIGH", "compose: privileged or host-network service changed (" + ", ".join(risky) + ")")
    if change == "CREATE":
        risk.at_least("MEDIUM", "compose: new file, its services start on the next 'up'")
    if changed:
        risk.at_least("MEDIUM", "compose: service definition changed (" + ", ".join(changed) + ")")


TYPE = ConfigType(
    name="docker_compose",
    globs=tuple(f"{d}/{n}" for d in ("", "/compose/*", "/opt/*") for n in NAMES),
    parse=parse,
    redact=yaml_doc.document,
    rules=rules,
)
