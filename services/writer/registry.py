"""The writer's table and projector registry; the projection modules register into it.

A table is declared by its model (``schema.models`` or a data type's ``table.py``): its columns,
in the model's order, are what the sink copies, and its JSONB columns are encoded here.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import msgspec
from sqlalchemy.dialects.postgresql import JSONB

from schema.base import Base
from shared.envelope import Event

Row = tuple[Any, ...]
Rows = dict[str, list[Row]]
TableRows = dict[str, list[dict[str, Any]]]
Projector = Callable[[Any, int], TableRows]

COLUMNS: dict[str, tuple[str, ...]] = {}
JSON_COLUMNS: dict[str, frozenset[int]] = {}
CONFLICT: dict[str, str] = {}
NEWEST: dict[str, tuple[str, str]] = {}  # table -> (key columns, order): one row per key in a batch
PROJECTORS: dict[type[Event], Projector] = {}
IMMUTABLE = "ON CONFLICT DO NOTHING"

_json = msgspec.json.Encoder()


class ProjectionError(ValueError):
    """An event that decodes but cannot be projected (e.g. no device_id)."""


def table(model: type[Base], conflict: str = IMMUTABLE, newest: tuple[str, str] | None = None) -> None:
    """Declare a projected table by its model, and how a repeated key is resolved. ``newest``
    (key columns, order) keeps only the first row of each key in that order within a batch: an
    ``ON CONFLICT DO UPDATE`` cannot touch one row twice."""
    cols = model.__table__.columns
    name = model.__tablename__
    COLUMNS[name] = tuple(c.name for c in cols)
    JSON_COLUMNS[name] = frozenset(i for i, c in enumerate(cols) if isinstance(c.type, JSONB))
    CONFLICT[name] = conflict
    if newest is not None:
        NEWEST[name] = newest


def projector(*event_types: type[Event]) -> Callable[[Projector], Projector]:
    def register(fn: Projector) -> Projector:
        for t in event_types:
            PROJECTORS[t] = fn
        return fn
    return register


def from_fields(tbl: str, source: object, **computed: Any) -> dict[str, Any]:
    """A row of ``tbl``: each column from ``computed`` when given there, else the same-named attribute of ``source``."""
    return {c: computed[c] if c in computed else getattr(source, c) for c in COLUMNS[tbl]}


def as_tuples(tbl: str, records: list[dict[str, Any]]) -> list[Row]:
    """Rows as tuples in the table's column order, JSONB values as JSON text; a missing or unknown column raises."""
    cols = COLUMNS[tbl]
    json = JSON_COLUMNS[tbl]
    out = []
    for r in records:
        if len(r) != len(cols):
            raise ProjectionError(f"{tbl}: columns {sorted(set(r) ^ set(cols))} do not match the table")
        out.append(tuple(
            _json.encode(r[c]).decode() if i in json and r[c] is not None else r[c] for i, c in enumerate(cols)
        ))
    return out
