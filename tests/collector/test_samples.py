"""Every parser over its captured outputs: testdata/<type>/X.txt beside the expected result.

X.json is the payload exactly as `infrawatch parse <type> X.txt` prints it; X.warnings lists
expected warning substrings (one a line, in order); instead of X.json, X.error holds the
expected ParseError message, X.unsupported the expected reason of an unsupported type, and
X.failed the expected message of a failed command (substrings).
"""

from __future__ import annotations

import json
from pathlib import Path

import msgspec
import pytest

from services.collector.registry import DATA_TYPES
from shared.datatypes import captures
from shared.datatypes.parsing import CommandFailed, ParseError, Unsupported

CASES = [(t, p) for t in DATA_TYPES for p in sorted(captures(t).glob("*.txt"))]
FAILURES = {".error": ParseError, ".unsupported": Unsupported, ".failed": CommandFailed}


@pytest.mark.parametrize(("data_type", "sample"), CASES, ids=[f"{t}/{p.stem}" for t, p in CASES])
def test_sample(data_type: str, sample: Path) -> None:
    module = DATA_TYPES[data_type]
    text = sample.read_text()
    for suffix, exc_type in FAILURES.items():
        expected = sample.with_suffix(suffix)
        if expected.exists():
            with pytest.raises(exc_type) as exc:
                module.parse(text)
            assert type(exc.value) is exc_type
            assert expected.read_text().strip() in str(exc.value)
            return
    result = module.parse(text)
    assert msgspec.to_builtins(result.payload) == json.loads(sample.with_suffix(".json").read_text())
    expected = sample.with_suffix(".warnings")
    wanted = expected.read_text().splitlines() if expected.exists() else []
    assert len(result.warnings) == len(wanted), result.warnings
    for want, got in zip(wanted, result.warnings):
        assert want in got


@pytest.mark.parametrize("data_type", list(DATA_TYPES))
def test_every_type_has_good_broken_and_empty_samples(data_type: str) -> None:
    samples = {p.stem: p for p in captures(data_type).glob("*.txt")}
    good = [p for p in samples.values() if p.with_suffix(".json").exists()]
    assert len(good) >= 2, f"{data_type}: several hosts or tool versions expected"
    assert "empty" in samples and samples["empty"].with_suffix(".error").exists()
    assert any(p.with_suffix(".error").exists() for s, p in samples.items() if s != "empty"), "a broken output"
    for p in samples.values():
        outcomes = [p.with_suffix(s) for s in (".json", *FAILURES)]
        assert sum(o.exists() for o in outcomes) == 1, f"{p.name}: exactly one expected outcome"
