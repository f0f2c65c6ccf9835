"""The service's own secrets on its own host, which no command of a device may name.

A device with ``transport: local`` is the host the service runs on, so its ``watch_paths`` and
commands could otherwise read the data directory (API keys in up.json, known_hosts, the
databases), the SSH password file, the SSH client keys or the NATS credentials into events.
:func:`check_argv` refuses a command naming one of them (a path inside one, or a glob that
could match one); :func:`filter_paths` drops them from a list of paths a reader found itself
(a recursive scan of a parent directory).
"""

from __future__ import annotations

import fnmatch
import glob
import itertools
import os
from collections.abc import Iterable
from pathlib import Path

from shared.runtime.transport.base import ProtectedPathError
from shared.settings import Settings

GLOB_CHARS = "*?["
MAX_GLOB_MATCHES = 10_000  # paths of one glob looked at on this host


def protected_paths(settings: Settings) -> list[str]:
    """Absolute, symlink-resolved paths of the service's secrets (the files need not exist)."""
    candidates: list[Path | None] = [
        settings.data_dir, settings.ssh_password_file, *settings.ssh_client_keys, settings.nats_creds,
        settings.nats_nkey_seed, settings.nats_tls_key, Path.home() / ".ssh",
    ]
    out = []
    for p in candidates:
        if p is not None and str(p):
            out.append(os.path.realpath(os.path.expanduser(str(p))))
    return sorted(set(out))


def _inside(path: str, root: str) -> bool:
    return path == root or path.startswith(root.rstrip(os.sep) + os.sep)


def _glob_may_reach(pattern: str, root: str) -> bool:
    """Whether a glob could match ``root`` or a path inside it, compared component by component."""
    parts, root_parts = pattern.split(os.sep), root.split(os.sep)
    for i, part in enumerate(parts):
        if part == "**" or i >= len(root_parts):
            return True  # any depth from here, or below root: inside it
        if not fnmatch.fnmatchcase(root_parts[i], part):
            return False
    return len(parts) == len(root_parts)  # root itself; a shorter pattern names an ancestor


def is_protected(path: str | Path, protected: Iterable[str]) -> bool:
    """Whether ``path`` (resolved, symlinks followed) is or lies inside a protected path, or is a
    glob that could match one (here, through symlinks, or once such a file exists)."""
    text = os.path.abspath(os.path.expanduser(str(path)))
    roots = list(protected)
    if any(c in text for c in GLOB_CHARS):
        if any(_glob_may_reach(text, root) for root in roots):
            return True
        matches = itertools.islice(glob.iglob(text, recursive=True), MAX_GLOB_MATCHES)
        return any(is_protected(m, roots) for m in matches if not any(c in m for c in GLOB_CHARS))
    resolved = os.path.realpath(text)
    return any(_inside(resolved, root) for root in roots)


def filter_paths(paths: Iterable[str], settings: Settings) -> list[str]:
    """``paths`` without those that are, or lie inside, the service's secrets."""
    roots = protected_paths(settings)
    return [p for p in paths if not is_protected(p, roots)]


def _path_words(argv: list[str]) -> Iterable[str]:
    for word in argv:
        if not word or any(c.isspace() for c in word):
            continue  # a script or a sentence, not a path
        value = word.split("=", 1)[1] if word.startswith("-") and "=" in word else word
        if value.startswith(("/", "~", ".")):
            yield value


def check_argv(argv: list[str], protected: Iterable[str]) -> None:
    """Raise ProtectedPathError when an argument names a protected path."""
    roots = list(protected)
    for value in _path_words(argv):
        if is_protected(value, roots):
            raise ProtectedPathError(f"refused: {value!r} is one of the service's own secrets on this host")
