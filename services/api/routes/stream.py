"""Live events of one device as Server-Sent Events, from core NATS subscriptions on its subjects."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Callable
from typing import Annotated

from fastapi import APIRouter, Query, Request
from fastapi.responses import StreamingResponse

from services.api.deps import DeviceDep, NamesDep, NatsDep, SettingsDep, ViewerKey
from services.api.errors import unprocessable
from shared.names import Names

router = APIRouter(prefix="/devices", tags=["events"])
log = logging.getLogger(__name__)

QUEUE_SIZE = 1000  # per client; a client this far behind loses the oldest events (and is told so)

KINDS: dict[str, Callable[[Names, str], str]] = {
    "collected": lambda n, d: n.collected(d, "*"),
    "config": lambda n, d: n.config(d, "*"),
    "device": lambda n, d: n.device(d),
    "alert": lambda n, d: n.alert(d, "*"),
    "refresh": lambda n, d: n.refresh(d, "*"),
}


def _frame(kind: str, subject: str, data: bytes) -> bytes:
    """One SSE message; JSON events are single-line, so the body needs no splitting."""
    body = data.replace(b"\r", b"").replace(b"\n", b"\ndata: ")
    return b"event: " + kind.encode() + b"\ndata: " + body + b"\n\n"


async def _events(request: Request, queue: asyncio.Queue, heartbeat_s: float) -> AsyncIterator[bytes]:
    yield b": connected\n\n"
    while True:
        try:
            item = await asyncio.wait_for(queue.get(), heartbeat_s)
        except asyncio.TimeoutError:
            if await request.is_disconnected():
                return
            yield b": keep-alive\n\n"
            continue
        yield item


@router.get(
    "/{device}/events",
    response_class=StreamingResponse,
    responses={200: {"content": {"text/event-stream": {}}, "description": "a stream of `event: <kind>` messages"},
               404: {"description": "unknown device"}},
)
async def device_events(
    request: Request, _: ViewerKey, spec: DeviceDep, nc: NatsDep, names: NamesDep, settings: SettingsDep,
    kind: Annotated[str | None, Query(max_length=200, description=f"comma-separated: {', '.join(KINDS)}")] = None,
) -> StreamingResponse:
    """Follow the device's events live until the client disconnects (``kind`` default: all)."""
    kinds = [k.strip() for k in kind.split(",") if k.strip()] if kind else list(KINDS)
    unknown = sorted(set(kinds) - set(KINDS))
    if unknown or not kinds:
        raise unprocessable("kind", f"unknown kind {', '.join(unknown) or '(none)'}; known: {', '.join(KINDS)}")
    queue: asyncio.Queue[bytes] = asyncio.Queue(QUEUE_SIZE)

    def handler(k: str):
        async def on_msg(msg) -> None:
            if queue.full():
                queue.get_nowait()
                log.warning("event stream of %s: client too slow, oldest event dropped", spec.name)
            queue.put_nowait(_frame(k, msg.subject, msg.data))
        return on_msg

    subs = [await nc.subscribe(KINDS[k](names, spec.name), cb=handler(k)) for k in dict.fromkeys(kinds)]

    async def stream() -> AsyncIterator[bytes]:
        try:
            async for chunk in _events(request, queue, settings.api_sse_heartbeat_s):
                yield chunk
        finally:
            for sub in subs:
                try:
                    await sub.unsubscribe()
                except Exception as exc:  # the connection may be closing
                    log.debug("unsubscribe: %s", exc)

    return StreamingResponse(stream(), media_type="text/event-stream",
                             headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})
