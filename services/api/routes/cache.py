"""The cache: statistics of the KV mirror and invalidation of one entry."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Response, status
from nats.js.kv import KV_DEL
from pydantic import BaseModel

from services.api.deps import (
    AuditorDep,
    CacheDep,
    DeviceDep,
    JsDep,
    NamesDep,
    OperatorKey,
    RefresherDep,
    SettingsDep,
    ViewerKey,
)
from services.api.reads import age_s
from services.api.routes.data import DataType
from shared.events import Collected
from shared.names import Names

router = APIRouter(prefix="/cache", tags=["cache"])


class TypeStats(BaseModel):
    """Cache entries of one data type, and this API instance's hits and misses on it."""

    entries: int = 0
    fresh: int = 0
    stale: int = 0
    hits: int = 0
    misses: int = 0


class CacheStats(BaseModel):
    """The cache as this API instance sees it; counters are since this process started."""

    entries: int
    hits: int
    misses: int
    hit_ratio: float | None
    refreshes_requested: int
    refreshes_in_flight: int
    audit_published: int
    audit_failed: int
    by_data_type: dict[str, TypeStats]


@router.get("/stats")
async def cache_stats(
    _: ViewerKey, cache: CacheDep, settings: SettingsDep, refresher: RefresherDep, auditor: AuditorDep
) -> CacheStats:
    """Entries per data type, fresh vs stale, and hit/miss counters of this instance."""
    by_type: dict[str, TypeStats] = {}
    for ev in list(cache.entries.values()):
        if not isinstance(ev, Collected):
            continue
        t = by_type.setdefault(ev.data_type, TypeStats())
        t.entries += 1
        if age_s(ev) < settings.freshness_s(ev.data_type, ev.freshness_threshold_s):
            t.fresh += 1
        else:
            t.stale += 1
    for data_type in set(cache.hits) | set(cache.misses):
        t = by_type.setdefault(data_type, TypeStats())
        t.hits, t.misses = cache.hits[data_type], cache.misses[data_type]
    hits, misses = sum(cache.hits.values()), sum(cache.misses.values())
    return CacheStats(
        entries=sum(t.entries for t in by_type.values()), hits=hits, misses=misses,
        hit_ratio=round(hits / (hits + misses), 4) if hits + misses else None,
        refreshes_requested=refresher.requested, refreshes_in_flight=len(refresher.in_flight),
        audit_published=auditor.published, audit_failed=auditor.failed, by_data_type=dict(sorted(by_type.items())),
    )


@router.delete("/{device}/{data_type}", status_code=status.HTTP_204_NO_CONTENT,
               responses={404: {"description": "unknown device"}})
async def invalidate(
    data_type: Annotated[DataType, Path(description="a collected data type")],  # type: ignore[valid-type]
    _: OperatorKey, spec: DeviceDep, js: JsDep, names: NamesDep, cache: CacheDep,
) -> Response:
    """Delete the cached value, so the next read refreshes it."""
    key = Names.cache_key(spec.name, data_type)
    # a purge through the stream API: the api's NATS user may remove cache values, never write them
    await js.purge_stream(f"KV_{names.cache_bucket}", subject=f"$KV.{names.cache_bucket}.{key}")
    cache.apply(key, KV_DEL, None)  # a purge sends no marker: other API instances keep theirs until replaced
    return Response(status_code=status.HTTP_204_NO_CONTENT)
