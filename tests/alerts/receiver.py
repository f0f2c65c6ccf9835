"""A small HTTP server on a loopback port that records every request and answers a fixed status."""

from __future__ import annotations

import asyncio

import msgspec


class Received(msgspec.Struct):
    method: str
    path: str
    headers: dict[str, str]
    body: bytes


class Receiver:
    """``async with Receiver(status=200) as r``: POST to ``r.url``; requests land in ``r.requests``."""

    def __init__(self, status: int = 200) -> None:
        self.status = status
        self.requests: list[Received] = []
        self._server: asyncio.Server | None = None
        self.port = 0
        self._writers: set[asyncio.StreamWriter] = set()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._writers.add(writer)
        try:
            while True:
                line = await reader.readline()
                if not line:
                    return
                method, path, _ = line.decode().split(" ", 2)
                headers: dict[str, str] = {}
                while (h := await reader.readline()) not in (b"\r\n", b"\n", b""):
                    name, _, value = h.decode().partition(":")
                    headers[name.strip().lower()] = value.strip()
                body = await reader.readexactly(int(headers.get("content-length", "0")))
                self.requests.append(Received(method, path, headers, body))
                writer.write(f"HTTP/1.1 {self.status} X\r\nContent-Length: 2\r\nContent-Type: text/plain\r\n\r\nok"
                             .encode())
                await writer.drain()
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            self._writers.discard(writer)
            writer.close()

    async def __aenter__(self) -> Receiver:
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(self, *exc) -> None:
        assert self._server is not None
        self._server.close()
        for w in list(self._writers):  # keep-alive connections of the client under test
            w.close()
        await asyncio.wait_for(self._server.wait_closed(), 10)
