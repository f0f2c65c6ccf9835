"""The migrations on TimescaleDB with compressed chunks, as a deployment that has run for weeks has them.
These tests run on the TimescaleDB server only."""

from __future__ import annotations

import asyncio
import uuid
from datetime import timedelta

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import create_async_engine
from sqlalchemy.pool import NullPool

from schema.migrate import async_url, downgrade, upgrade
from schema.models import TIME_SERIES_TABLES, Base
from tests.test_migrations import MODEL_TABLES, _one_row_per_table, _row_counts
from tests.timescale import COMPRESS_OLD_CHUNKS
from tests.util import fetch, fetchval

OLD = timedelta(days=20)  # the chunk holding such a row ended over 7 days ago: it can be compressed
LATENCY = 61_353_642_683  # ms since a 2024 mtime: does not fit an INTEGER column


async def _insert_old_rows(url: str) -> None:
    """One row per table; time-series rows 20 days old."""
    engine = create_async_engine(async_url(url), poolclass=NullPool)
    try:
        async with engine.begin() as conn:
            present = set(await conn.run_sync(lambda c: sa.inspect(c).get_table_names()))
            for name, row in _one_row_per_table().items():
                if name not in present:  # created by a later revision
                    continue
                if "time" in row:
                    row = {**row, "time": row["time"] - OLD}
                await conn.execute(sa.insert(Base.metadata.tables[name]).values(**row))
    finally:
        await engine.dispose()


async def _compression(url: str) -> dict[str, tuple]:
    """Per hypertable: compression enabled, segmentby, orderby and the compression policy's threshold."""
    rows = await fetch(url, """
        SELECT h.hypertable_name, h.compression_enabled, s.segmentby, s.orderby, j.config->>'compress_after' AS after
        FROM timescaledb_information.hypertables h
        LEFT JOIN timescaledb_information.hypertable_compression_settings s
          ON s.hypertable = format('%I.%I', h.hypertable_schema, h.hypertable_name)::regclass
        LEFT JOIN timescaledb_information.jobs j
          ON j.hypertable_name = h.hypertable_name AND j.proc_name = 'policy_compression'
        WHERE h.hypertable_schema = current_schema()""")
    return {r["hypertable_name"]: (r["compression_enabled"], r["segmentby"], r["orderby"], r["after"]) for r in rows}


async def _compressed_tables(url: str) -> set[str]:
    rows = await fetch(url, "SELECT DISTINCT hypertable_name FROM timescaledb_information.chunks WHERE is_compressed")
    return {r["hypertable_name"] for r in rows}


async def _column_type(url: str, table: str, column: str) -> str:
    return await fetchval(url, "SELECT data_type FROM information_schema.columns "
                               "WHERE table_schema = current_schema() AND table_name = $1 AND column_name = $2",
                          table, column)


async def test_wide_columns_revision_up_and_down_over_compressed_chunks(timescaledb, empty_database_url):
    url = empty_database_url
    await asyncio.to_thread(upgrade, url, "0004")
    await _insert_old_rows(url)
    assert await fetchval(url, COMPRESS_OLD_CHUNKS) >= len(TIME_SERIES_TABLES)
    assert set(TIME_SERIES_TABLES) <= await _compressed_tables(url)
    before = await _compression(url)
    assert all(enabled and after == "7 days" for enabled, _, _, after in before.values()), before

    await asyncio.to_thread(upgrade, url, "0005")
    assert all(n == 1 for n in (await _row_counts(url)).values())
    assert await _compression(url) == before
    assert await _column_type(url, "configuration_snapshots", "detection_latency_ms") == "bigint"

    # Compressed again, the old chunk takes a value that the INTEGER column refused.
    assert await fetchval(url, COMPRESS_OLD_CHUNKS) >= 1
    (snapshot,) = await fetch(url, "SELECT * FROM configuration_snapshots")
    big = {**dict(snapshot), "id": uuid.uuid4(), "event_id": uuid.uuid4(), "detection_latency_ms": LATENCY}
    cols = ", ".join(big)
    await fetch(url, f"INSERT INTO configuration_snapshots ({cols}) VALUES "
                     f"({', '.join(f'${i + 1}' for i in range(len(big)))})", *big.values())
    assert await fetchval(url, "SELECT max(detection_latency_ms) FROM configuration_snapshots") == LATENCY

    await fetch(url, "DELETE FROM configuration_snapshots WHERE detection_latency_ms = $1", LATENCY)
    await fetchval(url, COMPRESS_OLD_CHUNKS)
    await asyncio.to_thread(downgrade, url, "0004")
    assert all(n == 1 for n in (await _row_counts(url)).values())
    assert await _compression(url) == before
    assert await _column_type(url, "configuration_snapshots", "detection_latency_ms") == "integer"

    await asyncio.to_thread(upgrade, url)
    counts = await _row_counts(url)
    assert all(counts[t] == 1 for t in before), counts


async def _downgrade_to_base_over_compressed_chunks(url: str) -> None:
    await _insert_old_rows(url)
    assert await fetchval(url, COMPRESS_OLD_CHUNKS) >= len(TIME_SERIES_TABLES)
    await asyncio.to_thread(downgrade, url, "0004")  # 0005 decompresses on its way down: compress again
    assert await fetchval(url, COMPRESS_OLD_CHUNKS) >= len(TIME_SERIES_TABLES)
    await asyncio.to_thread(downgrade, url, "base")


async def test_downgrade_to_base_over_compressed_chunks_removes_every_hypertable(timescaledb, database_url):
    await _downgrade_to_base_over_compressed_chunks(database_url)
    left = await fetch(database_url, "SELECT schema_name, table_name FROM _timescaledb_catalog.hypertable")
    assert [dict(r) for r in left] == []
    await asyncio.to_thread(upgrade, database_url)
    counts = await _row_counts(database_url)
    assert set(counts) == MODEL_TABLES and all(n == 0 for n in counts.values())


async def test_downgrade_to_base_over_compressed_chunks_leaves_no_chunk_table_behind(timescaledb, database_url):
    await _downgrade_to_base_over_compressed_chunks(database_url)
    tables = await fetch(database_url, "SELECT c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
                                       "WHERE n.nspname = '_timescaledb_internal' AND c.relkind = 'r' "
                                       "AND c.relname LIKE '%chunk'")
    assert [r["relname"] for r in tables] == []
