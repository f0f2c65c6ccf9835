"""PostgreSQL text cannot hold the NUL character, nor JSONB the ``\\u0000`` escape; JSON and
msgspec strings can. Rather than refuse a valid event, its rows are written again with each NUL
replaced by U+FFFD (the stream keeps the original bytes)."""

from __future__ import annotations

import re

import asyncpg

from services.writer.registry import JSON_COLUMNS, Rows

REFUSED_NUL = (asyncpg.exceptions.CharacterNotInRepertoireError, asyncpg.exceptions.UntranslatableCharacterError)
REPLACEMENT = "\ufffd"
# A \u0000 escape in JSON text, not preceded by an escaped backslash of its own.
_JSON_NUL = re.compile(r"(?<!\\)((?:\\\\)*)\\u0000")


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
        json = JSON_COLUMNS[table]
        out[table] = [tuple(_clean(v, i in json) for i, v in enumerate(rec)) for rec in records]
    return out
