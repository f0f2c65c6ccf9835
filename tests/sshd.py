"""A real SSH server for tests: OpenSSH's sshd when installed, otherwise asyncssh's server.

Both use a temporary host key, a temporary client key in authorized_keys, and give the
client a known_hosts file holding the host key, so host-key checking stays on.
"""

from __future__ import annotations

import asyncio
import logging
import os
import pwd
import shutil
import subprocess
import threading
from dataclasses import dataclass
from pathlib import Path

import asyncssh

from shared.runtime.embedded import free_port, stop_process, wait_for_port

log = logging.getLogger(__name__)

SSHD_PATHS = ("/usr/sbin/sshd", "/usr/local/sbin/sshd")


@dataclass
class SshServer:
    kind: str  # "openssh" or "asyncssh"
    host: str
    port: int
    username: str
    client_key: Path
    known_hosts: Path
    host_key_pub: str
    stop: object


def _write_known_hosts(path: Path, port: int, host_pub: str) -> None:
    keytype, key = host_pub.split()[:2]
    path.write_text(f"[127.0.0.1]:{port} {keytype} {key}\n")


def _keys(workdir: Path) -> tuple[Path, Path]:
    host_key = workdir / "ssh_host_ed25519_key"
    client_key = workdir / "id_ed25519"
    for key in (host_key, client_key):
        k = asyncssh.generate_private_key("ssh-ed25519")
        k.write_private_key(str(key))
        k.write_public_key(str(key) + ".pub")
        key.chmod(0o600)
    return host_key, client_key


def find_sshd() -> str | None:
    for p in SSHD_PATHS:
        if os.path.exists(p):
            return p
    return shutil.which("sshd")


def start_openssh(workdir: Path, sshd: str) -> SshServer:
    host_key, client_key = _keys(workdir)
    port = free_port()
    user = pwd.getpwuid(os.geteuid()).pw_name
    auth = workdir / "authorized_keys"
    auth.write_text((Path(str(client_key) + ".pub")).read_text())
    auth.chmod(0o600)
    Path("/run/sshd").mkdir(exist_ok=True)  # privilege separation directory
    cfg = workdir / "sshd_config"
    cfg.write_text(
        f"Port {port}\nListenAddress 127.0.0.1\nHostKey {host_key}\nPidFile {workdir}/sshd.pid\n"
        f"AuthorizedKeysFile {auth}\nPermitRootLogin prohibit-password\nPasswordAuthentication no\n"
        "KbdInteractiveAuthentication no\nUsePAM no\nStrictModes no\nMaxStartups 200\nMaxSessions 100\n"
        "LogLevel ERROR\nSubsystem sftp internal-sftp\n"
    )
    log_file = workdir / "sshd.log"
    with open(log_file, "ab") as out:
        proc = subprocess.Popen([sshd, "-D", "-e", "-f", str(cfg)], stdout=out, stderr=subprocess.STDOUT,
                                start_new_session=True)
    wait_for_port(port, proc, "sshd", log_file)
    known = workdir / "known_hosts"
    host_pub = Path(str(host_key) + ".pub").read_text()
    _write_known_hosts(known, port, host_pub)
    return SshServer("openssh", "127.0.0.1", port, user, client_key, known, host_pub, lambda: stop_process(proc))


class _ShellServer(asyncssh.SSHServer):
    def begin_auth(self, username: str) -> bool:
        return True


async def _run_command(process: asyncssh.SSHServerProcess) -> None:
    """Run the client's command with /bin/sh, as OpenSSH would with a POSIX login shell."""
    proc = await asyncio.create_subprocess_exec(
        "/bin/sh", "-c", process.command or "true",
        stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )
    await process.redirect(stdin=proc.stdin, stdout=proc.stdout, stderr=proc.stderr, send_eof=True)
    process.exit(await proc.wait())


def start_asyncssh(workdir: Path) -> SshServer:
    host_key, client_key = _keys(workdir)
    port = free_port()
    user = pwd.getpwuid(os.geteuid()).pw_name
    auth = workdir / "authorized_keys"
    auth.write_text((Path(str(client_key) + ".pub")).read_text())
    loop = asyncio.new_event_loop()
    started = threading.Event()
    holder: dict = {}

    async def main() -> None:
        holder["server"] = await asyncssh.create_server(
            _ShellServer, "127.0.0.1", port, server_host_keys=[str(host_key)],
            authorized_client_keys=str(auth), process_factory=_run_command, encoding=None,
        )
        started.set()

    def run() -> None:
        asyncio.set_event_loop(loop)
        loop.run_until_complete(main())
        loop.run_forever()

    threading.Thread(target=run, daemon=True, name="asyncssh-server").start()
    started.wait(10)

    def stop() -> None:
        async def close() -> None:
            holder["server"].close()
            await holder["server"].wait_closed()
        asyncio.run_coroutine_threadsafe(close(), loop).result(10)
        loop.call_soon_threadsafe(loop.stop)

    known = workdir / "known_hosts"
    host_pub = Path(str(host_key) + ".pub").read_text()
    _write_known_hosts(known, port, host_pub)
    return SshServer("asyncssh", "127.0.0.1", port, user, client_key, known, host_pub, stop)


def start_ssh_server(workdir: Path, prefer: str = "openssh") -> SshServer:
    """Start OpenSSH when installed (and preferred), else asyncssh; logs which one runs."""
    sshd = find_sshd() if prefer == "openssh" else None
    if sshd and os.geteuid() == 0:
        server = start_openssh(workdir, sshd)
    else:
        if prefer == "openssh":
            log.warning("OpenSSH sshd not usable (%s); using asyncssh's server instead. "
                        "Install openssh-server to test against OpenSSH.",
                        "not installed" if not sshd else "needs root")
        server = start_asyncssh(workdir)
    log.warning("test SSH server: %s on 127.0.0.1:%d", server.kind, server.port)
    return server
