"""Running commands on devices: over one long-lived SSH connection, or locally.

Commands are argv lists. Over SSH the command string is ``shlex.join(argv)``, so every
argument reaches the remote program literally whatever it contains. Host keys are always
checked against ``settings.known_hosts_path``; a device may opt in to trust-on-first-use,
which records an unknown host's key once and never accepts a changed one.

Output beyond ``max_output`` bytes (per stream) is not read: the command is stopped, the
result is marked ``truncated`` and its exit status is unknown (``None``).
"""

from __future__ import annotations

import asyncio
import logging
import os
import random
import shlex
import signal
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, Protocol

import asyncssh

from shared.events import DeviceSpec
from shared.settings import Settings

log = logging.getLogger(__name__)

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


class Transport(Protocol):
    method: Literal["ssh", "local"]
    connections_created: int
    connections_reused: int
    commands_executed: int

    async def run(
        self, argv: list[str], timeout: float, stdin: bytes | None = None, max_output: int = DEFAULT_MAX_OUTPUT
    ) -> CommandResult: ...

    async def close(self) -> None: ...


async def _read_capped(reader, limit: int, on_overflow) -> tuple[bytes, bool]:
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


# ---------------------------------------------------------------- known_hosts

_known_hosts_locks: dict[Path, asyncio.Lock] = {}


def known_hosts_pattern(host: str, port: int) -> str:
    """The host field of a known_hosts line, as OpenSSH writes it."""
    return host if port == DEFAULT_SSH_PORT else f"[{host}]:{port}"


def _host_is_known(path: Path, host: str, port: int) -> bool:
    known = asyncssh.read_known_hosts(str(path))
    matched = known.match(host, "", port if port != DEFAULT_SSH_PORT else None)
    return any(matched[i] for i in (0, 1, 2))  # host keys, CA keys, revoked keys


# ---------------------------------------------------------------- SSH


