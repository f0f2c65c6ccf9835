"""system_metrics: CPU, memory, swap, load, uptime, filesystems, network and disk counters.

One POSIX sh script reads /proc and runs df. CPU percentages come from two /proc/stat samples:
the newest one kept from the host's earlier collections that is 0.5 s to 15 min old (same boot)
and one taken now, or two taken 0.5 s apart when none is kept. Its output is a series of
``@@ <section>`` blocks that :func:`parse` turns into SystemMetrics.
Required sections: both /proc/stat samples, meminfo, loadavg, uptime. Missing df, net/dev
or diskstats sections, or df lines it cannot read, become warnings (status ``partial``).
"""

from __future__ import annotations

import re
import time
from typing import Any

from shared.datatypes.parsing import Line, ParseError, ParseResult, split_sections
from shared.datatypes.system_metrics.payload import DiskIO, Filesystem, NetCounters, SystemMetrics

NAME = "system_metrics"

# Fixed text, nothing interpolated. Exit 127 when /proc/stat is unreadable marks the data
# type as unsupported on that host. df runs under `timeout` when available, because a hung
# network mount blocks it; its failure is tolerated and its exit status reported. Stdin may hold
# the /proc/stat sample the collector kept from this host's previous collection: when its btime
# (boot time) matches, it is the first sample and nothing sleeps; otherwise the script samples
# twice, 0.5 s apart. Stdin is only printed back, never run.
SCRIPT = r"""export LC_ALL=C
[ -r /proc/stat ] || { echo "system_metrics: /proc/stat is not readable (not Linux?)" >&2; exit 127; }
prev=; [ -t 0 ] || prev=$(cat)
now=$(cat /proc/stat)
echo '@@ stat'
if [ -n "$prev" ] && [ "$(printf '%s\n' "$prev" | grep '^btime')" = "$(printf '%s\n' "$now" | grep '^btime')" ]; then
  printf '%s\n' "$prev"
else
  printf '%s\n' "$now"
  sleep 0.5 2>/dev/null || sleep 1
  now=$(cat /proc/stat)
fi
echo '@@ stat'
printf '%s\n' "$now"
echo '@@ meminfo'
cat /proc/meminfo
echo '@@ loadavg'
cat /proc/loadavg
echo '@@ uptime'
cat /proc/uptime
echo '@@ df'
if command -v timeout >/dev/null 2>&1; then timeout 10 df -P -k -T 2>/dev/null; else df -P -k -T 2>/dev/null; fi
rc=$?
echo '@@ df-exit'
echo "$rc"
echo '@@ netdev'
cat /proc/net/dev 2>/dev/null
echo '@@ diskstats'
cat /proc/diskstats 2>/dev/null
echo '@@ end'
"""

ARGV = ["sh", "-c", SCRIPT]
# A kept sample is used when it is this old: younger, the interval is shorter than the script's
# own 0.5 s; older, it is an average over too long a time (the script then samples 0.5 s itself).
PREVIOUS_SAMPLE_AGE_S = (0.5, 900.0)
KEPT_SAMPLES = 8
SAMPLE_SPACING_S = 0.25
TIMEOUT_S = 30.0
RETRIES = 1
INTERVAL_S = 300
FRESHNESS_S = 300

PSEUDO_FS = frozenset({
    "tmpfs", "devtmpfs", "overlay", "squashfs", "proc", "sysfs", "devpts", "mqueue", "debugfs",
    "tracefs", "securityfs", "pstore", "bpf", "configfs", "fusectl", "hugetlbfs", "autofs",
    "binfmt_misc", "nsfs", "ramfs", "rpc_pipefs", "efivarfs", "selinuxfs", "nfsd", "devfs",
    "aufs", "shm", "none", "fuse.lxcfs", "fuse.gvfsd-fuse", "fuse.portal", "fuse.snapfuse",
})

# Virtual block devices and partitions (counted in their disk already) are skipped.
SKIP_DISK_RE = re.compile(r"^(?:(?:z?ram|loop|fd)\d+|(?:h|s|v|xv)d[a-z]+\d+|(?:nvme\d+n\d+|mmcblk\d+)p\d+)$")


def _pct(part: float, whole: float) -> float:
    return round(100.0 * part / whole, 2) if whole > 0 else 0.0


# ---------------------------------------------------------------- /proc/stat

