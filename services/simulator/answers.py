"""Answers to the collector's commands, built from captured outputs with values that vary.

A command arrives as the string the collector's transport sends (``shlex.join(argv)``). It is
recognised by comparing it with the argv the collector's own type modules build (``ARGV``,
``COMMANDS`` through ``capture.batch_argv``, ``containers.DOCKER``, ``drive_health.LSBLK`` and
``smartctl_argv``), so a change to a command there is followed here without editing strings.
Every host has its own :class:`HostState`: CPU, network and disk counters advance, memory,
load, container CPU and memory, and drive temperatures drift.
"""

from __future__ import annotations

import json
import random
import re
import shlex
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from services.collector.registry import DATA_TYPES
from shared.datatypes import REGISTRY, captures
from shared.datatypes.capture import Output, batch_argv, read, render
from shared.datatypes.containers import collect as containers
from shared.datatypes.drive_health import collect as drive_health


def _sample(name: str) -> str:
    """The capture a data type is answered from: the one its declaration names, in its testdata."""
    return (captures(name) / REGISTRY[name].sample).read_text()


HZ = 100  # USER_HZ: jiffies per second in /proc/stat


@dataclass
class Reply:
    stdout: bytes
    stderr: bytes = b""
    exit_status: int = 0


@dataclass
class HostState:
    """What varies on one simulated host, advanced at every answer."""

    seed: int
    started: float = field(default_factory=time.monotonic)
    rng: random.Random = field(init=False)
    load: float = 0.5
    temp_offset: float = 0.0
    last: float = 0.0
    cpu: dict[str, list[int]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.rng = random.Random(self.seed)
        self.load = self.rng.uniform(0.1, 2.0)

    def elapsed(self) -> float:
        return time.monotonic() - self.started


# ---------------------------------------------------------------- system_metrics

CPU_LINE_RE = re.compile(r"^(cpu\d*)\s+(.*)$")


def _sections(text: str) -> list[tuple[str, list[str]]]:
    """The ``@@ name`` blocks of a system_metrics sample, in order (stat appears twice)."""
    out: list[tuple[str, list[str]]] = []
    for line in text.splitlines():
        if line.startswith("@@ "):
            out.append((line[3:].strip(), []))
        elif out:
            out[-1][1].append(line)
    return out


class SystemMetrics:
    """The system_metrics script's output: the sample with counters advanced per host."""

    def __init__(self, text: str) -> None:
        self.sections = _sections(text)
        first_stat = next(lines for name, lines in self.sections if name == "stat")
        self.base = {m.group(1): [int(x) for x in m.group(2).split()]
                     for m in map(CPU_LINE_RE.match, first_stat) if m}

    def _advance(self, state: HostState, seconds: float, busy: float) -> list[str]:
        """Advance the host's per-CPU counters by ``seconds`` at ``busy`` load; /proc/stat's cpu lines."""
        if not state.cpu:
            state.cpu = {c: v.copy() for c, v in self.base.items() if c != "cpu"}
        jiffies = seconds * HZ
        total = [0] * len(self.base["cpu"])
        lines = []
        for cpu, b in state.cpu.items():
            b[0] += round(jiffies * busy * 0.7)  # user
            b[2] += round(jiffies * busy * 0.3)  # system
            b[3] += round(jiffies * (1 - busy))  # idle
            total = [a + x for a, x in zip(total, b)]
            lines.append(f"{cpu} {' '.join(map(str, b))}")
        return [f"cpu  {' '.join(map(str, total))}", *lines]

    def answer(self, state: HostState) -> Reply:
        rng = state.rng
        now = state.elapsed()
        since, state.last = now - state.last, now
        t0 = 10_000 + now  # uptime: counters below grow with it
        state.load = max(0.0, state.load + rng.uniform(-0.3, 0.3))
        samples = [self._advance(state, max(since, 0.5), rng.uniform(0.02, 0.9)),
                   self._advance(state, 0.5, rng.uniform(0.02, 0.9))]
        parts: list[str] = []
        for name, lines in self.sections:
            parts.append(f"@@ {name}")
            if name == "stat":
                parts += samples.pop(0) + [line for line in lines if not CPU_LINE_RE.match(line)]
            elif name == "meminfo":
                parts += [_vary_meminfo(line, rng) for line in lines]
            elif name == "loadavg":
                l1 = state.load
                parts.append(f"{l1:.2f} {l1 * 0.8:.2f} {l1 * 0.6:.2f} 2/136 {8000 + int(t0) % 30000}")
            elif name == "uptime":
                parts.append(f"{t0:.2f} {t0 * 1.7:.2f}")
            elif name in ("netdev", "diskstats"):
                parts += [_advance_numbers(line, int(t0), name) for line in lines]
            else:
                parts += lines
        return Reply(("\n".join(parts) + "\n").encode())


def _vary_meminfo(line: str, rng: random.Random) -> str:
    m = re.match(r"^(MemFree|MemAvailable|Cached|Buffers):(\s+)(\d+) kB$", line)
    if not m:
        return line
    value = int(int(m.group(3)) * rng.uniform(0.85, 0.99))
    return f"{m.group(1)}:{m.group(2)}{value} kB"


def _advance_numbers(line: str, t: int, kind: str) -> str:
    """Counters that grow with time: the byte and packet columns of net/dev, I/O of diskstats."""
    if kind == "netdev":
        name, sep, rest = line.partition(":")
        if not sep or "|" in line:
            return line
        cols = rest.split()
        if len(cols) < 16 or cols[0] == "0":
            return line
        for i, rate in ((0, 1500), (1, 10), (8, 900), (9, 8)):
            cols[i] = str(int(cols[i]) + t * rate)
        return f"{name}: {' '.join(cols)}"
    cols = line.split()
    if len(cols) < 14 or cols[3] == "0":
        return line
    for i, rate in ((3, 2), (5, 40), (7, 3), (9, 60)):
        cols[i] = str(int(cols[i]) + t * rate)
    return " ".join(cols)


# ---------------------------------------------------------------- containers and drives


def _stats(stdout: str, rng: random.Random) -> str:
    lines = []
    for line in stdout.splitlines():
        if not line.strip():
            continue
        s = json.loads(line)
        if s.get("PIDs") not in ("0", 0):  # a stopped container stays at zero
            s["CPUPerc"] = f"{rng.uniform(0.0, 85.0):.2f}%"
            mem = containers.size(s["MemUsage"].split("/")[0]) or 0
            limit = s["MemUsage"].split("/")[1].strip()
            s["MemUsage"] = f"{mem * rng.uniform(0.8, 1.25) / 2**20:.1f}MiB / {limit}"
        lines.append(json.dumps(s, separators=(",", ":")))
    return "\n".join(lines) + "\n"


def _smart(stdout: str, state: HostState) -> str:
    data = json.loads(stdout)
    temp = data.get("temperature")
    if isinstance(temp, dict) and isinstance(temp.get("current"), int):
        state.temp_offset = max(-5.0, min(15.0, state.temp_offset + state.rng.uniform(-1.5, 1.5)))
        temp["current"] += round(state.temp_offset)
    if isinstance(data.get("power_on_time"), dict) and isinstance(data["power_on_time"].get("hours"), int):
        data["power_on_time"]["hours"] += int(state.elapsed() // 3600)
    return json.dumps(data, indent=2) + "\n"


def _reply(out: Output) -> Reply:
    status = 0 if out.exit_status is None else out.exit_status
    return Reply(out.stdout.encode(), out.stderr.encode(), status)


# ---------------------------------------------------------------- the table

Answer = Callable[[HostState], Reply]


def _fixed(stdout: bytes) -> Answer:
    """An answer that prints ``stdout`` whatever the host's state."""
    return lambda st: Reply(stdout)


class Answers:
    """Recognises the collector's commands and answers them for one host's state."""

    def __init__(self) -> None:
        text = {t: _sample(t) for t in REGISTRY}
        self.exact: dict[str, Answer] = {}
        self.prefix: list[tuple[str, Answer]] = []

        sm = DATA_TYPES["system_metrics"]
        metrics = SystemMetrics(text["system_metrics"])
        self.exact[shlex.join(sm.ARGV)] = metrics.answer

        for name, module in DATA_TYPES.items():
            if hasattr(module, "COMMANDS"):
                captured = render(list(read(text[name]).values()))
                self.exact[shlex.join(batch_argv(module.COMMANDS))] = _fixed(captured.encode())
            elif hasattr(module, "ARGV") and name != "system_metrics":
                self.exact[shlex.join(module.ARGV)] = _fixed(text[name].encode())

        cont = read(text["containers"])
        self.exact[shlex.join(containers.DOCKER["ps"])] = lambda st: _reply(cont["ps"])
        self.exact[shlex.join(containers.DOCKER["stats"])] = lambda st: Reply(_stats(cont["stats"].stdout, st.rng).encode())
        inspect_head = shlex.join(containers.inspect_argv([]))
        self.prefix.append((inspect_head + " ", lambda st: _reply(cont["inspect"])))

        drives = read(text["drive_health"])
        self.exact[shlex.join(drive_health.LSBLK)] = lambda st: _reply(drives["lsblk"])
        for path in drive_health.drives(drives["lsblk"]):
            out = drives.get(f"smartctl {path}")
            if out is None:
                continue
            def answer(st: HostState, o: Output = out) -> Reply:
                return Reply(_smart(o.stdout, st).encode(), o.stderr.encode(), o.exit_status or 0)

            self.exact[shlex.join(drive_health.smartctl_argv(path, []))] = answer
            # with a sudo prefix: the same command at the end of the line
            self.prefix.append(("\0" + shlex.join(["smartctl", "--json", "-a", path]), answer))

    def find(self, command: str) -> Answer | None:
        """The answer to ``command``, or None when it is not one of the collector's."""
        found = self.exact.get(command)
        if found is not None:
            return found
        for head, answer in self.prefix:
            if head.startswith("\0"):
                if command.endswith(" " + head[1:]):
                    return answer
            elif command.startswith(head):
                return answer
        return None
