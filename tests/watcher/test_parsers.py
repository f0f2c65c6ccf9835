"""Parsers against real sample files, each beside its expected JSON."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from services.watcher import configtypes
from services.watcher.configtypes import CONFIG_TYPES
from shared.errors import ParseError

TESTDATA = Path(__file__).parent / "testdata"
SAMPLES = sorted(p for p in TESTDATA.glob("*/*") if p.suffix != ".json")
PARSERS = {t.name: t.parse for t in CONFIG_TYPES.values() if t.parse is not None}


@pytest.mark.parametrize("sample", SAMPLES, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_sample_parses_to_its_expected_json(sample: Path) -> None:
    expected = json.loads(Path(f"{sample}.json").read_text())
    parse = PARSERS[sample.parent.name]
    if "error" in expected:
        with pytest.raises(ParseError) as exc:
            parse(sample.read_text(), sample.name)
        assert (exc.value.message, exc.value.line_no) == (expected["error"], expected["line"])
    else:
        assert json.loads(json.dumps(parse(sample.read_text(), sample.name))) == expected


def test_every_config_type_has_samples() -> None:
    assert {p.parent.name for p in SAMPLES} == set(PARSERS)
    assert all(any(p.name.startswith("broken") for p in SAMPLES if p.parent.name == t) for t in PARSERS)


def test_every_config_type_module_is_registered_under_its_name() -> None:
    modules = {p.stem for p in Path(configtypes.__file__).parent.glob("*.py")} - {"__init__", "base", "user_defined"}
    assert set(CONFIG_TYPES) == modules and all(t.globs for t in CONFIG_TYPES.values())


def test_swag_variables_resolve_to_the_container() -> None:
    parsed = PARSERS["proxy_configs"]((TESTDATA / "proxy_configs/radarr.subdomain.conf").read_text(), "r.conf")
    assert parsed["proxy_pass"] == ["http://radarr:7878"] and parsed["upstream_hosts"] == ["radarr"]
    assert parsed["servers"]["radarr.*"]["ssl"] is True


def test_compose_keeps_environment_keys_never_values() -> None:
    text = (TESTDATA / "docker_compose/media-stack.yml").read_text()
    parsed = PARSERS["docker_compose"](text, "media-stack.yml")
    assert parsed["services"]["db"]["environment"] == ["POSTGRES_PASSWORD", "POSTGRES_USER"]
    assert "correct horse" not in json.dumps(parsed) and "2b1c9b7e" not in json.dumps(parsed)
    assert parsed["services"]["radarr"]["depends_on"] == ["db"]


def test_systemd_keeps_environment_names_only_and_resets_on_empty_assignment() -> None:
    text = (TESTDATA / "systemd_units/restic-backup.service").read_text()
    parsed = PARSERS["systemd_units"](text, "restic-backup.service")
    assert "hunter2" not in json.dumps(parsed)
    assert parsed["exec_start"] == ["/usr/bin/restic backup /srv/data --exclude-caches"]
    assert parsed["dependencies"]["After"] == ["network-online.target", "srv-backup.mount"]


@pytest.mark.parametrize("text", ["- a\n- b\n", "services: [1, 2]\n"])
def test_compose_that_is_not_a_mapping_is_a_parse_error(text: str) -> None:
    with pytest.raises(ParseError):
        PARSERS["docker_compose"](text, "docker-compose.yml")
