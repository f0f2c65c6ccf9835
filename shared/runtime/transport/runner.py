"""Short commands over a long-lived shell on the device's connection: no session per command.

Opening an SSH session costs the device a fork, a login-shell start and several round trips;
a poll or a refresh runs a few short commands. A runner is one session running ``sh -s``;
each command is sent on its stdin as shell text and its end is marked on both output streams
by a random token, so one channel serves command after command:

    ( <shlex.join(argv)> ) </dev/null                      stdin: ( … ) <<'<token>'
    printf '\\n%s %s\\n' <token> "$?"; printf '\\n%s\\n' <token> >&2      <data><token>

The command runs in a subshell (no state leaks to the next one), with stdin from /dev/null or
the here-document, and its stdout and stderr reach the channel's as they are; the newline
before each marker is the runner's own and is removed. A command that outlives its timeout or
overflows the output cap takes its runner with it (the channel is closed, as an exec channel
would be). A device whose shell does not answer the first command as expected is served by
exec channels only.
"""

from __future__ import annotations

import asyncio
import re
import secrets
from collections.abc import Callable

import asyncssh

from shared.runtime.transport.base import READ_CHUNK, ByteReader

RUNNER_COMMAND = "exec sh -s"
# The request as the device's shell receives it (the simulator reads it with this pattern).
REQUEST_RE = re.compile(
    rb"\( (?P<command>.*?) \) (?:</dev/null|<<'(?P<doc>[0-9a-f]+)'\n(?P<data>.*?)(?P=doc))\n"
    rb"printf '\\n%s %s\\n' (?P<token>[0-9a-f]+) \"\$\?\"; printf '\\n%s\\n' (?P=token) >&2\n",
    re.S,
)


class RunnerBroken(Exception):
    """The runner's channel ended or its output could not be framed: it serves no more commands."""


def request(token: str, command: str, stdin: bytes | None) -> bytes | None:
    """The shell text that runs ``command``; None when ``stdin`` cannot travel as a here-document
    (a NUL byte, no final newline, or a line equal to the token)."""
    trailer = f"printf '\\n%s %s\\n' {token} \"$?\"; printf '\\n%s\\n' {token} >&2\n".encode()
    if not stdin:
        return f"( {command} ) </dev/null\n".encode() + trailer
    if b"\0" in stdin or not stdin.endswith(b"\n") or token.encode() in stdin.split(b"\n"):
        return None
    return f"( {command} ) <<'{token}'\n".encode() + stdin + token.encode() + b"\n" + trailer


async def _until(
    reader: ByteReader, marker: bytes, limit: int, on_overflow: Callable[[], object]
) -> tuple[bytes, bytes, bool]:
    """Read up to ``marker``; returns (output before it, what follows it, truncated)."""
    buf = bytearray()
    kept = 0
    while True:
        chunk = await reader.read(READ_CHUNK)
        if not chunk:
            raise RunnerBroken("the runner's channel ended")
        start = max(0, len(buf) - len(marker))
        buf += chunk
        at = buf.find(marker, start)
        if at >= 0:
            return bytes(buf[:at]), bytes(buf[at + len(marker):]), False
        if len(buf) - len(marker) > limit:
            kept = limit
            on_overflow()
            return bytes(buf[:kept]), b"", True


class ShellRunner:
    """One ``sh -s`` session; ``run`` sends one command at a time."""

    def __init__(self, process: asyncssh.SSHClientProcess[bytes], conn: asyncssh.SSHClientConnection) -> None:
        self.process = process
        self.conn = conn
        self.token = secrets.token_hex(16)
        self.broken = False

    @classmethod
    async def open(cls, conn: asyncssh.SSHClientConnection, timeout: float, max_output: int) -> ShellRunner:
        """Start a runner and check that it answers; raises RunnerBroken when it does not."""
        process = await conn.create_process(RUNNER_COMMAND, encoding=None)
        runner = cls(process, conn)
        try:
            async with asyncio.timeout(timeout):
                status, out, _, _ = await runner.run("echo ready", None, max_output)
        except (TimeoutError, RunnerBroken, asyncssh.Error, OSError):
            runner.close()
            raise RunnerBroken("the device's shell did not answer as a runner") from None
        if status != 0 or out != b"ready\n":
            runner.close()
            raise RunnerBroken(f"the device's shell answered {out[:80]!r} (status {status}) as a runner")
        return runner

    async def run(self, command: str, stdin: bytes | None,
                  max_output: int) -> tuple[int | None, bytes, bytes, bool]:
        """(exit status, stdout, stderr, truncated); raises RunnerBroken, or ValueError when
        ``stdin`` cannot be sent this way (nothing was sent then)."""
        text = request(self.token, command, stdin)
        if text is None:
            raise ValueError("stdin cannot travel as a here-document")
        try:
            self.process.stdin.write(text)
            got = await asyncio.gather(
                _until(self.process.stdout, b"\n" + self.token.encode() + b" ", max_output, self.close),
                _until(self.process.stderr, b"\n" + self.token.encode() + b"\n", max_output, self.close),
                return_exceptions=True,
            )
        except BaseException:
            self.close()
            raise
        if any(not isinstance(g, BaseException) and g[2] for g in got):  # cut: the other stream ended with it
            out, err = (g[0] if not isinstance(g, BaseException) else b"" for g in got)
            return None, out, err, True
        results: list[tuple[bytes, bytes, bool]] = []
        for g in got:
            if isinstance(g, BaseException):
                self.close()
                raise g
            results.append(g)
        (out, rest, _), (err, _, _) = results
        while not rest.endswith(b"\n"):  # the status may arrive in the next chunk
            more = await self.process.stdout.read(64)
            if not more:
                self.close()
                raise RunnerBroken("the runner's channel ended")
            rest += more
        try:
            status = int(rest.strip())
        except ValueError:
            self.close()
            raise RunnerBroken(f"unreadable status {rest[:40]!r}") from None
        return status, out, err, False

    def close(self) -> None:
        """Abandon the runner: its channel is closed and the device's shell ends."""
        self.broken = True
        try:
            self.process.close()
        except (asyncssh.Error, OSError):
            pass
