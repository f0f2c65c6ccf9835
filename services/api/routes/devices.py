"""The device registry: register, list, read, update and remove devices."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, HTTPException, Query, Response, status

from services.api import deps
from services.api.deps import AdminKey, DeviceDep, JsDep, NamesDep, RegistryDep, SessionDep, SettingsDep, ViewerKey
from services.api.limits import max_page
from services.api.queries import collections
from services.api.schemas import DeviceCreate, DeviceResponse, DeviceUpdate, Page
from shared.events import DeviceSpec
from shared.runtime import devices
from shared.runtime.devices import DeviceRegistry

router = APIRouter(prefix="/devices", tags=["devices"])

SERVICE = "api"
_ERRORS: deps.Responses = {404: {"description": "unknown device"}}


def resolve(registry: DeviceRegistry, device: str) -> DeviceSpec:
    """The device named by UUID or unique name, else 404."""
    spec = registry.get(device)
    if spec is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"device {device!r} not found")
    return spec


@router.post("", status_code=status.HTTP_201_CREATED, responses={409: {"description": "name taken"}})
async def create_device(
    body: DeviceCreate, _: AdminKey, js: JsDep, names: NamesDep, registry: RegistryDep, settings: SettingsDep
) -> DeviceResponse:
    """Register a device; 409 when the name is taken."""
    try:
        ev = await devices.register(js, names, body.spec(), SERVICE, settings.instance)
    except devices.DeviceExists as exc:
        raise HTTPException(status.HTTP_409_CONFLICT, str(exc)) from exc
    except devices.DeviceError as exc:
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, str(exc)) from exc
    registry.apply(ev)  # read-your-writes: the mirror catches up with the same event shortly
    return DeviceResponse.build(ev.spec, {})


@router.get("")
async def list_devices(
    _: ViewerKey,
    registry: RegistryDep,
    session: SessionDep,
    page: Annotated[int, Query(ge=1, le=max_page(500))] = 1,
    page_size: Annotated[int, Query(ge=1, le=500)] = 50,
    name: Annotated[str | None, Query(description="substring of the name, any case", max_length=63)] = None,
    device_type: Annotated[str | None, Query(max_length=50)] = None,
    status_: Annotated[Literal["enabled", "disabled"] | None, Query(alias="status")] = None,
) -> Page[DeviceResponse]:
    """Devices ordered by name, filtered, one page at a time."""
    specs = sorted(registry.by_name.values(), key=lambda s: s.name)
    if name:
        specs = [s for s in specs if name.lower() in s.name.lower()]
    if device_type:
        specs = [s for s in specs if s.device_type == device_type]
    if status_:
        specs = [s for s in specs if s.enabled == (status_ == "enabled")]
    chunk = specs[(page - 1) * page_size : page * page_size]
    info = await collections(session, [s.id for s in chunk])
    items = [DeviceResponse.build(s, info[s.id]) for s in chunk]
    return Page[DeviceResponse].of(items, len(specs), page, page_size)


@router.get("/{device}", responses=_ERRORS)
async def get_device(_: ViewerKey, spec: DeviceDep, session: SessionDep) -> DeviceResponse:
    """One device by UUID or name."""
    info = await collections(session, [spec.id])
    return DeviceResponse.build(spec, info[spec.id])


@router.patch("/{device}", responses={**_ERRORS, 409: {"description": "a new name, or changed concurrently"}})
async def update_device(
    body: DeviceUpdate, _: AdminKey, spec: DeviceDep, js: JsDep, names: NamesDep, registry: RegistryDep,
    settings: SettingsDep, session: SessionDep,
) -> DeviceResponse:
    """Change a device's fields (not its name); publishes the update on the devices stream."""
    if body.name is not None and body.name != spec.name:
        raise HTTPException(status.HTTP_409_CONFLICT, "name is immutable: register a new device instead")
    try:
        ev = await devices.update(js, names, body.apply(spec), SERVICE, settings.instance)
    except devices.DeviceNotFound as exc:
        raise HTTPException(status.HTTP_404_NOT_FOUND, str(exc)) from exc
    except devices.DeviceExists as exc:  # changed concurrently
        raise HTTPException(status.HTTP_409_CONFLICT, str(exc)) from exc
    except devices.DeviceError as exc:
        raise HTTPException(status.HTTP_409_CONFLICT, str(exc)) from exc
    registry.apply(ev)
    info = await collections(session, [spec.id])
    return DeviceResponse.build(ev.spec, info[spec.id])


@router.delete("/{device}", status_code=status.HTTP_204_NO_CONTENT, responses=_ERRORS)
async def delete_device(
    _: AdminKey, spec: DeviceDep, js: JsDep, names: NamesDep, registry: RegistryDep, settings: SettingsDep
) -> Response:
    """Remove a device; its history stays in the database."""
    try:
        ev = await devices.remove(js, names, spec.name, SERVICE, settings.instance)
    except devices.DeviceNotFound as exc:
        raise HTTPException(status.HTTP_404_NOT_FOUND, str(exc)) from exc
    except devices.DeviceExists as exc:  # changed concurrently
        raise HTTPException(status.HTTP_409_CONFLICT, str(exc)) from exc
    registry.apply(ev)
    return Response(status_code=status.HTTP_204_NO_CONTENT)
