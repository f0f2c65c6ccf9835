"""nginx configuration: values found by their place in a directive.

The text is cut into nginx tokens (words, quoted strings, ``;``, ``{``, ``}``, comments) with
their offsets, and grouped into directives. Hidden are: the value of a header or parameter
whose name is a secret (``proxy_set_header Authorization "Basic ..."``, ``fastcgi_param
DB_PASSWORD x``, ``set $api_token x``), the arguments of a directive named like a secret
(``secure_link_secret``), and what the patterns find inside any argument (URL credentials).
nginx variables (``$http_authorization``) are references, not secrets, and are kept.
"""

from __future__ import annotations

import re
from collections.abc import Iterator

from services.watcher.redaction.common import Span, is_path, is_secret_name, kept
from services.watcher.redaction.text import TRIGGER, scan

# (whitespace, skipped) then: comment | "quoted" | 'quoted' | ; { } | a word ("#" inside a word is no comment)
_TOKEN = re.compile(r"""\s*+(?:(#[^\n]*)|("(?:[^"\\]|\\.)*"?|'(?:[^'\\]|\\.)*'?)|([;{}])"""
                    r"""|((?:\$\{[^}\s]*\}?|[^\s;{}"'\\]|\\.)+))""")
_PARAM_DIRECTIVES = {"proxy_set_header", "add_header", "grpc_set_header", "fastcgi_param", "uwsgi_param",
                     "scgi_param", "set", "env", "add_trailer"}


def _value(text: str, s: int, e: int) -> tuple[int, int]:
    """Inside the quotes of a quoted token."""
    if e - s >= 2 and text[s] in "\"'" and text[e - 1] == text[s]:
        return s + 1, e - 1
    return s, e


def _directives(text: str) -> Iterator[list[tuple[int, int]]]:
    """Each directive as a list of (start, end) token spans, name first; a comment on its own."""
    current: list[tuple[int, int]] = []
    for m in _TOKEN.finditer(text):
        kind = m.lastindex
        if kind is None:
            continue  # trailing whitespace
        if kind == 1:  # a comment: a commented-out secret is still one
            yield [m.span(1)]
        elif kind == 3:
            if current:
                yield current
            current = []
        else:
            current.append(m.span(kind))
    if current:
        yield current


def _hide(text: str, tok: tuple[int, int], name: str, rule: str) -> Span | None:
    s, e = _value(text, *tok)
    value = text[s:e]
    if kept(value, nginx=True) or (name.lower().endswith("key") and is_path(value)):
        return None
    m = re.match(r"(?i)(?:basic|bearer|token|digest|negotiate|apikey)[ \t]+", value)
    if m is not None:
        s += m.end()
        if kept(text[s:e], nginx=True):
            return None
    return Span(s, e, name, rule) if e > s else None


def spans(text: str, low: str) -> list[Span]:
    """Spans of every secret value of an nginx configuration text."""
    out: list[Span] = []
    for tokens in _directives(text):
        name = text[tokens[0][0]:tokens[0][1]]
        if name.startswith("#"):
            out.extend(scan(text, low, tokens[0][0], tokens[0][1], free=False, nginx=True))
            continue
        hidden: set[int] = set()
        if name in _PARAM_DIRECTIVES and len(tokens) >= 3:
            s, e = _value(text, *tokens[1])
            param = text[s:e].lstrip("$")
            if is_secret_name(param):
                for i in range(2, len(tokens)):
                    if (span := _hide(text, tokens[i], param, "nginx_directive")) is not None:
                        out.append(span)
                    hidden.add(i)
        elif is_secret_name(name) and len(tokens) >= 2:
            for i in range(1, len(tokens)):
                if (span := _hide(text, tokens[i], name, "nginx_directive")) is not None:
                    out.append(span)
                hidden.add(i)
        if TRIGGER.search(low, tokens[0][0], tokens[-1][1]) is None:
            continue
        for i, (s, e) in enumerate(tokens):
            if i not in hidden and e - s > 3:
                out.extend(scan(text, low, *_value(text, s, e), free=False, nginx=True))
    return out
