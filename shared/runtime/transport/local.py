"""Local transport: the same argv commands on this machine, with exec (no shell).

It serves the one device that is the service's own host, so it refuses any command naming the
service's own secrets (:mod:`shared.runtime.transport.protected`).
"""

from __future__ import annotations

import asyncio
import os
import signal
import time
from typing import Literal

from shared.events import DeviceSpec
from shared.runtime.transport.base import DEFAULT_MAX_OUTPUT, CommandResult, CommandTimeout, _argv_check, _read_capped
from shared.runtime.transport.protected import check_argv, protected_paths
from shared.settings import Settings


class LocalTransport:
    """Runs argv on this machine with exec (no shell), for devices with transport "local". A
    command naming one of the service's secrets raises ProtectedPathError and runs nothing."""

    method: Literal["ssh", "local"] = "local"

    def __init__(self, spec: DeviceSpec | None = None, settings: Settings | None = None) -> None:
        self.spec = spec
        self.protected = protected_paths(settings if settings is not None else Settings())
        self.connections_created = 0
        self.connections_reused = 0
        self.commands_executed = 0

    def __repr__(self) -> str:
        return "LocalTransport()"

    async def run(
        self, argv: list[str], timeout: float, stdin: bytes | None = None, max_output: int = DEFAULT_MAX_OUTPUT
    ) -> CommandResult:
        """Run ``argv`` here; a missing program gives exit status 127, as a shell would."""
        _argv_check(argv)
        check_argv(argv, self.protected)
        start = time.monotonic()
        try:
            proc = await asyncio.create_subprocess_exec(
                *argv,
                stdin=asyncio.subprocess.PIPE if stdin else asyncio.subprocess.DEVNULL,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.PIPE,
                start_new_session=True,
            )
        except FileNotFoundError:
            msg = f"{argv[0]}: command not found\n".encode()
            return CommandResult(127, b"", msg, (time.monotonic() - start) * 1000, False)
        except PermissionError:
            msg = f"{argv[0]}: permission denied\n".encode()
            return CommandResult(126, b"", msg, (time.monotonic() - start) * 1000, False)
        self.commands_executed += 1

        def kill() -> None:  # the whole process group: children may hold the pipes open
            try:
                os.killpg(proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass

        try:
            async with asyncio.timeout(timeout):
                if stdin:
                    assert proc.stdin is not None
                    proc.stdin.write(stdin)
                    try:
                        await proc.stdin.drain()
                    except (BrokenPipeError, ConnectionResetError):
                        pass
                    proc.stdin.close()
                assert proc.stdout is not None and proc.stderr is not None  # both are PIPE
                (out, t_out), (err, t_err) = await asyncio.gather(
                    _read_capped(proc.stdout, max_output, kill), _read_capped(proc.stderr, max_output, kill)
                )
                await proc.wait()
        except TimeoutError:
            kill()
            await proc.wait()
            raise CommandTimeout(f"{argv[0]} did not finish within {timeout}s") from None
        except BaseException:
            kill()
            raise
        truncated = t_out or t_err
        status = None if truncated or proc.returncode is None or proc.returncode < 0 else proc.returncode
        return CommandResult(status, out, err, (time.monotonic() - start) * 1000, truncated)

    async def close(self) -> None:
        return None
