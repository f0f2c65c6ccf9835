"""N simulated SSH hosts on loopback, one asyncssh listener (port) per host.

    async with Simulator(5, tmp_path, misbehave={"host-3": "hang"}) as sim:
        await sim.register(js, names)          # devices host-0 … host-4
        sim.hosts[0].port, sim.client_key, sim.known_hosts

A command the collector sends is recognised (``answers.py``) and answered from captured
outputs; any other command (the watcher's inotifywait, python3, find, stat, sha256sum, cat…)
runs for real with ``/bin/sh -c`` in the host's own directory (``host.root``), whose files
change every ``change_interval_s``.

Security boundary: a test tool. It listens on 127.0.0.1 only and accepts only the client key
it generated (written, mode 0600, to the state directory), but whoever holds that key runs
shell commands as the simulator's user: the per-host directory is a working directory, not a
sandbox. Do not run it as root or on a shared machine's public interface.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import random
import shutil
from collections.abc import Mapping
from pathlib import Path
from typing import Self

import asyncssh

from services.simulator.answers import Answers, HostState, Reply
from services.simulator.hosts import Misbehaviour, SimHost, change_files, write_tree
from shared.runtime.embedded import free_port
from shared.runtime.transport.runner import REQUEST_RE, RUNNER_COMMAND

log = logging.getLogger(__name__)

CHUNK = 64 * 1024


def _write_key(path: Path) -> asyncssh.SSHKey:
    key = asyncssh.generate_private_key("ssh-ed25519")
    key.write_private_key(str(path))
    key.write_public_key(str(path) + ".pub")
    path.chmod(0o600)
    return key


def _load_or_make_key(path: Path) -> asyncssh.SSHKey:
    if path.exists():
        return asyncssh.read_private_key(str(path))
    return _write_key(path)


class Simulator:
    """Serves ``n`` hosts named ``<prefix>-0`` … in the running event loop.

    ``state_dir`` receives the host key, the client key (``client_key``), ``known_hosts``,
    ``hosts.json`` and each host's tree under ``hosts/<name>/``. ``misbehave`` maps host names
    to a :class:`Misbehaviour` or its text (``"slow:2"``). ``base_port``: host i listens on
    ``base_port + i``; default: free ports. ``change_interval_s``: every so often one file of
    each host changes (None: never)."""

    def __init__(self, n: int, state_dir: Path, misbehave: Mapping[str, Misbehaviour | str] | None = None, *,
                 prefix: str = "host", username: str = "sim", base_port: int | None = None,
                 change_interval_s: float | None = None, seed: int = 0) -> None:
        self.state_dir = Path(state_dir)
        self.n, self.prefix, self.username, self.base_port = n, prefix, username, base_port
        self.change_interval_s, self.seed = change_interval_s, seed
        self.misbehave = {k: v if isinstance(v, Misbehaviour) else Misbehaviour.parse(v)
                          for k, v in (misbehave or {}).items()}
        names = {f"{prefix}-{i}" for i in range(n)}
        unknown = sorted(set(self.misbehave) - names)
        if unknown:
            raise ValueError(f"misbehaviour for unknown hosts: {', '.join(unknown)}")
        self.client_key = self.state_dir / "id_ed25519"
        self.host_key = self.state_dir / "ssh_host_ed25519_key"
        self.known_hosts = self.state_dir / "known_hosts"
        self.hosts: list[SimHost] = []
        self._servers: list[asyncssh.SSHAcceptor] = []
        self._tasks: set[asyncio.Task] = set()
        self._answers: Answers | None = None

    # ------------------------------------------------------------ lifecycle

    async def start(self) -> Self:
        self.state_dir.mkdir(parents=True, exist_ok=True)
        self.state_dir.chmod(0o700)
        host_key = _load_or_make_key(self.host_key)
        client = _load_or_make_key(self.client_key)
        authorized = asyncssh.import_authorized_keys(client.export_public_key().decode())
        self._answers = Answers()
        host_pub = host_key.export_public_key().decode().strip()
        lines = []
        for i in range(self.n):
            name = f"{self.prefix}-{i}"
            port = self.base_port + i if self.base_port else free_port()
            host = SimHost(name=name, port=port, username=self.username, client_key=self.client_key,
                           known_hosts=self.known_hosts, root=self.state_dir / "hosts" / name,
                           misbehave=self.misbehave.get(name))
            write_tree(host)
            self.hosts.append(host)
            lines.append(f"[127.0.0.1]:{port} {host_pub}")
            if host.misbehave and host.misbehave.kind == "unreachable":
                continue  # nothing listens: connection refused
            self._servers.append(await asyncssh.create_server(
                lambda h=host: _Server(h), "127.0.0.1", port, server_host_keys=[host_key],
                authorized_client_keys=authorized, process_factory=self._handler(host, HostState(self.seed + i)),
                encoding=None, keepalive_interval=0,
            ))
        self.known_hosts.write_text("\n".join(lines) + "\n")
        (self.state_dir / "hosts.json").write_text(json.dumps([h.info() for h in self.hosts], indent=2) + "\n")
        if self.change_interval_s:
            self._spawn(change_files(self.hosts, self.change_interval_s, self.seed))
        return self

    async def close(self) -> None:
        for server in self._servers:
            server.close()
        for server in self._servers:
            await server.wait_closed()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._servers.clear()

    async def __aenter__(self) -> Self:
        return await self.start()

    async def __aexit__(self, *exc) -> None:
        await self.close()

    def _spawn(self, coro) -> None:
        task = asyncio.create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    # ------------------------------------------------------------ devices

    def host(self, name: str) -> SimHost:
        return next(h for h in self.hosts if h.name == name)

    async def register(self, js, names, hosts: list[str] | None = None, *, service: str = "simulator",
                       instance: str = "simulator") -> list:
        """Register the hosts (all, or those named) as devices; an existing one is updated."""
        from shared.runtime.devices import DeviceExists, register, update

        specs = []
        for host in self.hosts:
            if hosts is not None and host.name not in hosts:
                continue
            spec = host.spec()
            try:
                await register(js, names, spec, service, instance)
            except DeviceExists:
                await update(js, names, spec, service, instance)
            specs.append(spec)
        return specs

    def settings_env(self) -> dict[str, str]:
        """The settings a collector or watcher needs to log in to the hosts (paths, no secrets)."""
        return {"INFRAWATCH_SSH_CLIENT_KEYS": json.dumps([str(self.client_key)]),
                "INFRAWATCH_SSH_KNOWN_HOSTS": str(self.known_hosts)}

    # ------------------------------------------------------------ commands

    def _handler(self, host: SimHost, state: HostState):
        answers = self._answers
        assert answers is not None  # set by start()

        async def handle(process: asyncssh.SSHServerProcess) -> None:
            command = process.command or ""
            bad = host.misbehave
            try:
                if command == RUNNER_COMMAND:  # counts the commands sent on it, not itself
                    await _runner(process, host, state, answers)
                    return
                host.commands += 1
                if not await _stall(process, bad):
                    return
                if bad is not None and bad.kind == "garbage":
                    process.stdout.write(_garbage(bad.value))
                    process.exit(0)
                    return
                if bad is not None and bad.kind == "huge":
                    await _huge(process, int(bad.value * 2**20))
                    return
                answer = answers.find(command)
                if answer is None:
                    await _shell(process, command, host)
                    return
                reply = answer(state)
                await _write(process.stdout, reply.stdout)
                if reply.stderr:
                    process.stderr.write(reply.stderr)
                process.exit(reply.exit_status)
            except (asyncssh.Error, BrokenPipeError, ConnectionError):
                pass  # the client closed the channel first (killed a command, cut its output)

        return handle


class _Server(asyncssh.SSHServer):
    def __init__(self, host: SimHost) -> None:
        self.host = host

    def connection_made(self, conn: asyncssh.SSHServerConnection) -> None:
        self.host.connections += 1

    def begin_auth(self, username: str) -> bool:
        return True  # any user name, with the generated client key

    def password_auth_supported(self) -> bool:
        return True  # offered, so that a client that would send a password does: counted, refused

    def validate_password(self, username: str, password: str) -> bool:
        self.host.passwords_offered += 1
        return False


async def _stall(process: asyncssh.SSHServerProcess, bad: Misbehaviour | None) -> bool:
    """A slow host's delay; False for a hanging one, once the client has given up (no answer)."""
    if bad is not None and bad.kind == "slow":
        await asyncio.sleep(bad.value)
    if bad is not None and bad.kind == "hang":
        await process.wait_closed()
        return False
    return True


