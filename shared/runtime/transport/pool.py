"""The process's transports: one per device, shared by the collector and the watcher."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

from shared.events import DeviceSpec
from shared.runtime.transport.base import Transport
from shared.runtime.transport.local import LocalTransport
from shared.runtime.transport.ssh import SshTransport
from shared.settings import Settings


def make_transport(spec: DeviceSpec, settings: Settings) -> SshTransport | LocalTransport:
    return LocalTransport(spec, settings) if spec.transport == "local" else SshTransport(spec, settings)


def _reach(spec: DeviceSpec) -> tuple[Any, ...]:
    return (spec.id, spec.transport, spec.address, spec.port, spec.username, spec.trust_on_first_use)


class TransportPool:
    """The process's transports, one per device, shared by every service in the process (the
    collector and, when it runs in the same process, the watcher). ``acquire`` returns the
    device's transport (a new one when the device's address changed); ``release`` closes it
    when its last user lets go. Counters of closed transports are kept in the totals."""

    def __init__(self) -> None:
        self._entries: dict[uuid.UUID, list[Any]] = {}  # device id -> [reach, transport, users]
        self._orphans: dict[int, list[Any]] = {}  # id(transport) -> entry replaced but still in use
        self._retired = {"connections_created": 0, "connections_reused": 0, "commands_executed": 0}

    def acquire(self, spec: DeviceSpec, settings: Settings) -> SshTransport | LocalTransport:
        entry = self._entries.get(spec.id)
        if entry is not None and entry[0] == _reach(spec) and not getattr(entry[1], "closed", False):
            entry[2] += 1
            shared_transport: SshTransport | LocalTransport = entry[1]
            return shared_transport
        transport = make_transport(spec, settings)
        if entry is not None:  # the old one stays with its current users until they release it
            old = self._entries.pop(spec.id)
            self._orphans[id(old[1])] = old
        self._entries[spec.id] = [_reach(spec), transport, 1]
        return transport

    async def release(self, transport: Transport) -> None:
        spec = getattr(transport, "spec", None)
        entry = self._orphans.get(id(transport))
        current = self._entries.get(spec.id) if spec is not None else None
        if entry is None and current is not None and current[1] is transport:
            entry = current
        if entry is not None:
            entry[2] -= 1
            if entry[2] > 0:
                return
            if self._orphans.get(id(transport)) is entry:
                del self._orphans[id(transport)]
            else:
                del self._entries[spec.id]  # type: ignore[union-attr]
        self._retire(transport)
        await transport.close()

    def _retire(self, transport: Transport) -> None:
        for name in self._retired:
            self._retired[name] += getattr(transport, name, 0)

    @property
    def transports(self) -> list[SshTransport | LocalTransport]:
        return [entry[1] for entry in [*self._entries.values(), *self._orphans.values()]]

    def totals(self) -> dict[str, int]:
        """Connections created and reused and commands executed, over every transport so far."""
        out = dict(self._retired)
        for t in self.transports:
            for name in out:
                out[name] += getattr(t, name, 0)
        return out

    async def close(self) -> None:
        transports = self.transports
        for transport in transports:
            self._retire(transport)
        await asyncio.gather(*(t.close() for t in transports), return_exceptions=True)
        self._entries.clear()
        self._orphans.clear()


_pool: TransportPool | None = None


def transport_pool() -> TransportPool:
    """The process-wide pool (created on first use)."""
    global _pool
    if _pool is None:
        _pool = TransportPool()
    return _pool
