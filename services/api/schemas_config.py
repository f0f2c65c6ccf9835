"""Response models of configuration snapshots, change events and diffs."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict


class ConfigSnapshotInfo(BaseModel):
    """One stored version of a configuration file, without its content."""

    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    time: datetime
    device_id: uuid.UUID
    event_id: uuid.UUID
    config_type: str
    file_path: str
    content_hash: str
    file_size_bytes: int | None
    content_truncated: bool
    change_type: str
    previous_hash: str | None
    file_modified_time: datetime | None
    collection_source: str
    detection_latency_ms: int | None
    affected_services: list[Any] | None
    requires_restart: bool
    risk_level: str


class ConfigSnapshot(ConfigSnapshotInfo):
    """One stored version of a configuration file, with its raw content and parsed form."""

    raw_content: str | None
    parsed_data: dict[str, Any] | None


class ConfigChange(BaseModel):
    """One configuration change event."""

    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    time: datetime
    device_id: uuid.UUID
    snapshot_id: uuid.UUID
    config_type: str
    file_path: str
    change_type: str
    old_path: str | None
    affected_services: list[Any] | None
    requires_restart: bool
    restart_services: list[Any] | None
    changes_summary: dict[str, Any] | None
    risk_level: str
    confidence_score: float | None


class ConfigDiff(BaseModel):
    """A unified diff between two snapshots of a file (``from_snapshot`` None: the file was new)."""

    device_id: uuid.UUID
    file_path: str
    from_snapshot: ConfigSnapshotInfo | None
    to_snapshot: ConfigSnapshotInfo
    content_available: bool
    diff: str
    added_lines: int
    removed_lines: int