# cpu  6538 0 2409 93496 285 0 135 4 0 0
# cpu0 927 0 891 49548 12 0 71 1 0 0
#      user nice system idle iowait irq softirq steal guest guest_nice   (jiffies)
# Older kernels print fewer columns: 4 before 2.5.41, 7 before 2.6.11, 8 before 2.6.24.
# guest and guest_nice are already counted in user and nice, so they are not added again.
CPU_RE = re.compile(r"^(cpu\d*)\s+(\d+(?:\s+\d+){3,9})\s*$")


def _cpu_sample(lines: list[Line]) -> dict[str, list[int]]:
    sample: dict[str, list[int]] = {}
    for no, line in lines:
        if not line.startswith("cpu"):
            continue  # intr, ctxt, btime, processes, procs_running, procs_blocked, softirq
        m = CPU_RE.match(line)
        if not m:
            raise ParseError("unexpected cpu line in /proc/stat", line, no)
        values = [int(v) for v in m.group(2).split()[:8]]
        sample[m.group(1)] = values + [0] * (8 - len(values))
    if "cpu" not in sample:
        first_no, first_line = lines[0] if lines else (None, "")
        raise ParseError("/proc/stat has no aggregate 'cpu' line", first_line, first_no)
    return sample


def _cpu_usage(first: list[int], second: list[int]) -> tuple[float, float, float]:
    """Busy, iowait and steal percent between two samples of one cpu line."""
    # A counter that went backwards (iowait can, on tickless kernels) counts as 0.
    delta = [max(b - a, 0) for a, b in zip(first, second)]
    total = sum(delta)
    idle, iowait, steal = delta[3], delta[4], delta[7]
    return _pct(total - idle - iowait, total), _pct(iowait, total), _pct(steal, total)


def parse_cpu(first: list[Line], second: list[Line], warnings: list[str]) -> dict[str, Any]:
    a, b = _cpu_sample(first), _cpu_sample(second)
    busy, iowait, steal = _cpu_usage(a["cpu"], b["cpu"])
    if sum(b["cpu"]) <= sum(a["cpu"]):
        warnings.append("the two /proc/stat samples are identical; cpu percent is 0")
    cpus = sorted((k for k in b if k != "cpu"), key=lambda k: int(k[3:]))
    per_cpu = [_cpu_usage(a[k], b[k])[0] for k in cpus if k in a]
    if not cpus:
        warnings.append("/proc/stat lists no per-cpu lines; cpu_count assumed 1")
    return dict(
        cpu_percent=busy, cpu_count=max(len(cpus), 1), per_cpu_percent=per_cpu,
        cpu_iowait_percent=iowait, cpu_steal_percent=steal,
    )


# ---------------------------------------------------------------- /proc/meminfo

# MemTotal:       24683656 kB
# HugePages_Total:       0
MEMINFO_RE = re.compile(r"^([A-Za-z0-9_()]+):\s+(\d+)(?:\s+kB)?\s*$")
# Linux 2.4 starts with a table in bytes, then the same figures as above:
#         total:    used:    free:  shared: buffers:  cached:
# Mem:  260579328 136073216 124506112        0  4915200 94064640
# Swap:        0        0        0
MEMINFO_24_RE = re.compile(r"^\s+total:\s+used:|^(?:Mem|Swap):(?:\s+\d+){2,}\s*$")


def parse_meminfo(lines: list[Line]) -> dict[str, Any]:
    """Memory and swap in bytes. Kernels before 3.14 have no MemAvailable; then it is
    estimated as MemFree + Buffers + Cached."""
    mem: dict[str, int] = {}
    for no, line in lines:
        m = MEMINFO_RE.match(line)
        if not m and MEMINFO_24_RE.match(line):
            continue
        if not m:
            raise ParseError("unexpected line in /proc/meminfo", line, no)
        mem[m.group(1)] = int(m.group(2)) * (1024 if line.rstrip().endswith("kB") else 1)
    if "MemTotal" not in mem:
        raise ParseError("/proc/meminfo has no MemTotal")
    total = mem["MemTotal"]
    if "MemAvailable" in mem:
        available = mem["MemAvailable"]
    else:
        available = mem.get("MemFree", 0) + mem.get("Buffers", 0) + mem.get("Cached", 0)
    available = min(available, total)
    swap_total = mem.get("SwapTotal", 0)
    swap_used = max(swap_total - mem.get("SwapFree", 0), 0)
    return dict(
        memory_total_bytes=total, memory_available_bytes=available,
        memory_used_bytes=total - available, memory_percent=_pct(total - available, total),
        swap_total_bytes=swap_total, swap_used_bytes=swap_used, swap_percent=_pct(swap_used, swap_total),
    )


# ---------------------------------------------------------------- /proc/loadavg, /proc/uptime

