"""Walk a golden event's JSON alongside its msgspec type: the struct objects in it, and the
struct types its fields can hold. Shared by the golden test and ``make_golden.py``."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import msgspec
from msgspec import inspect as mi

_LISTS = (mi.ListType, mi.SetType, mi.FrozenSetType, mi.VarTupleType)


def field_names(info: mi.StructType) -> set[str]:
    """The keys an encoded struct has: its fields' wire names and its tag field."""
    names = {f.encode_name for f in info.fields}
    return names | {info.tag_field} if info.tag_field else names


def _union_member(value: Any, t: mi.UnionType) -> mi.Type | None:
    """The member of a union that a JSON value is decoded as, when that member has structure."""
    if isinstance(value, dict):
        structs = [m for m in t.types if isinstance(m, mi.StructType)]
        tagged = [m for m in structs if m.tag_field and value.get(m.tag_field) == m.tag]
        if tagged or len(structs) == 1:
            return (tagged or structs)[0]
        return next((m for m in t.types if isinstance(m, mi.DictType)), None)
    if isinstance(value, list):
        return next((m for m in t.types if isinstance(m, (*_LISTS, mi.TupleType))), None)
    return None


def structs_in(value: Any, t: mi.Type, path: str = "$") -> Iterator[tuple[str, mi.StructType, dict]]:
    """Every struct object in ``value`` (the JSON of type ``t``), with its path and type."""
    if isinstance(t, mi.Metadata):
        yield from structs_in(value, t.type, path)
    elif isinstance(t, mi.UnionType):
        member = _union_member(value, t)
        if member is not None:
            yield from structs_in(value, member, path)
    elif isinstance(t, mi.StructType) and isinstance(value, dict):
        yield path, t, value
        for f in t.fields:
            if f.encode_name in value:
                yield from structs_in(value[f.encode_name], f.type, f"{path}.{f.encode_name}")
    elif isinstance(t, _LISTS) and isinstance(value, list):
        for i, item in enumerate(value):
            yield from structs_in(item, t.item_type, f"{path}[{i}]")
    elif isinstance(t, mi.TupleType) and isinstance(value, list):
        for i, (item, it) in enumerate(zip(value, t.item_types)):
            yield from structs_in(item, it, f"{path}[{i}]")
    elif isinstance(t, mi.DictType) and isinstance(value, dict):
        for k, item in value.items():
            yield from structs_in(item, t.value_type, f"{path}[{k!r}]")


def nested_structs(t: mi.Type) -> Iterator[mi.StructType]:
    """The struct types directly inside a field type (through unions, lists and dicts)."""
    if isinstance(t, mi.StructType):
        yield t
    elif isinstance(t, mi.Metadata):
        yield from nested_structs(t.type)
    elif isinstance(t, mi.UnionType):
        for m in t.types:
            yield from nested_structs(m)
    elif isinstance(t, _LISTS):
        yield from nested_structs(t.item_type)
    elif isinstance(t, mi.TupleType):
        for m in t.item_types:
            yield from nested_structs(m)
    elif isinstance(t, mi.DictType):
        yield from nested_structs(t.value_type)


def reachable(root: mi.StructType, keys: dict[type, set[str]]) -> set[type]:
    """Struct classes reachable from ``root`` through the fields the file has (``keys``: the
    keys seen per struct class); a field added later with a default is not followed."""
    seen: set[type] = set()
    todo = [root]
    while todo:
        info = todo.pop()
        if info.cls in seen:
            continue
        seen.add(info.cls)
        for f in info.fields:
            if f.encode_name in keys.get(info.cls, set()):
                todo.extend(nested_structs(f.type))
    return seen


def event_info(cls: type) -> mi.StructType:
    info = mi.type_info(cls)
    assert isinstance(info, mi.StructType), cls
    return info


def unfilled(value: Any, root: mi.StructType) -> list[str]:
    """Fields (``Class.field``) that are null or empty in every object of their struct in ``value``."""
    filled: dict[type, set[str]] = {}
    names: dict[type, mi.StructType] = {}
    for _, info, obj in structs_in(value, root):
        names[info.cls] = info
        filled.setdefault(info.cls, set()).update(k for k, v in obj.items() if v not in (None, [], {}))
    return sorted(f"{cls.__name__}.{f.encode_name}" for cls, info in names.items() for f in info.fields
                  if f.encode_name not in filled[cls])


def to_json(event: msgspec.Struct) -> Any:
    return msgspec.json.decode(msgspec.json.encode(event))
