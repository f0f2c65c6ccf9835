"""``proxy_configs``: nginx configuration (nginx.conf, SWAG proxy-confs and site-confs).

Parsed via crossplane. A file is parsed on its own (includes are listed, not followed) and
without context checks, so a SWAG snippet that holds only ``location`` blocks parses too.
``set $upstream_app ...`` variables are substituted into ``proxy_pass`` so that SWAG confs name
their containers. Each server and location also carries the settings in effect there, as nginx
inherits them from the enclosing blocks of this file (``add_header`` and ``proxy_set_header``
header names, ``ssl_certificate``, ``autoindex``); what an include sets is not known. Redacted by directive (``redaction/nginx_conf.py``); a change reloads nginx.
"""

from __future__ import annotations

import os
import re
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import crossplane

from services.watcher.configtypes.base import ConfigType, Effects, Risk
from services.watcher.redaction import nginx_conf
from services.watcher.redaction.common import Span
from services.watcher.redaction.text import pem
from shared.config_events import ChangeType, DiffSummary
from shared.errors import ParseError

_VAR = re.compile(r"\$\{?([A-Za-z_][A-Za-z0-9_]*)\}?")


def _crossplane(text: str) -> list[dict[str, Any]]:
    # crossplane reads files only; the temporary file is an implementation detail
    with tempfile.TemporaryDirectory(prefix="iw-nginx-") as d:
        path = os.path.join(d, "nginx.conf")
        with open(path, "w", encoding="utf-8") as f:
            f.write(text)
        payload = crossplane.parse(path, single=True, check_ctx=False, check_args=False, comments=False)
    if payload["errors"]:
        err = payload["errors"][0]
        reason = re.sub(r" in \S*nginx\.conf(:\d+)?$", "", str(err["error"])).replace(path, "config").strip()
        raise ParseError(reason, line_no=err.get("line"))
    parsed: list[dict[str, Any]] = payload["config"][0]["parsed"]
    return parsed


def _resolve(value: str, variables: dict[str, str]) -> str:
    return _VAR.sub(lambda m: variables.get(m.group(1), m.group(0)), value)


def _host(url: str) -> str | None:
    m = re.match(r"^(?:[a-z]+://)?(?:[^@/]+@)?([^/:;$]+|\[[^\]]+\])", url)
    return m.group(1) if m and m.group(1) else None


def _header_names(block: list[dict[str, Any]], directive: str) -> list[str] | None:
    """Lower-cased header names a block sets with ``directive``, or None when it sets none."""
    names = sorted({x["args"][0].lower() for x in block if x["directive"] == directive and x["args"]})
    return names or None


@dataclass(frozen=True)
class _Inherited:
    """Settings in effect at one level of the file, as nginx inherits them into inner blocks:
    ``add_header``/``proxy_set_header``/``ssl_certificate`` only when the inner block sets none."""

    add_header: list[str]
    proxy_set_header: list[str]
    ssl_certificate: bool = False
    autoindex: bool = False

    def within(self, block: list[dict[str, Any]]) -> _Inherited:
        auto = [x["args"][0].lower() for x in block if x["directive"] == "autoindex" and x["args"]]
        return _Inherited(
            add_header=_header_names(block, "add_header") or self.add_header,
            proxy_set_header=_header_names(block, "proxy_set_header") or self.proxy_set_header,
            ssl_certificate=self.ssl_certificate or any(x["directive"] == "ssl_certificate" for x in block),
            autoindex=auto[-1] == "on" if auto else self.autoindex,
        )


def _locations(block: list[dict[str, Any]], variables: dict[str, str], outer: _Inherited) -> dict[str, dict[str, Any]]:
    out: dict[str, dict[str, Any]] = {}
    for d in block:
        if d["directive"] != "location":
            continue
        local = dict(variables)
        local.update(_sets(d.get("block", [])))
        key = " ".join(d["args"])
        inner = outer.within(d.get("block", []))
        proxy = [" ".join(x["args"]) for x in d.get("block", []) if x["directive"] == "proxy_pass"]
        out[key] = {
            "proxy_pass": proxy[0] if proxy else None,
            "upstream": _resolve(proxy[0], local) if proxy else None,
            "includes": [" ".join(x["args"]) for x in d.get("block", []) if x["directive"] == "include"],
            "proxy_set_header": inner.proxy_set_header,
            "autoindex": inner.autoindex,
        }
        nested = _locations(d.get("block", []), local, inner)
        for k, v in nested.items():
            out[f"{key} > {k}"] = v
    return out


