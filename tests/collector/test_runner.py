"""The collection wrapper, over real transports; failures become events, never exceptions."""

from __future__ import annotations

import uuid
from types import SimpleNamespace

import pytest
import pytest_asyncio

from services.collector import registry
from services.collector.runner import collect, interpret
from shared.collected import COLLECTED_TYPES
from shared.datatypes import captures
from shared.datatypes.system_metrics import collect as system_metrics
from shared.events import DeviceSpec
from shared.runtime.embedded import free_port
from shared.runtime.transport import CommandResult, LocalTransport, SshTransport
from tests.collector.conftest import ssh_spec

pytestmark = pytest.mark.ssh


def fake_type(argv: list[str], timeout_s: float = 10, retries: int = 0) -> SimpleNamespace:
    """A data type with its own command and system_metrics' parser."""
    return SimpleNamespace(
        NAME="probe", ARGV=argv, TIMEOUT_S=timeout_s, RETRIES=retries,
        INTERVAL_S=60, FRESHNESS_S=60, parse=system_metrics.parse,
    )


@pytest_asyncio.fixture
async def ssh(ssh_server, ssh_settings):
    t = SshTransport(ssh_spec(ssh_server), ssh_settings)
    yield t
    await t.close()


async def test_collect_over_ssh(ssh, ssh_settings) -> None:
    op = uuid.uuid4()
    ev = await collect(ssh, ssh.spec, "system_metrics", trigger="refresh", operation_id=op,
                       settings=ssh_settings, force_refresh=True)
    assert isinstance(ev, COLLECTED_TYPES["system_metrics"])
    assert ev.status == "success", ev.error
    assert (ev.operation_id, ev.trigger, ev.force_refresh) == (op, "refresh", True)
    assert (ev.device_id, ev.device, ev.service, ev.instance) == (ssh.spec.id, "sshd", "collector", "test")
    assert ev.collection_method == "ssh" and ev.ssh_command_count == 1
    assert ev.data_size_bytes > 0 and ev.duration_ms > 0
    assert ev.freshness_threshold_s == system_metrics.FRESHNESS_S
    assert ev.payload is not None and ev.payload.cpu_count >= 1 and ev.payload.memory_total_bytes > 0


async def test_collect_locally(ssh_settings) -> None:
    spec = DeviceSpec(id=uuid.uuid4(), name="here", transport="local")
    ev = await collect(LocalTransport(spec), spec, "system_metrics", trigger="poll", settings=ssh_settings)
    assert ev.status == "success", ev.error
    assert ev.collection_method == "local" and ev.operation_id == ev.event_id
    assert ev.payload.uptime_seconds > 0


async def test_missing_command_is_unsupported(ssh, ssh_settings, monkeypatch) -> None:
    monkeypatch.setitem(registry.EVENTS, "probe", COLLECTED_TYPES["system_metrics"])
    monkeypatch.setitem(registry.DATA_TYPES, "probe", fake_type(["infrawatch-no-such-command"]))
    ev = await collect(ssh, ssh.spec, "probe", trigger="poll", settings=ssh_settings)
    assert ev.status == "unsupported" and "exit status 127" in ev.error and ev.payload is None


async def test_failing_command_is_an_error_with_its_exit_status(ssh, ssh_settings, monkeypatch) -> None:
    monkeypatch.setitem(registry.EVENTS, "probe", COLLECTED_TYPES["system_metrics"])
    monkeypatch.setitem(registry.DATA_TYPES, "probe", fake_type(["sh", "-c", "echo boom >&2; exit 3"]))
    ev = await collect(ssh, ssh.spec, "probe", trigger="poll", settings=ssh_settings)
    assert ev.status == "error" and ev.error == "command failed with exit status 3: boom"


async def test_unparsable_output_is_an_error_with_the_line(ssh, ssh_settings, monkeypatch) -> None:
    monkeypatch.setitem(registry.EVENTS, "probe", COLLECTED_TYPES["system_metrics"])
    monkeypatch.setitem(registry.DATA_TYPES, "probe", fake_type(["echo", "This account is currently not available."]))
    ev = await collect(ssh, ssh.spec, "probe", trigger="poll", settings=ssh_settings)
    assert ev.status == "error"
    assert ev.error.startswith("parse error") and "This account is currently not available." in ev.error


async def test_timeout_is_retried_then_an_error(ssh, ssh_settings, monkeypatch) -> None:
    monkeypatch.setitem(registry.EVENTS, "probe", COLLECTED_TYPES["system_metrics"])
    monkeypatch.setitem(registry.DATA_TYPES, "probe", fake_type(["sleep", "30"], timeout_s=0.3, retries=1))
    ev = await collect(ssh, ssh.spec, "probe", trigger="poll", settings=ssh_settings)
    assert ev.status == "error" and "did not finish" in ev.error and "attempt 2 of 2" in ev.error
    assert ev.ssh_command_count == 2