class SshTransport:
    """One lazily opened SSH connection to one device, shared by every command.

    A failed connect is retried no sooner than a jittered exponential backoff allows (about
    1 s doubling to 300 s); calls before then fail at once with the last ConnectError. With no
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
        self.connections_created = 0
        self.connections_reused = 0
        self.commands_executed = 0
        self.connect_attempts = 0
        self.host_key_refusals = 0  # connects refused because the host key changed
        self.presented_fingerprint: str | None = None  # of the refused key, for the security event
        self._conn: asyncssh.SSHClientConnection | None = None
        self._lock = asyncio.Lock()
        self._sessions = asyncio.Semaphore(max(1, getattr(settings, "ssh_max_channels", MAX_SESSIONS)))
        self._failures = 0
        self._next_attempt = 0.0
        self._last_error: ConnectError | None = None
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
                return self._conn  # type: ignore[return-value]
            if self._closed:
                raise ConnectError(f"transport to {self.host}:{self.port} is closed")
            wait = self._next_attempt - time.monotonic()
            if wait > 0:
                raise ConnectError(f"{self._last_error} (next attempt in {wait:.1f}s)")
            self.connect_attempts += 1
            try:
                self._conn = await self._connect()
            except ConnectError as exc:
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
        options: dict = dict(
            username=self.username,
            known_hosts=str(self.known_hosts),  # never None: that would disable checking
            keepalive_interval=self.settings.ssh_keepalive_s,
            keepalive_count_max=getattr(self.settings, "ssh_keepalive_count_max", 3),
            connect_timeout=self.settings.ssh_connect_timeout_s,
            config=None,
        )
        if self.settings.ssh_client_keys:
            options["client_keys"] = [str(p) for p in self.settings.ssh_client_keys]
        password = ssh_password(self.settings)
        if password is not None:
            options["password"] = password
        try:
            async with asyncio.timeout(self.settings.ssh_connect_timeout_s + 1):
                return await asyncssh.connect(self.host, self.port, **options)
        except asyncssh.HostKeyNotVerifiable:
            if _host_is_known(self.known_hosts, self.host, self.port):
                self.host_key_refusals += 1
                self.presented_fingerprint = await self._presented_fingerprint()
                raise HostKeyChanged(
                    f"host key of {where} does not match {self.known_hosts}: refused "
                    "(the key changed, or the entry is wrong)", self.presented_fingerprint
                ) from None
            raise HostKeyError(
                f"host key of {where} is unknown: add it to {self.known_hosts} or enable trust_on_first_use"
            ) from None
        except asyncssh.PermissionDenied:
            raise ConnectError(f"authentication as {self.username!r} refused by {where}") from None
        except asyncssh.Error as exc:
            raise ConnectError(f"ssh to {where} failed: {exc.reason}") from None
        except TimeoutError:
            raise ConnectError(f"ssh to {where} timed out after {self.settings.ssh_connect_timeout_s}s") from None
        except OSError as exc:
            raise ConnectError(f"cannot connect to {where}: {exc.strerror or exc}") from None

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
        path = self.known_hosts
        lock = _known_hosts_locks.setdefault(path.resolve(), asyncio.Lock())
        async with lock:
            if not path.exists():
                path.parent.mkdir(parents=True, exist_ok=True)
                path.touch(mode=0o644)
            if not self.spec.trust_on_first_use:
                return
            try:
                known = _host_is_known(path, self.host, self.port)
            except (ValueError, OSError) as exc:
                raise HostKeyError(f"cannot read {path}: {exc}") from None
            if known:
                return  # a changed key is refused by the handshake, never re-recorded
            try:
                async with asyncio.timeout(self.settings.ssh_connect_timeout_s + 1):
                    key = await asyncssh.get_server_host_key(self.host, self.port, config=None)
            except (asyncssh.Error, OSError, TimeoutError) as exc:
                raise ConnectError(f"cannot fetch host key of {self.host}:{self.port}: {exc}") from None
            if key is None:
                raise HostKeyError(f"{self.host}:{self.port} presented no host key")
            line = f"{known_hosts_pattern(self.host, self.port)} {key.export_public_key('openssh').decode().strip()}"
            with path.open("a") as f:
                f.write(line + "\n")
            log.warning(
                "trusting %s:%d on first use: %s key %s recorded in %s",
                self.host, self.port, key.get_algorithm(), key.get_fingerprint("sha256"), path,
            )

    def _drop(self, conn: asyncssh.SSHClientConnection) -> None:
        if self._conn is conn:
            self._conn = None
        conn.abort()

    async def run(
        self, argv: list[str], timeout: float, stdin: bytes | None = None, max_output: int = DEFAULT_MAX_OUTPUT
    ) -> CommandResult:
        """Run ``argv`` on the device; raises ConnectError, HostKeyError or CommandTimeout."""
        _argv_check(argv)
        command = shlex.join(argv)
        conn = await self._connection()
        start = time.monotonic()
        async with self._sessions:
            process: asyncssh.SSHClientProcess | None = None
            try:
                async with asyncio.timeout(timeout):
                    process = await conn.create_process(command, encoding=None)
                    self.commands_executed += 1
                    if stdin:
                        process.stdin.write(stdin)
                    process.stdin.write_eof()
                    (out, t_out), (err, t_err) = await asyncio.gather(
                        _read_capped(process.stdout, max_output, process.close),
                        _read_capped(process.stderr, max_output, process.close),
                    )
                    truncated = t_out or t_err
                    await process.wait_closed()
            except TimeoutError:
                if process is not None:
                    _stop_remote(process)
                raise CommandTimeout(f"{argv[0]} did not finish within {timeout}s on {self.host}") from None
            except asyncssh.ChannelOpenError as exc:
                raise ConnectError(f"cannot open a session on {self.host}: {exc.reason}") from None
            except (asyncssh.Error, OSError) as exc:
                self._drop(conn)
                raise ConnectError(f"connection to {self.host} lost: {exc}") from None
            except BaseException:  # cancelled: do not leave the session open
                if process is not None:
                    _stop_remote(process)
                raise
        status = None if truncated else process.exit_status
        if status is not None and status < 0:  # -1: ended by a signal
            status = None
        return CommandResult(status, out, err, (time.monotonic() - start) * 1000, truncated)

    async def close(self) -> None:
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
    delay = min(BACKOFF_FIRST_S * 2 ** (max(failures, 1) - 1), BACKOFF_MAX_S)
    return delay * random.uniform(0.5, 1.0)


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
            raise ConnectError(f"cannot read the SSH password file {path}: {exc.strerror or exc}") from None
        return lines[0] if lines else ""
    return None


def _stop_remote(process: asyncssh.SSHClientProcess) -> None:
    try:
        process.send_signal("KILL")  # honoured by OpenSSH 8.1+; closing the channel covers the rest
    except (asyncssh.Error, OSError, ValueError):
        pass
    process.close()


# ---------------------------------------------------------------- local


class LocalTransport:
    """Runs argv on this machine with exec (no shell), for devices with transport "local"."""

    method: Literal["ssh", "local"] = "local"

    def __init__(self, spec: DeviceSpec | None = None, settings: Settings | None = None) -> None:
        self.spec = spec
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


def make_transport(spec: DeviceSpec, settings: Settings) -> SshTransport | LocalTransport:
    return LocalTransport(spec, settings) if spec.transport == "local" else SshTransport(spec, settings)


# ---------------------------------------------------------------- one connection per device, per process


def _reach(spec: DeviceSpec) -> tuple:
    return (spec.id, spec.transport, spec.address, spec.port, spec.username, spec.trust_on_first_use)


class TransportPool:
    """The process's transports, one per device, shared by every service in the process (the
    collector and, when it runs in the same process, the watcher). ``acquire`` returns the
    device's transport (a new one when the device's address changed); ``release`` closes it
    when its last user lets go. Counters of closed transports are kept in the totals."""

    def __init__(self) -> None:
        self._entries: dict = {}  # device id -> [reach, transport, users]
        self._orphans: list = []  # replaced entries still in use
        self._retired = {"connections_created": 0, "connections_reused": 0, "commands_executed": 0}

    def acquire(self, spec: DeviceSpec, settings: Settings) -> SshTransport | LocalTransport:
        entry = self._entries.get(spec.id)
        if entry is not None and entry[0] == _reach(spec) and not getattr(entry[1], "closed", False):
            entry[2] += 1
            return entry[1]
        transport = make_transport(spec, settings)
        if entry is not None:  # the old one stays with its current users until they release it
            self._orphans.append(self._entries.pop(spec.id))
        self._entries[spec.id] = [_reach(spec), transport, 1]
        return transport

    async def release(self, transport: SshTransport | LocalTransport) -> None:
        for key, entry in [*self._entries.items(), *enumerate(self._orphans)]:
            if entry[1] is transport:
                entry[2] -= 1
                if entry[2] > 0:
                    return
                if isinstance(key, int):
                    self._orphans.remove(entry)
                else:
                    del self._entries[key]
                break
        self._retire(transport)
        await transport.close()

    def _retire(self, transport) -> None:
        for name in self._retired:
            self._retired[name] += getattr(transport, name, 0)

    @property
    def transports(self) -> list:
        return [entry[1] for entry in [*self._entries.values(), *self._orphans]]

    def totals(self) -> dict[str, int]:
        """Connections created and reused and commands executed, over every transport so far."""
        out = dict(self._retired)
        for t in self.transports:
            for name in out:
                out[name] += getattr(t, name, 0)
        return out

    async def close(self) -> None:
        transports = self.transports
        for transport in transports:
            self._retire(transport)
        await asyncio.gather(*(t.close() for t in transports), return_exceptions=True)
        self._entries.clear()
        self._orphans.clear()


_pool: TransportPool | None = None


def transport_pool() -> TransportPool:
    """The process-wide pool (created on first use)."""
    global _pool
    if _pool is None:
        _pool = TransportPool()
    return _pool


# ---------------------------------------------------------------- long-running commands


class StreamingCommand:
    """A long-running command (e.g. ``inotifywait -m``) whose output is read as it comes.

    ``stdout`` and ``stderr`` have ``read(n)`` returning bytes (``b""`` at the end). Stdin stays
    open for the command's lifetime; ``terminate()`` stops the command and closes its channel.
    """

    def __init__(self, stdout, stderr, terminate, wait) -> None:
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

    return StreamingCommand(proc.stdout, proc.stderr, terminate, wait)
