"""The data types the collector knows: one line per type.

Adding a type: its payload in shared/payloads/, its event class in shared/collected.py, its
module in services/collector/types/ (same attributes as system_metrics), one line here, and
captured outputs under tests/collector/testdata/<type>/.
"""

from __future__ import annotations

from types import ModuleType

from services.collector.types import system_metrics

DATA_TYPES: dict[str, ModuleType] = {
    "system_metrics": system_metrics,
}

REQUIRED_ATTRIBUTES = ("NAME", "EVENT", "ARGV", "TIMEOUT_S", "RETRIES", "INTERVAL_S", "FRESHNESS_S", "parse")
