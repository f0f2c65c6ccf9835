"""What every data type's parser shares: its result and its error."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Generic, TypeVar

P = TypeVar("P")


class ParseError(ValueError):
    """The output could not be understood; carries the offending line and its number (1-based)."""

    def __init__(self, message: str, line: str | None = None, line_no: int | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.line = line
        self.line_no = line_no

    def __str__(self) -> str:
        if self.line is None:
            return self.message
        where = f"line {self.line_no}" if self.line_no is not None else "line"
        return f"{self.message} ({where}: {self.line!r})"


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


class Unsupported(Exception):
    """The device lacks what the data type needs (no docker, smartctl, zpool, systemd...):
    the collection's status is ``unsupported`` and this is its reason."""


class CommandFailed(Exception):
    """A command the data type needs failed (exit status, killed, cut short): status ``error``."""
