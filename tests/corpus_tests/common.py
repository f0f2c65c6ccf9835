"""What the corpus tests share: the files of a kind, and a run of a parser over all of them.

A parser may refuse a file only with its typed error (ParseError, or for the collector an
unsupported/failed outcome); any other exception propagates and fails the test with its
traceback. Each run prints its counts, shown with ``pytest -s`` or in the report of a failure.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

CORPUS = Path(__file__).resolve().parent.parent / "corpus"
MIN_PARSED = 0.99  # share of the files of a kind that must parse


def files(kind: str, pattern: str = "**/*") -> list[Path]:
    """Every regular file under tests/corpus/<kind>/, sorted."""
    return sorted(p for p in (CORPUS / kind).glob(pattern) if p.is_file())


def rel(path: Path) -> str:
    return str(path.relative_to(CORPUS))


@dataclass
class Tally:
    kind: str
    parsed: dict[str, Any] = field(default_factory=dict)  # corpus path -> parser result
    refused: dict[str, str] = field(default_factory=dict)  # corpus path -> typed error message

    @property
    def total(self) -> int:
        return len(self.parsed) + len(self.refused)

    def line(self) -> str:
        return f"{self.kind}: {len(self.parsed)}/{self.total} parsed, {len(self.refused)} refused with a typed error"

    def check_share(self, expected_refusals: Iterable[str] = ()) -> None:
        """At least MIN_PARSED of the files parse; the files known to be invalid are refused."""
        expected = set(expected_refusals)
        assert expected <= set(self.refused), f"{self.kind}: invalid files accepted: {expected - set(self.refused)}"
        unexpected = {k: v for k, v in self.refused.items() if k not in expected}
        print(self.line())
        assert len(self.parsed) >= MIN_PARSED * (self.total - len(expected)), (self.line(), unexpected)


def run(kind: str, items: Iterable[tuple[str, Callable[[], Any]]], typed: tuple[type[BaseException], ...]) -> Tally:
    """Call each parse; a typed refusal is recorded, any other exception propagates."""
    tally = Tally(kind)
    for name, call in items:
        try:
            tally.parsed[name] = call()
        except typed as exc:
            tally.refused[name] = f"{type(exc).__name__}: {exc}"
    return tally
