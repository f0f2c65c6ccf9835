"""Writer projections of the collector's data types: pure rows per type, then the writer on real
events against real NATS and PostgreSQL."""

from __future__ import annotations

import asyncio
import uuid

import pytest

from services.collector.registry import DATA_TYPES
from services.writer.projection import rows
from services.writer.registry import COLUMNS
from shared import events
from shared.collected import COLLECTED_TYPES
from shared.datatypes import captures
from shared.names import Names
from shared.runtime.publish import publish_event
from shared.settings import Settings
from tests.util import fetch, wait_until

SAMPLES = {
    "containers": "docker-24-compose", "drive_health": "sas-and-failing", "network": "debian11-docker-wireguard",
    "zfs": "proxmox-openzfs-2.2", "systemd_services": "debian12-server", "inventory": "rocky9-a-week-later",
}
TABLES = {
    "containers": "container_snapshots", "drive_health": "drive_health", "network": "network_interfaces",
    "zfs": "zfs_pools", "systemd_services": "systemd_snapshots", "inventory": "inventory_snapshots",
}


def event(data_type: str, device_id: uuid.UUID, **fields):
    payload = DATA_TYPES[data_type].parse((captures(data_type) / f"{SAMPLES[data_type]}.txt").read_text()).payload
    if data_type == "inventory":
        before = DATA_TYPES["inventory"].parse((captures("inventory") / "rocky9-rpm-proxy.txt").read_text()).payload
        payload = DATA_TYPES["inventory"].with_previous(before, payload)
    if data_type == "containers":
        gone = DATA_TYPES["containers"].parse((captures("containers") / "podman-4.9.txt").read_text()).payload
        payload = DATA_TYPES["containers"].with_previous(gone, payload)
    base = dict(device_id=device_id, device="dev1", service="collector", instance="test", trigger="poll",
                ssh_command_count=2, payload=payload)
    return events.new_event(COLLECTED_TYPES[data_type], **{**base, **fields})


def as_dicts(out, table: str) -> list[dict]:
    return [dict(zip(COLUMNS[table], r)) for r in out.get(table, [])]


@pytest.mark.parametrize("data_type", list(SAMPLES))
def test_one_audit_row_and_the_data_rows(data_type: str) -> None:
    ev = event(data_type, uuid.uuid4())
    out = rows(ev)
    data = as_dicts(out, TABLES[data_type])
    audit = as_dicts(out, "data_collection_audit")
    assert len(audit) == 1 and audit[0]["records_created"] == len(data) > 0
    assert all(r["time"] == ev.occurred_at and r["event_id"] == ev.event_id for r in data)
    assert rows(ev) == rows(events.decode(events.encode(ev)))  # redelivery gives the same rows


def test_container_rows_include_the_removed_ones() -> None:
    data = as_dicts(rows(event("containers", uuid.uuid4())), "container_snapshots")
    assert [r["removed"] for r in data].count(True) == 2  # the two podman containers of the previous snapshot
    live = {r["name"]: r for r in data if not r["removed"]}
    assert live["web-db-1"]["health"] == "unhealthy" and live["promtail"]["restart_count"] == 14


def test_drive_rows_keep_health_and_attributes() -> None:
    data = {r["drive_name"]: r for r in as_dicts(rows(event("drive_health", uuid.uuid4())), "drive_health")}
    assert data["/dev/sdb"]["is_healthy"] is False and data["/dev/sdb"]["smartctl_exit_status"] == 0x78
    assert '"Reallocated_Sector_Ct"' in data["/dev/sdb"]["smart_attributes"]


def test_inventory_row_carries_the_drift() -> None:
    (row,) = as_dicts(rows(event("inventory", uuid.uuid4())), "inventory_snapshots")
    assert row["has_drift"] is True and '"postgresql-server"' in row["drift"]


def test_failed_and_skipped_operations_project_only_an_audit_row() -> None:
    failed = event("zfs", uuid.uuid4(), status="unsupported", error="zpool is not installed", payload=None)
    skipped = event("network", uuid.uuid4(), skipped_fresh=True, payload=None, ssh_command_count=0)
    for ev, cache_hit in ((failed, False), (skipped, True)):
        out = rows(ev)
        assert set(out) == {"data_collection_audit"}
        (audit,) = as_dicts(out, "data_collection_audit")
        assert audit["cache_hit"] is cache_hit and audit["status"] == ev.status


async def test_writer_projects_real_events(nats_url, database_url, tmp_path) -> None:
    from services.writer.service import run

    settings = Settings(nats_url=nats_url, database_url=database_url, subject_prefix=f"t{uuid.uuid4().hex[:10]}",
                        data_dir=tmp_path, instance="test", writer_batch_wait_s=0.2)
    from shared.runtime.bootstrap import ensure
    from shared.runtime.nats_conn import connect

    nc = await connect(settings, "test")
    names = Names(settings.subject_prefix)
    device = uuid.uuid4()
    try:
        js = nc.jetstream()
        await ensure(js, settings)
        published = [event(t, device) for t in SAMPLES]
        for ev in published:
            await publish_event(js, names.collected("dev1", ev.data_type), ev)
        stop = asyncio.Event()
        task = asyncio.create_task(run(settings, stop))
        try:
            async def audited():
                return len(await fetch(database_url, "SELECT 1 FROM data_collection_audit WHERE device_id = $1",
                                       device)) == len(published)
            await wait_until(audited, timeout=60, what="one audit row per event")
            for data_type, table in TABLES.items():
                expected = rows(next(e for e in published if e.data_type == data_type))[table]
                got = await fetch(database_url, f"SELECT count(*) AS n FROM {table} WHERE device_id = $1", device)
                assert got[0]["n"] == len(expected), table
            removed = await fetch(database_url, "SELECT count(*) AS n FROM container_snapshots WHERE removed")
            assert removed[0]["n"] == 2
        finally:
            stop.set()
            await asyncio.wait_for(task, 30)
    finally:
        await nc.close()
