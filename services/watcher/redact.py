"""Hiding secret values in stored content: pure, on by default, configurable.

Where a file's config type has a ``redact`` hook (``services/watcher/configtypes/``), the
original text is read by its structure and values are hidden by their place in it (YAML keys and
compose ``environment`` entries, nginx directives, unit ``Environment=``; any ``.yml``/``.yaml``
file of a user-defined type); other files, and files that do not parse, get line-bounded,
linear-time patterns (``redaction/text.py``).
Only a value's characters are replaced, by ``<redacted>``: line count, keys, indentation and
quoting stay, so the redacted text parses to the same keys, services and directives. The hash
of a file is always that of its original bytes; only the stored text and the diff are redacted.

User rules are regexes with a group named ``value`` (alternatives ``value2``, ``value3``...)
and optionally ``name``; they run on every file after the built-in redaction.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass

from services.watcher.configtypes import config_type as declared
from services.watcher.redaction.common import MASK, Span, apply, merge
from services.watcher.redaction.text import has_secrets, lower, scan
from shared.config_events import Redaction

__all__ = ["DEFAULT_RULES", "MASK", "Rule", "compile_rules", "redact"]
log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Rule:
    name: str
    regex: re.Pattern[str]


DEFAULT_RULES: tuple[Rule, ...] = ()  # the built-in redaction always runs; these are the extra rules


def compile_rules(extra: list[str] | tuple[str, ...] = ()) -> tuple[Rule, ...]:
    """User regexes as rules (each needs a group named ``value``)."""
    rules = []
    for i, pattern in enumerate(extra):
        rx = re.compile(pattern)
        if "value" not in rx.groupindex:
            raise ValueError(f"redaction pattern {pattern!r} has no group named 'value'")
        rules.append(Rule(f"custom_{i + 1}", rx))
    return tuple(rules)


def _custom(text: str, rules: tuple[Rule, ...]) -> list[Span]:
    out = []
    for rule in rules:
        groups = [g for g in rule.regex.groupindex if g == "value" or re.fullmatch(r"value\d+", g)]
        for m in rule.regex.finditer(text):
            g = next((g for g in groups if m.group(g) is not None), None)
            if g is not None and m.group(g).strip() and m.group(g) != MASK:
                out.append(Span(*m.span(g), m.groupdict().get("name") or rule.name, rule.name))
    return out


def _structure(text: str, low: str, config_type: str | None, path: str) -> list[Span] | None:
    """Spans found through the file's structure (its config type's ``redact``), or None when it
    has none (or does not parse)."""
    hook = declared(config_type).redact
    return hook(text, low, path) if hook is not None else None


def redact(text: str, rules: tuple[Rule, ...] = DEFAULT_RULES, config_type: str | None = None,
           path: str = "") -> tuple[str, list[Redaction]]:
    """The text with secret values replaced by ``<redacted>``, and what was hidden (never the values)."""
    low = lower(text)
    spans: list[Span] = []
    if has_secrets(text, low):
        try:
            structured = _structure(text, low, config_type, path)
        except Exception:  # a bug in one format's reader must not leave a secret: the patterns still run
            log.exception("redacting %s by its structure failed; redacting it by patterns", path or config_type)
            structured = None
        spans = structured if structured is not None else scan(text, low)
    spans = merge(spans, _custom(text, rules))
    if not spans:
        return text, []
    return apply(text, spans)
