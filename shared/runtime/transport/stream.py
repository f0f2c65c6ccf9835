"""Long-running commands (``inotifywait -m``) whose output is read as it comes."""

from __future__ import annotations

import asyncio
import os
import shlex
import signal
from collections.abc import Awaitable, Callable

import asyncssh

from shared.runtime.transport.base import ByteReader, ConnectError, TransportError, _argv_check
from shared.runtime.transport.local import LocalTransport
from shared.runtime.transport.protected import check_argv
from shared.runtime.transport.ssh import SshTransport, _stop_remote


class StreamingCommand:
    """A long-running command (e.g. ``inotifywait -m``) whose output is read as it comes.

    ``stdout`` and ``stderr`` have ``read(n)`` returning bytes (``b""`` at the end). Stdin stays
    open for the command's lifetime; ``terminate()`` stops the command and closes its channel.
    """

    def __init__(self, stdout: ByteReader, stderr: ByteReader, terminate: Callable[[], Awaitable[None]],
                 wait: Callable[[], Awaitable[int | None]]) -> None:
        self.stdout = stdout
        self.stderr = stderr
        self._terminate = terminate
        self._wait = wait

    async def terminate(self) -> None:
        await self._terminate()

    async def wait(self) -> int | None:
        """The exit status once the command has ended (None: killed or unknown)."""
        return await self._wait()


async def open_stream(transport: SshTransport | LocalTransport, argv: list[str]) -> StreamingCommand:
    """Start ``argv`` on the transport's device as a long-running command; over SSH it is a
    channel of the device's one connection. Raises ConnectError when it cannot be started."""
    _argv_check(argv)
    if isinstance(transport, SshTransport):
        return await _ssh_stream(transport, argv)
    return await _local_stream(transport, argv)


async def _ssh_stream(transport: SshTransport, argv: list[str]) -> StreamingCommand:
    conn = await transport._connection()
    try:
        process = await conn.create_process(shlex.join(argv), encoding=None)
    except asyncssh.ChannelOpenError as exc:
        raise ConnectError(f"cannot open a session on {transport.host}: {exc.reason}") from None
    except (asyncssh.Error, OSError) as exc:
        transport._drop(conn)
        raise ConnectError(f"connection to {transport.host} lost: {exc}") from None
    transport.commands_executed += 1

    async def terminate() -> None:
        _stop_remote(process)
        try:
            await asyncio.wait_for(process.wait_closed(), timeout=5)
        except (TimeoutError, asyncssh.Error, OSError):
            pass

    async def wait() -> int | None:
        await process.wait_closed()
        status = process.exit_status
        return None if status is None or status < 0 else status

    return StreamingCommand(process.stdout, process.stderr, terminate, wait)


async def _local_stream(transport: LocalTransport, argv: list[str]) -> StreamingCommand:
    check_argv(argv, transport.protected)
    try:
        proc = await asyncio.create_subprocess_exec(
            *argv, stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE, start_new_session=True,
        )
    except (FileNotFoundError, PermissionError) as exc:
        raise TransportError(f"{argv[0]}: {exc.strerror or exc}") from None
    transport.commands_executed += 1

    async def terminate() -> None:
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        await proc.wait()

    async def wait() -> int | None:
        status = await proc.wait()
        return None if status < 0 else status

    assert proc.stdout is not None and proc.stderr is not None  # both are PIPE
    return StreamingCommand(proc.stdout, proc.stderr, terminate, wait)
