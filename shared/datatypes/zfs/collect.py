"""zfs: pool health, vdev state and error counters, scrub state and last scrub; datasets.

Three commands: ``zpool list -Hp`` (sizes, exact numbers), ``zpool status`` (vdev tree,
errors, scan line) and ``zfs list -Hp`` (datasets). ``zpool status`` is read without ``-p``,
which ZFS before 0.7 lacks, so its counters may carry a suffix ("1.2K"). A host without the
zpool command or without the ZFS kernel module is unsupported.
"""

from __future__ import annotations

import re
from datetime import datetime

from shared.datatypes.capture import Output, read_nonempty, require, sbin
from shared.datatypes.parsing import ParseError, ParseResult, Unsupported
from shared.datatypes.zfs.payload import Dataset, Pool, Vdev, Zfs

NAME = "zfs"
LIST_COLUMNS = "name,size,allocated,free,fragmentation,capacity,dedupratio,health"
COMMANDS = {
    "zpool list": sbin(["zpool", "list", "-Hp", "-o", LIST_COLUMNS]),
    "zpool status": sbin(["zpool", "status"]),
    "zfs list": sbin(["zfs", "list", "-Hp", "-t", "filesystem,volume", "-o", "name,used,avail,refer,mountpoint"]),
}
TIMEOUT_S = 30.0
RETRIES = 1
INTERVAL_S = 600
FRESHNESS_S = 600

# The ZFS modules are not loaded.
# Try running '/sbin/modprobe zfs' as root to load them.
NO_MODULE_RE = re.compile(r"modules are not loaded|/dev/zfs and /proc/self/mounts are required|Failed to initialize the libzfs")


def _int(text: str) -> int | None:
    return int(text) if text.isdigit() else None


# tank	3985729650688	1544918241280	2440811409408	3	38	1.00	ONLINE
def parse_zpool_list(out: Output) -> dict[str, Pool]:
    pools: dict[str, Pool] = {}
    for no, line in enumerate(out.stdout.splitlines(), start=1):
        if not line.strip():
            continue
        f = line.split("\t")
        if len(f) != 8:
            raise ParseError("zpool list: 8 tab-separated columns expected", line, no)
        name, size, alloc, free, frag, cap, dedup, health = f
        try:
            ratio = float(dedup.rstrip("x"))
        except ValueError:
            ratio = None
        pools[name] = Pool(name=name, health=health, size_bytes=_int(size), allocated_bytes=_int(alloc),
                           free_bytes=_int(free), fragmentation_percent=_int(frag.rstrip("%")),
                           capacity_percent=_int(cap.rstrip("%")), dedup_ratio=ratio)
    return pools


# tank/data	1228360769536	2363208994816	1228360769536	/tank/data
def parse_zfs_list(out: Output) -> list[Dataset]:
    result = []
    for no, line in enumerate(out.stdout.splitlines(), start=1):
        if not line.strip() or line.strip() == "no datasets available":
            continue
        f = line.split("\t")
        if len(f) != 5 or not all(x.isdigit() for x in f[1:4]):
            raise ParseError("zfs list: name, 3 byte counts and a mountpoint expected", line, no)
        mount = None if f[4] in ("-", "none", "legacy") else f[4]
        result.append(Dataset(name=f[0], used_bytes=int(f[1]), available_bytes=int(f[2]),
                              referenced_bytes=int(f[3]), mountpoint=mount))
    return result


SUFFIX = {"": 1, "K": 10**3, "M": 10**6, "G": 10**9, "T": 10**12, "P": 10**15}


def count(text: str) -> int:
    """An error counter as zpool prints it: "0", "12", "1.2K"."""
    m = re.match(r"^(\d+(?:\.\d+)?)([KMGTP]?)$", text)
    if not m:
        raise ValueError(text)
    return round(float(m.group(1)) * SUFFIX[m.group(2)])


# 	  mirror-0                                      ONLINE       0     0     0
# 	    ata-WDC_WD40EFRX-68N32N0_WD-WCC7K0123456    ONLINE       0     0     0
# 	    sdc                                         FAULTED      3   215     0  too many errors
VDEV_RE = re.compile(r"^(?P<indent>\s*)(?P<name>\S+)\s+(?P<state>[A-Z]+)\s+(?P<r>\S+)\s+(?P<w>\S+)\s+(?P<c>\S+)(?:\s+(?P<note>.*))?$")
# 	  sde         AVAIL          (a spare: no counters)
SPARE_RE = re.compile(r"^(?P<indent>\s*)(?P<name>\S+)\s+(?P<state>AVAIL|INUSE\b.*|UNAVAIL.*)$")
GROUPS = ("logs", "cache", "spares", "special", "dedup")

# scrub repaired 0B in 02:13:45 with 0 errors on Sun Mar 10 02:37:46 2024
# scrub repaired 0 in 2h13m with 0 errors on Sun Mar 10 02:37:46 2024      (ZFS 0.6/0.7)
SCRUB_DONE_RE = re.compile(r"^(scrub repaired|resilvered) (\S+) in .*? with (\d+) errors on (.+)$")
# scrub in progress since Sun Mar 10 00:24:01 2024
IN_PROGRESS_RE = re.compile(r"^(scrub|resilver) in progress since (.+)$")
# 0B repaired, 22.86% done, 02:20:00 to go
DONE_RE = re.compile(r"(\d+(?:\.\d+)?)% done")
# scrub canceled on Sun Mar 10 01:00:00 2024
CANCELED_RE = re.compile(r"^scrub canceled on (.+)$")


def _local_time(text: str) -> str | None:
    try:
        return datetime.strptime(" ".join(text.split()), "%a %b %d %H:%M:%S %Y").isoformat()
    except ValueError:
        return None


