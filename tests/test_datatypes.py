"""The data type registry: every type's folder declares what the collector, writer, API and
simulator derive from it."""

from __future__ import annotations

import msgspec

from schema.models import Base
from services.collector.registry import COMMAND_ATTRIBUTES, DATA_TYPES, REQUIRED_ATTRIBUTES
from services.writer.projection import FAMILIES
from services.writer.registry import COLUMNS
from shared.datatypes import NAMES, REGISTRY, captures
from shared.events import COLLECTED_TYPES, AnyEvent, tag_of


def test_every_registered_type_has_a_command_module_with_the_same_attributes() -> None:
    assert list(DATA_TYPES) == list(NAMES) == list(COLLECTED_TYPES)
    for name, module in DATA_TYPES.items():
        assert name == module.NAME
        assert all(hasattr(module, attr) for attr in REQUIRED_ATTRIBUTES), name
        assert sum(hasattr(module, attr) for attr in COMMAND_ATTRIBUTES) == 1, name
        assert module.FRESHNESS_S <= module.INTERVAL_S and module.TIMEOUT_S < module.INTERVAL_S


def test_event_classes_are_derived_and_in_the_union() -> None:
    members = set(AnyEvent.__args__)
    for name, t in REGISTRY.items():
        assert t.event is COLLECTED_TYPES[name] and t.event in members
        assert tag_of(t.event) == f"collected.{name}" and t.event.data_type == name
        field = msgspec.structs.fields(t.event)[-1]
        assert field.name == "payload" and field.type == t.payload | None


def test_tables_are_in_the_metadata_and_projected_by_their_model_columns() -> None:
    assert FAMILIES  # importing the projection registers every projector
    for t in REGISTRY.values():
        for model in t.tables:
            table = Base.metadata.tables[model.__tablename__]
            assert table is model.__table__
            assert COLUMNS[table.name] == tuple(c.name for c in table.columns)
            assert {"time", "device_id", "event_id"} <= set(COLUMNS[table.name])


def test_every_type_has_its_readme_captures_and_the_sample_it_is_simulated_from() -> None:
    for name, t in REGISTRY.items():
        folder = captures(name).parent
        assert (folder / "README.md").is_file(), name
        assert (captures(name) / t.sample).is_file(), name
        assert any(captures(name).glob("*.json")), f"{name}: no expected output"
