"""Pure projection of events into table rows: ``rows(event, stream_seq) -> {table: [row, ...]}``.

Tables and projectors are registered by the modules of ``services.writer.projections``, one per
event family. Every row carries what makes it unique (the event's time and ids), so projecting
the same event twice yields the same rows and the sink's ``ON CONFLICT`` drops the repeat.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable
from typing import Any

import msgspec

from shared.envelope import Collected, Event

Row = tuple[Any, ...]
Rows = dict[str, list[Row]]
Projector = Callable[[Event, int], Rows]

COLUMNS: dict[str, tuple[str, ...]] = {}
CONFLICT: dict[str, str] = {}
PROJECTORS: dict[type[Event], Projector] = {}
IMMUTABLE = "ON CONFLICT DO NOTHING"


class ProjectionError(ValueError):
    """An event that decodes but cannot be projected (e.g. no device_id)."""


def table(name: str, columns: tuple[str, ...], conflict: str = IMMUTABLE) -> None:
    """Declare a projected table: its column order and how a repeated key is resolved."""
    COLUMNS[name] = columns
    CONFLICT[name] = conflict


def projector(*event_types: type[Event]) -> Callable[[Projector], Projector]:
    def register(fn: Projector) -> Projector:
        for t in event_types:
            PROJECTORS[t] = fn
        return fn
    return register


_json = msgspec.json.Encoder()


def j(value: Any) -> str | None:
    """A value as JSON text for a JSONB column."""
    return None if value is None else _json.encode(value).decode()


def collected(event_type: type[Collected]) -> Callable[[Callable[[Any], Rows]], Callable[[Any], Rows]]:
    """Register the projector of one collected type: ``fn(event) -> data rows``; the audit row is added here."""

    def register(fn: Callable[[Any], Rows]) -> Callable[[Any], Rows]:
        def project(ev: Event, seq: int) -> Rows:
            assert isinstance(ev, Collected)
            if ev.device_id is None:
                raise ProjectionError("collected event without device_id")
            out: Rows = defaultdict(list)
            ok = getattr(ev, "payload", None) is not None and ev.status in ("success", "partial")
            created = 0
            if ok:
                for tbl, rs in fn(ev).items():
                    out[tbl].extend(rs)
                    created += len(rs)
            from services.writer.projections.audit import audit_row

            out["data_collection_audit"].append(audit_row(ev, created))
            return out

        PROJECTORS[event_type] = project
        return fn
    return register


def rows(event: Event, stream_seq: int = 0) -> Rows:
    """The rows one event projects to; raises ProjectionError when it cannot be projected."""
    import services.writer.projections  # noqa: F401  (registers every projector)

    fn = PROJECTORS.get(type(event))
    if fn is None:
        raise ProjectionError(f"no projection for {type(event).__name__}")
    return fn(event, stream_seq)


def merge(into: Rows, more: Rows) -> None:
    for tbl, rs in more.items():
        into.setdefault(tbl, []).extend(rs)
