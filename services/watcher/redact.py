"""Hiding secret values in stored content: pure, on by default, configurable.

A rule is a regex with a group named ``value`` (what is hidden; alternatives ``value2``,
``value3``... for quoted forms) and optionally ``name`` (what is reported). The hash of a file
is always that of its original bytes; only the stored text and the diff are redacted.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from shared.payloads.config import Redaction

MASK = "<redacted>"  # a plain token in YAML, nginx and unit files alike, so redacted text still parses
_VALUE = r"""(?:"(?P<value>[^"\n]*)"|'(?P<value2>[^'\n]*)'|(?P<value3>[^\s"'#;,}]+))"""


@dataclass(frozen=True)
class Rule:
    name: str
    regex: re.Pattern[str]


DEFAULT_RULES: tuple[Rule, ...] = (
    # -----BEGIN RSA PRIVATE KEY----- ... -----END RSA PRIVATE KEY-----
    Rule("private_key_block", re.compile(
        r"-----BEGIN (?P<name>[A-Z0-9 ]*PRIVATE KEY)-----(?P<value>.*?)-----END [A-Z0-9 ]*PRIVATE KEY-----", re.DOTALL)),
    # postgres://user:secret@db/app
    Rule("url_credentials", re.compile(r"(?P<name>[A-Za-z][A-Za-z0-9+.-]*)://[^\s:/@'\"]+:(?P<value>[^\s@/'\"]+)@")),
    # proxy_set_header Authorization "Bearer abc";  Authorization: Basic dXNlcg==
    Rule("authorization_header", re.compile(
        r"(?i)(?P<name>(?:proxy-)?authorization)[\"']?\s*[:=]?\s*[\"']?(?:basic|bearer|token|digest)\s+"
        r"(?P<value>[^\s\"';]+)")),
    # DB_PASSWORD=x, API_TOKEN: x, Environment=AWS_SECRET_ACCESS_KEY=x
    Rule("env_secret", re.compile(
        r"(?<![A-Za-z0-9_])(?P<name>[A-Z0-9_]*(?:PASSWORD|PASSWD|PASS|TOKEN|SECRET|_KEY|APIKEY|CREDENTIALS?))"
        r"[\"']?\s*[:=]\s*" + _VALUE)),
    # password = x, "client_secret": "x", api-key x, X-Api-Key abc (nginx headers)
    Rule("secret_setting", re.compile(
        r"(?i)(?<![A-Za-z0-9_.-])(?P<name>[A-Za-z0-9_.-]*(?:passw(?:or)?d|secret|token|api[_-]?key|access[_-]?key|"
        r"private[_-]?key|auth[_-]?key)[A-Za-z0-9_.-]*)[\"']?(?:\s*[:=]\s*|(?P<ws>[ \t]+))" + _VALUE)),
)


def compile_rules(extra: list[str] | tuple[str, ...] = ()) -> tuple[Rule, ...]:
    """The default rules plus user regexes (each needs a group named ``value``)."""
    rules = list(DEFAULT_RULES)
    for i, pattern in enumerate(extra):
        rx = re.compile(pattern)
        if "value" not in rx.groupindex:
            raise ValueError(f"redaction pattern {pattern!r} has no group named 'value'")
        rules.append(Rule(f"custom_{i + 1}", rx))
    return tuple(rules)


def _kept(value: str) -> bool:
    """Values that are not secrets: empty, already masked, or a variable reference."""
    return not value or value == MASK or value.startswith("$") or value in ("true", "false", "null", "none")


def redact(text: str, rules: tuple[Rule, ...] = DEFAULT_RULES) -> tuple[str, list[Redaction]]:
    """The text with secret values replaced by ``<redacted>``, and what was hidden (never the values)."""
    spans: list[tuple[int, int, str, str]] = []
    for rule in rules:
        for m in rule.regex.finditer(text):
            group = next((g for g in ("value", "value2", "value3") if g in rule.regex.groupindex
                          and m.group(g) is not None), None)
            if group is None or _kept(m.group(group).strip()):
                continue
            start, end = m.span(group)
            line_start = text.rfind("\n", 0, m.start()) + 1
            if m.groupdict().get("ws") and "#" in text[line_start:m.start()]:
                continue  # prose in a comment ("# set your password here"), not a setting
            if any(s < end and start < e for s, e, _, _ in spans):
                continue
            name = m.groupdict().get("name") or rule.name
            spans.append((start, end, name, rule.name))
    if not spans:
        return text, []
    spans.sort()
    out, pos, found = [], 0, []
    for start, end, name, rule_name in spans:
        out.append(text[pos:start])
        out.append(f"\n{MASK}\n" if rule_name == "private_key_block" else MASK)
        pos = end
        found.append(Redaction(line=text.count("\n", 0, start) + 1, name=name, rule=rule_name))
    out.append(text[pos:])
    return "".join(out), found
