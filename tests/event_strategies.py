"""Hypothesis strategies that build any event of the contract from its msgspec type information,
leaning on extreme but valid values: 64-bit integers, year-1970 and year-2100 times, empty,
unicode and 1 MiB strings, NUL characters, deep lists.

"Valid" is what the contract admits: what ``shared.events.decode`` accepts, with integers in the
signed 64-bit range, finite floats of at most 1e15 in magnitude (a duration of 30,000 years in
ms), strings within their declared bounds (key names), and device names that follow the
subject-token rule.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import msgspec
from hypothesis import strategies as st

from shared.envelope import SCHEMA_VERSION

INT64 = (-(2**63), 2**63 - 1)
FLOAT_MAX = 1e15
MIB = 1 << 20
DEVICE_NAME = r"\A[A-Za-z0-9_-]{1,63}\Z"

_int_extremes = [0, 1, -1, 2**31 - 1, 2**31, -(2**31) - 1, 2**32, 2**53 + 1, *INT64]
_texts = st.one_of(
    st.text(max_size=40),
    st.sampled_from(["", "\x00", "a\x00b", "ünïcødé/路径/😀", "\\u0000", "'; DROP TABLE x; --", " " * 300]),
    st.text(st.characters(codec="utf-8"), min_size=256, max_size=2000),
)
_big_text = st.sampled_from(["x" * MIB, ("é🙂\n" * (MIB // 8))])


def _ints(info: msgspec.inspect.IntType) -> st.SearchStrategy[int]:
    lo = max(INT64[0], info.ge if info.ge is not None else (info.gt + 1 if info.gt is not None else INT64[0]))
    hi = min(INT64[1], info.le if info.le is not None else (info.lt - 1 if info.lt is not None else INT64[1]))
    extremes = [v for v in _int_extremes if lo <= v <= hi]
    return st.one_of(st.sampled_from(extremes or [lo]), st.integers(lo, hi))


def _floats(info: msgspec.inspect.FloatType) -> st.SearchStrategy[float]:
    lo = -FLOAT_MAX if info.ge is None and info.gt is None else float(info.ge if info.ge is not None else info.gt)
    hi = FLOAT_MAX if info.le is None and info.lt is None else float(info.le if info.le is not None else info.lt)
    return st.one_of(st.sampled_from([v for v in (0.0, -0.0, 5e-324, lo, hi) if lo <= v <= hi]),
                     st.floats(lo, hi, allow_nan=False, allow_infinity=False,
                               exclude_min=info.gt is not None, exclude_max=info.lt is not None))


_datetimes = st.one_of(
    st.sampled_from([datetime(1970, 1, 1, tzinfo=UTC), datetime(2100, 1, 1, tzinfo=UTC),
                     datetime(1970, 1, 1, 0, 0, 0, 1, tzinfo=UTC), datetime(2099, 12, 31, 23, 59, 59, 999999, tzinfo=UTC)]),
    st.datetimes(min_value=datetime(1970, 1, 1), max_value=datetime(2100, 1, 1), timezones=st.just(UTC)),
)
_json_scalars = st.one_of(st.none(), st.booleans(), st.integers(*INT64), _texts,
                          st.floats(-FLOAT_MAX, FLOAT_MAX, allow_nan=False))
_json = st.recursive(_json_scalars, lambda inner: st.one_of(
    st.lists(inner, max_size=4), st.dictionaries(st.text(max_size=20), inner, max_size=4)), max_leaves=12)


def of_type(t: msgspec.inspect.Type, field: str = "") -> st.SearchStrategy[Any]:
    """A strategy for values of one msgspec type (``field`` names the struct field it fills)."""
    T = msgspec.inspect
    match t:
        case T.IntType():
            return _ints(t)
        case T.FloatType():
            return _floats(t)
        case T.BoolType():
            return st.booleans()
        case T.StrType():
            if field == "name_of_device":
                return st.from_regex(DEVICE_NAME)
            if t.max_length is not None:  # a key name: up to its bound, in 4-byte characters too
                return st.one_of(_texts.filter(lambda v: len(v) <= t.max_length),
                                 st.just("🙂" * t.max_length), st.text(max_size=t.max_length))
            if field in ("content", "error"):
                return st.one_of(_texts, _big_text)
            return _texts
        case T.UUIDType():
            return st.uuids()
        case T.DateTimeType():
            return _datetimes
        case T.NoneType():
            return st.none()
        case T.LiteralType():
            return st.sampled_from(list(t.values))
        case T.UnionType():
            return st.one_of(*(of_type(x, field) for x in t.types))
        case T.ListType() | T.SetType() | T.FrozenSetType() | T.VarTupleType():
            return st.lists(of_type(t.item_type, field), max_size=3 if field != "warnings" else 50)
        case T.DictType():
            return st.dictionaries(of_type(t.key_type), of_type(t.value_type, field), max_size=3)
        case T.StructType():
            return struct(t.cls)
        case T.AnyType():
            return _json
    raise TypeError(f"no strategy for {t!r} ({field})")


def struct(cls: type[msgspec.Struct]) -> st.SearchStrategy[msgspec.Struct]:
    """Any instance of ``cls`` with every field drawn (defaults included)."""
    info = msgspec.inspect.type_info(cls)
    fields = {}
    for f in info.fields:
        name = "name_of_device" if (cls.__name__ == "DeviceSpec" and f.name == "name") else f.name
        fields[f.name] = of_type(f.type, name)
    if "schema_version" in fields:  # the version this code writes and reads
        fields["schema_version"] = st.just(SCHEMA_VERSION)
    return st.fixed_dictionaries(fields).map(lambda kw: cls(**kw))
