"""Parsers of watched files, one module per config type: ``parse(text, path) -> dict`` (pure).

A config type without a parser (a user-defined one) keeps its content and hash only.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from services.watcher.parsers import docker_compose, nginx, systemd_unit
from services.watcher.parsers.errors import ParseError

Parser = Callable[[str, str], dict[str, Any]]

PARSERS: dict[str, Parser] = {
    "proxy_configs": nginx.parse,
    "docker_compose": docker_compose.parse,
    "systemd_units": systemd_unit.parse,
}

__all__ = ["PARSERS", "ParseError", "Parser"]
