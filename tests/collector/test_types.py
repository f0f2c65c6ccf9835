"""The pure parts of the data types beyond parsing: drift, removed containers, smartctl's exit
bits, drive discovery, argv building, the capture format."""

from __future__ import annotations

import msgspec
import pytest

from shared.datatypes import capture, captures
from shared.datatypes.capture import Output
from shared.datatypes.containers import collect as containers
from shared.datatypes.drive_health import collect as drive_health
from shared.datatypes.inventory import collect as inventory


def sample(data_type: str, name: str):
    return (captures(data_type) / f"{name}.txt").read_text()


def test_inventory_drift_between_two_snapshots() -> None:
    before = inventory.parse(sample("inventory", "rocky9-rpm-proxy")).payload
    after = inventory.parse(sample("inventory", "rocky9-a-week-later")).payload
    drift = inventory.diff(before, after)
    assert drift.changed
    assert [(c.name, c.old, c.new) for c in drift.system] == [
        ("kernel", "5.14.0-362.18.1.el9_3.x86_64", "5.14.0-362.24.1.el9_3.x86_64")]
    packages = {c.name: (c.old, c.new) for c in drift.packages}
    assert packages == {
        "gpg-pubkey": ("350d275d-6279464b", None),
        "kernel": ("5.14.0-284.30.1.el9_2, 5.14.0-362.18.1.el9_3", "5.14.0-362.18.1.el9_3, 5.14.0-362.24.1.el9_3"),
        "nginx": (None, "1.20.1-14.el9_2.1"),
        "postgresql-server": ("13.11-1.el9", "13.14-1.el9_3"),
    }
    assert [(c.name, c.new) for c in drift.env] == [("https_proxy", None), ("no_proxy", None)]
    assert drift.python_packages == []  # pip is not on that host: not compared


def test_inventory_first_snapshot_has_no_drift_and_same_snapshot_none_changed() -> None:
    snap = inventory.parse(sample("inventory", "alpine-3.19-arm64")).payload
    assert inventory.with_previous(None, snap).drift is None
    again = inventory.parse(sample("inventory", "alpine-3.19-arm64")).payload
    assert inventory.with_previous(snap, again).drift == inventory.Drift(changed=False)


def test_inventory_redacts_proxy_passwords() -> None:
    snap = inventory.parse(sample("inventory", "rocky9-rpm-proxy")).payload
    assert snap.env["https_proxy"] == "http://svc-proxy:***@proxy.example.internal:3128"
    assert "S3cr3t" not in msgspec.json.encode(snap).decode()


def test_removed_containers() -> None:
    before = containers.parse(sample("containers", "docker-24-compose")).payload
    after = containers.parse(sample("containers", "docker-stats-failed")).payload  # only web remains (same id as nginx)
    gone = containers.removed(before, after)
    assert sorted(c.name for c in gone) == ["promtail", "web-db-1", "worker"]
    assert containers.with_previous(before, after).removed == gone
    assert containers.removed(None, after) == []
    assert containers.removed(after, after) == []


@pytest.mark.parametrize(("status", "flags"), [
    (0, []),
    (1, ["command_line_error"]),
    (2, ["open_failed"]),
    (4, ["smart_command_failed"]),
    (8, ["disk_failing"]),
    (0x18, ["disk_failing", "prefail_below_threshold"]),
    (0xC0, ["error_log", "self_test_errors"]),
    (0x20, ["past_below_threshold"]),
    (None, []),
])
def test_smartctl_exit_bits(status, flags) -> None:
    assert drive_health.decode_exit(status) == flags


def test_failing_drive_is_not_an_unreadable_drive() -> None:
    drives = {d.name: d for d in drive_health.parse(sample("drive_health", "sas-and-failing")).payload.drives}
    assert drives["/dev/sdb"].failing and not drives["/dev/sdb"].could_not_open and drives["/dev/sdb"].healthy is False
    unreadable = drive_health.parse(sample("drive_health", "open-failed")).payload.drives[1]
    assert unreadable.could_not_open and not unreadable.failing and unreadable.healthy is None


def test_drive_paths_stay_one_argument() -> None:
    assert drive_health.smartctl_argv("/dev/nvme0n1", ["sudo", "-n"]) == [
        "sudo", "-n", "smartctl", "--json", "-a", "/dev/nvme0n1"]
    plain = drive_health.smartctl_argv("/dev/sda", [])
    assert plain[:2] == ["sh", "-c"] and plain[-4:] == ["smartctl", "--json", "-a", "/dev/sda"]
    for bad in ("/dev/sda; reboot", "sda", "/dev/../etc/shadow", "-a", "/dev/$(id)"):
        with pytest.raises(ValueError):
            drive_health.smartctl_argv(bad, [])


def test_lsblk_drives_skip_what_is_not_a_drive() -> None:
    lsblk = capture.read(sample("drive_health", "home-ata-nvme"))["lsblk"]
    assert drive_health.drives(lsblk) == ["/dev/sda", "/dev/sdb", "/dev/nvme0n1"]
    hostile = Output("lsblk", '{"blockdevices": [{"name": "sda; rm -rf /", "type": "disk"}, {"name": "vdb", "type": "disk"}]}')
    assert drive_health.drives(hostile) == ["/dev/vdb"]


def test_capture_round_trip() -> None:
    outs = [Output("ps", '{"ID":"a"}\n', "", 0), Output("stats", "", "timed out\n", None, killed=True),
            Output("smartctl /dev/sda", "{}\n", "warning\n", 4)]
    text = capture.render(outs)
    assert capture.read(text) == {o.name: o for o in outs}
    with pytest.raises(capture.ParseError, match="malformed capture header"):
        capture.read("@@@ \n")


def test_docker_inspect_ids_are_arguments() -> None:
    ids = ["abc", "--format=x", "$(id)"]
    assert containers.inspect_argv(ids)[-4:] == ["--", *ids]
