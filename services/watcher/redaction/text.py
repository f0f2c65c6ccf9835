"""Line-bounded, linear-time patterns: whole files without a parser (``free``), and the text
inside one parsed value (a YAML scalar, an nginx argument, a unit's command line).

Every pattern stops at the end of its line and has no two adjacent quantifiers over the same
characters, so a hostile line (20,000 spaces after ``authorization``) costs one pass.
"""

from __future__ import annotations

import re

from services.watcher.redaction.common import Span, is_path, is_secret_name, kept

# searched in the lower-cased text: a keyword and the rest of its word (possessive, so a
# hit never rescans its word); the start of the word is found by looking back from the hit
_KW = re.compile(r"(?:pass|pw|psk|secret|token|key|credential|auth)[\w.-]*+")
# anything any rule needs; a text (or a value) without one has nothing to hide
TRIGGER = re.compile(r"pass|pw|psk|secret|token|key|credential|auth|://|-----begin|\$\$?(?:apr1|2[abxy]?|[1567y])\$"
                     r"|\{ssha?\}")
_NAME_CHARS = "abcdefghijklmnopqrstuvwxyz0123456789_.-"
_MAX_NAME = 64
_ASSIGN = re.compile(r"""["']?[ \t]*(?:=>|=(?!=)|:(?=[ \t"']))[ \t]*""")
_WS = re.compile(r"[ \t]+")
# an escape never takes a line's end (nor the \r of a CRLF) with it; a backslash ending a line is kept
_DQ = re.compile(r'"((?:[^"\\\r\n]|\\[^\r\n]|\\(?=[\r\n]|\Z))*)"?')
_SQ = re.compile(r"'((?:[^'\\\r\n]|\\[^\r\n]|\\(?=[\r\n]|\Z)|'')*)'?")
_TOKEN = re.compile(r"""(?:[^\s"'`\\;,&)}\]<>|]|\\[^\r\n]|\\(?=[\r\n]|\Z))+""")
_SCHEME = re.compile(r"(?i)(?:basic|bearer|token|digest|negotiate|apikey|key)[ \t]+(?=[^\s\"';])")
_SCHEME_FIRST = set("bBtTdDnNaAkK")
_LINE_END = re.compile(r"[ \t]*;?[ \t]*\r?(?:\n|$)")
_PREFIX = re.compile(r"""[ \t]*(?:-[ \t]+)?(?:export[ \t]+)?["']?""")
_COMMENT = re.compile(r"[ \t]*(?://|;)|[^#\n]*#")
_WINDOW = 256  # how far back the start of a name's line is looked for

_URL = re.compile(r"://[^\s:/@'\"<>]*:(?P<value>[^\s@/'\"<>]+)@")
_SCHEME_NAME = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*$")
# htpasswd and shadow hashes after "user:" (apr1, bcrypt, sha-crypt, {SHA}); $$ is compose's escape
_HASH = re.compile(r"\$\$?(?:apr1|2[abxy]?|[1567y])\$\$?[./A-Za-z0-9$]{8,}|\{SSHA?\}[A-Za-z0-9+/=]{16,}")
# ~/.pgpass: hostname:port:database:username:password (":" and "\" escaped by "\")
_PGPASS_HINT = re.compile(r":(?:\d+|\*):")
_PGPASS = re.compile(r"(?:[^:\\\s#]|\\.)+:(?:\d+|\*):(?:[^:\\\n]|\\.)*:(?:[^:\\\n]|\\.)*:"
                     r"(?P<value>(?:[^\\\n\r]|\\.)+)")
_PEM = re.compile(r"-----BEGIN (?P<name>[A-Z0-9 ]*PRIVATE KEY(?: BLOCK)?)-----")
_PEM_END = re.compile(r"-----END [A-Z0-9 ]*-----")
_RUN = re.compile(r"(?<!\\)[A-Za-z0-9+/]{2,}=*")  # base64 runs; "\n" escapes in JSON strings are kept
_PLAIN = re.compile(r"(?:[ \t]*(?:(?:[A-Za-z0-9+/]+=*|[A-Za-z-]+: [^\n]*)[ \t]*)?\r?\n)*")
_BODY = re.compile(r"""[ \t"'>]*(?:[A-Za-z0-9+/]+=*|(?:Proc-Type|DEK-Info|Version|Comment|Hash|Charset):[^\n]*)?"""
                   r"""(?:\\n)?["',]*[ \t]*\r?""")