async def test_unreachable_device_is_an_error_event(ssh_server, ssh_settings) -> None:
    t = SshTransport(ssh_spec(ssh_server, port=free_port()), ssh_settings)
    ev = await collect(t, t.spec, "system_metrics", trigger="poll", settings=ssh_settings)
    assert ev.status == "error" and "cannot connect" in ev.error
    assert ev.ssh_command_count == 0 and ev.payload is None


async def test_unknown_host_key_is_not_retried(ssh_server, ssh_settings, known_hosts) -> None:
    known_hosts.write_text("")
    t = SshTransport(ssh_spec(ssh_server), ssh_settings)
    ev = await collect(t, t.spec, "system_metrics", trigger="poll", settings=ssh_settings)
    assert ev.status == "error" and "host key" in ev.error
    assert t.connect_attempts == 1


def test_interpret_truncated_output_is_an_error() -> None:
    result = CommandResult(None, b"x" * 10, b"", 1.0, True)
    outcome = interpret(system_metrics, result)
    assert outcome.status == "error" and "size limit" in outcome.error


def test_interpret_warnings_make_partial() -> None:

    text = (captures("system_metrics") / "df-missing.txt").read_bytes()
    outcome = interpret(system_metrics, CommandResult(0, text, b"", 1.0, False))
    assert outcome.status == "partial" and outcome.warnings and outcome.payload.filesystems == []


def test_freshness_override(ssh_settings) -> None:
    from services.collector.runner import freshness_s

    assert freshness_s("system_metrics", ssh_settings) == system_metrics.FRESHNESS_S
    overridden = ssh_settings.model_copy(update={"freshness_overrides": {"system_metrics": 30}})
    assert freshness_s("system_metrics", overridden) == 30


async def test_batch_of_fixed_commands_is_one_channel(ssh, ssh_settings) -> None:
    ev = await collect(ssh, ssh.spec, "inventory", trigger="poll", settings=ssh_settings)
    assert ev.status in ("success", "partial") and ev.ssh_command_count == 1 and ssh.commands_executed == 1


async def test_killed_batch_is_recorded(ssh, ssh_settings, monkeypatch) -> None:
    from shared.datatypes.network import collect as network

    monkeypatch.setattr(network, "TIMEOUT_S", 0.5)
    monkeypatch.setattr(network, "RETRIES", 0)
    monkeypatch.setattr(network, "COMMANDS", {"addr": ["sleep", "30"], "link": ["true"]})
    ev = await collect(ssh, ssh.spec, "network", trigger="poll", settings=ssh_settings)
    assert ev.status == "error" and "killed" in ev.error
    assert any("killed after 0.5s" in w for w in ev.warnings)


async def test_sudo_prefix_comes_from_the_device_or_the_settings(ssh_settings) -> None:
    from services.collector.policy import RefusedSetting
    from services.collector.runner import sudo_prefix
    from services.collector.settings import CollectorSettings

    spec = DeviceSpec(id=uuid.uuid4(), name="d")
    assert sudo_prefix(spec, ssh_settings) == []
    settings = CollectorSettings(**{**ssh_settings.model_dump(), "collector_sudo": ["sudo", "-n"]})
    assert sudo_prefix(spec, settings) == ["sudo", "-n"]
    own = DeviceSpec(id=uuid.uuid4(), name="d", sudo=["doas"])
    with pytest.raises(RefusedSetting):  # not in the allowed prefixes
        sudo_prefix(own, settings)
    allowing = settings.model_copy(update={"collector_sudo_allowed": [["sudo", "-n"], ["doas"]]})
    assert sudo_prefix(own, allowing) == ["doas"]


async def test_password_from_a_file_is_used_and_never_shown(ssh_server, ssh_settings, tmp_path) -> None:
    from shared.runtime.transport import ssh_password

    secret = tmp_path / "pw"
    secret.write_text("hunter2-not-logged\n")
    settings = ssh_settings.model_copy(update={"ssh_password_file": secret})
    assert ssh_password(settings) == "hunter2-not-logged"
    t = SshTransport(ssh_spec(ssh_server), settings)  # key auth still succeeds; the password is offered too
    ev = await collect(t, t.spec, "network", trigger="poll", settings=settings)
    await t.close()
    assert "hunter2" not in events_json(ev) and "hunter2" not in repr(settings)


def events_json(ev) -> str:
    from shared import events

    return events.encode(ev).decode()
