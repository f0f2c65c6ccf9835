"""Systemd services of a device: the latest collection."""

from __future__ import annotations

from fastapi import APIRouter, Response

from services.api.deps import DeviceDep, ReaderDep, ViewerKey
from services.api.routes.data import RESPONSES, ForceRefresh, latest_response
from services.api.schemas_collected import collected_model
from shared.datatypes.systemd_services.payload import SystemdServices

router = APIRouter(prefix="/devices", tags=["services"])


@router.get("/{device}/services", response_model=collected_model(SystemdServices), responses=RESPONSES)
async def latest_services(principal: ViewerKey, spec: DeviceDep, reader: ReaderDep,
                          force_refresh: ForceRefresh = False) -> Response:
    """The latest units: fresh from the cache, else refreshed (as ``/data/systemd_services``)."""
    return await latest_response(reader, spec, "systemd_services", principal, force_refresh)
