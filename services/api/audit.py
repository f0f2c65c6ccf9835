"""Audit events of reads, published in the background so they add no latency to a response."""

from __future__ import annotations

import asyncio
import logging
import uuid

from nats.js import JetStreamContext

from shared import events
from shared.events import Audited, DeviceSpec, Status
from shared.names import Names
from shared.perf import Perf
from shared.publish import publish_event

log = logging.getLogger(__name__)

SERVICE = "api"


class Auditor:
    """Publishes one ``Audited`` event per read; failures are logged and counted, never raised."""

    def __init__(self, js: JetStreamContext, names: Names, instance: str, perf: Perf | None = None) -> None:
        self._js = js
        self.perf = perf
        self._names = names
        self._instance = instance
        self._pending: set[asyncio.Task] = set()
        self.published = 0
        self.failed = 0

    def read(
        self, spec: DeviceSpec, data_type: str, *, cache_hit: bool, force_refresh: bool, key_prefix: str,
        operation_id: uuid.UUID | None = None, status: Status = "success", error: str | None = None,
        duration_ms: float = 0.0,
    ) -> None:
        """Record one read of collected data (fire-and-forget)."""
        if self.perf is not None:
            self.perf.operation(status, duration_ms, cached=cache_hit, error_type=None if error is None else "read")
        fields = {"operation_id": operation_id} if operation_id is not None else {}
        ev = events.new_event(
            Audited, device_id=spec.id, device=spec.name, service=SERVICE, instance=self._instance, trigger="api",
            action="read", data_type=data_type, cache_hit=cache_hit, force_refresh=force_refresh, status=status,
            error=error, duration_ms=duration_ms, detail={"api_key": key_prefix}, **fields,
        )
        task = asyncio.create_task(self._publish(ev))  # unnamed: a name costs a UUID formatting per read
        self._pending.add(task)
        task.add_done_callback(self._pending.discard)

    async def _publish(self, ev: Audited) -> None:
        try:
            await publish_event(self._js, self._names.audit(SERVICE), ev)
            self.published += 1
        except Exception as exc:
            self.failed += 1
            if self.perf is not None:
                self.perf.error("audit_not_published")
            log.error("audit event %s (%s of %s) not published: %s", ev.event_id, ev.data_type, ev.device,
                      type(exc).__name__)

    async def drain(self, timeout: float) -> None:
        """Wait for pending publishes (at shutdown); logs how many were given up."""
        if not self._pending:
            return
        _, pending = await asyncio.wait(set(self._pending), timeout=timeout)
        for task in pending:
            task.cancel()
        if pending:
            self.failed += len(pending)
            log.error("%d audit events not published before shutdown", len(pending))
