"""The Alembic migrations against a real PostgreSQL (and TimescaleDB when the server has it)."""

from __future__ import annotations

import asyncio
import json
import logging
import uuid
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import asyncpg
import msgspec
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy.ext.asyncio import create_async_engine
from sqlalchemy.pool import NullPool

from schema.migrate import async_url, current, downgrade, head, upgrade
from schema.models import ALERT_TIME_SERIES_TABLES, DATA_TYPE_TABLES, TIME_SERIES_TABLES, Base
from shared.datatypes import REGISTRY, captures
from shared.policy_events import path_key
from shared.settings import Settings

MODEL_TABLES = set(Base.metadata.tables)
HOURLY_VIEW = "system_metrics_hourly"
HEAD = head()
CONTAINER_HOURLY_VIEW = "container_snapshots_hourly"


async def _fetch(url: str, sql: str, *args) -> list[asyncpg.Record]:
    conn = await asyncpg.connect(url)
    try:
        return await conn.fetch(sql, *args)
    finally:
        await conn.close()


async def _tables(url: str) -> set[str]:
    rows = await _fetch(url, "SELECT table_name FROM information_schema.tables "
                             "WHERE table_schema = current_schema() AND table_type = 'BASE TABLE'")
    return {r["table_name"] for r in rows} - {"alembic_version"}


async def _relation_exists(url: str, name: str) -> bool:
    rows = await _fetch(url, "SELECT 1 FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
                             "WHERE n.nspname = current_schema() AND c.relname = $1", name)
    return bool(rows)


async def test_upgrade_creates_every_model_table(empty_database_url):
    assert await asyncio.to_thread(current, empty_database_url) is None
    await asyncio.to_thread(upgrade, empty_database_url)
    assert await _tables(empty_database_url) == MODEL_TABLES
    assert await _relation_exists(empty_database_url, HOURLY_VIEW)
    assert await _relation_exists(empty_database_url, CONTAINER_HOURLY_VIEW)
    assert await asyncio.to_thread(current, empty_database_url) == HEAD
    # Idempotent at head; the asyncpg URL form is accepted too.
    await asyncio.to_thread(upgrade, async_url(empty_database_url))


async def test_downgrade_of_a_fresh_schema_removes_everything(empty_database_url):
    await asyncio.to_thread(upgrade, empty_database_url)
    await asyncio.to_thread(downgrade, empty_database_url, "base")
    assert await _tables(empty_database_url) == set()
    assert not await _relation_exists(empty_database_url, HOURLY_VIEW)
    assert not await _relation_exists(empty_database_url, CONTAINER_HOURLY_VIEW)
    assert await asyncio.to_thread(current, empty_database_url) is None

    await asyncio.to_thread(upgrade, empty_database_url)
    assert await _tables(empty_database_url) == MODEL_TABLES
    assert await asyncio.to_thread(current, empty_database_url) == HEAD


def _json_ready(value: object) -> object:
    return msgspec.to_builtins(value) if isinstance(value, (list, dict, msgspec.Struct)) else value


def _data_type_rows(now: datetime, device: uuid.UUID, event: uuid.UUID) -> dict[str, dict]:
    """The first row of every data type's tables, projected from the capture the type declares."""
    out = {}
    for t in REGISTRY.values():
        payload = t.collect.parse((captures(t.name) / t.sample).read_text()).payload
        for table, records in t.rows(payload).items():
            out[table] = {"time": now, "device_id": device, "event_id": event,
                          **{k: _json_ready(v) for k, v in records[0].items()}}
    return out


