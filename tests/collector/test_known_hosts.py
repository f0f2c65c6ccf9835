"""known_hosts is parsed once per process, not on every connect (against the real sshd)."""

from __future__ import annotations

import asyncssh
import pytest

from shared.runtime.transport import SshTransport, known_hosts_file
from tests.collector.conftest import ssh_spec

pytestmark = pytest.mark.ssh

FLEET = 2000  # other hosts' entries in the file


@pytest.fixture
def fleet_known_hosts(known_hosts):
    """The test server's entry among those of a large fleet."""
    key = asyncssh.generate_private_key("ssh-ed25519").export_public_key().decode().strip()
    with known_hosts.open("a") as f:
        f.writelines(f"[10.1.{i // 250}.{i % 250}]:22 {key}\n" for i in range(FLEET))
    return known_hosts


async def test_connects_do_not_parse_the_file_again(ssh_server, ssh_settings, fleet_known_hosts, monkeypatch) -> None:
    reads = []
    real = asyncssh.known_hosts.read_known_hosts
    monkeypatch.setattr(asyncssh.known_hosts, "read_known_hosts", lambda *a: reads.append(a) or real(*a))
    known = known_hosts_file(fleet_known_hosts)
    before = known.loads
    for _ in range(5):
        t = SshTransport(ssh_spec(ssh_server), ssh_settings)
        assert (await t.run(["true"], timeout=10)).exit_status == 0
        await t.close()
    assert known.loads - before <= 1 and reads == []  # asyncssh got the parsed file, never its path


async def test_a_changed_file_is_parsed_again_and_own_appends_are_not(ssh_server, ssh_settings, fleet_known_hosts,
                                                                       tmp_path) -> None:
    known = known_hosts_file(fleet_known_hosts)
    t = SshTransport(ssh_spec(ssh_server), ssh_settings)
    await t.run(["true"], timeout=10)
    await t.close()
    loads = known.loads
    fleet_known_hosts.write_text(fleet_known_hosts.read_text().replace(ssh_server.host_key_pub.split()[1], "AAAA"))
    changed = SshTransport(ssh_spec(ssh_server), ssh_settings)
    with pytest.raises(Exception, match=r"unknown|does not match"):
        await changed.run(["true"], timeout=10)  # the edit is seen: the entry is gone
    await changed.close()
    assert known.loads == loads + 1
    tofu = SshTransport(ssh_spec(ssh_server, trust_on_first_use=True), ssh_settings)
    assert (await tofu.run(["true"], timeout=10)).exit_status == 0  # recorded and trusted at once
    await tofu.close()
    assert known.loads == loads + 1, "a key this process appended is added in memory, not by parsing the file"
