"""The :class:`services.collector.service.Collector` state its mixins (``Requests``, ``Polls``)
use: declared here for the type checker; the Collector sets it."""

from __future__ import annotations

import asyncio
import uuid
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from nats.js import JetStreamContext

    from services.collector import policy
    from services.collector.schedule import Device
    from services.collector.service import CollectorStats
    from services.collector.settings import CollectorSettings
    from shared.events import Collected, DeviceSpec, Trigger
    from shared.names import Names
    from shared.runtime.membership import Membership


class CollectorState:
    """Attributes and methods of the Collector that its mixins call."""

    js: JetStreamContext
    names: Names
    settings: CollectorSettings
    stats: CollectorStats
    membership: Membership
    _devices: dict[uuid.UUID, Device]
    _refused: dict[uuid.UUID, tuple[DeviceSpec, policy.RefusedSetting]]
    _background: set[asyncio.Task[Any]]
    _polled: dict[tuple[uuid.UUID, str], uuid.UUID]

    if TYPE_CHECKING:
        def _find(self, device_id: uuid.UUID | None, name: str | None) -> Device | None: ...

        async def _cached(self, spec: DeviceSpec, data_type: str) -> Collected | None: ...

        async def publish_skip(self, dev: Device, data_type: str, age_s: float) -> Collected: ...

        async def collect_and_publish(
            self, dev: Device, data_type: str, *, trigger: Trigger,
            operation_id: uuid.UUID | None = None, force_refresh: bool = False, cached: Any = ...,
        ) -> Collected: ...
