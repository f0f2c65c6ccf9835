"""What a configuration change affects: services, restart or reload, risk (with the rule that
set it), a structured diff of the parsed data and a unified diff of the (redacted) text. Pure."""

from __future__ import annotations

import difflib
import posixpath
from dataclasses import dataclass
from typing import Any

from shared.payloads.config import ChangeType, DiffSummary, Impact, RiskLevel

RISK_ORDER: tuple[RiskLevel, ...] = ("LOW", "MEDIUM", "HIGH", "CRITICAL")
MAX_DIFF_CHARS = 64 * 1024
MAX_KEYS = 200
# units whose failure takes the host off the network, or out of reach over SSH
CRITICAL_UNITS = ("ssh", "sshd", "networking", "systemd-networkd", "NetworkManager", "systemd-resolved",
                  "wpa_supplicant", "dbus", "systemd-logind")


@dataclass(frozen=True)
class Side:
    """One version of a file, as far as the impact analysis needs it."""

    parsed: dict[str, Any] | None = None
    text: str | None = None  # redacted
    mode: str | None = None
    owner: str | None = None
    parse_error: str | None = None


def flatten(value: Any, prefix: str = "") -> dict[str, Any]:
    """Leaves of nested mappings by dotted path; a key holding a dot is written as ``[key]``."""
    if isinstance(value, dict) and value:
        out: dict[str, Any] = {}
        for k, v in value.items():
            k = str(k)
            part = f"[{k}]" if "." in k else k
            out.update(flatten(v, f"{prefix}.{part}" if prefix else part))
        return out
    return {prefix: value} if prefix else {}


def summarize(old: dict[str, Any] | None, new: dict[str, Any] | None, old_side: Side, new_side: Side) -> DiffSummary:
    a, b = flatten(old or {}), flatten(new or {})
    return DiffSummary(
        added=sorted(k for k in b if k not in a)[:MAX_KEYS],
        removed=sorted(k for k in a if k not in b)[:MAX_KEYS],
        changed=sorted(k for k in a if k in b and a[k] != b[k])[:MAX_KEYS],
        metadata=[m for m in ("mode", "owner") if getattr(old_side, m) and getattr(new_side, m)
                  and getattr(old_side, m) != getattr(new_side, m)],
    )


def unified_diff(path: str, old_path: str | None, old: str | None, new: str | None) -> tuple[str | None, bool]:
    if old is None or new is None:
        return None, False
    text = "".join(difflib.unified_diff(old.splitlines(keepends=True), new.splitlines(keepends=True),
                                        fromfile=f"a{old_path or path}", tofile=f"b{path}"))
    if len(text) > MAX_DIFF_CHARS:
        return text[:MAX_DIFF_CHARS], True
    return text, False


class _Risk:
    def __init__(self) -> None:
        self.level: RiskLevel = "LOW"
        self.rule = "no functional change"
        self._set = False

    def at_least(self, level: RiskLevel, rule: str) -> None:
        if not self._set or RISK_ORDER.index(level) > RISK_ORDER.index(self.level):
            self.level, self.rule, self._set = level, rule, True


def _touches(keys: list[str], *prefixes: str) -> list[str]:
    return [k for k in keys if any(k == p or k.startswith((p + ".", p + "[")) for p in prefixes)]


def _nginx(change: ChangeType, old: dict, new: dict, s: DiffSummary, risk: _Risk, imp: dict) -> None:
    both = [old, new]
    imp["affected"] = sorted({n for p in both for n in p.get("server_names", [])}
                             | {h for p in both for h in p.get("upstream_hosts", [])})
    imp["dependencies"] = sorted({h for p in both for h in p.get("upstream_hosts", [])})
    imp["reload"] = ["nginx"]
    imp["actions"] = ["nginx -t", "nginx -s reload"]
    keys = s.added + s.removed + s.changed if change == "MODIFY" else []
    if change == "DELETE":
        risk.at_least("HIGH", "nginx: config deleted, its sites stop being served")
    if [k for k in s.removed if k.startswith(("servers.", "locations."))]:
        risk.at_least("HIGH", "nginx: a server or location was removed")
    if [k for k in keys if k.endswith((".listen", ".ssl")) or k == "listen"]:
        risk.at_least("HIGH", "nginx: listen or TLS settings changed")
    if [k for k in keys if "proxy_pass" in k or "upstream" in k or k.startswith("locations")]:
        risk.at_least("MEDIUM", "nginx: proxy_pass, upstream or locations changed")
    if change == "CREATE":
        risk.at_least("MEDIUM", "nginx: new config, served after the next reload")


def _service_of(key: str) -> str | None:
    """``web`` of ``services.web.image`` (or of ``services.[my.app].image``)."""
    if not key.startswith("services."):
        return None
    rest = key[len("services."):]
    if rest.startswith("["):
        return rest[1:rest.index("]")] if "]" in rest else None
    return rest.split(".", 1)[0] or None


