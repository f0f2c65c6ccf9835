"""Collected events, one class per data type; each is tagged ``collected.<data_type>``."""

from __future__ import annotations

from typing import ClassVar

from shared.envelope import Collected
from shared.payloads.system_metrics import SystemMetrics


class SystemMetricsCollected(Collected, kw_only=True, tag="collected.system_metrics"):
    data_type: ClassVar[str] = "system_metrics"
    payload: SystemMetrics | None = None


COLLECTED_EVENTS: tuple[type[Collected], ...] = (SystemMetricsCollected,)
