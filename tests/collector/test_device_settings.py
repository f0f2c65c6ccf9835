"""Device settings are not code: what the collector refuses, against real NATS, sshd and hosts."""

from __future__ import annotations

import asyncio
import os
import uuid
from pathlib import Path

import asyncssh
import pytest
import pytest_asyncio
from nats.errors import NoRespondersError

from services.collector.runner import collect
from services.collector.service import CollectorStats, run
from services.collector.settings import CollectorSettings
from services.simulator import Simulator
from services.writer.projection import rows
from services.writer.registry import COLUMNS
from shared import events
from shared.datatypes.capture import SBIN_SCRIPT
from shared.datatypes.drive_health import collect as drive_health
from shared.events import Audited, DeviceChanged, DeviceSpec, RefreshRequested
from shared.names import Names
from shared.runtime import devices
from shared.runtime.bootstrap import ensure
from shared.runtime.publish import publish_event
from shared.runtime.transport import (
    TOFU_COMMENT,
    ConnectError,
    HostKeyError,
    LocalTransport,
    ProtectedPathError,
    SshTransport,
    TransportPool,
    filter_paths,
    known_hosts_pattern,
)
from tests.collector.conftest import ssh_spec

pytestmark = pytest.mark.ssh

WAIT_S = 15  # upper bound for waiting on events, not a performance assertion
BAD_ADDRESSES = ["*,evil", "*", "host name", "h?st", "evil,127.0.0.1", "!host", "-oProxyCommand=x", "user@host",
                 "[::1]", "", "1.2.3.999", "a..b", "host\n127.0.0.1 ssh-ed25519 AAAA"]


def only(settings, *data_types: str, **more) -> CollectorSettings:
    return CollectorSettings(**{**settings.model_dump(), "collector_data_types": list(data_types),
                                "collector_first_poll_within_s": 0.1, "metrics_port": -1, **more})


@pytest_asyncio.fixture
async def collector(ssh_settings, js):
    """Starts the collector service with the given settings; yields a starter, stops it after."""
    runs = []

    async def start(settings: CollectorSettings) -> CollectorStats:
        await ensure(js, settings)
        stop, stats = asyncio.Event(), CollectorStats()
        runs.append((stop, asyncio.create_task(run(settings, stop, stats=stats, pool=TransportPool()))))
        return stats

    yield start
    for stop, task in runs:
        stop.set()
        await asyncio.wait_for(task, timeout=30)


async def publish_device(js, names: Names, spec: DeviceSpec) -> None:
    """A device event as anyone allowed to publish on the devices subjects could send it (no API checks)."""
    ev = events.new_event(DeviceChanged, action="registered", spec=spec, device_id=spec.id, device=spec.name,
                          service="test", instance="test", trigger="api")
    await publish_event(js, names.device(spec.name), ev)


async def refusal(sub, device: str) -> Audited:
    async with asyncio.timeout(WAIT_S):
        while True:
            ev = events.decode((await sub.next_msg(timeout=WAIT_S)).data)
            if isinstance(ev, Audited) and ev.action == "device_refused" and ev.device == device:
                return ev


async def refresh(nc, names: Names, spec: DeviceSpec, data_type: str):
    req = events.new_event(RefreshRequested, operation_id=uuid.uuid4(), device_id=spec.id, device=spec.name,
                           data_type=data_type, service="test", instance="test", trigger="api")
    async with asyncio.timeout(WAIT_S * 2):
        while True:
            try:
                reply = await nc.request(names.refresh(spec.name, data_type), events.encode(req), timeout=WAIT_S)
                return events.decode(reply.data)
            except NoRespondersError:  # the collector has not subscribed yet
                await asyncio.sleep(0.1)


# ---------------------------------------------------------------- sudo


