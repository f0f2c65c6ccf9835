"""The v1 golden events (tests/golden/v1/<kind>.json) still decode, and mean the same thing.

A golden file is one fully populated event as a v1 producer wrote it. Adding an optional field
with a default is compatible and passes; a field added without a default, removed, renamed or
retyped, or a kind renamed, fails here. See tests/golden/README.md.
"""

from __future__ import annotations

import json
import typing
from pathlib import Path

import msgspec
import pytest

from shared import events
from tests.golden.contract import event_info, field_names, reachable, structs_in

GOLDEN = Path(__file__).resolve().parent / "golden" / "v1"
KINDS = {events.tag_of(cls): cls for cls in typing.get_args(events.AnyEvent)}
HOW_TO_ADD = ("add its golden file: give tests/golden/make_golden.py a builder for it, run "
              "`python -m tests.golden.make_golden v1` and commit only the new file")


def _golden(kind: str) -> dict:
    path = GOLDEN / f"{kind}.json"
    if not path.exists():
        pytest.fail(f"event kind {kind!r} has no golden file {path.relative_to(GOLDEN.parents[2])}: {HOW_TO_ADD}")
    return json.loads(path.read_text())


def _without_added_fields(again: dict, data: dict, cls: type) -> list[str]:
    """Drop from ``again`` (re-encoded) the struct fields the golden ``data`` lacks, fields added
    since v1; returns those whose value is not their default (a decoder that made them up)."""
    golden = {path: obj for path, _, obj in structs_in(data, event_info(cls))}
    wrong = []
    for path, info, obj in list(structs_in(again, event_info(cls))):
        for f in info.fields:
            if path in golden and f.encode_name in obj and f.encode_name not in golden[path]:
                value = obj.pop(f.encode_name)
                default = f.default if f.default_factory is msgspec.NODEFAULT else f.default_factory()
                if f.required or value != msgspec.json.decode(msgspec.json.encode(default)):
                    wrong.append(f"{path}.{f.encode_name}")
    return wrong


@pytest.mark.parametrize("kind", sorted(KINDS))
def test_every_kind_has_a_golden_file(kind):
    assert (GOLDEN / f"{kind}.json").exists(), f"no golden file for event kind {kind!r}: {HOW_TO_ADD}"


def test_every_golden_file_is_a_kind():
    stray = sorted(p.stem for p in GOLDEN.glob("*.json") if p.stem not in KINDS)
    assert not stray, f"golden files of kinds the contract no longer has (renamed or removed?): {stray}"


@pytest.mark.parametrize("kind", sorted(KINDS))
def test_golden_event_decodes_and_round_trips(kind):
    data = _golden(kind)
    assert data.get("schema_version") == 1
    assert data.get("kind") == kind
    event = events.decode(json.dumps(data).encode())
    assert type(event) is KINDS[kind]
    assert event.schema_version == 1
    again = json.loads(events.encode(event))
    # A field added since v1 with a default comes back at its default: compatible, so left out.
    assert not _without_added_fields(again, data, KINDS[kind])
    assert again == data, "re-encoding the golden event changes it (a field removed, renamed or retyped)"


@pytest.mark.parametrize("kind", sorted(KINDS))
def test_golden_event_has_every_field(kind):
    data, root = _golden(kind), event_info(KINDS[kind])
    keys: dict[type, set[str]] = {}
    problems = []
    for path, info, obj in structs_in(data, root):
        keys.setdefault(info.cls, set()).update(obj)
        fields = {f.encode_name: f for f in info.fields}
        unknown = set(obj) - field_names(info)
        if unknown:
            problems.append(f"{path} ({info.cls.__name__}): removed or renamed: {sorted(unknown)}")
        required = sorted(n for n, f in fields.items() if n not in obj and f.required)
        if required:
            problems.append(f"{path} ({info.cls.__name__}): added without a default: {required}")
    unseen = reachable(root, keys) - set(keys)
    if unseen:
        problems.append(f"struct types the file never holds (fill them): {sorted(c.__name__ for c in unseen)}")
    assert not problems, "\n".join(problems)



class _Inner(msgspec.Struct):
    x: int = 0


class _Outer(msgspec.Struct):
    a: int = 0
    added: list[_Inner] = []


def test_a_new_optional_field_of_a_new_struct_type_is_not_required_in_v1():
    """Struct types reachable only through fields the file lacks are not asked for; the rest are."""
    root = event_info(_Outer)
    assert reachable(root, {_Outer: {"a"}}) == {_Outer}
    assert reachable(root, {_Outer: {"a", "added"}}) == {_Outer, _Inner}
