"""What every data type's parser shares: its result, its errors (``shared.errors.ParseError``,
``Unsupported``, ``CommandFailed``) and the sections of a script's output."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Generic, TypeVar

from shared.errors import InfrawatchError, ParseError

__all__ = ["CommandFailed", "Line", "ParseError", "ParseResult", "Unsupported", "split_sections"]

P = TypeVar("P")


@dataclass(frozen=True)
class ParseResult(Generic[P]):
    """A parsed payload and the warnings about parts that were missing or skipped.

    Warnings make a collection ``partial``; a ParseError makes it ``error``.
    """

    payload: P
    warnings: list[str] = field(default_factory=list)


Line = tuple[int, str]  # (1-based line number in the whole output, text)


def split_sections(text: str, marker: str = "@@ ") -> dict[str, list[list[Line]]]:
    """Split output into the sections of a script that prints ``@@ <name>`` before each.

    A name may repeat (each occurrence is one list). Lines before the first marker, such as a
    login banner printed by a shell profile, are ignored.
    """
    sections: dict[str, list[list[Line]]] = {}
    current: list[Line] | None = None
    for no, line in enumerate(text.splitlines(), start=1):
        if line.startswith(marker):
            current = []
            sections.setdefault(line[len(marker):].strip(), []).append(current)
        elif current is not None:
            current.append((no, line))
    return sections


class Unsupported(InfrawatchError):
    """The device lacks what the data type needs (no docker, smartctl, zpool, systemd...):
    the collection's status is ``unsupported`` and this is its reason."""


class CommandFailed(InfrawatchError):
    """A command the data type needs failed (exit status, killed, cut short): status ``error``."""
