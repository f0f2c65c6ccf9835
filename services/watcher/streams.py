"""The long-running watch commands of a device: starting one (until its watches are set up),
reading its stream of events and file states into a queue, and logging what it says on stderr."""

from __future__ import annotations

import asyncio
import logging
import time

from services.watcher import remote
from shared.runtime.transport import StreamingCommand, open_stream

log = logging.getLogger(__name__)


class StreamEnded(Exception):
    """The watch stream ended (connection lost, directory gone): reconnect and rescan."""


class WatchUnavailable(Exception):
    """The watch program cannot run on this device: fall back to the next mode."""


async def start(transport, argv: list[str], program: str, timeout_s: float) -> StreamingCommand:
    """Start ``argv`` on the device; return once it reports its watches in place."""
    cmd = await open_stream(transport, argv)
    err = b""
    try:
        async with asyncio.timeout(timeout_s):
            while remote.ESTABLISHED not in err:
                chunk = await cmd.stderr.read(4096)
                if not chunk:
                    status = await cmd.wait()
                    text = err.decode(errors="replace").strip()[-500:]
                    if "No such file or directory" in text:
                        raise StreamEnded(f"a watched directory vanished: {text}")
                    raise WatchUnavailable(f"{program} exited with status {status}: {text}")
                err += chunk
    except TimeoutError:
        await cmd.terminate()
        raise WatchUnavailable(f"{program} set up no watches within {timeout_s}s") from None
    except BaseException:
        await cmd.terminate()
        raise
    return cmd


async def read(cmd: StreamingCommand, queue: asyncio.Queue, name: str) -> None:
    """Put ``("events", items, wall time)`` on ``queue`` as the stream brings them, and
    ``("ended", [error…], wall time)`` when it ends."""
    parts: list[bytes] = []
    error: list[str] = []
    try:
        while True:
            chunk = await cmd.stdout.read(65536)
            if not chunk:
                break
            parts.append(chunk)
            if b"\0" not in chunk:  # inside a file's content: parse once it is complete
                continue
            items, rest = remote.parse_stream(b"".join(parts))
            parts = [rest] if rest else []
            if items:
                queue.put_nowait(("events", items, time.time()))
    except remote.StreamError as exc:
        error.append(str(exc))
        log.warning("%s: %s", name, exc)
    except Exception as exc:  # a dropped channel
        log.debug("%s: watch stream read failed: %s", name, exc)
    queue.put_nowait(("ended", error, time.time()))


async def drain_stderr(cmd: StreamingCommand, name: str) -> None:
    while True:
        chunk = await cmd.stderr.read(4096)
        if not chunk:
            return
        for line in chunk.decode(errors="replace").splitlines():
            if line.strip():
                log.warning("%s: %s", name, line.strip()[:300])
