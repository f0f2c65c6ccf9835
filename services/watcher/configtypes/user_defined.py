"""A user-defined type: a name of a device's ``watch_paths`` that no module here declares. No
parser and no impact rules; a YAML file (``.yml``/``.yaml``) is redacted by its structure."""

from __future__ import annotations

from services.watcher.configtypes.base import ConfigType
from services.watcher.redaction import yaml_doc
from services.watcher.redaction.common import Span


def redact(text: str, low: str, path: str) -> list[Span] | None:
    return yaml_doc.document(text, low) if path.endswith((".yml", ".yaml")) else None


TYPE = ConfigType(name="user_defined", redact=redact)
