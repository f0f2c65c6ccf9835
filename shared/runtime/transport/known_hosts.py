"""known_hosts, parsed once per process and matched per host in constant time.

asyncssh given a file name reads and decodes the whole file on every connect: O(N) per connect,
O(N²) to connect a fleet. :class:`KnownHosts` keeps the parsed file and parses it again only when
its inode, size or mtime changed; each connect gets the parsed object, whose lookup of a plain
host entry is a dict access (hashed ``|1|`` entries and patterns are still scanned).

Trust-on-first-use appends ``<host> <key> infrawatch-tofu``: the comment marks a key that nobody
verified. A host whose only known keys carry it is never offered the SSH password; removing the
comment (after checking the fingerprint) marks the key verified.
"""

from __future__ import annotations

import asyncio
import logging
import os
from pathlib import Path

import asyncssh

from shared.runtime.devices import DeviceError, validate_address
from shared.runtime.transport.base import DEFAULT_SSH_PORT, HostKeyError

log = logging.getLogger(__name__)

TOFU_COMMENT = "infrawatch-tofu"


def known_hosts_pattern(host: str, port: int) -> str:
    """The host field of a known_hosts line, as OpenSSH writes it; refuses anything that is not a
    hostname or an IP address (``*``, ``,``, ``!`` or spaces would make another entry or a pattern)."""
    try:
        host = validate_address(host)
    except DeviceError as exc:
        raise HostKeyError(f"not written into known_hosts: {exc}") from None
    if not 0 < port < 65536:
        raise HostKeyError(f"not written into known_hosts: invalid port {port}")
    return host if port == DEFAULT_SSH_PORT else f"[{host}]:{port}"


class KnownHosts:
    """One known_hosts file, parsed when it changes on disk (or is appended to by this class)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.loads = 0  # times the whole file was parsed
        self.lock = asyncio.Lock()  # serialises appends from this process
        self._signature: tuple[int, int, int] | None = None
        self._known = asyncssh.SSHKnownHosts()

    def _stat(self) -> tuple[int, int, int] | None:
        try:
            st = os.stat(self.path)
        except FileNotFoundError:
            return None
        return (st.st_ino, st.st_size, st.st_mtime_ns)

    def ensure_file(self) -> None:
        if not self.path.exists():
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self.path.touch(mode=0o644)

    def current(self) -> asyncssh.SSHKnownHosts:
        """The parsed file, parsed again only when it changed since the last parse."""
        sig = self._stat()
        if sig != self._signature:
            try:
                text = self.path.read_text() if sig is not None else ""
                known = asyncssh.import_known_hosts(text)
            except (OSError, ValueError, UnicodeDecodeError) as exc:
                raise HostKeyError(f"cannot read {self.path}: {exc}") from None
            self._known, self._signature = known, sig
            self.loads += 1
        return self._known

    def host_keys(self, host: str, port: int) -> list[asyncssh.SSHKey]:
        """Host keys and CA keys known for ``host:port`` (OpenSSH falls back to the bare host)."""
        matched = self.current().match(host, "", port if port != DEFAULT_SSH_PORT else None)
        return [*matched[0], *matched[1]]

    def is_known(self, host: str, port: int) -> bool:
        matched = self.current().match(host, "", port if port != DEFAULT_SSH_PORT else None)
        return any(matched[i] for i in (0, 1, 2))  # host keys, CA keys, revoked keys

    def verified(self, host: str, port: int) -> bool:
        """Whether some key known for the host was put there by someone, not by trust-on-first-use."""
        return any(key.get_comment() != TOFU_COMMENT for key in self.host_keys(host, port))

    def record(self, host: str, port: int, key: asyncssh.SSHKey) -> str:
        """Append ``key`` for ``host:port`` marked as trusted on first use; returns the line.
        The parsed copy is extended in place, so a fleet's first contacts do not re-parse the file."""
        pattern = known_hosts_pattern(host, port)
        self.current()  # catch up with changes made by others before appending
        line = f"{pattern} {key.export_public_key('openssh').decode().strip()} {TOFU_COMMENT}"
        self.ensure_file()
        with self.path.open("a") as f:
            f.write(line + "\n")
        self._known.load(line)
        before, after = self._signature, self._stat()
        # Another writer in between: parse the whole file at the next lookup.
        grown = before is not None and after is not None and after[1] == before[1] + len(line.encode()) + 1
        self._signature = after if grown else None
        return line


_files: dict[Path, KnownHosts] = {}


def known_hosts_file(path: Path) -> KnownHosts:
    """The process's one :class:`KnownHosts` for ``path``."""
    key = Path(os.path.abspath(path))
    found = _files.get(key)
    if found is None:
        found = _files[key] = KnownHosts(key)
    return found
