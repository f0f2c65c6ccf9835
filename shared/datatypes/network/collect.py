"""network: interfaces, addresses, state, MTU and counters from iproute2's JSON output.

Two commands on the device's connection: ``ip -j addr show`` (addresses) and
``ip -d -j -s link show`` (state, kind and 64-bit counters), joined by interface name. iproute2 prints
JSON since 4.14; an older ``ip`` refuses ``-j`` and the type is unsupported there.
"""

from __future__ import annotations

import json
import re
from typing import Any

from shared.datatypes.capture import Output, read_nonempty, require, sbin
from shared.datatypes.network.payload import Address, Interface, Network
from shared.datatypes.parsing import ParseError, ParseResult, Unsupported

NAME = "network"
COMMANDS = {
    "addr": sbin(["ip", "-j", "addr", "show"]),
    "link": sbin(["ip", "-d", "-j", "-s", "link", "show"]),
}
TIMEOUT_S = 20.0
RETRIES = 1
INTERVAL_S = 120
FRESHNESS_S = 120

COUNTERS = (("rx", "bytes"), ("rx", "packets"), ("rx", "errors"), ("rx", "dropped"),
            ("tx", "bytes"), ("tx", "packets"), ("tx", "errors"), ("tx", "dropped"))


def _json_list(out: Output) -> list[dict[str, Any]]:
    text = out.stdout.strip()
    if not text:
        raise ParseError(f"ip printed nothing for {out.name!r}")
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        line = text.splitlines()[exc.lineno - 1] if exc.lineno <= len(text.splitlines()) else ""
        raise ParseError(f"{out.name}: not JSON ({exc.msg})", line[:200], exc.lineno) from None
    if not isinstance(data, list):
        raise ParseError(f"{out.name}: a JSON list of interfaces expected, got {type(data).__name__}")
    # `ip -j addr` prints {} for interfaces it filtered out (another netns); they carry nothing.
    return [item for item in data if isinstance(item, dict) and item.get("ifname")]


# Option "-j" is unknown, try "ip -help".      (iproute2 before 4.14, exit 255)
# ip: invalid option -- 'j'                     (busybox ip, exit 1)
NO_JSON_RE = re.compile(r'Option "-j" is unknown|invalid option -- .?j')


def _check(out: Output | None, name: str) -> Output:
    if out is not None and out.exit_status not in (0, None) and NO_JSON_RE.search(out.stderr):
        raise Unsupported(f"ip has no JSON output (iproute2 4.14 or newer needed): {out.stderr.strip().splitlines()[0]}")
    return require(out, name, "ip")


def _addresses(item: dict[str, Any]) -> list[Address]:
    result = []
    for a in item.get("addr_info", []):
        if not isinstance(a, dict) or "local" not in a:
            continue
        result.append(Address(family=a.get("family", "?"), address=a["local"], prefixlen=int(a.get("prefixlen", 0)),
                              scope=a.get("scope"), label=a.get("label")))
    return result


def parse_outputs(outputs: dict[str, Output]) -> ParseResult[Network]:
    """Join the addresses and the link counters by interface name."""
    links = _json_list(_check(outputs.get("link"), "link"))
    addrs = {item["ifname"]: item for item in _json_list(_check(outputs.get("addr"), "addr"))}
    warnings: list[str] = []
    interfaces: list[Interface] = []
    for link in links:
        name = link["ifname"]
        stats = link.get("stats64") or link.get("stats") or {}
        counters: dict[str, int | None] = {}
        for direction, field in COUNTERS:
            value = stats.get(direction, {}).get(field) if isinstance(stats.get(direction), dict) else None
            counters[f"{direction}_{field}"] = int(value) if isinstance(value, int) else None
        if not stats:
            warnings.append(f"{name}: ip printed no counters")
        info = link.get("linkinfo", {}) if isinstance(link.get("linkinfo"), dict) else {}
        interfaces.append(Interface(
            name=name, index=link.get("ifindex"), state=link.get("operstate"), mtu=link.get("mtu"),
            mac=link.get("address"), link_type=link.get("link_type"), kind=info.get("info_kind"),
            master=link.get("master"), flags=list(link.get("flags", [])),
            addresses=_addresses(addrs.get(name, {})), **counters,
        ))
    for name in addrs.keys() - {i.name for i in interfaces}:
        warnings.append(f"{name}: has addresses but no link entry (it appeared between the two commands)")
    return ParseResult(Network(interfaces=interfaces), warnings)


def parse(text: str) -> ParseResult[Network]:
    """Parse a capture file with sections ``addr`` and ``link``."""
    return parse_outputs(read_nonempty(text))
