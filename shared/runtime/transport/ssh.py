"""SSH transport: one long-lived connection per device, its channels shared by every command.

Commands are argv lists sent as ``shlex.join(argv)``, so every argument reaches the remote program
literally. Host keys are checked against ``settings.known_hosts_path``, parsed once per process
(:mod:`shared.runtime.transport.known_hosts`). A device may opt in to trust-on-first-use, which records
an unknown host's key once and never accepts a changed one; such a host is never offered the
SSH password while its key is only trusted on first use.
"""

from __future__ import annotations

import asyncio
import logging
import os
import random
import shlex
import time
from pathlib import Path
from typing import Any, Literal

import asyncssh

from shared.events import DeviceSpec
from shared.runtime.transport import base
from shared.runtime.transport.known_hosts import known_hosts_file
from shared.runtime.transport.runner import RunnerBroken, ShellRunner
from shared.settings import Settings

log = logging.getLogger(__name__)


class SshTransport:
    """One lazily opened SSH connection to one device, shared by every command.

    A failed connect is retried no sooner than a jittered exponential backoff allows (about
    1 s doubling to 300 s); calls before then fail at once with the last base.ConnectError. With no
    ``ssh_client_keys`` configured, asyncssh's defaults apply (~/.ssh keys, ssh-agent); a
    password comes from ``ssh_password_env`` or ``ssh_password_file``. ~/.ssh/config is not
    read. At most ``ssh_max_channels`` commands run at once on the connection.
    """

    method: Literal["ssh", "local"] = "ssh"

    def __init__(self, spec: DeviceSpec, settings: Settings) -> None:
        self.spec = spec
        self.settings = settings
        self.host = spec.address
        self.port = spec.port
        self.username = spec.username or settings.ssh_username
        self.known_hosts = settings.known_hosts_path
        self._known = known_hosts_file(self.known_hosts)
        self.password_withheld = False  # the last connect offered no password: host key not verified
        self.connections_created = 0
        self.connections_reused = 0
        self.commands_executed = 0
        self.connect_attempts = 0
        self.host_key_refusals = 0  # connects refused because the host key changed
        self.presented_fingerprint: str | None = None  # of the refused key, for the security event
        self._conn: asyncssh.SSHClientConnection | None = None
        self._lock = asyncio.Lock()
        channels = max(1, getattr(settings, "ssh_max_channels", base.MAX_SESSIONS))
        self._sessions = asyncio.Semaphore(channels)
        self._max_runners = max(1, channels // 2)  # the other channels stay for streams and exec
        self._runners: set[ShellRunner] = set()
        self._idle: list[ShellRunner] = []
        self.runners_usable = True  # False once the device's shell did not answer as a runner
        self._failures = 0
        self._next_attempt = 0.0
        self._last_error: base.ConnectError | None = None
        self._closed = False

    def __repr__(self) -> str:
        return f"SshTransport({self.username}@{self.host}:{self.port})"

    @property
    def closed(self) -> bool:
        return self._closed

    @property
    def connected(self) -> bool:
        return self._conn is not None and not self._conn.is_closed()

    async def _connection(self) -> asyncssh.SSHClientConnection:
        if self.connected:
            self.connections_reused += 1
            return self._conn  # type: ignore[return-value]
        async with self._lock:
            if self.connected:
                self.connections_reused += 1
                return self._conn
            if self._closed:
                raise base.ConnectError(f"transport to {self.host}:{self.port} is closed")
            wait = self._next_attempt - time.monotonic()
            if wait > 0:
                raise base.ConnectError(f"{self._last_error} (next attempt in {wait:.1f}s)")
            self.connect_attempts += 1
            try:
                self._conn = await self._connect()
            except base.ConnectError as exc:
                self._failures += 1
                self._next_attempt = time.monotonic() + backoff_delay(self._failures)
                self._last_error = exc
                raise
            self._failures = 0
            self._next_attempt = 0.0
            self._last_error = None
            self.connections_created += 1
            return self._conn

    async def _connect(self) -> asyncssh.SSHClientConnection:
        where = f"{self.host}:{self.port}"
        await self._prepare_known_hosts()
        options: dict[str, Any] = dict(
            username=self.username,
            known_hosts=self._known.current(),  # parsed once; never None: that would disable checking
            keepalive_interval=self.settings.ssh_keepalive_s,
            keepalive_count_max=getattr(self.settings, "ssh_keepalive_count_max", 3),
            connect_timeout=self.settings.ssh_connect_timeout_s,
            config=None,
        )
        if self.settings.ssh_client_keys:
            options["client_keys"] = [str(p) for p in self.settings.ssh_client_keys]
        password = ssh_password(self.settings)
        self.password_withheld = password is not None and not self._known.verified(self.host, self.port)
        if password is not None and not self.password_withheld:
            options["password"] = password
        try:
            async with asyncio.timeout(self.settings.ssh_connect_timeout_s + 1):
                return await asyncssh.connect(self.host, self.port, **options)
        except asyncssh.HostKeyNotVerifiable:
            if self._known.is_known(self.host, self.port):
                self.host_key_refusals += 1
                self.presented_fingerprint = await self._presented_fingerprint()
                raise base.HostKeyChanged(
                    f"host key of {where} does not match {self.known_hosts}: refused "
                    "(the key changed, or the entry is wrong)", self.presented_fingerprint
                ) from None
            raise base.HostKeyError(
                f"host key of {where} is unknown: add it to {self.known_hosts} or enable trust_on_first_use"
            ) from None
        except asyncssh.PermissionDenied:
            withheld = " (no password offered: the host key was only trusted on first use)" if self.password_withheld else ""
            raise base.ConnectError(f"authentication as {self.username!r} refused by {where}{withheld}") from None
        except asyncssh.Error as exc:
            raise base.ConnectError(f"ssh to {where} failed: {exc.reason}") from None
        except TimeoutError:
            raise base.ConnectError(f"ssh to {where} timed out after {self.settings.ssh_connect_timeout_s}s") from None
        except OSError as exc:
            raise base.ConnectError(f"cannot connect to {where}: {exc.strerror or exc}") from None

    async def _presented_fingerprint(self) -> str | None:
        """The SHA256 fingerprint of the key the device presents now, for the security event."""
        try:
            async with asyncio.timeout(self.settings.ssh_connect_timeout_s + 1):
                key = await asyncssh.get_server_host_key(self.host, self.port, config=None)
        except (asyncssh.Error, OSError, TimeoutError):
            return None
        return key.get_fingerprint("sha256") if key is not None else None

    async def _prepare_known_hosts(self) -> None:
        """Make sure the file exists; record the host key on first use when the device allows it."""
        known = self._known
        async with known.lock:
            known.ensure_file()
            if not self.spec.trust_on_first_use or known.is_known(self.host, self.port):
                return  # a changed key is refused by the handshake, never re-recorded
            try:
                async with asyncio.timeout(self.settings.ssh_connect_timeout_s + 1):
                    key = await asyncssh.get_server_host_key(self.host, self.port, config=None)
            except (asyncssh.Error, OSError, TimeoutError) as exc:
                raise base.ConnectError(f"cannot fetch host key of {self.host}:{self.port}: {exc}") from None
            if key is None:
                raise base.HostKeyError(f"{self.host}:{self.port} presented no host key")
            known.record(self.host, self.port, key)
            log.warning(
                "trusting %s:%d on first use: %s key %s recorded in %s (no password is offered until "
                "the key is verified)", self.host, self.port, key.get_algorithm(), key.get_fingerprint("sha256"),
                known.path,
            )

    def _drop(self, conn: asyncssh.SSHClientConnection) -> None:
        if self._conn is conn:
            self._conn = None
        conn.abort()

    async def run(
        self, argv: list[str], timeout: float, stdin: bytes | None = None, max_output: int = base.DEFAULT_MAX_OUTPUT
    ) -> base.CommandResult:
        """Run ``argv`` on the device; raises base.ConnectError, base.HostKeyError or base.CommandTimeout."""
        base._argv_check(argv)
        command = shlex.join(argv)
        conn = await self._connection()
        start = time.monotonic()
        async with self._sessions:
            if self.runners_usable:
                done = await self._run_on_runner(conn, argv, command, timeout, stdin, max_output, start)
                if done is not None:
                    return done
            process: asyncssh.SSHClientProcess[bytes] | None = None
            try:
                async with asyncio.timeout(timeout):
                    process = await conn.create_process(command, encoding=None)
                    self.commands_executed += 1
                    try:
                        if stdin:
                            process.stdin.write(stdin)
                        process.stdin.write_eof()
                    except BrokenPipeError:
                        pass  # the command ended (or closed stdin) without reading it: not a lost connection
                    (out, t_out), (err, t_err) = await asyncio.gather(
                        base._read_capped(process.stdout, max_output, process.close),
                        base._read_capped(process.stderr, max_output, process.close),
                    )
                    truncated = t_out or t_err
                    await process.wait_closed()
            except TimeoutError:
                if process is not None:
                    _stop_remote(process)
                raise base.CommandTimeout(f"{argv[0]} did not finish within {timeout}s on {self.host}") from None
            except asyncssh.ChannelOpenError as exc:
                raise base.ConnectError(f"cannot open a session on {self.host}: {exc.reason}") from None
            except (asyncssh.Error, OSError) as exc:
                self._drop(conn)
                raise base.ConnectError(f"connection to {self.host} lost: {exc}") from None
            except BaseException:  # cancelled: do not leave the session open
                if process is not None:
                    _stop_remote(process)
                raise
        status = None if truncated else process.exit_status
        if status is not None and status < 0:  # -1: ended by a signal
            status = None
        return base.CommandResult(status, out, err, (time.monotonic() - start) * 1000, truncated)

    async def _runner(self, conn: asyncssh.SSHClientConnection, max_output: int) -> ShellRunner | None:
        """An idle runner of this connection, or a new one while there are fewer than the limit."""
        while self._idle:
            runner = self._idle.pop()
            if runner.conn is conn and not runner.broken:
                return runner
            self._runners.discard(runner)
        self._runners = {r for r in self._runners if r.conn is conn and not r.broken}
        if len(self._runners) >= self._max_runners:
            return None
        try:
            runner = await ShellRunner.open(conn, self.settings.ssh_connect_timeout_s, max_output)
        except RunnerBroken as exc:
            self.runners_usable = False
            log.info("%s: commands use a session each: %s", self, exc)
            return None
        except (asyncssh.Error, OSError):
            return None  # the exec path reports what is wrong
        self._runners.add(runner)
        return runner

    async def _run_on_runner(self, conn: asyncssh.SSHClientConnection, argv: list[str], command: str, timeout: float, stdin: bytes | None,
                             max_output: int, start: float) -> base.CommandResult | None:
        """Run on a runner; None when none can take it (the caller uses an exec channel)."""
        runner = await self._runner(conn, max_output)
        if runner is None:
            return None
        try:
            async with asyncio.timeout(timeout):
                status, out, err, truncated = await runner.run(command, stdin, max_output)
        except ValueError:  # stdin that cannot travel in a here-document: nothing was sent
            self._idle.append(runner)
            return None
        except TimeoutError:
            self.commands_executed += 1
            raise base.CommandTimeout(f"{argv[0]} did not finish within {timeout}s on {self.host}") from None
        except RunnerBroken as exc:
            if conn.is_closed():
                self._drop(conn)
                raise base.ConnectError(f"connection to {self.host} lost: {exc}") from None
            raise base.ConnectError(f"{argv[0]} on {self.host}: {exc}") from None
        self.commands_executed += 1
        if not runner.broken:
            self._idle.append(runner)
        return base.CommandResult(status, out, err, (time.monotonic() - start) * 1000, truncated)

    async def close(self) -> None:
        for runner in self._runners:
            runner.close()
        self._runners.clear()
        self._idle.clear()
        self._closed = True
        conn, self._conn = self._conn, None
        if conn is not None:
            conn.close()
            try:
                await asyncio.wait_for(conn.wait_closed(), timeout=5)
            except (TimeoutError, asyncssh.Error, OSError):
                conn.abort()


def backoff_delay(failures: int) -> float:
    """Seconds before the next connect after ``failures`` consecutive failures: exponential
    (1 s doubling to 300 s) with jitter in [50 %, 100 %], so devices that failed together
    (a network outage) do not all reconnect at the same moment."""
    delay = min(base.BACKOFF_FIRST_S * 2 ** (max(failures, 1) - 1), base.BACKOFF_MAX_S)
    jittered: float = delay * random.uniform(0.5, 1.0)
    return jittered


def ssh_password(settings: Settings) -> str | None:
    """The SSH password from the environment variable or the file named in settings, if any."""
    env_name = getattr(settings, "ssh_password_env", None)
    if env_name and os.environ.get(env_name):
        return os.environ[env_name]
    path = getattr(settings, "ssh_password_file", None)
    if path:
        try:
            lines = Path(path).read_text().splitlines()
        except OSError as exc:
            raise base.ConnectError(f"cannot read the SSH password file {path}: {exc.strerror or exc}") from None
        return lines[0] if lines else ""
    return None


def _stop_remote(process: asyncssh.SSHClientProcess[bytes]) -> None:
    try:
        process.send_signal("KILL")  # honoured by OpenSSH 8.1+; closing the channel covers the rest
    except (asyncssh.Error, OSError, ValueError):
        pass
    process.close()
