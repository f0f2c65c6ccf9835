"""The data types the collector knows: one line per type.

Adding a type: its payload in shared/payloads/, its event class in shared/collected.py, its
module in services/collector/types/ (the attributes below), one line here, and captured
outputs under tests/collector/testdata/<type>/.

A module has NAME, EVENT, TIMEOUT_S (per command), RETRIES, INTERVAL_S, FRESHNESS_S and a
pure ``parse(text)``, and one of: ``ARGV`` (a single command; ``parse`` reads its stdout),
``COMMANDS`` (fixed commands, run one after the other by one shell on one channel) or
``async gather(session)`` (commands chosen as it goes, each on its own channel); with several commands ``parse`` reads a capture file (services.collector.capture) and
``parse_outputs(outputs)`` the same outputs in memory. Optional: ``with_previous(previous,
payload)``, a pure function of the last successful payload.
"""

from __future__ import annotations

from types import ModuleType

from services.collector.types import (
    containers, drive_health, inventory, network, system_metrics, systemd_services, zfs,
)

DATA_TYPES: dict[str, ModuleType] = {
    "system_metrics": system_metrics,
    "containers": containers,
    "drive_health": drive_health,
    "network": network,
    "zfs": zfs,
    "systemd_services": systemd_services,
    "inventory": inventory,
}

REQUIRED_ATTRIBUTES = ("NAME", "EVENT", "TIMEOUT_S", "RETRIES", "INTERVAL_S", "FRESHNESS_S", "parse")
COMMAND_ATTRIBUTES = ("ARGV", "COMMANDS", "gather")  # exactly one of these