def _compose(change: ChangeType, old: dict, new: dict, s: DiffSummary, risk: _Risk, imp: dict, path: str) -> None:
    keys = s.added + s.removed + s.changed
    changed = sorted({n for k in keys if (n := _service_of(k))})
    keys = keys if change == "MODIFY" else []
    old_svcs, new_svcs = old.get("services", {}), new.get("services", {})
    affected = sorted(set(old_svcs) | set(new_svcs)) if change in ("CREATE", "DELETE") else changed
    imp["affected"] = affected
    svcs = {**old_svcs, **new_svcs}
    imp["dependencies"] = sorted({d for n in affected for d in (svcs.get(n) or {}).get("depends_on", [])})
    removed = sorted(set(old_svcs) - set(new_svcs))
    if affected and change != "MOVE":
        imp["restart"] = affected
        flags = " --remove-orphans" if removed else ""
        imp["actions"] = [f"docker compose -f {path} up -d{flags} " + " ".join(affected)]
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


def _systemd(change: ChangeType, old: dict, new: dict, s: DiffSummary, risk: _Risk, imp: dict, path: str) -> None:
    unit = posixpath.basename(path)
    base = unit.rsplit(".", 1)[0]
    keys = s.added + s.removed + s.changed
    imp["affected"] = [unit]
    imp["dependencies"] = sorted({d for p in (old, new) for v in p.get("dependencies", {}).values() for d in v})
    imp["reload"] = ["systemd"]
    actions = ["systemctl daemon-reload"]
    if not unit.endswith(".target") and change != "DELETE":
        imp["restart"] = [unit]
        actions.append(f"systemctl restart {unit}")
    if change == "CREATE" and (new.get("wanted_by") or new.get("required_by")):
        actions.append(f"systemctl enable {unit}")
    elif change == "MODIFY" and _touches(keys, "wanted_by", "required_by", "sections.Install"):
        actions.append(f"systemctl reenable {unit}")
    keys = keys if change == "MODIFY" else []
    imp["actions"] = actions
    if base in CRITICAL_UNITS:
        risk.at_least("CRITICAL", f"systemd: {unit} keeps the host reachable")
    if change == "DELETE":
        risk.at_least("HIGH", "systemd: unit deleted")
    if _touches(keys, "exec_start", "sections.Service.ExecStart", "user", "sections.Service.User"):
        risk.at_least("HIGH", "systemd: ExecStart or User changed")
    if _touches(keys, "dependencies", "wanted_by", "required_by"):
        risk.at_least("MEDIUM", "systemd: dependencies or install targets changed")
    if keys:
        risk.at_least("MEDIUM", "systemd: unit settings changed")
    if change == "CREATE":
        risk.at_least("MEDIUM", "systemd: new unit")


def assess(config_type: str, path: str, change: ChangeType, old: Side, new: Side,
           old_path: str | None = None) -> Impact:
    """The impact of one change; ``old``/``new`` are empty Sides for a CREATE/DELETE."""
    risk = _Risk()
    s = summarize(old.parsed, new.parsed, old, new)
    imp: dict[str, list[str]] = {"affected": [], "dependencies": [], "restart": [], "reload": [], "actions": []}
    o, n = old.parsed or {}, new.parsed or {}
    has_parser = config_type in ("proxy_configs", "docker_compose", "systemd_units")
    if config_type == "proxy_configs":
        _nginx(change, o, n, s, risk, imp)
    elif config_type == "docker_compose":
        _compose(change, o, n, s, risk, imp, path)
    elif config_type == "systemd_units":
        _systemd(change, o, n, s, risk, imp, path)
    text_changed = old.text != new.text
    if change == "MOVE":
        risk.at_least("LOW", "moved, content unchanged")
    elif not has_parser:
        if change != "MODIFY" or text_changed or old.text is None or new.text is None:
            risk.at_least("MEDIUM", f"{config_type}: no parser, content changed")
    elif new.parse_error and change != "DELETE":
        level: RiskLevel = "HIGH" if config_type == "systemd_units" else "CRITICAL"
        risk.at_least(level, f"{config_type}: the new version does not parse ({new.parse_error})")
    elif change == "MODIFY" and not (s.added or s.removed or s.changed) and text_changed:
        risk.at_least("LOW", "only comments or formatting changed")
    if s.metadata:
        risk.at_least("LOW", "mode or owner changed")
    if new.mode and int(new.mode, 8) & 0o002 and (change != "MODIFY" or "mode" in s.metadata or old.mode is None):
        risk.at_least("HIGH", "the file is world-writable")
    diff, cut = unified_diff(path, old_path, old.text if change != "CREATE" else "",
                             new.text if change != "DELETE" else "")
    parsed_both = (old.parsed is not None or change == "CREATE") and (new.parsed is not None or change == "DELETE")
    return Impact(
        affected_services=imp["affected"],
        dependencies=imp["dependencies"],
        requires_restart=bool(imp["restart"]) and change != "MOVE",
        restart_services=imp["restart"] if change != "MOVE" else [],
        requires_reload=bool(imp["reload"]),
        reload_services=imp["reload"],
        actions=imp["actions"],
        risk_level=risk.level,
        risk_rule=risk.rule,
        confidence=0.9 if has_parser and parsed_both else 0.5,
        summary=s,
        unified_diff=diff,
        unified_diff_truncated=cut,
    )
