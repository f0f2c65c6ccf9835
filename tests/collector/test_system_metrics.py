"""system_metrics beyond its captured outputs (test_samples.py walks those)."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from services.collector.runner import collect
from shared.datatypes import captures
from shared.datatypes.parsing import ParseError, split_sections
from shared.datatypes.system_metrics import collect as system_metrics
from shared.runtime.transport import SshTransport
from tests.collector.conftest import ssh_spec

SAMPLES = captures("system_metrics")
CASES = sorted(SAMPLES.glob("*.txt"))


def test_samples_present() -> None:
    names = {p.stem for p in CASES}
    assert {"local", "sshd", "old-kernel", "df-missing", "empty", "garbage"} <= names


def test_parse_error_carries_the_line() -> None:
    text = (captures("system_metrics") / "corrupt-meminfo.txt").read_text()
    with pytest.raises(ParseError) as exc:
        system_metrics.parse(text)
    assert exc.value.line == "MemTotal:       lots kB"
    assert exc.value.line_no == 24


def test_script_runs_here_and_parses() -> None:
    out = subprocess.run(system_metrics.ARGV, capture_output=True, timeout=system_metrics.TIMEOUT_S, check=True)
    result = system_metrics.parse(out.stdout.decode())
    assert result.payload.cpu_count >= 1
    assert result.payload.memory_total_bytes > 0
    assert 0 <= result.payload.cpu_percent <= 100


def test_argv_is_the_fixed_script() -> None:
    assert system_metrics.ARGV == ["sh", "-c", system_metrics.SCRIPT]


def test_cpu_counter_going_backwards_counts_as_zero() -> None:
    first = [(1, "cpu  100 0 100 1000 50 0 0 0"), (2, "cpu0 100 0 100 1000 50 0 0 0")]
    second = [(3, "cpu  150 0 150 1100 40 0 0 0"), (4, "cpu0 150 0 150 1100 40 0 0 0")]
    fields = system_metrics.parse_cpu(first, second, [])
    assert fields["cpu_percent"] == 50.0
    assert fields["cpu_iowait_percent"] == 0.0
    assert fields["per_cpu_percent"] == [50.0]


def _stat_sections(stdout: str) -> list[str]:
    return ["\n".join(line for _, line in s) for s in split_sections(stdout)["stat"]]


def _btime() -> str:
    return next(line for line in Path("/proc/stat").read_text().splitlines() if line.startswith("btime"))


@pytest.mark.ssh
async def test_previous_sample_of_the_same_boot_replaces_the_wait(ssh_server, ssh_settings) -> None:
    """Over SSH, a kept sample of the same boot is the first sample (no 0.5 s wait); one of
    another boot is ignored and the script samples the host twice."""
    t = SshTransport(ssh_spec(ssh_server), ssh_settings)
    same = f"cpu  1 2 3 4 5 6 7 8 9 10\ncpu0 1 2 3 4 5 6 7 8 9 10\n{_btime()}\n"
    r = await t.run(system_metrics.ARGV, timeout=30, stdin=same.encode())
    assert _stat_sections(r.stdout.decode())[0] == same.rstrip("\n")
    other = same.replace(_btime(), "btime 12345")
    r = await t.run(system_metrics.ARGV, timeout=30, stdin=other.encode())
    first, second = _stat_sections(r.stdout.decode())
    assert "btime 12345" not in first and first.startswith("cpu ") and second.startswith("cpu ")
    await t.close()


@pytest.mark.ssh
async def test_collect_keeps_the_last_sample_for_the_next_run(ssh_server, ssh_settings, monkeypatch) -> None:
    monkeypatch.setattr(system_metrics, "PREVIOUS_SAMPLE_AGE_S", (0.0, 900.0))
    t = SshTransport(ssh_spec(ssh_server), ssh_settings)
    memory: dict = {}
    first = await collect(t, t.spec, "system_metrics", trigger="poll", settings=ssh_settings, memory=memory)
    kept = memory["stat"][-1][1]
    assert first.status in ("success", "partial") and kept.startswith(b"cpu ")
    assert system_metrics.stdin(memory) == kept
    second = await collect(t, t.spec, "system_metrics", trigger="refresh", settings=ssh_settings, memory=memory)
    await t.close()
    assert second.status in ("success", "partial") and 0 <= second.payload.cpu_percent <= 100
    assert memory["stat"][0][1] == kept and memory["stat"][-1][1] != kept  # the newer one kept too


def test_the_newest_sample_old_enough_is_sent(monkeypatch) -> None:
    now = 1000.0
    monkeypatch.setattr(system_metrics.time, "monotonic", lambda: now)
    memory = {"stat": [(now - 1000, b"too old"), (now - 30, b"old"), (now - 0.7, b"usable"), (now - 0.1, b"young")]}
    assert system_metrics.stdin(memory) == b"usable"
    assert system_metrics.stdin({"stat": [(now - 0.1, b"young")]}) is None
