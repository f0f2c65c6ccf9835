"""PostgreSQL text cannot hold the NUL character, nor JSONB the ``\\u0000`` escape; JSON and
msgspec strings can. Rather than refuse a valid event, its rows are written again with each NUL
replaced by U+FFFD (the stream keeps the original bytes)."""

from __future__ import annotations

import re
from functools import cache

import asyncpg
from sqlalchemy.dialects.postgresql import JSONB

from services.writer.projection import COLUMNS, Rows

REFUSED_NUL = (asyncpg.exceptions.CharacterNotInRepertoireError, asyncpg.exceptions.UntranslatableCharacterError)
REPLACEMENT = "\ufffd"
# A \u0000 escape in JSON text, not preceded by an escaped backslash of its own.
_JSON_NUL = re.compile(r"(?<!\\)((?:\\\\)*)\\u0000")


@cache
def _json_columns(table: str) -> frozenset[int]:
    from schema.models import Base

    cols = Base.metadata.tables[table].columns
    return frozenset(i for i, name in enumerate(COLUMNS[table]) if isinstance(cols[name].type, JSONB))


def _clean(value: object, json: bool) -> object:
    if not isinstance(value, str):
        return value
    if json:
        return _JSON_NUL.sub(lambda m: m.group(1) + "\\ufffd", value)
    return value.replace("\x00", REPLACEMENT)


def without_nul(batch: Rows) -> Rows:
    """The same rows with NUL characters (and JSON ``\\u0000`` escapes) replaced by U+FFFD."""
    out: Rows = {}
    for table, records in batch.items():
        json = _json_columns(table)
        out[table] = [tuple(_clean(v, i in json) for i, v in enumerate(rec)) for rec in records]
    return out
