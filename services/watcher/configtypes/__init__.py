"""The config types the watcher knows: one module each, listed once below.

A module declares ``TYPE = ConfigType(...)`` (``base.py``): its name (the ``config_type`` of
its events and the subject token), its default globs, and optionally its pure parser, its
redaction by structure and its impact rules. Any other name a device's ``watch_paths`` uses is
a user-defined type (``user_defined.py``). See services/watcher/README.md, "Adding a
configuration type".
"""

from __future__ import annotations

from services.watcher.configtypes import (
    docker_compose,
    proxy_configs,
    systemd_units,
    user_defined,
)
from services.watcher.configtypes.base import ConfigType

CONFIG_TYPES: dict[str, ConfigType] = {t.name: t for t in (  # in match order
    proxy_configs.TYPE,
    docker_compose.TYPE,
    systemd_units.TYPE,
)}


def config_type(name: str | None) -> ConfigType:
    """The declared type of that name, or the user-defined type."""
    return CONFIG_TYPES.get(name or "", user_defined.TYPE)


__all__ = ["CONFIG_TYPES", "ConfigType", "config_type"]
