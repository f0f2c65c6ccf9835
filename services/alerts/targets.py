"""Webhook targets: a URL's host must resolve to public addresses only, unless private ones are allowed.

A rule's webhook is sent from the evaluator's host, so a target on loopback, link-local (cloud
metadata at 169.254.169.254), a private range or any other non-global address would let whoever
writes rules reach services that trust that host. The check runs when a rule is written (API) and
again at every send, on the addresses the name resolves to then; the request then goes to the
address that was checked (the name still used for Host and TLS), so a second lookup cannot swap it.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from urllib.parse import urlsplit, urlunsplit

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


class TargetRefused(Exception):
    """The webhook's host is, or resolves to, an address outside the allowed ranges."""


class Unresolvable(TargetRefused):
    """The host does not resolve (now): a send retries, a rule being written is accepted."""


def refused_reason(ip: IPAddress) -> str | None:
    """Why ``ip`` may not be a webhook target, or None if it is a global unicast address."""
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    for name in ("loopback", "link_local", "private", "multicast", "unspecified", "reserved"):
        if getattr(ip, f"is_{name}"):
            return name.replace("_", "-")
    if not ip.is_global:  # e.g. 100.64.0.0/10 (shared address space)
        return "not global"
    return None


def host_of(url: str) -> str:
    host = urlsplit(url).hostname
    if not host:
        raise TargetRefused("the URL has no host")
    return host


async def resolve(host: str, port: int) -> list[IPAddress]:
    """The addresses ``host`` resolves to (the address itself for an IP literal)."""
    try:
        return [ipaddress.ip_address(host)]
    except ValueError:
        pass
    try:
        infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except OSError as exc:
        raise Unresolvable(f"cannot resolve {host}: {exc.strerror or exc}") from None
    except (UnicodeError, ValueError):  # not an IDNA-encodable name
        raise TargetRefused(f"{host!r} is not a valid host name") from None
    return list(dict.fromkeys(ipaddress.ip_address(str(info[4][0]).split("%")[0]) for info in infos))


async def check(url: str, allow_private: bool) -> list[IPAddress]:
    """The addresses to send ``url`` to; TargetRefused when any of them is not allowed."""
    parts = urlsplit(url)
    host = host_of(url)
    port = parts.port or (443 if parts.scheme == "https" else 80)
    addresses = await resolve(host, port)
    if not addresses:
        raise Unresolvable(f"{host} resolves to no address")
    if not allow_private:
        for ip in addresses:
            reason = refused_reason(ip)
            if reason:
                shown = host if host == str(ip) else f"{host} ({ip})"
                raise TargetRefused(f"webhook target {shown} is a {reason} address; "
                                    "set INFRAWATCH_ALERTS_WEBHOOK_ALLOW_PRIVATE=true to allow it")
    return addresses


def pinned(url: str, ip: IPAddress) -> tuple[str, dict[str, str], dict[str, str]]:
    """``url`` sent to ``ip``: the URL with the address as host, its Host header and the TLS server name."""
    parts = urlsplit(url)
    host = host_of(url)
    if host == str(ip):
        return url, {}, {}
    literal = f"[{ip}]" if ip.version == 6 else str(ip)
    netloc = literal + (f":{parts.port}" if parts.port else "")
    if parts.username is not None:  # keep user info (basic auth) as given
        netloc = parts.netloc.rsplit("@", 1)[0] + "@" + netloc
    host_header = host + (f":{parts.port}" if parts.port else "")
    extensions = {"sni_hostname": host} if parts.scheme == "https" else {}
    return urlunsplit(parts._replace(netloc=netloc)), {"Host": host_header}, extensions