def _one_row_per_table() -> dict[str, dict]:
    now = datetime.now(UTC)
    device, event, snapshot = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
    rule, alert, policy = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
    return {
        **_data_type_rows(now, device, event),
        "devices": dict(id=device, name="web-1", address="10.0.0.5", stream_seq=1),
        "data_collection_audit": dict(time=now, event_id=event, device_id=device, operation_id=uuid.uuid4(),
                                      data_type="system_metrics", collection_method="ssh", trigger="poll",
                                      status="success"),
        "configuration_snapshots": dict(id=snapshot, time=now, device_id=device, event_id=event,
                                        config_type="docker_compose", file_path="/srv/compose.yaml",
                                        content_hash="0" * 64, raw_content="services: {}",
                                        change_type="created", collection_source="watch"),
        "configuration_change_events": dict(id=uuid.uuid4(), time=now, device_id=device, snapshot_id=snapshot,
                                            config_type="docker_compose", file_path="/srv/compose.yaml",
                                            change_type="created", confidence_score=Decimal("0.90")),
        "service_performance_metrics": dict(time=now, service_name="collector", instance="host-1",
                                            avg_duration_ms=Decimal("12.50")),
        "api_keys": dict(id=uuid.uuid4(), name="ci", prefix="iw_abcd", key_hash="f" * 64, role="admin"),
        "alert_rules": dict(id=rule, name="cpu-high", metric="cpu", operator=">", threshold=90.0, duration_s=30,
                            refire_interval_s=3600, enabled=True, webhook_format="json"),
        "alert_events": dict(time=now, event_id=alert, rule_id=rule, rule_name="cpu-high", device_id=device,
                             metric="cpu", state="fired", value=95.0, threshold=90.0, operator=">", since=now,
                             refire=False),
        "alert_notifications": dict(time=now, event_id=uuid.uuid4(), alert_event_id=alert, rule_id=rule,
                                    device_id=device, url="https://hooks.example.com/…", format="slack", attempts=3,
                                    status="failed", last_error="HTTP 500"),
        "config_current": dict(device_id=device, path_key=path_key("/srv/compose.yaml"), file_path="/srv/compose.yaml",
                               config_type="docker_compose", time=now, snapshot_id=snapshot, event_id=event,
                               change_type="CREATE", content_hash="0" * 64, parsed={"services": {}}),
        "config_policies": dict(id=policy, name="compose-privileged", config_type="docker_compose",
                                jsonpath="$.services.* ? (@.privileged == true)", severity="high",
                                message="privileged service", enabled=True, builtin=True, webhook_format="json"),
        "config_violations": dict(id=uuid.uuid4(), policy_id=policy, policy_name="compose-privileged",
                                  severity="high", message="privileged service", device_id=device,
                                  config_type="docker_compose", file_path="/srv/compose.yaml",
                                  path_key=path_key("/srv/compose.yaml"), state="open", matches=[{"image": "x"}],
                                  match_count=1, opened_at=now, introduced_by={"event_id": str(event)},
                                  fired_event_id=uuid.uuid4(), published=True, notified=True),
        "config_policy_progress": dict(device_id=device, path_key=path_key("/srv/compose.yaml"), time=now,
                                       event_id=event),
    }


async def _insert_rows(url: str) -> None:
    engine = create_async_engine(async_url(url), poolclass=NullPool)
    try:
        async with engine.begin() as conn:
            for name, row in _one_row_per_table().items():
                await conn.execute(sa.insert(Base.metadata.tables[name]).values(**row))
    finally:
        await engine.dispose()


async def _row_counts(url: str) -> dict[str, int]:
    conn = await asyncpg.connect(url)
    try:
        present = MODEL_TABLES & {r["table_name"] for r in await conn.fetch(
            "SELECT table_name FROM information_schema.tables WHERE table_schema = current_schema()")}
        return {t: await conn.fetchval(f'SELECT count(*) FROM "{t}"') for t in sorted(present)}
    finally:
        await conn.close()


async def test_downgrade_and_upgrade_of_a_populated_database(database_url):
    await _insert_rows(database_url)
    assert set(_one_row_per_table()) == MODEL_TABLES
    assert all(n == 1 for n in (await _row_counts(database_url)).values())
    assert (await _fetch(database_url, f"SELECT sample_count FROM {HOURLY_VIEW}"))[0]["sample_count"] == 1

    await asyncio.to_thread(downgrade, database_url, "base")
    assert await _tables(database_url) == set()
    assert not await _relation_exists(database_url, HOURLY_VIEW)

    await asyncio.to_thread(upgrade, database_url)
    assert all(n == 0 for n in (await _row_counts(database_url)).values())


def _include_object(obj, name, type_, reflected, compare_to) -> bool:
    # TimescaleDB adds a "<table>_time_idx" index to hypertables whose keys do not lead with time.
    return not (type_ == "index" and reflected and compare_to is None and name.endswith("_time_idx"))


async def test_migrated_schema_matches_the_models(database_url):
    def diff(conn) -> list:
        ctx = MigrationContext.configure(conn, opts={
            "compare_type": True, "compare_server_default": True, "include_object": _include_object})
        return compare_metadata(ctx, Base.metadata)

    engine = create_async_engine(async_url(database_url), poolclass=NullPool)
    try:
        async with engine.connect() as conn:
            assert await conn.run_sync(diff) == []
    finally:
        await engine.dispose()
    # compare_metadata does not compare index predicates: check the partial unique index directly.
    (index,) = await _fetch(
        database_url, "SELECT indexdef FROM pg_indexes WHERE indexname = 'uq_devices_live_name'")
    assert index["indexdef"].startswith("CREATE UNIQUE INDEX")
    assert index["indexdef"].endswith("(name) WHERE (deleted_at IS NULL)")


