"""The registry of collected data types: one line per type, in collection order.

A type is one folder here (see services/collector/README.md, "Adding a data type"):
``__init__.py`` declares its :class:`~shared.datatypes.spec.DataType` as ``TYPE``;
``payload.py`` the msgspec payload; ``collect.py`` the commands and the pure parser;
``table.py`` the table model and the projection; ``testdata/`` captured outputs with the
expected results; ``README.md`` what it collects and from where.
"""

from __future__ import annotations

from importlib import import_module
from pathlib import Path

from shared.datatypes.spec import DataType

NAMES = (
    "system_metrics",
    "containers",
    "drive_health",
    "network",
    "zfs",
    "systemd_services",
    "inventory",
    "mounts",
)

REGISTRY: dict[str, DataType] = {n: import_module(f"shared.datatypes.{n}").TYPE for n in NAMES}


def captures(name: str) -> Path:
    """The folder of a type's captured outputs."""
    return Path(__file__).resolve().parent / name / "testdata"
