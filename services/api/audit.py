"""Audit events of reads, published in the background so they add no latency to a response."""

from __future__ import annotations

import asyncio
import logging
import uuid

from nats.js import JetStreamContext

from shared import events
from shared.events import Audited, DeviceSpec, Status
from shared.names import MSG_ID, Names
from shared.runtime.perf import Perf
from shared.runtime.publish import ACK_TIMEOUT_S, RETRY_S, publish_event

log = logging.getLogger(__name__)

SERVICE = "api"


class Auditor:
    """Publishes one ``Audited`` event per read; failures are logged and counted, never raised.

    Reads only queue their event. The events queued while the loop was busy leave as one batch:
    each is published with its own ``Nats-Msg-Id`` and the batch's acknowledgements are awaited
    together (one task per batch, not per read). An event without an acknowledgement within
    ACK_TIMEOUT_S is published again through ``publish_event``'s retries with the same id, so
    the stream stores it once.
    """

    def __init__(self, js: JetStreamContext, names: Names, instance: str, perf: Perf | None = None) -> None:
        self._js = js
        self.perf = perf
        self._names = names
        self._subject = names.audit(SERVICE)
        self._instance = instance
        self._queue: list[Audited] = []
        self._pending: dict[asyncio.Task, int] = {}  # batch task: its number of events
        self.published = 0
        self.failed = 0
        self.retry_s = RETRY_S  # how long an unacknowledged event is published again

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
        if not self._queue:
            asyncio.get_running_loop().call_soon(self._flush)
        self._queue.append(ev)

    def _flush(self) -> None:
        batch, self._queue = self._queue, []
        if batch:
            task = asyncio.create_task(self._send(batch))
            self._pending[task] = len(batch)
            task.add_done_callback(self._pending.pop)

    async def _send(self, batch: list[Audited]) -> None:
        acks: list[tuple[Audited, asyncio.Future | None]] = []
        for ev in batch:
            try:
                fut = await self._js.publish_async(self._subject, events.encode(ev), headers={MSG_ID: str(ev.event_id)})
            except Exception:  # not connected, buffer full…: the retrying path below
                fut = None
            acks.append((ev, fut))
        futures = [f for _, f in acks if f is not None]
        if futures:
            await asyncio.wait(futures, timeout=ACK_TIMEOUT_S)
        retry = []
        for ev, fut in acks:
            if fut is not None and fut.done() and not fut.cancelled() and fut.exception() is None:
                self.published += 1
                continue
            if fut is not None:
                fut.cancel()  # frees its slot of the client's pending publishes
            retry.append(self._publish(ev))
        if retry:
            await asyncio.gather(*retry)

    async def _publish(self, ev: Audited) -> None:
        try:
            await publish_event(self._js, self._subject, ev, retry_s=self.retry_s)
            self.published += 1
        except Exception as exc:
            self.failed += 1
            if self.perf is not None:
                self.perf.error("audit_not_published")
            log.error("audit event %s (%s of %s) not published: %s", ev.event_id, ev.data_type, ev.device,
                      type(exc).__name__)

    async def drain(self, timeout: float) -> None:
        """Wait for pending publishes (at shutdown); logs how many were given up."""
        self._flush()
        if not self._pending:
            return
        _, pending = await asyncio.wait(set(self._pending), timeout=timeout)
        lost = sum(self._pending.get(task, 0) for task in pending)
        for task in pending:
            task.cancel()
        if lost:
            self.failed += lost
            log.error("%d audit events not published before shutdown", lost)
