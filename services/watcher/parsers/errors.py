"""The error every parser raises: the reason and, when known, the line that broke it."""

from __future__ import annotations


class ParseError(ValueError):
    def __init__(self, reason: str, line: int | None = None) -> None:
        self.reason = reason
        self.line = line
        super().__init__(f"line {line}: {reason}" if line else reason)
