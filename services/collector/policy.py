"""Which device settings the collector accepts: settings reach commands, so they are checked
against the collector's own settings before anything runs.

- ``sudo``: only a prefix listed in ``collector_sudo_allowed`` (default ``[["sudo", "-n"]]``);
  anything else (``["sh", "-c", …]``) would be a command of the device's author's choosing.
- ``transport: local``: only for the devices named in ``collector_local_devices`` (default: the
  one ``infrawatch up`` registers, ``local``): the others would run on the collector's host.
- ``address``: a hostname or an IP address (``shared.runtime.devices.validate_address``).

A refused device is not polled; the refusal is an ``Audited`` event with action
``device_refused`` and the field at fault, and nothing runs for it.
"""

from __future__ import annotations

from shared.events import DeviceSpec
from shared.runtime.devices import DeviceError, validate_address
from shared.settings import Settings

DEFAULT_SUDO_ALLOWED = [["sudo", "-n"]]
DEFAULT_LOCAL_DEVICES = ["local"]


class RefusedSetting(ValueError):
    """A device setting the collector does not accept."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field


def check_sudo(sudo: list[str] | None, settings: Settings) -> list[str]:
    """The device's sudo prefix when the collector allows it (``[]`` and None: none)."""
    if not sudo:
        return []
    allowed = getattr(settings, "collector_sudo_allowed", DEFAULT_SUDO_ALLOWED)
    if list(sudo) not in [list(a) for a in allowed]:
        raise RefusedSetting("sudo", f"sudo prefix {sudo!r} is not in the collector's allowed prefixes "
                                     f"(INFRAWATCH_COLLECTOR_SUDO_ALLOWED: {allowed!r})")
    return list(sudo)


def check(spec: DeviceSpec, settings: Settings) -> None:
    """Raise RefusedSetting for the first device setting the collector refuses."""
    if spec.transport == "local":
        local = getattr(settings, "collector_local_devices", DEFAULT_LOCAL_DEVICES)
        if spec.name not in local:
            raise RefusedSetting("transport", f"transport 'local' runs on the collector's own host: only for "
                                              f"{local!r} (INFRAWATCH_COLLECTOR_LOCAL_DEVICES)")
    else:
        try:
            validate_address(spec.address)
        except DeviceError as exc:
            raise RefusedSetting("address", str(exc)) from None
    check_sudo(spec.sudo, settings)


def refusal(spec: DeviceSpec, settings: Settings) -> RefusedSetting | None:
    try:
        check(spec, settings)
    except RefusedSetting as exc:
        return exc
    return None
