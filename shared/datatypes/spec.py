"""What a collected data type declares once; its event class is derived from it."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from types import ModuleType
from typing import Any

import msgspec

from schema.base import Base
from shared.envelope import Collected

TableRows = dict[str, list[dict[str, Any]]]
"""Rows of one event by table name, each row a mapping of column name to value."""


def _camel(name: str) -> str:
    return "".join(part.capitalize() for part in name.split("_"))


def collected_event(name: str, payload: type[msgspec.Struct], doc: str) -> type[Collected]:
    """The event class of a data type: ``<Name>Collected``, tagged ``collected.<name>``, with an optional payload."""
    cls = msgspec.defstruct(
        f"{_camel(name)}Collected", [("payload", payload | None, None)], bases=(Collected,), kw_only=True,
        tag=f"collected.{name}", module="shared.collected", namespace={"data_type": name, "__doc__": doc},
    )
    return cls  # type: ignore[return-value]


@dataclass(frozen=True)
class Api:
    """How the API serves a type: the path under ``/devices/{device}/``, and the history filter."""

    path: str
    key: str | None = None  # a key column the history can be filtered on (``pool``, ``interface``)
    key_doc: str = ""
    key_max_length: int = 255
    latest: bool = True  # False: a custom route module serves the latest reading
    history: bool = True  # False: a custom route module serves the history


@dataclass(frozen=True)
class DataType:
    """One collected data type.

    ``collect`` is its command module (see the collector's README for the attributes it has),
    ``payload`` the msgspec Struct its parser returns, ``tables`` its table models and ``rows``
    the pure projection of one payload into rows of those tables (the writer adds ``time``,
    ``device_id`` and ``event_id``).
    """

    name: str
    doc: str
    payload: type[msgspec.Struct]
    collect: ModuleType
    tables: Sequence[type[Base]]
    rows: Callable[[Any], TableRows]
    api: Api
    sample: str  # the capture in testdata/ the simulator answers from
    event: type[Collected] = field(init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "event", collected_event(self.name, self.payload, self.doc))