def _garbage(n: float) -> bytes:
    return bytes(random.Random().getrandbits(8) for _ in range(int(n)))


async def _runner(process: asyncssh.SSHServerProcess, host: SimHost, state: HostState, answers: Answers) -> None:
    """A client's long-lived shell (shared.runtime.transport.runner): each request is answered like an
    exec channel's command, then marked on both streams."""
    buf = b""
    while True:
        chunk = await process.stdin.read(CHUNK)
        if not chunk:
            process.exit(0)
            return
        buf += chunk
        while (m := REQUEST_RE.match(buf)) is not None:
            buf = buf[m.end():]
            command = m["command"].decode("utf-8", "replace")
            handshake = command == "echo ready"  # the client's check of the runner, not a command
            host.commands += 0 if handshake else 1
            bad = None if handshake else host.misbehave
            if not await _stall(process, bad):
                return
            if bad is not None and bad.kind == "huge":
                await _huge(process, int(bad.value * 2**20), exit=False)
            answer = answers.find(command)
            if bad is not None and bad.kind == "garbage":
                reply = Reply(_garbage(bad.value))
            elif answer is not None:
                reply = answer(state)
            elif command == "echo ready":
                reply = Reply(b"ready\n")
            else:
                reply = await _run_sh(command, host, m["data"])
            await _write(process.stdout, reply.stdout)
            process.stderr.write(reply.stderr)
            token = m["token"]
            process.stdout.write(b"\n" + token + b" " + str(reply.exit_status).encode() + b"\n")
            process.stderr.write(b"\n" + token + b"\n")


