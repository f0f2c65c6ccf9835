"""Every test in tests/faults belongs to the fault suite (``make test-faults``)."""

from __future__ import annotations

from pathlib import Path

import pytest

HERE = Path(__file__).parent


def pytest_collection_modifyitems(items) -> None:
    for item in items:
        if Path(item.fspath).parent == HERE:
            item.add_marker(pytest.mark.faults)
