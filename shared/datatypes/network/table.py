"""network: one row per interface per collection."""

from __future__ import annotations

from typing import Any

from sqlalchemy.orm import Mapped, mapped_column

from schema.base import Base, DeviceSeries
from shared.datatypes.network.payload import Network
from shared.datatypes.spec import TableRows


class NetworkInterface(DeviceSeries, Base):
    """One row per interface per network collection."""

    __tablename__ = "network_interfaces"

    interface: Mapped[str] = mapped_column(primary_key=True)
    state: Mapped[str | None]
    mtu: Mapped[int | None]
    mac: Mapped[str | None]
    link_type: Mapped[str | None]
    kind: Mapped[str | None]
    master: Mapped[str | None]
    addresses: Mapped[list[Any] | None]
    rx_bytes: Mapped[int | None]
    rx_packets: Mapped[int | None]
    rx_errors: Mapped[int | None]
    rx_dropped: Mapped[int | None]
    tx_bytes: Mapped[int | None]
    tx_packets: Mapped[int | None]
    tx_errors: Mapped[int | None]
    tx_dropped: Mapped[int | None]


def rows(p: Network) -> TableRows:
    return {"network_interfaces": [{
        "interface": i.name, "state": i.state, "mtu": i.mtu, "mac": i.mac, "link_type": i.link_type, "kind": i.kind,
        "master": i.master, "addresses": i.addresses, "rx_bytes": i.rx_bytes, "rx_packets": i.rx_packets,
        "rx_errors": i.rx_errors, "rx_dropped": i.rx_dropped, "tx_bytes": i.tx_bytes, "tx_packets": i.tx_packets,
        "tx_errors": i.tx_errors, "tx_dropped": i.tx_dropped,
    } for i in p.interfaces]}
