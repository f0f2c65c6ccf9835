"""Reads of collected data: the cached value while it is fresh, else a refresh from the collectors."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any, Literal

from services.api.audit import Auditor
from services.api.cache import CacheMirror
from services.api.keys import Principal
from services.api.refresh import Refresher, RefreshRefused, RefreshTimeout
from services.api.settings import ApiSettings
from shared.events import Collected, DeviceSpec


class CollectionFailed(Exception):
    """The refreshed collection ended in error (or the command is unsupported on the device)."""

    def __init__(self, event: Collected) -> None:
        super().__init__(event.error or f"collection ended with status {event.status}")
        self.event = event


def age_s(ev: Collected) -> float:
    return max(0.0, (datetime.now(timezone.utc) - ev.occurred_at).total_seconds())


@dataclass(frozen=True, slots=True)
class Reading:
    """A collected event as served: from the cache or from a refresh, with its age."""

    event: Collected
    source: Literal["cache", "refresh"]
    age_seconds: float
    threshold_s: int

    @property
    def fresh(self) -> bool:
        return self.age_seconds < self.threshold_s


@dataclass(eq=False)
class Reader:
    """Fresh cache hit, else one (shared) refresh; every read is audited in the background."""

    settings: ApiSettings
    cache: CacheMirror
    refresher: Refresher
    auditor: Auditor

    def __post_init__(self) -> None:
        self.refresher.failure_cache_s = self.settings.api_failed_refresh_cache_s

    def _reading(self, ev: Collected, data_type: str, source: Literal["cache", "refresh"]) -> Reading:
        return Reading(ev, source, age_s(ev), self.settings.freshness_s(data_type, ev.freshness_threshold_s))

    def cached(self, spec: DeviceSpec, data_type: str, principal: Principal) -> Reading | None:
        """The fresh cached reading of this device and type, counted and audited as a cache hit;
        None (nothing counted or audited) when a refresh is needed."""
        ev = self.cache.collected(spec.name, spec.id, data_type)
        if ev is None:
            return None
        reading = self._reading(ev, data_type, "cache")
        if not reading.fresh:
            return None
        self.cache.count(data_type, hit=True)
        self.auditor.read(spec, data_type, cache_hit=True, force_refresh=False, key_prefix=principal.prefix)
        return reading

    async def latest(self, spec: DeviceSpec, data_type: str, *, force: bool, principal: Principal) -> Reading:
        """The latest collection of ``data_type``; raises RefreshTimeout, RefreshRefused or CollectionFailed."""
        started = asyncio.get_running_loop().time()
        audit: dict[str, Any] = {"cache_hit": False, "force_refresh": force, "key_prefix": principal.prefix}
        reading = None if force else self.cached(spec, data_type, principal)
        if reading is not None:
            return reading
        self.cache.count(data_type, hit=False)
        try:
            ev = await self.refresher.refresh(spec, data_type, requested_by=f"api-key:{principal.prefix}")
        except (RefreshTimeout, RefreshRefused) as exc:
            self.auditor.read(spec, data_type, **audit, operation_id=exc.operation_id, status="error", error=str(exc),
                              duration_ms=self._ms(started))
            raise
        if ev.status in ("error", "unsupported"):
            self.auditor.read(spec, data_type, **audit, operation_id=ev.operation_id, status=ev.status,
                              error=ev.error, duration_ms=self._ms(started))
            raise CollectionFailed(ev)
        self.auditor.read(spec, data_type, **audit, operation_id=ev.operation_id, duration_ms=self._ms(started))
        return self._reading(ev, data_type, "refresh")

    @staticmethod
    def _ms(started: float) -> float:
        return round((asyncio.get_running_loop().time() - started) * 1000, 1)