async def _run_sh(command: str, host: SimHost, stdin: bytes | None) -> Reply:
    proc = await asyncio.create_subprocess_exec(
        "/bin/sh", "-c", command, cwd=host.root, env=_env(host), start_new_session=True,
        stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )
    out, err = await proc.communicate(stdin or b"")
    status = proc.returncode
    assert status is not None  # communicate() waits for the exit
    return Reply(out, err, status if status >= 0 else 128 - status)


async def _write(stream, data: bytes) -> None:
    for i in range(0, len(data), CHUNK):
        stream.write(data[i:i + CHUNK])
        await stream.drain()


async def _huge(process: asyncssh.SSHServerProcess, size: int, exit: bool = True) -> None:
    line = b"huge output from a simulated host " + b"x" * 93 + b"\n"  # 128 bytes
    block = line * (CHUNK // len(line))
    sent = 0
    while sent < size and not process.is_closing():
        part = block[: size - sent]
        process.stdout.write(part)
        await process.stdout.drain()
        sent += len(part)
    if exit:
        process.exit(0)


def _env(host: SimHost) -> dict[str, str]:
    return {"PATH": os.environ.get("PATH", "/usr/local/bin:/usr/bin:/bin"), "HOME": str(host.root),
            "USER": host.username, "LOGNAME": host.username, "SHELL": "/bin/sh", "LANG": "C.UTF-8",
            "SIMULATED_HOST": host.name, "SIMULATED_ROOT": str(host.root)}


async def _shell(process: asyncssh.SSHServerProcess, command: str, host: SimHost) -> None:
    """Run ``command`` with /bin/sh in the host's directory, as a POSIX login shell would."""
    proc = await asyncio.create_subprocess_exec(
        "/bin/sh", "-c", command or "true", cwd=host.root, env=_env(host), start_new_session=True,
        stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )
    try:
        await process.redirect(stdin=proc.stdin, stdout=proc.stdout, stderr=proc.stderr, send_eof=True)
        process.exit(await proc.wait())
    finally:
        if proc.returncode is None:  # the channel went away: stop what the command started
            try:
                os.killpg(proc.pid, 9)
            except ProcessLookupError:
                pass
            await proc.wait()


def remove_state(state_dir: Path) -> None:
    """Delete a simulator's state directory (keys, trees)."""
    shutil.rmtree(state_dir, ignore_errors=True)
