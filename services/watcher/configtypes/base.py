"""What a config type declares (``ConfigType``) and what its impact rules are given: the risk
so far (``Risk``), the effects to fill in (``Effects``) and ``touches`` to pick diff keys."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import msgspec

from services.watcher.redaction.common import Span
from shared.config_events import ChangeType, DiffSummary, RiskLevel

RISK_ORDER: tuple[RiskLevel, ...] = ("LOW", "MEDIUM", "HIGH", "CRITICAL")


class Risk:
    """The highest risk level met so far and the rule that set it."""

    def __init__(self) -> None:
        self.level: RiskLevel = "LOW"
        self.rule = "no functional change"
        self._set = False

    def at_least(self, level: RiskLevel, rule: str) -> None:
        if not self._set or RISK_ORDER.index(level) > RISK_ORDER.index(self.level):
            self.level, self.rule, self._set = level, rule, True


class Effects(msgspec.Struct):
    """What a change affects, as a config type's impact rules fill it in."""

    affected: list[str] = []
    dependencies: list[str] = []
    restart: list[str] = []  # services to restart
    reload: list[str] = []  # services to reload
    actions: list[str] = []  # commands that apply the change


def touches(keys: list[str], *prefixes: str) -> list[str]:
    """The dotted diff keys at or below any of ``prefixes``."""
    return [k for k in keys if any(k == p or k.startswith((p + ".", p + "[")) for p in prefixes)]


# parse(text, path) -> parsed data; raises shared.errors.ParseError (message, line_no=...)
Parser = Callable[[str, str], dict[str, Any]]
# redact(text, lower-cased text, path) -> spans to hide, or None to leave the file to the line patterns
Redactor = Callable[[str, str, str], "list[Span] | None"]
# rules(change, old parsed, new parsed, diff summary, risk, effects, path); old/new are {} when absent
Rules = Callable[[ChangeType, dict[str, Any], dict[str, Any], DiffSummary, Risk, Effects, str], None]


@dataclass(frozen=True)
class ConfigType:
    """One kind of watched file. A type without ``parse`` keeps content and hash only; without
    ``redact`` its files are redacted by the line patterns; without ``rules`` its impact has only
    the rules every file gets (``services/watcher/impact.py``)."""

    name: str
    globs: tuple[str, ...] = ()  # watched on every device, under the root prefix
    parse: Parser | None = None
    redact: Redactor | None = None
    rules: Rules | None = None
    parse_error_risk: RiskLevel = "CRITICAL"  # when a new version does not parse
