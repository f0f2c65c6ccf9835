"""Live events of one device as Server-Sent Events, from core NATS subscriptions on its subjects.

Each client holds at most ``api_sse_buffer_bytes`` of unsent events (the oldest are dropped first,
and the client is told how many), and at most ``api_sse_max_clients`` streams are open at once.
"""

from __future__ import annotations

import asyncio
import logging
import weakref
from collections import deque
from collections.abc import AsyncIterator, Callable
from typing import Annotated

from fastapi import APIRouter, HTTPException, Query, Request, status
from fastapi.responses import StreamingResponse

from services.api.deps import DeviceDep, NamesDep, NatsDep, SettingsDep, ViewerKey
from services.api.errors import unprocessable
from services.api.schemas import kinds_pattern
from shared.names import Names

router = APIRouter(prefix="/devices", tags=["events"])
log = logging.getLogger(__name__)



class Backlog:
    """The unsent frames of one client, at most ``budget`` bytes: the oldest go first."""

    def __init__(self, budget: int) -> None:
        self.budget = budget
        self.frames: deque[bytes] = deque()
        self.size = 0
        self.dropped = 0
        self.ready = asyncio.Event()

    def put(self, frame: bytes) -> None:
        if len(frame) > self.budget:
            self.dropped += 1
            self.ready.set()
            return
        while self.size + len(frame) > self.budget:
            self.size -= len(self.frames.popleft())
            self.dropped += 1
        self.frames.append(frame)
        self.size += len(frame)
        self.ready.set()

    async def get(self, timeout: float) -> bytes | None:
        """The next frame (a comment first if events were dropped), or None after ``timeout`` idle."""
        if not self.frames and not self.dropped:
            self.ready.clear()
            try:
                await asyncio.wait_for(self.ready.wait(), timeout)
            except TimeoutError:
                return None
        if self.dropped:
            n, self.dropped = self.dropped, 0
            return f": {n} events dropped (client too slow)\n\n".encode()
        frame = self.frames.popleft()
        self.size -= len(frame)
        return frame

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


async def _events(request: Request, backlog: Backlog, heartbeat_s: float) -> AsyncIterator[bytes]:
    yield b": connected\n\n"
    while True:
        item = await backlog.get(heartbeat_s)
        if item is None:
            if await request.is_disconnected():
                return
            yield b": keep-alive\n\n"
            continue
        yield item


@router.get(
    "/{device}/events",
    response_class=StreamingResponse,
    responses={200: {"content": {"text/event-stream": {}}, "description": "a stream of `event: <kind>` messages"},
               404: {"description": "unknown device"}, 503: {"description": "too many event streams open"}},
)
async def device_events(
    request: Request, _: ViewerKey, spec: DeviceDep, nc: NatsDep, names: NamesDep, settings: SettingsDep,
    kind: Annotated[str | None, Query(json_schema_extra={"pattern": kinds_pattern(KINDS)},
                                      description=f"comma-separated: {', '.join(KINDS)}")] = None,
) -> StreamingResponse:
    """Follow the device's events live until the client disconnects (``kind`` default: all)."""
    kinds = [k.strip() for k in kind.split(",") if k.strip()] if kind else list(KINDS)
    unknown = sorted(set(kinds) - set(KINDS))
    if unknown or not kinds:
        raise unprocessable("kind", f"unknown kind {', '.join(unknown) or '(none)'}; known: {', '.join(KINDS)}")
    state = request.app.state
    if getattr(state, "sse_clients", 0) >= settings.api_sse_max_clients:
        log.warning("event stream of %s refused: %d streams open", spec.name, state.sse_clients)
        raise HTTPException(status.HTTP_503_SERVICE_UNAVAILABLE, "too many event streams open; retry later",
                            headers={"Retry-After": "5"})
    backlog = Backlog(settings.api_sse_buffer_bytes)

    def handler(k: str):
        async def on_msg(msg) -> None:
            backlog.put(_frame(k, msg.subject, msg.data))
        return on_msg

    state.sse_clients = getattr(state, "sse_clients", 0) + 1
    released = False

    def release() -> None:  # once: at the stream's end, or when a never-started stream is collected
        nonlocal released
        if not released:
            released = True
            state.sse_clients -= 1

    try:
        subs = [await nc.subscribe(KINDS[k](names, spec.name), cb=handler(k)) for k in dict.fromkeys(kinds)]
    except BaseException:
        release()
        raise

    async def stream() -> AsyncIterator[bytes]:
        try:
            async for chunk in _events(request, backlog, settings.api_sse_heartbeat_s):
                yield chunk
        finally:
            release()
            for sub in subs:
                try:
                    await sub.unsubscribe()
                except Exception as exc:  # the connection may be closing
                    log.debug("unsubscribe: %s", exc)

    body = stream()
    weakref.finalize(body, release)
    return StreamingResponse(body, media_type="text/event-stream",
                             headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})
