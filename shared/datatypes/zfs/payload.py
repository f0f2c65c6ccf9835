"""Payload of a zfs collection: pools (health, vdevs, errors, scrub) and datasets."""

from __future__ import annotations

import msgspec

from shared.envelope import KeyName


class Vdev(msgspec.Struct, kw_only=True):
    name: str
    state: str
    read_errors: int = 0
    write_errors: int = 0
    checksum_errors: int = 0
    depth: int = 0  # 0: a top-level vdev (mirror-0, raidz2-0, or a single disk), 1: its disks
    group: str | None = None  # None for data vdevs; "logs", "cache", "spares", "special", "dedup"
    note: str | None = None  # what zpool prints after the counters: "(resilvering)", "was /dev/sdc1"


class Pool(msgspec.Struct, kw_only=True):
    name: KeyName
    health: str  # ONLINE, DEGRADED, FAULTED, OFFLINE, UNAVAIL, REMOVED, SUSPENDED
    size_bytes: int | None = None
    allocated_bytes: int | None = None
    free_bytes: int | None = None
    fragmentation_percent: int | None = None
    capacity_percent: int | None = None
    dedup_ratio: float | None = None
    read_errors: int = 0
    write_errors: int = 0
    checksum_errors: int = 0
    status: str | None = None  # zpool status' "status:" text, when the pool has a problem
    action: str | None = None
    scan: str | None = None  # the "scan:" text as printed
    scrub_state: str = "none"  # none, in_progress, finished, canceled, resilvering, resilvered
    last_scrub_end: str | None = None  # host local time, ISO 8601 without zone
    scrub_repaired: str | None = None
    scrub_errors: int | None = None
    scrub_percent_done: float | None = None
    errors: str | None = None  # "No known data errors", or the count of files with errors
    vdevs: list[Vdev] = []


class Dataset(msgspec.Struct, kw_only=True):
    name: str
    used_bytes: int
    available_bytes: int
    referenced_bytes: int
    mountpoint: str | None = None


class Zfs(msgspec.Struct, kw_only=True):
    pools: list[Pool] = []
    datasets: list[Dataset] = []
