"""Pure projection of events into table rows: ``rows(event, stream_seq) -> {table: [row, ...]}``.

Projectors are registered (``services.writer.registry``) by the modules of
``services.writer.projections``, one per event family, and for every collected data type from
its declaration. Every row carries what makes it unique (the event's time and ids), so
projecting the same event twice yields the same rows and the sink's ``ON CONFLICT`` drops the
repeat.
"""

from __future__ import annotations

from services.writer import projections
from services.writer.registry import PROJECTORS, ProjectionError, Rows, as_tuples
from shared.envelope import Event

__all__ = ["ProjectionError", "Rows", "merge", "rows"]

FAMILIES = projections.REGISTERED  # every projection module, registered on import


def rows(event: Event, stream_seq: int = 0) -> Rows:
    """The rows one event projects to; raises ProjectionError when it cannot be projected."""
    fn = PROJECTORS.get(type(event))
    if fn is None:
        raise ProjectionError(f"no projection for {type(event).__name__}")
    return {tbl: as_tuples(tbl, records) for tbl, records in fn(event, stream_seq).items()}


def merge(into: Rows, more: Rows) -> None:
    for tbl, rs in more.items():
        into.setdefault(tbl, []).extend(rs)