# 0.52 0.58 0.59 1/467 12345
LOADAVG_RE = re.compile(r"^(\d+(?:\.\d+)?)\s+(\d+(?:\.\d+)?)\s+(\d+(?:\.\d+)?)(?:\s|$)")
# 350735.47 234388.90        (seconds up, seconds idle summed over cpus)
UPTIME_RE = re.compile(r"^(\d+(?:\.\d+)?)(?:\s|$)")


def _single_line(lines: list[Line], what: str) -> Line:
    content = [(no, line) for no, line in lines if line.strip()]
    if not content:
        raise ParseError(f"{what} is empty")
    return content[0]


def parse_loadavg(lines: list[Line]) -> dict[str, Any]:
    no, line = _single_line(lines, "/proc/loadavg")
    m = LOADAVG_RE.match(line.strip())
    if not m:
        raise ParseError("unexpected /proc/loadavg", line, no)
    return dict(load_1=float(m.group(1)), load_5=float(m.group(2)), load_15=float(m.group(3)))


def parse_uptime(lines: list[Line]) -> float:
    no, line = _single_line(lines, "/proc/uptime")
    m = UPTIME_RE.match(line.strip())
    if not m:
        raise ParseError("unexpected /proc/uptime", line, no)
    return float(m.group(1))


# ---------------------------------------------------------------- df -P -k -T

# Filesystem     Type     1024-blocks      Used Available Capacity Mounted on
# /dev/vda       ext4       264212084  23267096  83123816      22% /
# Sizes are KiB; a filesystem that reports no sizes shows "-". The mount point may hold spaces.
DF_RE = re.compile(r"^(\S+)\s+(\S+)\s+(\d+|-)\s+(\d+|-)\s+(\d+|-)\s+(\d+%|-)\s+(.+)$")


def parse_df(lines: list[Line], warnings: list[str]) -> list[Filesystem]:
    result: list[Filesystem] = []
    for no, line in lines:
        if not line.strip() or line.startswith("Filesystem"):
            continue
        m = DF_RE.match(line)
        if not m:
            warnings.append(f"df line {no} not understood, skipped: {line!r}")
            continue
        device, fstype, size, used, avail, _, mount = m.groups()
        if fstype in PSEUDO_FS or fstype.startswith("cgroup") or "-" in (size, used, avail) or size == "0":
            continue
        used_b, avail_b = int(used) * 1024, int(avail) * 1024
        result.append(Filesystem(
            device=device, mount=mount, fstype=fstype, total_bytes=int(size) * 1024,
            used_bytes=used_b, available_bytes=avail_b,
            # as df's Capacity: used / (used + available), so blocks reserved for root are excluded
            used_percent=_pct(used_b, used_b + avail_b),
        ))
    return result


# ---------------------------------------------------------------- /proc/net/dev

# Inter-|   Receive                                                |  Transmit
#  face |bytes    packets errs drop fifo frame compressed multicast|bytes    packets errs drop fifo colls carrier compressed
#     lo: 1686958    7793    0    0    0     0          0         0  1686958    7793    0    0    0     0       0          0
# Older kernels glue a wide counter to the colon: "  eth0:1296596 ...".
def parse_netdev(lines: list[Line]) -> list[NetCounters]:
    result: list[NetCounters] = []
    for no, line in lines:
        if "|" in line or not line.strip():
            continue
        name, sep, rest = line.partition(":")
        fields = rest.split()
        if not sep or len(fields) != 16 or not all(f.isdigit() for f in fields):
            raise ParseError("unexpected line in /proc/net/dev", line, no)
        v = [int(f) for f in fields]
        result.append(NetCounters(
            interface=name.strip(), rx_bytes=v[0], rx_packets=v[1], rx_errors=v[2], rx_dropped=v[3],
            tx_bytes=v[8], tx_packets=v[9], tx_errors=v[10], tx_dropped=v[11],
        ))
    return result


# ---------------------------------------------------------------- /proc/diskstats

#  254       0 vda 36528 7960 2601682 6992 8978 28759 1497888 3739 0 4972 11491 4021 62 95576 567 1556 192
#  major minor name | reads merged sectors_read ms_reading | writes merged sectors_written ms_writing |
#  in_progress ms_doing_io weighted_ms | [4.18+: 4 discard fields] [5.5+: 2 flush fields]
# Sectors are always 512 bytes here, whatever the device's sector size.
# Before 2.6.25 a partition line had only: major minor name reads sectors_read writes sectors_written.
# Only the first 11 counters are read: a line with more (a later kernel's) is kept.
DISKSTATS_RE = re.compile(r"^\s*\d+\s+\d+\s+(\S+)((?:\s+\d+)+)\s*$")