def _line_prefix(text: str, pos: int, lo: int) -> str | None:
    """The text from the start of ``pos``'s line to ``pos`` (None when further than the window)."""
    if pos == lo or text[pos - 1] == "\n":
        return ""
    start = lo if pos - lo <= _WINDOW else pos - _WINDOW
    nl = text.rfind("\n", start, pos)
    if nl < 0 and start > lo:
        return None
    return text[nl + 1 if nl >= 0 else start:pos]


def pem(text: str, lo: int, hi: int, blocks: list[tuple[int, int]] | None = None) -> list[Span]:
    """Private key blocks (PEM, OpenSSH, PGP): the key text of every line between BEGIN and END
    (each block's extent is added to ``blocks``). A block without END ends at the first line
    that is not key text."""
    out: list[Span] = []
    pos = lo
    next_end, searched_from = None, hi + 1  # the first END at or after searched_from (each part searched once)
    begin = -1
    while (m := _PEM.search(text, pos, hi)) is not None:
        if begin >= 0 and blocks is not None:
            blocks.append((begin, pos))  # pos: where the previous block ended
        begin = m.start()
        name, first = m.group("name"), len(out)

        def runs(a: int, b: int) -> None:
            for r in _RUN.finditer(text, a, b):
                out.append(Span(r.start(), r.end(), name, "private_key_block", len(out) == first, m.start()))  # noqa: B023 (called in this iteration only)

        p = m.end()
        pos = hi
        nl = text.find("\n", p, hi)
        end = None
        if nl >= 0 and not text[p:nl].strip():
            if not (next_end is not None and next_end.start() >= nl) and not (next_end is None and searched_from <= nl):
                next_end, searched_from = _PEM_END.search(text, nl, hi), nl
            end = next_end
        if end is not None:  # the usual block: key text alone on its lines, then END on its own line
            body_end = text.rfind("\n", nl, end.start())
            if not text[body_end + 1:end.start()].strip() and _PLAIN.fullmatch(text, nl + 1, body_end + 1):
                if body_end > nl:
                    out.append(Span(nl, body_end, name, "private_key_block", True, m.start()))
                pos = end.end()
                continue
        while p < hi:
            le = text.find("\n", p, hi)
            le = hi if le < 0 else le
            end = _PEM_END.search(text, p, le)
            if end is not None:
                runs(p, end.start())
                pos = end.end()
                break
            if p != m.end() and not _BODY.fullmatch(text, p, le):
                pos = p
                break
            runs(p, le)
            p = le + 1
    if begin >= 0 and blocks is not None:
        blocks.append((begin, pos))
    return out


def _settings(text: str, low: str, lo: int, hi: int, free: bool, nginx: bool) -> list[Span]:
    out: list[Span] = []
    pos = lo
    search = _KW.search
    while (m := search(low, pos, hi)) is not None:
        pos = m.end()
        start = m.start()
        if start > lo and low[start - 1] in _NAME_CHARS:  # the word began before the keyword
            floor = lo if start - lo <= _MAX_NAME else start - _MAX_NAME
            start -= len(low[floor:start]) - len(low[floor:start].rstrip(_NAME_CHARS))
        if start > lo and low[start - 1] in "$/":
            continue  # an nginx variable ($http_authorization) or a path (/etc/passwd)
        name = text[start:pos]
        if is_secret_name(name):
            span = _value(text, start, pos, name, lo, hi, free, nginx)
            if span is not None:
                out.append(span)
                if span.end > pos:
                    pos = span.end
    return out


