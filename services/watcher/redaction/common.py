"""What every format shares: which names hold secrets, which values are kept, spans and masking.

A span is a range of the original text to hide. Masking keeps the text's shape: a one-line span
becomes ``<redacted>``; a span over several lines keeps its line breaks and each line's
indentation, so line numbers, YAML block indentation and PEM markers stay where they were.
"""

from __future__ import annotations

import re
from functools import lru_cache
from itertools import pairwise
from typing import NamedTuple

from shared.config_events import Redaction

MASK = "<redacted>"  # a plain token in YAML, nginx, unit and env files alike
MAX_RECORDS = 1000  # redaction records per file; further ones are counted in one last record


class Span(NamedTuple):
    start: int
    end: int
    name: str
    rule: str
    report: bool = True  # False for the further lines of one block (one record per block)
    at: int = -1  # where the reported line is, when not at ``start`` (a block's BEGIN line)


# camelCase, UPPER_CASE, kebab-case and dotted names, split into lower-case words
_WORDS = re.compile(r"[A-Z]+(?![a-z])|[A-Z]?[a-z]+|[0-9]+")
_CONTAINS = re.compile("password|passwd|passphrase|secret|token|apikey|credential|privatekey|accesskey|authkey"
                       "|requirepass|masterauth|authorization")
_HINT = re.compile("(?i)pass|pw|psk|secret|token|key|credential|auth")
_EXACT = {"pass", "pwd", "pw", "psk"}
_PAIRS = {("api", "key"), ("access", "key"), ("private", "key"), ("auth", "key"), ("secret", "key"),
          ("encryption", "key"), ("signing", "key"), ("master", "key"), ("license", "key"), ("client", "key"),
          ("session", "key"), ("shared", "key"), ("app", "key")}
# a name whose last word is one of these holds a reference, a setting or a path, not the secret
_BENIGN_LAST = {"file", "files", "path", "dir", "directory", "location", "ttl", "length", "len", "size", "expiry",
                "expires", "expiration", "lifetime", "timeout", "type", "name", "names", "url", "uri", "endpoint",
                "policy", "required", "enabled", "enable", "disable", "disabled", "mode", "method", "format",
                "prompt", "agent", "command", "cmd", "header", "param", "count", "limit", "interval", "algorithm",
                "cipher", "provider", "backend", "source", "requests", "reset", "strength", "check", "hint",
                "label", "id", "ids", "env", "var", "user", "username", "login", "host", "port", "at", "seconds",
                "days", "age", "encryption", "hashing", "store", "generator", "helper", "hook", "regex", "pattern",
                "rule"}
_PASS_VERBS = {"proxy", "fastcgi", "uwsgi", "grpc", "scgi", "memcached", "by"}
_BENIGN_ANY = {"max", "min", "num", "ttl", "expire"}


@lru_cache(maxsize=4096)
def is_secret_name(name: str) -> bool:
    """``DB_PASSWORD``, ``client_secret``, ``apiKey``, ``X-Api-Key``, ``APP_KEY``: yes;
    ``POSTGRES_PASSWORD_FILE``, ``ssl_certificate_key``, ``systemd-tty-ask-password-agent``: no."""
    if _HINT.search(name) is None:  # every secret name holds one of these
        return False
    words = [w.lower() for w in _WORDS.findall(name)]
    # proxy_pass, fastcgi_pass, proxy_pass_request_headers, pass_through: routing, not a password
    words = [w for i, w in enumerate(words) if not (w == "pass" and (
        (i and words[i - 1] in _PASS_VERBS) or (i + 1 < len(words) and words[i + 1] in ("through", "thru"))))]
    if not words or words[-1] in _BENIGN_LAST or _BENIGN_ANY.intersection(words):
        return False
    if _CONTAINS.search(" ".join(words)) or _EXACT.intersection(words):
        return True
    if any(p in _PAIRS for p in pairwise(words)):
        return True
    return words[-1] == "key" and len(words) > 1 and name.isupper()  # APP_KEY, JWT_KEY


_REF = re.compile(r"\$\{[A-Za-z_][A-Za-z0-9_]*(?::?\?[^}]*)?\}|\$[A-Z_][A-Z0-9_]*|\$\$\{?[A-Za-z_][A-Za-z0-9_]*\}?"
                  r"|\{\{[^{}]*\}\}|%\([A-Za-z_]+\)s")
_NGINX_VAR = re.compile(r"(?:\$\{?[A-Za-z_][A-Za-z0-9_]*\}?)+")
_KEPT = {"", "true", "false", "yes", "no", "on", "off", "null", "none", "~", MASK.lower()}


def kept(value: str, nginx: bool = False) -> bool:
    """Values that are not secrets: empty, booleans, already masked, or only a reference to one
    (``${DB_PASSWORD}``, ``$API_TOKEN``, ``{{ vault_pw }}``; nginx ``$http_authorization``).
    ``$ecr3t`` and ``${PW:-hunter2}`` are not references only, so they are hidden."""
    v = value.strip()
    if not v:
        return True
    if v[0] not in "$%{<" and len(v) > 5:
        return False
    if v.lower() in _KEPT:
        return True
    return bool(_REF.fullmatch(v) or (nginx and _NGINX_VAR.fullmatch(v)))


def is_path(value: str) -> bool:
    """An absolute or ./relative path: what ``*_key`` names of paths hold (``ssl_certificate_key``)."""
    v = value.strip().strip("\"'")
    return v.startswith(("/", "./", "../", "~/")) and not any(c.isspace() for c in v)


_LINE_BODY = re.compile(r"(?m)^([ \t]*)[^ \t\r\n][^\n]*?(\r?)$")


def _mask(segment: str) -> str:
    if "\n" not in segment:
        return MASK
    return _LINE_BODY.sub(r"\1" + MASK + r"\2", segment)


def merge(primary: list[Span], secondary: list[Span]) -> list[Span]:
    """Both lists' spans sorted and without overlaps; on an overlap the primary span wins."""
    def clean(spans: list[Span]) -> list[Span]:
        out: list[Span] = []
        for s in sorted(spans, key=lambda s: (s.start, -s.end)):
            if s.end > s.start and (not out or s.start >= out[-1].end):
                out.append(s)
        return out
    a, b = clean(primary), clean(secondary)
    kept_b, i = [], 0
    for s in b:
        while i < len(a) and a[i].end <= s.start:
            i += 1
        if i < len(a) and a[i].start < s.end:
            continue
        kept_b.append(s)
    return sorted(a + kept_b, key=lambda s: s.start)


def apply(text: str, spans: list[Span]) -> tuple[str, list[Redaction]]:
    """The text with each span masked, and one record (line, name, rule) per reported span."""
    out: list[str] = []
    found: list[Redaction] = []
    pos, line, more = 0, 1, 0
    for s in spans:
        out.append(text[pos:s.start])
        line += text.count("\n", pos, s.start)
        if s.report:
            if len(found) < MAX_RECORDS:
                at = line - text.count("\n", s.at, s.start) if 0 <= s.at < s.start else line
                found.append(Redaction(line=at, name=s.name, rule=s.rule))
            else:
                more += 1
        segment = text[s.start:s.end]
        out.append(_mask(segment))
        line += segment.count("\n")
        pos = s.end
    out.append(text[pos:])
    if more:
        found.append(Redaction(line=line, name=f"{more} more", rule="records_limit"))
    return "".join(out), found
