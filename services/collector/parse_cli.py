"""`infrawatch parse <data_type> FILE...`: run a data type's parser over saved command output."""

from __future__ import annotations

import sys
from pathlib import Path

import msgspec

from services.collector.registry import DATA_TYPES
from shared.datatypes.parsing import CommandFailed, ParseError, Unsupported


def payload_json(payload: object) -> str:
    """The payload as indented JSON, the form kept beside the test samples."""
    return msgspec.json.format(msgspec.json.encode(payload), indent=2).decode() + "\n"


def parse_files(data_type: str, files: list[Path]) -> int:
    """Print each file's payload as JSON on stdout, warnings and errors on stderr. A
    multi-command type reads a capture file (format in shared.datatypes.capture).

    Returns 0 when every file parsed, 1 when one failed (parse error or unreadable file),
    2 for an unknown data type.
    """
    module = DATA_TYPES.get(data_type)
    if module is None:
        print(f"unknown data type {data_type!r}; known: {', '.join(sorted(DATA_TYPES))}", file=sys.stderr)
        return 2
    rc = 0
    for path in files:
        try:
            text = path.read_bytes().decode("utf-8", errors="replace")
        except OSError as exc:
            print(f"{path}: cannot read: {exc.strerror or exc}", file=sys.stderr)
            rc = 1
            continue
        try:
            result = module.parse(text)
        except ParseError as exc:
            print(f"{path}: {exc}", file=sys.stderr)
            rc = 1
            continue
        except Unsupported as exc:
            print(f"{path}: unsupported: {exc}", file=sys.stderr)
            rc = 1
            continue
        except CommandFailed as exc:
            print(f"{path}: error: {exc}", file=sys.stderr)
            rc = 1
            continue
        for warning in result.warnings:
            print(f"{path}: warning: {warning}", file=sys.stderr)
        sys.stdout.write(payload_json(result.payload))
    return rc