async def test_sudo_outside_the_allowlist_is_refused_with_an_audit_event_and_runs_nothing(
        ssh_settings, ssh_server, nc, js, collector, tmp_path) -> None:
    names = Names(ssh_settings.subject_prefix)
    marker = tmp_path / "ran"
    stats = await collector(only(ssh_settings, "drive_health", "system_metrics"))
    audit = await js.subscribe(names.audit("collector"), ordered_consumer=True)
    spec = ssh_spec(ssh_server, name="evilsudo", sudo=["sh", "-c", f"touch {marker}", "x"])
    await publish_device(js, names, spec)

    ev = await refusal(audit, "evilsudo")
    assert ev.status == "error" and ev.detail["field"] == "sudo" and "not in the collector's allowed" in ev.error
    (row,) = rows(ev)["data_collection_audit"]  # the writer keeps it as an audit row
    assert dict(zip(COLUMNS["data_collection_audit"], row))["collection_method"] == "device_refused"
    answer = await refresh(nc, names, spec, "drive_health")
    assert isinstance(answer, Audited) and answer.action == "refresh_refused" and "refused" in answer.error
    assert stats.counters()["commands_executed"] == 0 and stats.devices_refused == 1
    assert not marker.exists()


async def test_an_allowed_sudo_prefix_is_accepted(ssh_settings, ssh_server, nc, js, collector) -> None:
    names = Names(ssh_settings.subject_prefix)
    await collector(only(ssh_settings, "system_metrics"))
    spec = ssh_spec(ssh_server, name="goodsudo", sudo=["sudo", "-n"])
    await publish_device(js, names, spec)
    answer = await refresh(nc, names, spec, "system_metrics")
    assert answer.status == "success", answer.error


async def test_drive_health_builds_no_shell_from_device_settings(ssh_server, ssh_settings, tmp_path) -> None:
    marker = tmp_path / "ran"
    spec = ssh_spec(ssh_server, sudo=["sh", "-c", f"touch {marker}", "x"])
    t = SshTransport(spec, ssh_settings)
    ev = await collect(t, spec, "drive_health", trigger="poll", settings=ssh_settings)
    await t.close()
    assert ev.status == "error" and ev.error.startswith("refused:") and ev.ssh_command_count == 0
    assert t.commands_executed == 0 and not marker.exists()
    # the only shell in a smartctl command is a fixed script; the drive path is one argument of it
    argv = drive_health.smartctl_argv("/dev/sda", [])
    assert argv[:3] == ["sh", "-c", SBIN_SCRIPT] and argv[-1] == "/dev/sda"
    assert drive_health.smartctl_argv("/dev/sda", ["sudo", "-n"]) == ["sudo", "-n", "smartctl", "--json", "-a",
                                                                      "/dev/sda"]


# ---------------------------------------------------------------- transport local


async def test_transport_local_only_for_devices_the_collector_allows(ssh_settings, nc, js, collector) -> None:
    names = Names(ssh_settings.subject_prefix)
    stats = await collector(only(ssh_settings, "system_metrics"))
    audit = await js.subscribe(names.audit("collector"), ordered_consumer=True)
    sneaky = DeviceSpec(id=uuid.uuid4(), name="sneaky", transport="local",
                        watch_paths={"x": [str(ssh_settings.data_dir / "*")]})
    await publish_device(js, names, sneaky)
    ev = await refusal(audit, "sneaky")
    assert ev.detail["field"] == "transport"
    assert stats.counters()["commands_executed"] == 0
    local = DeviceSpec(id=uuid.uuid4(), name="local", transport="local")  # the one `up` registers
    await publish_device(js, names, local)
    answer = await refresh(nc, names, local, "system_metrics")
    assert answer.status == "success" and answer.collection_method == "local", answer.error


# ---------------------------------------------------------------- address


@pytest.mark.parametrize("address", BAD_ADDRESSES)
def test_address_must_be_a_hostname_or_an_ip(address) -> None:
    with pytest.raises(devices.DeviceError):
        devices.validate_address(address)
    with pytest.raises(HostKeyError):  # never written into known_hosts
        known_hosts_pattern(address, 22)


@pytest.mark.parametrize("address", ["host-1.example.org", "db01", "10.0.0.1", "::1", "fe80::1"])
def test_hostnames_and_ips_are_accepted(address) -> None:
    assert devices.validate_address(address) == address


async def test_registry_and_collector_refuse_a_bad_address(ssh_settings, js, collector) -> None:
    names = Names(ssh_settings.subject_prefix)
    await collector(only(ssh_settings, "system_metrics"))
    with pytest.raises(devices.DeviceError):
        await devices.register(js, names, DeviceSpec(id=uuid.uuid4(), name="wild", address="*,evil"), "t", "t")
    audit = await js.subscribe(names.audit("collector"), ordered_consumer=True)
    spec = DeviceSpec(id=uuid.uuid4(), name="wild", address="*,evil", trust_on_first_use=True)
    await publish_device(js, names, spec)  # past the registry's check
    assert (await refusal(audit, "wild")).detail["field"] == "address"
    assert not ssh_settings.known_hosts_path.read_text().strip().startswith("*")