def _scan(pool: Pool, lines: list[str]) -> None:
    text = lines[0].strip() if lines else ""
    pool.scan = " ".join(line.strip() for line in lines) or None
    if not text or text.startswith("none requested"):
        pool.scrub_state = "none"
    elif m := SCRUB_DONE_RE.match(text):
        pool.scrub_state = "finished" if m.group(1) == "scrub repaired" else "resilvered"
        pool.scrub_repaired, pool.scrub_errors = m.group(2), int(m.group(3))
        pool.last_scrub_end = _local_time(m.group(4))
    elif m := IN_PROGRESS_RE.match(text):
        pool.scrub_state = "in_progress" if m.group(1) == "scrub" else "resilvering"
        done = DONE_RE.search(pool.scan or "")
        pool.scrub_percent_done = float(done.group(1)) if done else None
    elif m := CANCELED_RE.match(text):
        pool.scrub_state = "canceled"
    else:
        pool.scrub_state = "unknown"


#   pool: tank          state: ONLINE        scan: none requested       config:
# errors: No known data errors       (keys are indented with spaces, the vdev tree with a tab)
KEY_RE = re.compile(r"^ {0,6}(pool|state|status|action|see|scan|config|errors):(?:\s+(.*))?$")


def parse_zpool_status(out: Output, pools: dict[str, Pool], warnings: list[str]) -> None:
    """Fill each pool's status, scan, errors and vdev tree from ``zpool status``."""
    pool: Pool | None = None
    key: str | None = None
    blocks: dict[str, list[str]] = {}
    in_config = False
    base_indent: int | None = None
    group: str | None = None

    def finish() -> None:
        if pool is None:
            return
        pool.status = " ".join(blocks.get("status", [])) or None
        pool.action = " ".join(blocks.get("action", [])) or None
        pool.errors = " ".join(blocks.get("errors", [])) or None
        _scan(pool, blocks.get("scan", []))

    for no, line in enumerate(out.stdout.splitlines(), start=1):
        stripped = line.strip()
        m = KEY_RE.match(line)
        if m:
            key, value = m.group(1), (m.group(2) or "").strip()
            if key == "pool":
                finish()
                name = value
                pool = pools.get(name) or Pool(name=name, health="UNKNOWN")
                if name not in pools:
                    warnings.append(f"pool {name} is in zpool status but not in zpool list")
                    pools[name] = pool
                blocks, in_config, base_indent, group = {}, False, None, None
            elif key == "config":
                in_config = True
            else:
                in_config = False
                blocks.setdefault(key, []).extend([value] if value else [])
            continue
        if pool is None or not stripped:
            continue
        if not in_config:
            if key is not None:
                blocks.setdefault(key, []).append(stripped)
            continue
        if stripped.startswith("NAME") and "STATE" in stripped:
            continue
        indent = len(line.expandtabs(8)) - len(line.expandtabs(8).lstrip())
        if stripped in GROUPS:
            group = stripped
            continue
        vm = VDEV_RE.match(line.expandtabs(8).rstrip())
        sm = SPARE_RE.match(line.expandtabs(8).rstrip())
        if vm and vm.group("name") == pool.name and base_indent is None:
            base_indent = indent
            try:
                pool.read_errors, pool.write_errors, pool.checksum_errors = (
                    count(vm["r"]), count(vm["w"]), count(vm["c"]))
            except ValueError:
                raise ParseError("zpool status: unexpected error counters", line, no) from None
            continue
        if base_indent is None:
            base_indent = indent - 2  # a group (logs/cache) row before the pool row cannot happen; be lenient
        depth = max((indent - base_indent) // 2 - 1, 0)
        if vm:
            try:
                errors = (count(vm["r"]), count(vm["w"]), count(vm["c"]))
            except ValueError:
                raise ParseError("zpool status: unexpected error counters", line, no) from None
            pool.vdevs.append(Vdev(name=vm["name"], state=vm["state"], read_errors=errors[0], write_errors=errors[1],
                                   checksum_errors=errors[2], depth=depth, group=group,
                                   note=(vm["note"] or "").strip() or None))
        elif sm:
            pool.vdevs.append(Vdev(name=sm["name"], state=sm["state"].split()[0], depth=depth, group=group))
        else:
            raise ParseError("zpool status: unexpected line in the vdev tree", line, no)
    finish()


def parse_outputs(outputs: dict[str, Output]) -> ParseResult[Zfs]:
    for out in outputs.values():
        if not out.ok and NO_MODULE_RE.search(out.stderr):
            raise Unsupported(f"ZFS is not available: {out.stderr.strip().splitlines()[0]}")
    pools = parse_zpool_list(require(outputs.get("zpool list"), "zpool list", "zpool"))
    warnings: list[str] = []
    status = outputs.get("zpool status")
    if status is not None and status.ok:
        parse_zpool_status(status, pools, warnings)
    else:
        warnings.append(f"no vdev tree or scrub state: {status.failure() if status else 'zpool status missing'}")
    datasets: list[Dataset] = []
    zl = outputs.get("zfs list")
    if zl is not None and zl.ok:
        datasets = parse_zfs_list(zl)
    elif zl is not None:
        warnings.append(f"no datasets: {zl.failure()}")
    return ParseResult(Zfs(pools=sorted(pools.values(), key=lambda p: p.name), datasets=datasets), warnings)


def parse(text: str) -> ParseResult[Zfs]:
    """Parse a capture file with sections ``zpool list``, ``zpool status`` and ``zfs list``."""
    return parse_outputs(read_nonempty(text))