def _value(text: str, start: int, e: int, name: str, lo: int, hi: int, free: bool, nginx: bool) -> Span | None:
    """The value after a secret name: ``name=v``, ``name: "v"``, ``--name v``, or (in files
    without a parser) ``name v`` ending its line, outside comments."""
    flag = name.startswith("-")
    a = _ASSIGN.match(text, e, hi)
    if a is not None:
        if flag and a.group()[-1:] in (" ", "\t"):
            return None  # "--set-credential= switch": no value
        v, ws_form = a.end(), False
    else:
        w = _WS.match(text, e, hi)
        if w is None or not (flag or free):
            return None
        v, ws_form = w.end(), True
    prefix = _line_prefix(text, start, lo) if free else None
    if ws_form and not flag and (prefix is None or _COMMENT.match(prefix) or "=" in prefix
                                 or len(prefix.split()) > 1):
        return None  # prose ("# set your password here", "Description=... passphrase cache"), not a setting
    c = text[v] if v < hi else ""
    if c in ('"', "'"):
        q = (_DQ if c == '"' else _SQ).match(text, v, hi)
        assert q is not None  # an opening quote always matches
        s, end = q.span(1)
        after = q.end()
        if (sch := _SCHEME.match(text, s, end)) is not None:
            s = sch.end()
    else:
        if c in _SCHEME_FIRST and (sch := _SCHEME.match(text, v, hi)) is not None:
            v = sch.end()
        if not ws_form and prefix is not None and (not prefix or _PREFIX.fullmatch(prefix)):
            end = text.find("\n", v, hi)  # KEY=value as a whole line: the value runs to its end
            end = hi if end < 0 else end
            tail = text[max(v, end - 16):end]
            s, end = v, end - (len(tail) - len(tail.rstrip(" \t\r;,")))
        else:
            t = _TOKEN.match(text, v, hi)
            if t is None or (flag and ws_form and text[v] == "-"):
                return None
            s, end = t.span()
        after = end
    if ws_form and not flag and _LINE_END.match(text, after, hi) is None:
        return None
    value = text[s:end]
    if end <= s or kept(value, nginx) or (name[-3:].lower() == "key" and is_path(value)):
        return None
    rule = "authorization_header" if "uthorization" in name else "secret_setting"
    return Span(s, end, name.strip("-\"'") if flag or name[-1] in "\"'" else name, rule)


def _hashes(text: str, lo: int, hi: int) -> list[Span]:
    return [Span(m.start(), m.end(), "password_hash", "password_hash") for m in _HASH.finditer(text, lo, hi)
            if m.start() > lo and text[m.start() - 1] in ":="]


def _pgpass(text: str, lo: int, hi: int) -> list[Span]:
    out, pos = [], lo
    while (m := _PGPASS_HINT.search(text, pos, hi)) is not None:
        ls = max(pos, text.rfind("\n", pos, m.start()) + 1)
        le = text.find("\n", m.end(), hi)
        le = hi if le < 0 else le
        full = _PGPASS.fullmatch(text, ls, le - 1 if text[le - 1] == "\r" else le)
        if full is not None:
            out.append(Span(full.start("value"), full.end("value"), "pgpass", "pgpass"))
        pos = le + 1
    return out


def scan(text: str, low: str, lo: int = 0, hi: int | None = None, free: bool = True,
         nginx: bool = False) -> list[Span]:
    """Spans to hide in ``text[lo:hi]`` (``low``: the text lower-cased, same length); ``free``:
    a whole file without a parser (whole-line ``KEY=value``, ``name value`` settings, pgpass
    lines), else the inside of one parsed value."""
    hi = len(text) if hi is None else hi
    if TRIGGER.search(low, lo, hi) is None:
        return []
    blocks: list[tuple[int, int]] = []
    out = pem(text, lo, hi, blocks)
    gaps = [(a, b) for a, b in zip([lo] + [e for _, e in blocks], [s for s, _ in blocks] + [hi]) if b > a]
    for a, b in gaps:  # the other rules, outside key blocks
        for m in _URL.finditer(text, a, b):
            scheme = _SCHEME_NAME.search(text, max(a, m.start() - 32), m.start())
            out.append(Span(m.start("value"), m.end("value"), scheme.group() if scheme else "url",
                            "url_credentials"))
        out.extend(_hashes(text, a, b))
        if free:
            out.extend(_pgpass(text, a, b))
        out.extend(_settings(text, low, a, b, free, nginx))
    return out


def has_secrets(text: str, low: str) -> bool:
    """Whether the text holds anything any rule hides: a key block, URL credentials, a password
    hash, or a word that names a secret. A file without one (most nginx and unit files: their
    ``proxy_pass`` and ``key`` are no secret names) needs no parsing for redaction."""
    if _PEM.search(text) or _URL.search(text) or _HASH.search(text):
        return True
    for m in _KW.finditer(low):
        start = m.start()
        floor = max(0, start - _MAX_NAME)
        start -= len(low[floor:start]) - len(low[floor:start].rstrip(_NAME_CHARS))
        if is_secret_name(text[start:m.end()]):
            return True
    return False


def lower(text: str) -> str:
    """The text lower-cased with every offset kept (ASCII only when full case folding would
    change the length, as for "\u0130")."""
    low = text.lower()
    return low if len(low) == len(text) else text.translate(_ASCII_LOWER)


_ASCII_LOWER = {c: c + 32 for c in range(ord("A"), ord("Z") + 1)}
