"""SshTransport against a real sshd, LocalTransport against this machine."""

from __future__ import annotations

import asyncio
import uuid
from pathlib import Path

import asyncssh
import pytest
import pytest_asyncio

from shared.events import DeviceSpec
from shared.runtime.embedded import free_port
from shared.runtime.transport import (
    TOFU_COMMENT,
    CommandTimeout,
    ConnectError,
    HostKeyError,
    LocalTransport,
    SshTransport,
    make_transport,
)
from tests.collector.conftest import ssh_spec

pytestmark = pytest.mark.ssh

TRICKY_ARGS = [
    "a b", "it's", '"double"', "$(touch {marker})", "`touch {marker}`", "; touch {marker}",
    "| cat", "&& touch {marker}", "*", "~", "\\n", "", "  leading and trailing  ",
]


@pytest_asyncio.fixture
async def ssh(ssh_server, ssh_settings):
    t = SshTransport(ssh_spec(ssh_server), ssh_settings)
    yield t
    await t.close()


@pytest_asyncio.fixture(params=["ssh", "local"])
async def any_transport(request, ssh_server, ssh_settings):
    if request.param == "ssh":
        t = SshTransport(ssh_spec(ssh_server), ssh_settings)
    else:
        t = LocalTransport(DeviceSpec(id=uuid.uuid4(), name="here", transport="local"), ssh_settings)
    yield t
    await t.close()


async def test_run_returns_status_and_output(any_transport) -> None:
    r = await any_transport.run(["sh", "-c", "echo out; echo err >&2; exit 3"], timeout=10)
    assert (r.exit_status, r.stdout, r.stderr, r.truncated) == (3, b"out\n", b"err\n", False)
    assert r.duration_ms > 0
    assert any_transport.commands_executed == 1


async def test_arguments_are_passed_literally(any_transport, tmp_path: Path) -> None:
    marker = tmp_path / "injected"
    args = [a.format(marker=marker) for a in TRICKY_ARGS]
    r = await any_transport.run(["printf", "%s\\n", *args], timeout=10)
    assert r.exit_status == 0
    assert r.stdout.decode().split("\n")[:-1] == args
    assert not marker.exists()


async def test_stdin_is_passed(any_transport) -> None:
    r = await any_transport.run(["wc", "-c"], timeout=10, stdin=b"x" * 100_000)
    assert r.stdout.strip() == b"100000"


async def test_missing_command_exits_127(any_transport) -> None:
    r = await any_transport.run(["infrawatch-no-such-command"], timeout=10)
    assert r.exit_status == 127


async def test_output_is_capped(any_transport) -> None:
    r = await any_transport.run(["head", "-c", "100000", "/dev/zero"], timeout=10, max_output=1000)
    assert r.truncated and len(r.stdout) == 1000 and r.exit_status is None
    endless = await any_transport.run(["yes"], timeout=30, max_output=4096)
    assert endless.truncated and len(endless.stdout) == 4096


async def test_timeout_raises_and_transport_stays_usable(any_transport) -> None:
    with pytest.raises(CommandTimeout):
        await any_transport.run(["sleep", "30"], timeout=0.5)
    r = await any_transport.run(["echo", "still here"], timeout=10)
    assert r.stdout == b"still here\n"


async def test_one_connection_for_many_commands(ssh) -> None:
    for i in range(5):
        r = await ssh.run(["echo", str(i)], timeout=10)
        assert r.stdout == f"{i}\n".encode()
    results = await asyncio.gather(*(ssh.run(["echo", str(i)], timeout=10) for i in range(5)))
    assert [r.stdout for r in results] == [f"{i}\n".encode() for i in range(5)]
    assert ssh.connections_created == 1
    assert ssh.connections_reused == 9
    assert ssh.commands_executed == 10


async def test_unknown_host_refused_without_tofu(ssh_server, ssh_settings, known_hosts) -> None:
    known_hosts.write_text("")
    t = SshTransport(ssh_spec(ssh_server), ssh_settings)
    with pytest.raises(HostKeyError, match="unknown"):
        await t.run(["true"], timeout=10)
    assert known_hosts.read_text() == ""
    assert t.connections_created == 0


