"""Refresh requests: ask the collectors for a fresh collection and wait for its event.

Concurrent requests for the same device and data type share one collection: the first starts
it, the others await the same future, so the collectors see one ``RefreshRequested``.

A refresh that failed (error, unsupported, refused or timed out) answers the reads of that device
and type for ``failure_cache_s``, doubling with each further failure up to ``FAILURE_CACHE_MAX_S``,
so readers cannot make the collectors retry a failing collection without limit.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from dataclasses import dataclass

from nats.aio.client import Client

from shared import events
from shared.events import Audited, Collected, DeviceSpec, RefreshRequested
from shared.names import Names

log = logging.getLogger(__name__)

SERVICE = "api"
COLLECTOR_SERVICE = "collector"
FAILURE_CACHE_MAX_S = 60.0
FAILED_STATUSES = ("error", "unsupported")


@dataclass
class Failure:
    """The last failed refresh of a device and type: served until ``until`` (loop time)."""

    answer: Collected | Exception
    until: float
    failures: int


class RefreshTimeout(Exception):
    """No collection arrived in time."""

    def __init__(self, operation_id: uuid.UUID, timeout_s: float) -> None:
        super().__init__(f"no collection arrived within {timeout_s:g} s")
        self.operation_id = operation_id


class RefreshRefused(Exception):
    """A collector refused the request (unknown device or data type)."""

    def __init__(self, operation_id: uuid.UUID, reason: str) -> None:
        super().__init__(reason)
        self.operation_id = operation_id


class Refresher:
    """Publishes refresh requests on core NATS and resolves them with the collected event."""

    def __init__(self, nc: Client, names: Names, instance: str, timeout_s: float) -> None:
        self._nc = nc
        self._names = names
        self._instance = instance
        self.timeout_s = timeout_s
        self.in_flight: dict[str, asyncio.Future[Collected]] = {}
        self.requested = 0  # refresh requests this process published
        self._tasks: set[asyncio.Task] = set()
        self.failure_cache_s = 5.0
        self.failed: dict[str, Failure] = {}
        self.failures_served = 0  # reads answered from a recent failure, without a new request

    async def refresh(self, spec: DeviceSpec, data_type: str, requested_by: str | None = None) -> Collected:
        """The collected event answering a (possibly shared) refresh of this device and type."""
        key = Names.cache_key(spec.name, data_type)
        failed = self.failed.get(key)
        if failed is not None and asyncio.get_running_loop().time() < failed.until:
            self.failures_served += 1
            if isinstance(failed.answer, Exception):
                raise failed.answer.with_traceback(None)
            return failed.answer
        fut = self.in_flight.get(key)
        if fut is None:
            fut = asyncio.get_running_loop().create_future()
            self.in_flight[key] = fut
            task = asyncio.create_task(self._run(key, fut, spec, data_type, requested_by), name=f"refresh-{key}")
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
        # shield: one caller going away (client disconnect) must not cancel the others' wait
        return await asyncio.shield(fut)

    async def _run(
        self, key: str, fut: asyncio.Future, spec: DeviceSpec, data_type: str, requested_by: str | None
    ) -> None:
        try:
            result = await self._request(spec, data_type, requested_by)
        except asyncio.CancelledError:
            fut.cancel()
            raise
        except Exception as exc:  # handed to every waiter
            if isinstance(exc, (RefreshTimeout, RefreshRefused)):
                self._remember(key, exc)
            if not fut.done():
                fut.set_exception(exc)
                fut.exception()  # retrieved: a refresh nobody awaits any more must not log noise
        else:
            if result.status in FAILED_STATUSES:
                self._remember(key, result)
            else:
                self.failed.pop(key, None)
            if not fut.done():
                fut.set_result(result)
        finally:
            if self.in_flight.get(key) is fut:
                del self.in_flight[key]

    def _remember(self, key: str, answer: Collected | Exception) -> None:
        """Serve ``answer`` for a while; each failure in a row doubles the while."""
        if self.failure_cache_s <= 0:
            return
        previous = self.failed.get(key)
        failures = previous.failures + 1 if previous is not None else 1
        hold = min(self.failure_cache_s * 2 ** (failures - 1), FAILURE_CACHE_MAX_S)
        self.failed[key] = Failure(answer, asyncio.get_running_loop().time() + hold, failures)
        log.info("refresh of %s failed (%d in a row): answered from this failure for %.0f s", key, failures, hold)

    async def close(self) -> None:
        """Cancel the refreshes still waiting (their callers get 503)."""
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    async def _request(self, spec: DeviceSpec, data_type: str, requested_by: str | None) -> Collected:
        req = events.new_event(
            RefreshRequested, device_id=spec.id, device=spec.name, service=SERVICE, instance=self._instance,
            trigger="api", data_type=data_type, requested_by=requested_by,
        )
        op = req.operation_id
        answer: asyncio.Future[events.Event] = asyncio.get_running_loop().create_future()

        async def on_msg(msg) -> None:
            try:
                ev = events.decode(msg.data)
            except Exception:
                return
            if ev.operation_id == op and not answer.done() and (
                    isinstance(ev, Collected) or (isinstance(ev, Audited) and ev.status == "error")):
                answer.set_result(ev)

        # Subscribe before publishing, so the answer cannot slip past.
        subs = [
            await self._nc.subscribe(self._names.collected(spec.name, data_type), cb=on_msg),
            await self._nc.subscribe(self._names.audit(COLLECTOR_SERVICE), cb=on_msg),
        ]
        try:
            await self._nc.publish(self._names.refresh(spec.name, data_type), events.encode(req))
            self.requested += 1
            await self._nc.flush()
            try:
                ev = await asyncio.wait_for(answer, self.timeout_s)
            except TimeoutError:
                raise RefreshTimeout(op, self.timeout_s) from None
        finally:
            for sub in subs:
                try:
                    await sub.unsubscribe()
                except Exception as exc:  # the connection may be closing
                    log.debug("unsubscribe: %s", exc)
        if isinstance(ev, Audited):
            raise RefreshRefused(op, ev.error or "refused by the collector")
        assert isinstance(ev, Collected)
        return ev
