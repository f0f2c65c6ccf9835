"""The shapes the revisions of ``versions/`` repeat: columns from a compact spec, key columns of
time-series tables, their device-time index, TimescaleDB detection, hypertables with their
compression and retention policies, hourly aggregates.

Every revision calls these as they are now: a change here must leave the SQL each past revision
emits the same. Tables and columns are stated by each revision itself, never taken from the models.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping, Sequence

import sqlalchemy as sa
from alembic import context, op
from sqlalchemy.dialects import postgresql

from shared.settings import Settings

log = logging.getLogger("schema.migrations")

UUID = postgresql.UUID(as_uuid=True)
JSONB = postgresql.JSONB()
TZ = sa.DateTime(timezone=True)

COMPRESS_AFTER = "7 days"

_TYPES: dict[str, sa.types.TypeEngine] = {
    "int": sa.Integer(), "bigint": sa.BigInteger(), "float": sa.Float(), "bool": sa.Boolean(),
    "text": sa.Text(), "jsonb": JSONB, "tz": TZ, "uuid": UUID,
}
_COLUMN = re.compile(r"(\w+):(\w+)(?:\((\d+)(?:,(\d+))?\))?(\?)?(?:=(\S+))?")


def _column_type(name: str, size: str | None = None, scale: str | None = None) -> sa.types.TypeEngine:
    """The type a spec names: int, bigint, float, bool, text, jsonb, tz (timestamptz), uuid,
    varchar(N) or numeric(P,S)."""
    if name == "varchar" and size and scale is None:
        return sa.String(length=int(size))
    if name == "numeric" and size and scale:
        return sa.Numeric(precision=int(size), scale=int(scale))
    if name in _TYPES and size is None:
        return _TYPES[name]
    raise ValueError(f"unknown column type {name!r}")


def columns(spec: str) -> list[sa.Column]:
    """The columns of ``spec``, in order: whitespace-separated ``name:type`` tokens, with ``?`` after
    the type for a nullable column and ``=SQL`` (no spaces) for a server default, e.g.
    ``created_at:tz=now()``. A line may end with ``# text``, the comment of its only column."""
    result: list[sa.Column] = []
    for line in spec.splitlines():
        tokens, _, comment = line.partition("#")
        names = tokens.split()
        if comment and len(names) != 1:
            raise ValueError(f"a commented line holds one column: {line!r}")
        for token in names:
            match = _COLUMN.fullmatch(token)
            if match is None:
                raise ValueError(f"not a column spec: {token!r}")
            name, type_name, size, scale, nullable, default = match.groups()
            result.append(sa.Column(
                name, _column_type(type_name, size, scale), nullable=bool(nullable),
                server_default=sa.text(default) if default else None, comment=comment.strip() or None))
    return result


def scalar(sql: str, **params: object) -> object:
    return op.get_bind().execute(sa.text(sql), params).scalar()


def timescaledb_available() -> bool:
    """Whether the server can create the timescaledb extension (False in offline mode, with a warning)."""
    if context.is_offline_mode():
        log.warning("offline mode cannot detect TimescaleDB: rendering the plain PostgreSQL schema")
        return False
    return scalar("SELECT 1 FROM pg_available_extensions WHERE name = 'timescaledb'") is not None


def timescaledb_installed() -> bool:
    """Whether the timescaledb extension is installed in this database (False in offline mode)."""
    if context.is_offline_mode():
        return False
    return scalar("SELECT 1 FROM pg_extension WHERE extname = 'timescaledb'") is not None


def is_continuous_aggregate(name: str) -> bool:
    if not timescaledb_installed():
        return False
    return scalar("SELECT 1 FROM timescaledb_information.continuous_aggregates "
                  "WHERE view_schema = current_schema() AND view_name = :name", name=name) is not None


def metrics_retention_days() -> int:
    """Days the metrics rows are kept (INFRAWATCH_METRICS_RETENTION_DAYS); 0 or less: forever."""
    return Settings().metrics_retention_days