async def test_timescaledb_features(timescaledb, empty_database_url):
    database_url = empty_database_url
    await asyncio.to_thread(upgrade, database_url)
    hypertables = await _fetch(database_url, "SELECT hypertable_name, compression_enabled "
                                             "FROM timescaledb_information.hypertables")
    compressed = {r["hypertable_name"] for r in hypertables if r["compression_enabled"]}
    assert set(TIME_SERIES_TABLES) <= compressed

    settings = await _fetch(database_url, """
        SELECT hypertable_name, attname, segmentby_column_index, orderby_column_index, orderby_asc
        FROM timescaledb_information.compression_settings""")
    segment = {r["hypertable_name"]: r["attname"] for r in settings if r["segmentby_column_index"] == 1}
    order = {r["hypertable_name"]: (r["attname"], r["orderby_asc"])
             for r in settings if r["orderby_column_index"] == 1}
    for table in TIME_SERIES_TABLES:
        expected = "service_name" if table == "service_performance_metrics" else "device_id"
        assert segment[table] == expected
        assert order[table] == ("time", False)

    jobs = await _fetch(database_url, """
        SELECT proc_name, hypertable_name, config FROM timescaledb_information.jobs
        WHERE proc_name IN ('policy_compression', 'policy_retention')""")
    compression = {r["hypertable_name"] for r in jobs if r["proc_name"] == "policy_compression"}
    assert set(TIME_SERIES_TABLES) <= compression
    retention = await _fetch(database_url, """
        SELECT hypertable_name, (config->>'drop_after')::interval AS drop_after
        FROM timescaledb_information.jobs WHERE proc_name = 'policy_retention'""")
    kept = {r["hypertable_name"]: r["drop_after"].days for r in retention}
    days = Settings().metrics_retention_days
    forever = {"inventory_snapshots"}  # the drift history
    assert kept == {"data_collection_audit": 90, "service_performance_metrics": 30,
                    **{table: days for table in DATA_TYPE_TABLES if table not in forever}}
    assert set(DATA_TYPE_TABLES) <= compressed
    assert set(ALERT_TIME_SERIES_TABLES) <= compressed

    # TimescaleDB 2.28 names the continuous aggregate itself (not its materialization hypertable)
    # in the refresh job's hypertable_name; the job's config names the materialization hypertable.
    for view in (HOURLY_VIEW, CONTAINER_HOURLY_VIEW):
        refresh = await _fetch(database_url, """
            SELECT j.hypertable_name, j.schedule_interval, j.config,
                   (j.config->>'mat_hypertable_id')::int = ca.mat_hypertable_id AS materializes_view
            FROM timescaledb_information.jobs j
            JOIN _timescaledb_catalog.continuous_agg ca
              ON ca.user_view_schema = j.hypertable_schema AND ca.user_view_name = j.hypertable_name
            WHERE j.proc_name = 'policy_refresh_continuous_aggregate' AND ca.user_view_name = $1""", view)
        assert len(refresh) == 1, view
        (job,) = refresh
        assert job["materializes_view"], (view, job["config"])
        assert job["schedule_interval"] == timedelta(hours=1)
        config = json.loads(job["config"])
        assert (config["start_offset"], config["end_offset"]) == ("3 days", "01:00:00")

    await asyncio.to_thread(downgrade, database_url, "base")
    assert await _fetch(database_url, "SELECT 1 FROM timescaledb_information.hypertables") == []
    # TimescaleDB's own jobs (telemetry, job history retention) name no hypertable and stay.
    assert await _fetch(database_url, "SELECT proc_name, hypertable_name FROM timescaledb_information.jobs "
                                      "WHERE hypertable_name IS NOT NULL") == []
    await asyncio.to_thread(upgrade, database_url)
    assert await _tables(database_url) == MODEL_TABLES


async def test_plain_postgresql_is_reported(empty_database_url, has_timescaledb, caplog):
    with caplog.at_level(logging.WARNING, logger="schema.migrations"):
        await asyncio.to_thread(upgrade, empty_database_url)
    absent = [r for r in caplog.records
              if r.levelno == logging.WARNING and "TimescaleDB is absent" in r.getMessage()]
    if has_timescaledb:
        assert absent == []
    else:
        assert len(absent) == 1
        message = absent[0].getMessage()
        for feature in ("hypertables", "compression", "retention", "continuous aggregate"):
            assert feature in message
