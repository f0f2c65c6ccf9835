"""What every transport shares: the result of a command, the errors, and capped reads."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal, Protocol

import asyncssh

MiB = 1024 * 1024
DEFAULT_MAX_OUTPUT = 16 * MiB
READ_CHUNK = 64 * 1024
BACKOFF_FIRST_S = 1.0
BACKOFF_MAX_S = 300.0
# OpenSSH allows 10 sessions per connection by default (MaxSessions).
MAX_SESSIONS = 8
DEFAULT_SSH_PORT = 22


@dataclass(frozen=True)
class CommandResult:
    exit_status: int | None  # None: killed by a signal, stopped after truncation, or unknown
    stdout: bytes
    stderr: bytes
    duration_ms: float
    truncated: bool


class TransportError(Exception):
    """A command could not be run on the device."""


class ConnectError(TransportError):
    """No connection to the device (refused, unreachable, authentication, backoff)."""


class HostKeyError(ConnectError):
    """The host key is unknown (and trust-on-first-use is off) or has changed."""


class HostKeyChanged(HostKeyError):
    """The device presented a key other than the one known_hosts holds for it: refused."""

    def __init__(self, message: str, fingerprint: str | None = None) -> None:
        super().__init__(message)
        self.fingerprint = fingerprint  # of the key presented, when it could be read


class CommandTimeout(TransportError):
    """The command did not finish within its timeout; it was stopped."""


class ProtectedPathError(TransportError):
    """A command named one of the service's own secrets on its own host: refused, nothing ran."""


class Transport(Protocol):
    method: Literal["ssh", "local"]
    connections_created: int
    connections_reused: int
    commands_executed: int

    async def run(
        self, argv: list[str], timeout: float, stdin: bytes | None = None, max_output: int = DEFAULT_MAX_OUTPUT
    ) -> CommandResult: ...

    async def close(self) -> None: ...


class ByteReader(Protocol):
    """A stream of bytes: asyncssh's and asyncio's readers."""

    async def read(self, n: int = -1) -> bytes: ...


async def _read_capped(reader: ByteReader, limit: int, on_overflow: Callable[[], object]) -> tuple[bytes, bool]:
    """Read a stream to EOF, keeping at most ``limit`` bytes; on overflow call ``on_overflow``."""
    buf = bytearray()
    while True:
        try:
            chunk = await reader.read(READ_CHUNK)
        except (asyncssh.Error, ConnectionError, BrokenPipeError):
            return bytes(buf), False
        if not chunk:
            return bytes(buf), False
        room = limit - len(buf)
        if len(chunk) > room:
            buf += chunk[:room]
            on_overflow()
            return bytes(buf), True
        buf += chunk


def _argv_check(argv: list[str]) -> None:
    if not argv or not all(isinstance(a, str) for a in argv):
        raise ValueError("argv must be a non-empty list of strings")