def series_table(name: str, keys: Sequence[sa.Column], *columns: sa.Column) -> None:
    """A table of per-device samples: ``time``, ``device_id``, its own ``keys``, ``event_id``, then
    ``columns``; primary key (time, device_id, *keys) and the device-time index."""
    op.create_table(
        name,
        sa.Column("time", TZ, nullable=False),
        sa.Column("device_id", UUID, nullable=False),
        *keys,
        sa.Column("event_id", UUID, nullable=False),
        *columns,
        sa.PrimaryKeyConstraint("time", "device_id", *(key.name for key in keys), name=op.f(f"pk_{name}")),
    )
    device_time_index(name)


def event_table(name: str, *columns: sa.Column) -> None:
    """A table of events: ``time``, ``event_id``, then ``columns``; primary key (time, event_id)."""
    op.create_table(
        name,
        sa.Column("time", TZ, nullable=False),
        sa.Column("event_id", UUID, nullable=False),
        *columns,
        sa.PrimaryKeyConstraint("time", "event_id", name=op.f(f"pk_{name}")),
    )


def device_time_index(table: str, name: str | None = None) -> None:
    """Index on (device_id, time DESC), named ``ix_<table>_device_time`` unless ``name`` is given."""
    op.create_index(name or f"ix_{table}_device_time", table, ["device_id", sa.text("time DESC")])


def enable_compression(table: str, segmentby: str = "device_id", orderby: str = "time DESC") -> None:
    op.execute(f"ALTER TABLE {table} SET (timescaledb.compress, timescaledb.compress_segmentby = '{segmentby}', "
               f"timescaledb.compress_orderby = '{orderby}')")


def compression_policy(table: str, after: str = COMPRESS_AFTER, initial_start: str | None = None) -> None:
    start = f", initial_start => {initial_start}" if initial_start else ""
    op.execute(f"SELECT add_compression_policy('{table}', INTERVAL '{after}', if_not_exists => true{start})")


def hypertables(tables: Sequence[str], retention_days: Mapping[str, int | None] | None = None,
                segment_by: Mapping[str, str] | None = None) -> None:
    """Each table as a hypertable on ``time``, compressed after COMPRESS_AFTER (segmented by
    ``segment_by[table]``, else device_id) and purged after ``retention_days[table]`` when that is
    over 0 (None, 0 or less, or no entry: kept forever). Creates the timescaledb extension first."""
    op.execute("CREATE EXTENSION IF NOT EXISTS timescaledb")
    for table in tables:
        op.execute(f"SELECT create_hypertable('{table}', 'time', migrate_data => true, if_not_exists => true)")
        enable_compression(table, (segment_by or {}).get(table, "device_id"))
        compression_policy(table)
        days = (retention_days or {}).get(table)
        if days is not None and days > 0:
            op.execute(f"SELECT add_retention_policy('{table}', INTERVAL '{int(days)} days', if_not_exists => true)")


def drop_tables(tables: Sequence[str]) -> None:
    """Drops each table, in the reverse order. Dropping a hypertable removes its chunks and its
    compression and retention jobs; CASCADE also removes the tables of its compressed chunks,
    which TimescaleDB otherwise leaves behind."""
    for table in reversed(tables):
        op.execute(f"DROP TABLE {table} CASCADE")


def hourly_view(view: str, columns: str, continuous: bool) -> None:
    """``view`` of hourly ``bucket``s followed by ``columns`` (the rest of the SELECT: columns, FROM,
    GROUP BY bucket): a continuous aggregate refreshed every hour when ``continuous`` (TimescaleDB
    installed), a plain view otherwise."""
    if not continuous:
        op.execute(f"CREATE VIEW {view} AS SELECT date_trunc('hour', time) AS bucket,{columns}")
        return
    with op.get_context().autocommit_block():  # a continuous aggregate cannot be created in a transaction
        op.execute(
            f"CREATE MATERIALIZED VIEW {view} "
            "WITH (timescaledb.continuous, timescaledb.materialized_only = false) AS "
            f"SELECT time_bucket(INTERVAL '1 hour', time) AS bucket,{columns} WITH NO DATA")
    # Refresh no further back than the raw rows are kept, or the refresh would empty old buckets.
    days = metrics_retention_days()
    start_days = min(3, days) if days > 0 else 3
    op.execute(
        f"SELECT add_continuous_aggregate_policy('{view}', start_offset => INTERVAL '{start_days} days', "
        "end_offset => INTERVAL '1 hour', schedule_interval => INTERVAL '1 hour', if_not_exists => true)")
