"""Running commands on devices: over one long-lived SSH connection, or locally.

Commands are argv lists. Over SSH the command string is ``shlex.join(argv)``, so every
argument reaches the remote program literally whatever it contains. Host keys are always
checked against ``settings.known_hosts_path`` (parsed once per process, again when it changes);
a device may opt in to trust-on-first-use, which records an unknown host's key once, never
accepts a changed one and never offers the SSH password to a key only trusted on first use.

Output beyond ``max_output`` bytes (per stream) is not read: the command is stopped, the
result is marked ``truncated`` and its exit status is unknown (``None``).

Over SSH, short commands run one after another on a long-lived ``sh -s`` session of the device's
connection (``runner``), so a poll or a refresh opens no session per command.

Modules: ``base`` (results, errors), ``known_hosts``, ``ssh``, ``runner``, ``local``, ``protected``
(the service's secrets on its own host), ``pool`` (one transport per device per process), ``stream``.
"""

from shared.runtime.transport.base import (
    DEFAULT_MAX_OUTPUT,
    DEFAULT_SSH_PORT,
    MAX_SESSIONS,
    CommandResult,
    CommandTimeout,
    ConnectError,
    HostKeyChanged,
    HostKeyError,
    MiB,
    ProtectedPathError,
    Transport,
    TransportError,
)
from shared.runtime.transport.known_hosts import TOFU_COMMENT, KnownHosts, known_hosts_file, known_hosts_pattern
from shared.runtime.transport.local import LocalTransport
from shared.runtime.transport.pool import TransportPool, make_transport, transport_pool
from shared.runtime.transport.protected import check_argv, filter_paths, is_protected, protected_paths
from shared.runtime.transport.ssh import SshTransport, backoff_delay, ssh_password
from shared.runtime.transport.stream import StreamingCommand, open_stream

__all__ = [
    "DEFAULT_MAX_OUTPUT", "DEFAULT_SSH_PORT", "MAX_SESSIONS", "MiB", "CommandResult", "CommandTimeout", "ConnectError",
    "HostKeyChanged", "HostKeyError", "ProtectedPathError", "Transport", "TransportError", "TOFU_COMMENT",
    "KnownHosts", "known_hosts_file", "known_hosts_pattern", "LocalTransport", "TransportPool", "make_transport",
    "transport_pool", "check_argv", "filter_paths", "is_protected", "protected_paths", "SshTransport",
    "backoff_delay", "ssh_password", "StreamingCommand", "open_stream",
]