async def test_trust_on_first_use_records_the_key(ssh_server, ssh_settings, tmp_path) -> None:
    path = tmp_path / "fresh" / "known_hosts"
    settings = ssh_settings.model_copy(update={"ssh_known_hosts": path})
    t = SshTransport(ssh_spec(ssh_server, trust_on_first_use=True), settings)
    assert (await t.run(["true"], timeout=10)).exit_status == 0
    await t.close()
    keytype, key = ssh_server.host_key_pub.split()[:2]
    assert path.read_text() == f"[{ssh_server.host}]:{ssh_server.port} {keytype} {key} {TOFU_COMMENT}\n"
    # the recorded key is now trusted without TOFU, and not recorded twice
    strict = SshTransport(ssh_spec(ssh_server), settings)
    assert (await strict.run(["true"], timeout=10)).exit_status == 0
    await strict.close()
    again = SshTransport(ssh_spec(ssh_server, trust_on_first_use=True), settings)
    await again.run(["true"], timeout=10)
    await again.close()
    assert len(path.read_text().splitlines()) == 1


async def test_changed_host_key_refused_even_with_tofu(ssh_server, ssh_settings, known_hosts) -> None:
    other = asyncssh.generate_private_key("ssh-ed25519").export_public_key("openssh").decode().strip()
    known_hosts.write_text(f"[{ssh_server.host}]:{ssh_server.port} {other}\n")
    before = known_hosts.read_text()
    t = SshTransport(ssh_spec(ssh_server, trust_on_first_use=True), ssh_settings)
    with pytest.raises(HostKeyError, match="does not match"):
        await t.run(["true"], timeout=10)
    assert known_hosts.read_text() == before


async def test_refused_connection_backs_off(ssh_server, ssh_settings) -> None:
    t = SshTransport(ssh_spec(ssh_server, port=free_port()), ssh_settings)
    with pytest.raises(ConnectError, match="cannot connect"):
        await t.run(["true"], timeout=10)
    with pytest.raises(ConnectError, match="next attempt"):
        await t.run(["true"], timeout=10)
    assert t.connect_attempts == 1
    assert t.connections_created == 0


async def test_closed_transport_refuses(ssh) -> None:
    await ssh.run(["true"], timeout=10)
    await ssh.close()
    with pytest.raises(ConnectError):
        await ssh.run(["true"], timeout=10)


def test_make_transport_picks_by_spec(ssh_settings) -> None:
    local = DeviceSpec(id=uuid.uuid4(), name="here", transport="local")
    remote = DeviceSpec(id=uuid.uuid4(), name="there")
    assert isinstance(make_transport(local, ssh_settings), LocalTransport)
    remote_t = make_transport(remote, ssh_settings)
    assert isinstance(remote_t, SshTransport) and remote_t.username == ssh_settings.ssh_username


async def test_local_timeout_stops_children_too() -> None:
    t = LocalTransport()
    with pytest.raises(CommandTimeout):
        await t.run(["sh", "-c", "sleep 30 & sleep 30; wait"], timeout=0.5)


async def test_short_commands_share_one_long_lived_shell(ssh) -> None:
    """Sequential commands reuse one runner channel: no session (fork, login shell) per command."""
    for i in range(5):
        r = await ssh.run(["sh", "-c", f"echo out{i}; echo err{i} >&2; exit {i}"], timeout=10)
        assert (r.exit_status, r.stdout, r.stderr) == (i, f"out{i}\n".encode(), f"err{i}\n".encode())
    no_newline = await ssh.run(["printf", "%s", "tail"], timeout=10)
    assert no_newline.stdout == b"tail"
    assert ssh.runners_usable and len(ssh._runners) == 1 and ssh.connections_created == 1


async def test_stdin_through_the_shell_and_without_it(ssh) -> None:
    here = await ssh.run(["cat"], timeout=10, stdin=b"line one\nline two\n")
    assert here.stdout == b"line one\nline two\n" and len(ssh._runners) == 1
    raw = await ssh.run(["od", "-An", "-c"], timeout=10, stdin=b"a\0b")  # a NUL byte: an exec channel
    assert b"\\0" in raw.stdout and len(ssh._runners) == 1


async def test_a_killed_runner_is_replaced(ssh) -> None:
    with pytest.raises(CommandTimeout):
        await ssh.run(["sleep", "30"], timeout=0.5)
    r = await ssh.run(["echo", "again"], timeout=10)
    assert r.stdout == b"again\n" and ssh.connections_created == 1
    assert len([x for x in ssh._runners if not x.broken]) == 1
