"""Collected events, one class per data type, each tagged ``collected.<data_type>``: derived from
the data type registry (``shared.datatypes``), never written by hand."""

from __future__ import annotations

from shared.datatypes import REGISTRY
from shared.envelope import Collected

COLLECTED_TYPES: dict[str, type[Collected]] = {name: t.event for name, t in REGISTRY.items()}
COLLECTED_EVENTS: tuple[type[Collected], ...] = tuple(COLLECTED_TYPES.values())