def parse_diskstats(lines: list[Line]) -> list[DiskIO]:
    result: list[DiskIO] = []
    for no, line in lines:
        if not line.strip():
            continue
        m = DISKSTATS_RE.match(line)
        if not m:
            raise ParseError("unexpected line in /proc/diskstats", line, no)
        name, v = m.group(1), [int(x) for x in m.group(2).split()]
        if len(v) == 4:
            continue  # old-style partition line
        if len(v) < 11:
            raise ParseError(f"/proc/diskstats line has {len(v) + 3} fields, 14 or more expected", line, no)
        if SKIP_DISK_RE.match(name):
            continue
        result.append(DiskIO(
            device=name, reads_completed=v[0], read_bytes=v[2] * 512, read_time_ms=v[3],
            writes_completed=v[4], write_bytes=v[6] * 512, write_time_ms=v[7],
            io_in_progress=v[8], io_time_ms=v[9],
        ))
    return result


# ---------------------------------------------------------------- whole output


def _one(sections: dict[str, list[list[Line]]], name: str, what: str) -> list[Line]:
    found = sections.get(name)
    if not found:
        raise ParseError(f"{what} section missing: output is not from the system_metrics script or was cut short")
    return found[0]


def stdin(memory: dict[str, Any]) -> bytes | None:
    """The /proc/stat sample to send the script: the newest kept one of a usable age."""
    low, high = PREVIOUS_SAMPLE_AGE_S
    now = time.monotonic()
    usable = [sample for at, sample in memory.get("stat", []) if low <= now - at <= high]
    return usable[-1] if usable else None


def remember(memory: dict[str, Any], stdout: str) -> None:
    """Keep the last /proc/stat sample of a finished run (and a few before it, so that runs in
    quick succession still find one old enough)."""
    samples = split_sections(stdout).get("stat", [])
    if len(samples) < 2:
        return
    now = time.monotonic()
    kept = [(at, s) for at, s in memory.get("stat", []) if now - at <= PREVIOUS_SAMPLE_AGE_S[1]]
    if len(kept) >= 2 and now - kept[-2][0] < SAMPLE_SPACING_S:
        kept.pop()  # runs in quick succession keep one sample per spacing, not only the last few
    kept.append((now, "\n".join(line for _, line in samples[-1]).encode() + b"\n"))
    memory["stat"] = kept[-KEPT_SAMPLES:]


def parse(text: str) -> ParseResult[SystemMetrics]:
    """Parse the script's output; raises ParseError, returns missing optional parts as warnings."""
    sections = split_sections(text)
    warnings: list[str] = []
    if not text.strip():
        raise ParseError("output is empty")
    if not sections:
        first = next((no, line) for no, line in enumerate(text.splitlines(), 1) if line.strip())
        raise ParseError("no '@@' section markers: output is not from the system_metrics script", first[1], first[0])
    stats = sections.get("stat", [])
    if len(stats) < 2:
        raise ParseError(f"two /proc/stat samples expected, found {len(stats)}: output was cut short")
    fields: dict[str, Any] = {}
    fields.update(parse_cpu(stats[0], stats[1], warnings))
    fields.update(parse_meminfo(_one(sections, "meminfo", "/proc/meminfo")))
    fields.update(parse_loadavg(_one(sections, "loadavg", "/proc/loadavg")))
    fields["uptime_seconds"] = parse_uptime(_one(sections, "uptime", "/proc/uptime"))

    df_rc = [line.strip() for _, line in sections.get("df-exit", [[]])[0] if line.strip()]
    df_lines = sections.get("df", [[]])[0]
    fields["filesystems"] = parse_df(df_lines, warnings)
    if not any(line.strip() for _, line in df_lines):
        warnings.append(f"df printed nothing (exit status {df_rc[0] if df_rc else 'unknown'}); no filesystems")
    elif df_rc and df_rc[0] != "0":
        warnings.append(f"df exited with status {df_rc[0]}; some filesystems may be missing")

    for name, key, parser in (("netdev", "network", parse_netdev), ("diskstats", "disks", parse_diskstats)):
        lines = sections.get(name, [[]])[0]
        if not any(line.strip() for _, line in lines):
            warnings.append(f"/proc/{'net/dev' if name == 'netdev' else name} missing or empty")
        fields[key] = parser(lines)
    if "end" not in sections:
        warnings.append("output ended before the end marker")
    return ParseResult(SystemMetrics(**fields), warnings)
