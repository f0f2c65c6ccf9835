"""What a device service (collector, watcher) runs beside its own work, stopped in one order."""

from __future__ import annotations

import asyncio
from typing import Any

from shared.runtime.devices import DeviceRegistry
from shared.runtime.membership import Membership


class DeviceService:
    """The membership with its heartbeats, the device registry and the service itself, each
    set once started; ``stop()`` stops what was started."""

    def __init__(self) -> None:
        self.membership: Membership | None = None
        self.registry: DeviceRegistry | None = None
        self.service: Any = None  # has ``async close()``
        self._beat_stop = asyncio.Event()
        self._heartbeat: asyncio.Task[None] | None = None

    def heartbeat(self) -> None:
        """Heartbeat the membership in the background until ``stop()``."""
        assert self.membership is not None
        self._heartbeat = asyncio.create_task(self.membership.run(self._beat_stop))

    async def stop(self) -> None:
        """Stop the heartbeats, the registry's updates and the service, then leave the member set
        (the others take this instance's devices over at their next beat)."""
        self._beat_stop.set()
        if self._heartbeat is not None:
            await asyncio.gather(self._heartbeat, return_exceptions=True)
        if self.registry is not None:
            await self.registry.stop()
        if self.service is not None:
            await self.service.close()
        if self.membership is not None:
            await self.membership.leave()
