"""The writer's pure projection of ConfigChanged, and `infrawatch parse-config`."""

from __future__ import annotations

import hashlib
import json
import uuid
from pathlib import Path

import msgspec

from services.watcher.changes import Context, Item, Seen, diff, known_after
from services.watcher.parse_cli import parse_config_files
from services.watcher.remote import FileStat
from services.writer.projection import rows
from services.writer.projections.config import row_ids
from services.writer.registry import COLUMNS
from shared import events
from shared.events import DeviceSpec

TESTDATA = Path(__file__).parent / "testdata"
DEV = DeviceSpec(id=uuid.uuid4(), name="box")


def _event(data: bytes, old=None, path: str = "/etc/systemd/system/nginx.service"):
    st = FileStat(path, len(data), 1_800_000_000.0, "root", "0644", hashlib.sha256(data).hexdigest())
    ctx = Context(device=DEV, instance="t", watch_mode="python", trigger="watch", now=1_800_000_001.0)
    return diff(Item("systemd_units", path, old, Seen(st, data) if data else None), ctx)


def test_one_snapshot_and_one_change_row_with_ids_from_the_event_id() -> None:
    text = (TESTDATA / "systemd_units/nginx.service").read_bytes()
    first = _event(text)
    ev = _event(text.replace(b"TimeoutStopSec=5", b"TimeoutStopSec=30"), known_after(first, 3))
    out = rows(ev)
    snap = dict(zip(COLUMNS["configuration_snapshots"], out["configuration_snapshots"][0]))
    change = dict(zip(COLUMNS["configuration_change_events"], out["configuration_change_events"][0]))
    assert (snap["id"], change["id"]) == row_ids(ev.event_id) and change["snapshot_id"] == snap["id"]
    assert snap["content_hash"] == ev.sha256 and snap["previous_hash"] == first.sha256
    assert snap["collection_source"] == "watch:python" and snap["change_type"] == "MODIFY"
    assert json.loads(snap["parsed_data"])["data"]["unit"] == "nginx.service"
    summary = json.loads(change["changes_summary"])
    assert summary["changed"] == ["sections.Service.TimeoutStopSec"] and "+TimeoutStopSec=30" in summary["unified_diff"]
    assert json.loads(change["restart_services"]) == ["nginx.service"] and change["requires_restart"] is True
    assert rows(ev) == rows(events.decode(events.encode(ev))), "redelivery projects identical rows"


def test_delete_has_an_empty_content_hash() -> None:
    text = (TESTDATA / "systemd_units/nginx.service").read_bytes()
    gone = _event(b"", known_after(_event(text), 3))
    snap = dict(zip(COLUMNS["configuration_snapshots"], rows(gone)["configuration_snapshots"][0]))
    assert (snap["change_type"], snap["content_hash"], snap["raw_content"]) == ("DELETE", "", None)


def test_parse_config_prints_parsed_data_and_impact(capsys) -> None:
    files = [TESTDATA / "docker_compose/media-stack.yml", TESTDATA / "docker_compose/minimal.yaml"]
    assert parse_config_files("docker_compose", files) == 0
    docs = [json.loads(d) for d in capsys.readouterr().out.replace("}\n{", "}\x00{").split("\x00")]
    assert [d["path"] for d in docs] == [str(f) for f in files]
    assert docs[0]["parsed"]["services"]["db"]["environment"] == ["POSTGRES_PASSWORD", "POSTGRES_USER"]
    assert {r["name"] for r in docs[0]["redactions"]} == {"POSTGRES_PASSWORD", "RADARR__AUTH__APIKEY"}
    assert docs[0]["impact"]["affected_services"] == ["db", "jellyfin", "radarr"]


def test_parse_config_reports_a_parse_error_and_exits_1(capsys, tmp_path) -> None:
    assert parse_config_files("proxy_configs", [TESTDATA / "proxy_configs/broken.conf", tmp_path / "nope"]) == 1
    err = capsys.readouterr().err
    assert "line 6: unexpected end of file" in err and "cannot read" in err


def test_config_event_round_trips_through_the_union() -> None:
    ev = _event((TESTDATA / "systemd_units/srv-backup.mount").read_bytes())
    assert events.decode(events.encode(ev)) == ev
    assert msgspec.json.decode(events.encode(ev))["kind"] == "config"
