"""`infrawatch collect DEVICE DATA_TYPE`: run one collection now and print its event.

The device is read from the registry on NATS; the event is printed as indented JSON and
neither published nor cached, so it is safe to run beside a running collector.
"""

from __future__ import annotations

import sys

import msgspec

from services.collector.registry import DATA_TYPES
from services.collector.runner import collect
from services.collector.settings import collector_settings
from shared import events
from shared.names import Names
from shared.runtime import devices
from shared.runtime.nats_conn import connect
from shared.runtime.transport import make_transport
from shared.settings import Settings


async def collect_once(settings: Settings, device: str, data_type: str) -> int:
    """Print the event of one collection. Returns 0 for success or partial, 1 for error or
    unsupported, 2 for an unknown device or data type."""
    if data_type not in DATA_TYPES:
        print(f"unknown data type {data_type!r}; known: {', '.join(sorted(DATA_TYPES))}", file=sys.stderr)
        return 2
    settings = collector_settings(settings)
    nc = await connect(settings, "cli", wait=False)
    try:
        spec = await devices.current(nc.jetstream(), Names(settings.subject_prefix), device)
    finally:
        await nc.close()
    if spec is None:
        print(f"device {device!r} is not registered", file=sys.stderr)
        return 2
    transport = make_transport(spec, settings)
    try:
        ev = await collect(transport, spec, data_type, trigger="api", settings=settings, force_refresh=True)
    finally:
        await transport.close()
    sys.stdout.write(msgspec.json.format(events.encode(ev), indent=2).decode() + "\n")
    if ev.status in ("error", "unsupported"):
        print(f"{data_type} on {device}: {ev.status}: {ev.error}", file=sys.stderr)
        return 1
    return 0
