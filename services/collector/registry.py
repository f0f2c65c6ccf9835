"""The data types the collector runs, by name: each type's command module (``collect.py`` of its
folder in ``shared/datatypes``, listed once in ``shared.datatypes.NAMES``).

A command module has NAME, TIMEOUT_S (per command), RETRIES, INTERVAL_S, FRESHNESS_S and a
pure ``parse(text)``, and one of: ``ARGV`` (a single command; ``parse`` reads its stdout),
``COMMANDS`` (fixed commands, run one after the other by one shell on one channel) or
``async gather(session)`` (commands chosen as it goes, each on its own channel). With several
commands ``parse`` reads a capture file (``shared.datatypes.capture``) and ``parse_outputs(outputs)``
the same outputs in memory. Optional: ``with_previous(previous, payload)``, a pure function of
the last successful payload.
"""

from __future__ import annotations

from types import ModuleType

from shared.collected import COLLECTED_TYPES
from shared.datatypes import REGISTRY

DATA_TYPES: dict[str, ModuleType] = {name: t.collect for name, t in REGISTRY.items()}
EVENTS = COLLECTED_TYPES

REQUIRED_ATTRIBUTES = ("NAME", "TIMEOUT_S", "RETRIES", "INTERVAL_S", "FRESHNESS_S", "parse")
COMMAND_ATTRIBUTES = ("ARGV", "COMMANDS", "gather")  # exactly one of these
