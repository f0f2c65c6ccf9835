"""YAML (docker compose and any YAML file): values found by their place in the node tree.

The tree is composed from the original text (libyaml when present); each scalar knows where
it starts and ends, so only that value's characters are replaced and quoting, block scalars
(``password: |``), lists (``secrets:``) and comments stay as they were.
"""

from __future__ import annotations

import re

import yaml
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from services.watcher.redaction.common import Span, is_path, is_secret_name, kept
from services.watcher.redaction.text import scan

_Loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
_NOT_VALUES = {"secrets", "configs"}  # compose: lists of names of secrets, not secrets
_PROPERTIES = re.compile(r"(?:[&!][^\s]*[ \t]+)*")
_ENTRY = re.compile(r"[ \t]*([A-Za-z_][A-Za-z0-9_.-]*)[ \t]*=")  # NAME=value of an environment list


def _interior(text: str, node: ScalarNode) -> tuple[int, int]:
    """Where a scalar's value is: inside its quotes; a block scalar's lines after the indicator."""
    s, e = node.start_mark.index, node.end_mark.index
    if text[s:s + 1] in ("&", "!"):  # an anchor or a tag comes before the value
        props = _PROPERTIES.match(text, s, e)
        assert props is not None  # the pattern matches the empty string
        s = props.end()
    if node.style in ('"', "'"):
        return s + 1, max(s + 1, e - 1)
    if node.style in ("|", ">"):
        nl = text.find("\n", s, e)
        return (e, e) if nl < 0 else (nl, e)
    return s, e


def _hide(text: str, node: ScalarNode, name: str, rule: str) -> Span | None:
    if kept(node.value) or (name.lower().endswith("key") and is_path(node.value)):
        return None
    s, e = _interior(text, node)
    return Span(s, e, name, rule) if e > s else None


def _entry(text: str, node: ScalarNode, out: list[Span]) -> bool:
    """``- DB_PASSWORD=correct horse battery``: the part after ``=`` when the name is a secret."""
    s, e = _interior(text, node)
    m = _ENTRY.match(text, s, e) if node.style not in ("|", ">") else None
    if m is None or not is_secret_name(m.group(1)):
        return False
    if not kept(node.value.split("=", 1)[1]) and m.end() < e:
        out.append(Span(m.end(), e, m.group(1), "env_entry"))
    return True


def _walk(text: str, low: str, node: Node, out: list[Span], seen: set[int]) -> None:
    if id(node) in seen:
        return  # an alias of a node already visited
    seen.add(id(node))
    if isinstance(node, ScalarNode):
        if not _entry(text, node, out):
            s, e = _interior(text, node)
            out.extend(scan(text, low, s, e, free=False))
    elif isinstance(node, SequenceNode):
        items = node.value
        for i, item in enumerate(items):
            prev = items[i - 1] if i else None
            # command: ["--db-password", "x"]: the item after a secret flag
            if (isinstance(prev, ScalarNode) and isinstance(item, ScalarNode) and prev.value.startswith("-")
                    and "=" not in prev.value and is_secret_name(prev.value)):
                if (span := _hide(text, item, prev.value.lstrip("-"), "secret_argument")) is not None:
                    out.append(span)
                seen.add(id(item))
                continue
            _walk(text, low, item, out, seen)
    elif isinstance(node, MappingNode):
        for key, value in node.value:
            _walk(text, low, key, out, seen)
            name = str(key.value) if isinstance(key, ScalarNode) else ""
            if name and is_secret_name(name):
                if isinstance(value, ScalarNode):
                    seen.add(id(value))
                    if (span := _hide(text, value, name, "secret_setting")) is not None:
                        out.append(span)
                    continue
                if isinstance(value, SequenceNode) and name not in _NOT_VALUES:  # tokens: [a, b]
                    for item in value.value:
                        if isinstance(item, ScalarNode) and id(item) not in seen:
                            seen.add(id(item))
                            if (span := _hide(text, item, name, "secret_setting")) is not None:
                                out.append(span)
            _walk(text, low, value, out, seen)


def spans(text: str, low: str) -> list[Span]:
    """Spans of every secret value of a YAML text; raises ``yaml.YAMLError`` when it does not parse."""
    out: list[Span] = []
    seen: set[int] = set()
    bom = 1 if text.startswith("\ufeff") else 0  # the parser's offsets start after a byte order mark
    body, body_low = (text[1:], low[1:]) if bom else (text, low)
    for doc in yaml.compose_all(body, Loader=_Loader):
        if doc is not None:
            _walk(body, body_low, doc, out, seen)
    return [s._replace(start=s.start + bom, end=s.end + bom, at=s.at + bom if s.at >= 0 else -1)
            for s in out] if bom else out


def document(text: str, low: str, path: str = "") -> list[Span] | None:
    """``spans``, or None when the text does not parse (the line patterns then redact it)."""
    try:
        return spans(text, low)
    except (yaml.YAMLError, RecursionError):
        return None
