"""systemd unit files: values found by their key.

``Environment=`` holds space-separated ``NAME=value`` assignments, each possibly quoted; the
value of a secret name is hidden (an unquoted one up to the next assignment, since
``DB_PASSWORD=correct horse battery`` means all three words). ``SetCredential=`` and
``SetCredentialEncrypted=`` hold ``id:secret``. Any other value (ExecStart command lines,
Description) is only searched for ``--password=x``/``--password x``, ``NAME=x`` and URL
credentials, so prose such as ``Forward Password Requests to Wall`` is kept.
"""

from __future__ import annotations

import re

from services.watcher.redaction.common import Span, is_secret_name, kept
from services.watcher.redaction.text import scan

_LINE = re.compile(r"[^\n]*")
_KEY = re.compile(r"[ \t]*([A-Za-z0-9_.-]+)[ \t]*=[ \t]*")
_WORD = re.compile(r'"(?:[^"\\\r\n]|\\.)*"?|\'(?:[^\'\\\r\n]|\\.)*\'?|[^\s"\']+')
_ASSIGNMENT = re.compile(r"([A-Za-z_][A-Za-z0-9_]*)=")
_CREDENTIAL_KEYS = {"SetCredential", "SetCredentialEncrypted"}
# credential ids and paths, not their data
_NOT_SECRET_KEYS = {"LoadCredential", "LoadCredentialEncrypted", "ImportCredential", "ConditionCredential",
                    "AssertCredential"}


def _environment(text: str, low: str, s: int, e: int, out: list[Span]) -> None:
    words = [m.span() for m in _WORD.finditer(text, s, e)]
    i = 0
    while i < len(words):
        ws, we = words[i]
        i += 1
        quoted = text[ws] in "\"'"
        a, b = (ws + 1, we - 1 if we - ws > 1 and text[we - 1] == text[ws] else we) if quoted else (ws, we)
        m = _ASSIGNMENT.match(text, a, b)
        if m is None or not is_secret_name(m.group(1)):
            out.extend(scan(text, low, a, b, free=False))
            continue
        if not quoted:  # the words up to the next assignment belong to the value
            while i < len(words) and text[words[i][0]] not in "\"'" and "=" not in text[words[i][0]:words[i][1]]:
                b = words[i][1]
                i += 1
        if m.end() < b and not kept(text[m.end():b]):
            out.append(Span(m.end(), b, m.group(1), "unit_environment"))


def _value(text: str, low: str, key: str, s: int, e: int, out: list[Span]) -> None:
    if key == "Environment":
        _environment(text, low, s, e, out)
    elif key in _CREDENTIAL_KEYS:
        colon = text.find(":", s, e)
        if 0 <= colon < e - 1:
            out.append(Span(colon + 1, e, text[s:colon].strip(), "unit_credential"))
    elif is_secret_name(key) and key not in _NOT_SECRET_KEYS:
        if not kept(text[s:e]):
            out.append(Span(s, e, key, "secret_setting"))
    else:
        out.extend(scan(text, low, s, e, free=False))


def spans(text: str, low: str) -> list[Span]:
    """Spans of every secret value of a unit file (line by line; ``\\`` continues a value)."""
    out: list[Span] = []
    key: str | None = None  # the key of a value continued on this line
    pos, n = 0, len(text)
    while pos <= n:
        line = _LINE.match(text, pos)
        assert line is not None  # the pattern matches the empty string
        end = line.end()
        body_end = end - 1 if end > pos and text[end - 1] == "\r" else end
        cont = body_end > pos and text[body_end - 1] == "\\"
        vend = body_end - 1 if cont else body_end
        stripped = text[pos:body_end].lstrip()
        if key is not None and stripped[:1] in ("#", ";"):
            pass  # a comment inside a continued value is skipped, as systemd does
        elif key is not None:
            _value(text, low, key, pos, vend, out)
            key = key if cont else None
        elif stripped[:1] in ("#", ";"):
            out.extend(scan(text, low, pos, body_end, free=False))
        elif (m := _KEY.match(text, pos, body_end)) is not None:
            _value(text, low, m.group(1), m.end(), vend, out)
            key = m.group(1) if cont else None
        pos = end + 1
    return out
