"""Batches from a JetStream pull subscription, for every service that consumes one until stopped,
and the per-event handling of a batch that services deciding one event at a time share."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import msgspec
import nats.errors
from nats.aio.msg import Msg
from nats.js import JetStreamContext

from shared import events
from shared.envelope import Event
from shared.runtime.perf import Perf

log = logging.getLogger(__name__)

TOP_UP_S = 0.005  # how long an eager fetch looks for messages already there
RETRY_S = 1.0  # pause after a failed fetch while the client reconnects
_EMPTY = (nats.errors.TimeoutError, asyncio.TimeoutError)
_CLOSED = (nats.errors.ConnectionClosedError, nats.errors.ConnectionDrainingError)


async def _available(psub: JetStreamContext.PullSubscription, n: int) -> list[Msg]:
    """Up to ``n`` messages the stream already holds, without waiting for more."""
    try:
        msgs: list[Msg] = await psub.fetch(n, timeout=TOP_UP_S)
        return msgs
    except _EMPTY:
        return []


async def batches(psub: JetStreamContext.PullSubscription, size: int, wait: float, stop: asyncio.Event, *, eager: bool = False,
                  label: str = "") -> AsyncIterator[list[Msg]]:
    """Yield non-empty batches of up to ``size`` messages until ``stop`` is set or the connection closes.

    A fetch waits up to ``wait`` seconds for a full batch; one that finds nothing is retried, one
    that fails while NATS is briefly away is retried after a pause. With ``eager``, a stream that
    was idle (its last fetch came back short or empty) yields at its first message plus whatever is
    already there, instead of waiting out the batch window for more.
    """
    idle = eager
    while not stop.is_set():
        try:
            msgs = await psub.fetch(1 if idle else size, timeout=wait)
            if idle and size > 1:
                msgs += await _available(psub, size - 1)
        except _EMPTY:
            idle = eager
            continue
        except _CLOSED:
            return
        except Exception as exc:
            if stop.is_set():
                return
            log.warning("fetch%s failed: %s: %s", f" from {label}" if label else "", type(exc).__name__, exc)
            await asyncio.sleep(RETRY_S)
            continue
        idle = eager and len(msgs) < size
        yield msgs


async def unsubscribe(psub: JetStreamContext.PullSubscription, label: str = "") -> None:
    """Drop a pull subscription (one left to the connection's drain never finishes draining)."""
    try:
        await psub.unsubscribe()
    except Exception as exc:
        log.debug("unsubscribe %s: %s", label, exc)


async def each_event(msgs: list[Msg], handle: Callable[[Event], Awaitable[object]], perf: Perf, what: str,
                     retry_s: float = 2.0) -> None:
    """Hand each message's event to ``handle``, in stream order: acknowledged once ``handle``
    returns, redelivered after ``retry_s`` when it raises, terminated when it does not decode."""
    loop = asyncio.get_running_loop()
    for msg in msgs:
        t0 = loop.time()
        try:
            ev = events.decode(msg.data)
        except (msgspec.DecodeError, msgspec.ValidationError) as exc:
            log.warning("undecodable event on %s skipped: %s", msg.subject, exc)
            perf.operation("error", 0.0, error_type="undecodable")
            await msg.term()
            continue
        try:
            await handle(ev)
        except Exception as exc:
            log.warning("%s %s failed, redelivered later: %s: %s", what, msg.subject, type(exc).__name__, exc)
            perf.operation("error", (loop.time() - t0) * 1000, error_type=type(exc).__name__)
            await msg.nak(delay=retry_s)
            continue
        await msg.ack()
        perf.operation("success", (loop.time() - t0) * 1000)


async def finish(tasks: list[asyncio.Task[Any]], timeout: float) -> None:
    """Let a stopping service's tasks end their work in flight for up to ``timeout`` seconds, then cancel the rest."""
    _, pending = await asyncio.wait(tasks, timeout=timeout)
    for t in pending:
        t.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