def _sets(block: list[dict[str, Any]]) -> dict[str, str]:
    return {d["args"][0].lstrip("$"): d["args"][1] for d in block if d["directive"] == "set" and len(d["args"]) >= 2}


def _server_blocks(block: list[dict[str, Any]], outer: _Inherited) -> Iterator[tuple[dict[str, Any], _Inherited]]:
    """Each ``server { }`` block with the settings it inherits from its enclosing blocks."""
    here = outer.within(block)
    for d in block:
        if d["directive"] == "server" and "block" in d:
            yield d, here
        yield from _server_blocks(d.get("block", []), here)


def _walk(block: list[dict[str, Any]]) -> Iterator[dict[str, Any]]:
    for d in block:
        yield d
        yield from _walk(d.get("block", []))


def parse(text: str, path: str = "nginx.conf") -> dict[str, Any]:
    """Servers (names, listen, locations, proxy_pass, inherited settings), upstreams and includes of one file."""
    tree = _crossplane(text)
    root = _Inherited(add_header=[], proxy_set_header=[])
    servers: dict[str, dict[str, Any]] = {}
    for d, outer in _server_blocks(tree, root):
        block = d["block"]
        names = [a for x in block if x["directive"] == "server_name" for a in x["args"]]
        listen = [" ".join(x["args"]) for x in block if x["directive"] == "listen"]
        variables = _sets(block)
        here = outer.within(block)
        locs = _locations(block, variables, here)
        key = names[0] if names else "_"
        while key in servers:
            key += "'"
        servers[key] = {
            "server_names": names,
            "listen": listen,
            "ssl": any("ssl" in x.split() for x in listen) or any(x["directive"] == "ssl_certificate" for x in block),
            "locations": locs,
            "includes": [" ".join(x["args"]) for x in block if x["directive"] == "include"],
            "ssl_certificate": here.ssl_certificate,
            "add_header": here.add_header,
            "autoindex": here.autoindex or any(loc["autoindex"] for loc in locs.values()),
        }
    top_locations = _locations([d for d in tree if d["directive"] == "location"], _sets(tree), root.within(tree))
    upstreams = {
        " ".join(d["args"]): [x["args"][0] for x in d.get("block", []) if x["directive"] == "server" and x["args"]]
        for d in _walk(tree) if d["directive"] == "upstream"
    }
    locations = [loc for s in servers.values() for loc in s["locations"].values()] + list(top_locations.values())
    # a snippet included inside a location block may hold proxy_pass at its top level
    top_sets = _sets(tree)
    snippet = [_resolve(" ".join(d["args"]), top_sets) for d in tree if d["directive"] == "proxy_pass"]
    proxied = sorted({loc["upstream"] for loc in locations if loc["upstream"]} | set(snippet))
    hosts = {h for u in proxied if (h := _host(u)) and not h.startswith("$")}
    hosts |= {h for srvs in upstreams.values() for s in srvs if (h := _host(s))}
    return {
        "servers": servers,
        "locations": top_locations,
        "upstreams": upstreams,
        "server_names": sorted({n for s in servers.values() for n in s["server_names"]}),
        "listen": sorted({x for s in servers.values() for x in s["listen"]}),
        "proxy_pass": proxied,
        "upstream_hosts": sorted(hosts - set(upstreams)),
        "includes": sorted({" ".join(d["args"]) for d in _walk(tree) if d["directive"] == "include"}),
    }


def redact(text: str, low: str, path: str) -> list[Span]:
    return nginx_conf.spans(text, low) + pem(text, 0, len(text))


def rules(change: ChangeType, old: dict[str, Any], new: dict[str, Any], s: DiffSummary, risk: Risk, fx: Effects, path: str) -> None:
    """Served names and upstreams are affected; nginx reloads; removed blocks, listen/TLS and
    proxying changes raise the risk."""
    both = [old, new]
    fx.affected = sorted({n for p in both for n in p.get("server_names", [])}
                         | {h for p in both for h in p.get("upstream_hosts", [])})
    fx.dependencies = sorted({h for p in both for h in p.get("upstream_hosts", [])})
    fx.reload = ["nginx"]
    fx.actions = ["nginx -t", "nginx -s reload"]
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


TYPE = ConfigType(
    name="proxy_configs",
    globs=("/config/nginx/proxy-confs/*.conf", "/config/nginx/site-confs/*.conf", "/etc/nginx/**"),
    parse=parse,
    redact=redact,
    rules=rules,
)
