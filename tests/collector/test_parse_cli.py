"""`infrawatch parse`: payload JSON on stdout, errors with their line on stderr, exit codes."""

from __future__ import annotations

from services.collector.parse_cli import parse_files
from shared.datatypes import captures

SAMPLES = captures("system_metrics")


def test_prints_the_payload(capsys) -> None:
    assert parse_files("system_metrics", [SAMPLES / "old-kernel.txt"]) == 0
    out = capsys.readouterr().out
    assert out == (SAMPLES / "old-kernel.json").read_text()


def test_warnings_go_to_stderr(capsys) -> None:
    assert parse_files("system_metrics", [SAMPLES / "df-missing.txt"]) == 0
    assert "warning: df printed nothing" in capsys.readouterr().err


def test_parse_error_exits_1_with_the_line(capsys) -> None:
    assert parse_files("system_metrics", [SAMPLES / "garbage.txt", SAMPLES / "local.txt"]) == 1
    captured = capsys.readouterr()
    assert "This account is currently not available." in captured.err
    assert '"cpu_count"' in captured.out  # the good file is still printed


def test_unreadable_file_exits_1(capsys, tmp_path) -> None:
    assert parse_files("system_metrics", [tmp_path / "missing.txt"]) == 1
    assert "cannot read" in capsys.readouterr().err


def test_unknown_data_type_exits_2(capsys) -> None:
    assert parse_files("nonsense", [SAMPLES / "local.txt"]) == 2
    assert "system_metrics" in capsys.readouterr().err


def test_every_type_reads_its_capture_files(capsys) -> None:

    for data_type in ("containers", "drive_health", "network", "zfs", "systemd_services", "inventory"):
        good = sorted(p for p in captures(data_type).glob("*.txt") if p.with_suffix(".json").exists())
        assert parse_files(data_type, good[:1]) == 0
        assert capsys.readouterr().out == good[0].with_suffix(".json").read_text()


def test_unsupported_capture_exits_1_with_the_reason(capsys) -> None:
    assert parse_files("zfs", [captures("zfs") / "no-zfs.txt"]) == 1
    assert "unsupported: zpool is not installed" in capsys.readouterr().err
