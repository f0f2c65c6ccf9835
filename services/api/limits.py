"""Bounds on the work one request can cause: body size and paging depth (diffs: ``diffs``).

``BodyLimit`` is plain ASGI, so an oversized body is refused before FastAPI parses or decodes
anything (and before the key is checked): a declared ``Content-Length`` past the limit at once, a
chunked body as soon as its running total passes it.
"""

from __future__ import annotations

import json

from sqlalchemy import Select, func, select
from sqlalchemy.ext.asyncio import AsyncSession

MAX_BODY_BYTES = 64 * 1024  # the largest legitimate body (a device with its watch paths) is a few KiB
MAX_OFFSET = 100_000  # rows skipped before a page: older rows are read with a narrower time window
COUNT_CAP = 10_000  # total_count counts at most this many rows past the page's offset

_BODY_METHODS = frozenset({"POST", "PUT", "PATCH"})


class BodyLimit:
    """ASGI middleware answering 413 to a request body larger than ``limit`` bytes.

    A body (at most ``limit`` bytes, so memory is bounded) is read in full before the app runs,
    then handed to it as one message.
    """

    def __init__(self, app, limit: int = MAX_BODY_BYTES) -> None:
        self.app = app
        self.limit = limit

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http" or scope["method"] not in _BODY_METHODS:
            await self.app(scope, receive, send)
            return
        length = next((v for k, v in scope["headers"] if k == b"content-length"), None)
        if length is not None and length.isdigit() and int(length) > self.limit:
            await self._refuse(send)
            return
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] != "http.request":  # the client went away
                return
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.limit:
                await self._refuse(send)
                return
            chunks.append(chunk)
            if not message.get("more_body", False):
                break
        replayed = False

        async def replay():
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": b"".join(chunks), "more_body": False}
            return await receive()

        await self.app(scope, replay, send)

    async def _refuse(self, send) -> None:
        body = json.dumps({"detail": f"request body larger than {self.limit} bytes"}).encode()
        await send({"type": "http.response.start", "status": 413, "headers": [
            (b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
            (b"connection", b"close")]})
        await send({"type": "http.response.body", "body": body})


def max_page(page_size_max: int) -> int:
    """The last page a list with pages of up to ``page_size_max`` rows serves (offset <= MAX_OFFSET)."""
    return MAX_OFFSET // page_size_max + 1


async def bounded_count(session: AsyncSession, query: Select, offset: int) -> int:
    """Rows of ``query``, counted up to ``offset + COUNT_CAP`` (never a full count of a huge table)."""
    capped = query.order_by(None).limit(offset + COUNT_CAP).subquery()
    return await session.scalar(select(func.count()).select_from(capped)) or 0
