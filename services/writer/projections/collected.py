"""Collected events of every registered data type: the type's own rows, keyed by the event's time,
device and id, and one audit row."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from services.writer.projections.audit import audit_row
from services.writer.registry import PROJECTORS, ProjectionError, TableRows, table
from shared.datatypes import REGISTRY
from shared.datatypes.spec import DataType
from shared.envelope import Collected


def _projector(dt: DataType) -> Callable[[Any, int], TableRows]:
    def project(ev: Collected, seq: int) -> TableRows:
        if ev.device_id is None:
            raise ProjectionError("collected event without device_id")
        payload = getattr(ev, "payload", None)
        out: TableRows = {}
        created = 0
        if payload is not None and ev.status in ("success", "partial"):
            key = {"time": ev.occurred_at, "device_id": ev.device_id, "event_id": ev.event_id}
            for tbl, records in dt.rows(payload).items():
                out[tbl] = [{**key, **r} for r in records]
                created += len(records)
        out["data_collection_audit"] = [audit_row(ev, created)]
        return out
    return project


for _dt in REGISTRY.values():
    for _model in _dt.tables:
        table(_model)
    PROJECTORS[_dt.event] = _projector(_dt)
