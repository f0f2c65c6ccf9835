"""network: one row per interface per collection."""

from __future__ import annotations

from services.writer.projection import Rows, collected, j, table
from shared.collected import NetworkCollected

table("network_interfaces", (
    "time", "device_id", "interface", "event_id", "state", "mtu", "mac", "link_type", "kind", "master", "addresses",
    "rx_bytes", "rx_packets", "rx_errors", "rx_dropped", "tx_bytes", "tx_packets", "tx_errors", "tx_dropped",
))


@collected(NetworkCollected)
def network(ev: NetworkCollected) -> Rows:
    return {"network_interfaces": [(
        ev.occurred_at, ev.device_id, i.name, ev.event_id, i.state, i.mtu, i.mac, i.link_type, i.kind, i.master,
        j(i.addresses), i.rx_bytes, i.rx_packets, i.rx_errors, i.rx_dropped, i.tx_bytes, i.tx_packets, i.tx_errors,
        i.tx_dropped,
    ) for i in ev.payload.interfaces]}
