"""The project's errors: one root, and the one error of every parser of outside input."""

from __future__ import annotations


class InfrawatchError(Exception):
    """Root of the errors infrawatch raises on purpose."""


class ParseError(InfrawatchError, ValueError):
    """Input (command output, a configuration file) could not be understood; carries the offending
    line and its number (1-based) when there is one."""

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