# ---------------------------------------------------------------- no password to an unverified key


async def test_trust_on_first_use_never_offers_the_password(ssh_settings, tmp_path) -> None:
    async with Simulator(1, tmp_path / "sim", prefix="attacker") as sim:
        host = sim.hosts[0]
        stranger = asyncssh.generate_private_key("ssh-ed25519")  # a key the host does not accept
        stranger.write_private_key(str(tmp_path / "stranger"))
        (tmp_path / "pw").write_text("fleet-password\n")
        known = tmp_path / "known_hosts"
        settings = ssh_settings.model_copy(update={"ssh_known_hosts": known, "ssh_password_file": tmp_path / "pw",
                                                   "ssh_client_keys": [tmp_path / "stranger"]})
        spec = DeviceSpec(id=uuid.uuid4(), name="a", address="127.0.0.1", port=host.port, username="sim",
                          trust_on_first_use=True)
        for _ in range(2):  # first contact, and again once the key is on record
            t = SshTransport(spec, settings)
            with pytest.raises(ConnectError, match="no password offered"):
                await t.run(["true"], timeout=10)
            await t.close()
        assert host.passwords_offered == 0
        assert known.read_text().rstrip().endswith(TOFU_COMMENT)
        # once someone has checked the fingerprint and removed the mark, the password is offered
        known.write_text(known.read_text().replace(f" {TOFU_COMMENT}", ""))
        t = SshTransport(spec, settings)
        with pytest.raises(ConnectError):
            await t.run(["true"], timeout=10)
        await t.close()
        assert host.passwords_offered >= 1


# ---------------------------------------------------------------- the collector's own secrets


def secret_settings(ssh_settings, tmp_path: Path):
    tmp_path.mkdir(parents=True, exist_ok=True)
    pw = tmp_path.parent / f"elsewhere-{uuid.uuid4().hex[:6]}" / "pw"
    pw.parent.mkdir()
    pw.write_text("fleet-password\n")
    (tmp_path / "up.json").write_text('{"api_key": "k"}')
    return ssh_settings.model_copy(update={"data_dir": tmp_path, "ssh_password_file": pw})


@pytest.mark.parametrize("path", ["{data}/up.json", "{data}/*", "{data}/../{dname}/known_hosts", "{pw}",
                                  "{link}", "{data}", "{parent}/{dname_start}*/up.json", "{parent}/**",
                                  "{dirlink}*/up.json"])
async def test_local_transport_refuses_the_services_secrets(ssh_settings, tmp_path, path) -> None:
    settings = secret_settings(ssh_settings, tmp_path)
    link = tmp_path.parent / f"link-{uuid.uuid4().hex[:6]}"
    os.symlink(settings.ssh_password_file, link)
    dirlink = tmp_path.parent / f"dirlink-{uuid.uuid4().hex[:6]}"
    os.symlink(tmp_path, dirlink)  # a directory elsewhere that leads into the data directory
    try:
        word = path.format(data=tmp_path, dname=tmp_path.name, pw=settings.ssh_password_file, link=link,
                           parent=tmp_path.parent, dname_start=tmp_path.name[:6], dirlink=dirlink)
        t = LocalTransport(DeviceSpec(id=uuid.uuid4(), name="local", transport="local"), settings)
        with pytest.raises(ProtectedPathError):
            await t.run(["cat", word], timeout=10)
        assert t.commands_executed == 0
    finally:
        link.unlink()
        dirlink.unlink()


async def test_local_transport_still_reads_other_files(ssh_settings, tmp_path) -> None:
    settings = secret_settings(ssh_settings, tmp_path / "data")
    t = LocalTransport(DeviceSpec(id=uuid.uuid4(), name="local", transport="local"), settings)
    assert (await t.run(["cat", "/proc/loadavg"], timeout=10)).exit_status == 0
    kept = filter_paths(["/etc/hostname", str(settings.data_dir / "up.json"), str(settings.ssh_password_file),
                         "/etc/*.conf", "/home/*/docker-compose.yml"], settings)
    assert kept == ["/etc/hostname", "/etc/*.conf", "/home/*/docker-compose.yml"]
