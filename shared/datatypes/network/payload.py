"""Payload of a network collection: interfaces with their addresses, state, MTU and counters."""

from __future__ import annotations

import msgspec

from shared.envelope import KeyName


class Address(msgspec.Struct, kw_only=True):
    family: str  # "inet" or "inet6"
    address: str
    prefixlen: int
    scope: str | None = None
    label: str | None = None


class Interface(msgspec.Struct, kw_only=True):
    name: KeyName
    index: int | None = None
    state: str | None = None  # operstate: UP, DOWN, UNKNOWN, LOWERLAYERDOWN...
    mtu: int | None = None
    mac: str | None = None
    link_type: str | None = None  # ether, loopback, none...
    kind: str | None = None  # bridge, veth, vlan, bond... when ip reports it
    master: str | None = None  # the bridge or bond this interface belongs to
    flags: list[str] = []
    addresses: list[Address] = []
    rx_bytes: int | None = None
    rx_packets: int | None = None
    rx_errors: int | None = None
    rx_dropped: int | None = None
    tx_bytes: int | None = None
    tx_packets: int | None = None
    tx_errors: int | None = None
    tx_dropped: int | None = None


class Network(msgspec.Struct, kw_only=True):
    interfaces: list[Interface] = []
