"""Set-based writes: COPY each table's rows into a temporary staging table, then one
``INSERT … SELECT … ON CONFLICT`` into the real table, all in one transaction."""

from __future__ import annotations

import asyncpg

from services.writer.nul import REFUSED_NUL, without_nul
from services.writer.registry import COLUMNS, CONFLICT, NEWEST, Rows

# Bad values in the rows themselves (raised client-side while encoding them).
DATA_ERRORS = (asyncpg.exceptions.DataError, OverflowError, ValueError)

# Connection-level failures and exhausted resources (disk full: SQLSTATE 53100, under
# InsufficientResourcesError): the database cannot take the write now, retry later; anything else
# is a problem with the data itself.
UNAVAILABLE = (
    OSError,
    asyncpg.exceptions.PostgresConnectionError,
    asyncpg.exceptions.InterfaceError,
    asyncpg.exceptions.CannotConnectNowError,
    asyncpg.exceptions.AdminShutdownError,
    asyncpg.exceptions.TooManyConnectionsError,
    asyncpg.exceptions.InsufficientResourcesError,
    ConnectionError,
    TimeoutError,
)


def unavailable_type(exc: BaseException) -> str:
    """The perf error type of a write refused for want of the database (or of its disk)."""
    if isinstance(exc, asyncpg.exceptions.DiskFullError):
        return "database_disk_full"
    return "database_unavailable"


# Tables written before others within a batch (devices first, so joins find them).
ORDER = ("devices",)


def _stage(table: str) -> str:
    return f"_stage_{table}"


async def write(conn: asyncpg.Connection, batch: Rows) -> int:
    """Write all rows of a batch in one transaction; returns the number of rows inserted. A batch
    refused for a NUL character is written again with the NULs replaced (``nul.without_nul``)."""
    try:
        return await _write(conn, batch)
    except REFUSED_NUL:
        return await _write(conn, without_nul(batch))


async def _write(conn: asyncpg.Connection, batch: Rows) -> int:
    inserted = 0
    tables = sorted(batch, key=lambda t: (t not in ORDER, t))
    async with conn.transaction():
        for table in tables:
            records = batch[table]
            if not records:
                continue
            cols = COLUMNS[table]
            collist = ", ".join(cols)
            stage = _stage(table)
            await conn.execute(
                f"CREATE TEMP TABLE IF NOT EXISTS {stage} (LIKE {table} INCLUDING DEFAULTS) ON COMMIT DELETE ROWS"
            )
            await conn.copy_records_to_table(stage, records=records, columns=cols)
            source = stage
            if table == "devices":
                # The newest event of each device; removals first, so a name removed and registered
                # again (under a new id) in the same batch never has two live rows.
                source = (f"(SELECT DISTINCT ON (id) {collist} FROM {stage} ORDER BY id, stream_seq DESC) s "
                          "ORDER BY deleted_at IS NULL, stream_seq")
            elif table in NEWEST:
                key, order = NEWEST[table]
                source = f"(SELECT DISTINCT ON ({key}) {collist} FROM {stage} ORDER BY {key}, {order}) s"
            status = await conn.execute(f"INSERT INTO {table} ({collist}) SELECT {collist} FROM {source} {CONFLICT[table]}")
            inserted += int(status.rsplit(" ", 1)[-1])
    return inserted
