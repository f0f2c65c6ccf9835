"""The pure decision ``diff``/``decide`` and the impact analysis, without NATS or SSH."""

from __future__ import annotations

import hashlib
import uuid

import pytest

from services.watcher.changes import Context, Item, Seen, decide, diff, known_after
from services.watcher.impact import Side, assess, flatten
from services.watcher.remote import FileStat
from shared.events import DeviceSpec

DEV = DeviceSpec(id=uuid.UUID(int=7), name="box")
NOW = 1_800_000_000.0
COMPOSE = b"services:\n  web:\n    image: nginx:1.25\n    ports: ['80:80']\n    environment:\n      API_KEY: k1\n"


def ctx(**kw) -> Context:
    return Context(**{"device": DEV, "instance": "t", "watch_mode": "inotifywait", "trigger": "watch", "now": NOW,
                      **kw})


def seen(path: str, data: bytes, mode: str = "0644", owner: str = "root", mtime: float = NOW - 1,
         limit: int = 1 << 20) -> Seen:
    st = FileStat(path, len(data), mtime, owner, mode, hashlib.sha256(data).hexdigest())
    return Seen(st, data if len(data) <= limit else None)


def known(path: str, data: bytes, config_type: str = "docker_compose", **kw):
    ev = diff(Item(config_type, path, None, seen(path, data, **kw)), ctx())
    return known_after(ev, 1)


def test_create_carries_hash_of_original_bytes_redacted_content_and_parse() -> None:
    ev = diff(Item("docker_compose", "/c/docker-compose.yml", None, seen("/c/docker-compose.yml", COMPOSE),
                   noticed_at=NOW - 0.5), ctx())
    assert ev.change_type == "CREATE" and ev.sha256 == hashlib.sha256(COMPOSE).hexdigest()
    assert "k1" not in ev.content and "API_KEY: <redacted>" in ev.content
    assert [(r.line, r.name) for r in ev.redactions] == [(6, "API_KEY")]
    assert ev.parsed["services"]["web"]["environment"] == ["API_KEY"]
    assert ev.detection_latency_ms == 1000.0  # the mtime, just before the inotify event, is the write time
    old = diff(Item("docker_compose", "/c/docker-compose.yml", None,
                    seen("/c/docker-compose.yml", COMPOSE, mtime=NOW - 100), noticed_at=NOW - 0.5), ctx())
    assert old.detection_latency_ms == 500.0  # an old mtime (chmod, mv of an old file): the event time
    assert ev.device_id == DEV.id and ev.trigger == "watch" and ev.status == "success"
    assert "k1" not in ev.impact.unified_diff


def test_baselines_and_rescans_carry_no_detection_latency() -> None:
    """A file found by a scan is not a detected change: its age (years, for a unit file of an
    installed package) is no latency and must not reach the latency column."""
    years_old = seen("/etc/systemd/system/x.service", b"[Unit]\n", mtime=NOW - 61_353_642.683)
    ev = diff(Item("systemd_units", years_old.stat.path, None, years_old), ctx())
    assert ev.change_type == "CREATE" and ev.detection_latency_ms is None


def test_same_bytes_are_no_change_but_mode_is() -> None:
    k = known("/c/docker-compose.yml", COMPOSE)
    assert diff(Item("docker_compose", k.path, k, seen(k.path, COMPOSE, mtime=NOW)), ctx()) is None
    ev = diff(Item("docker_compose", k.path, k, seen(k.path, COMPOSE, mode="0666")), ctx())
    assert ev.change_type == "MODIFY" and ev.impact.summary.metadata == ["mode"]
    assert (ev.impact.risk_level, ev.impact.risk_rule) == ("HIGH", "the file is world-writable")


def test_modify_summarizes_parsed_keys_and_rates_an_image_change_high() -> None:
    k = known("/c/docker-compose.yml", COMPOSE)
    new = COMPOSE.replace(b"nginx:1.25", b"nginx:1.27").replace(b"k1", b"k2")
    ev = diff(Item("docker_compose", k.path, k, seen(k.path, new)), ctx())
    imp = ev.impact
    assert (ev.change_type, ev.previous_sha256) == ("MODIFY", k.sha256)
    assert imp.summary.changed == ["images", "services.web.image"] and not imp.summary.added
    assert (imp.risk_level, imp.risk_rule) == ("HIGH", "compose: an image changed")
    assert imp.affected_services == ["web"] and imp.restart_services == ["web"] and imp.requires_restart
    assert imp.actions == ["docker compose -f /c/docker-compose.yml up -d web"]
    assert "-    image: nginx:1.25\n+    image: nginx:1.27\n" in imp.unified_diff
    assert "k1" not in imp.unified_diff and "k2" not in imp.unified_diff


def test_comment_only_change_is_low() -> None:
    k = known("/c/docker-compose.yml", COMPOSE)
    ev = diff(Item("docker_compose", k.path, k, seen(k.path, b"# pinned\n" + COMPOSE)), ctx())
    assert (ev.impact.risk_level, ev.impact.risk_rule) == ("LOW", "only comments or formatting changed")


def test_unparseable_new_version_is_kept_with_its_error() -> None:
    k = known("/c/docker-compose.yml", COMPOSE)
    ev = diff(Item("docker_compose", k.path, k, seen(k.path, b"services:\n  web: [\n")), ctx())
    assert ev.parsed is None and ev.parse_error.startswith("line 3") and ev.status == "partial"
    assert ev.content == "services:\n  web: [\n" and ev.impact.risk_level == "CRITICAL"


def test_large_and_binary_files_keep_hash_and_metadata_with_a_flag() -> None:
    big = b"x" * 2048
    ev = diff(Item("app", "/a/big", None, seen("/a/big", big, limit=1024)), ctx(content_limit=1024))
    assert ev.content is None and ev.content_truncated and ev.sha256 == hashlib.sha256(big).hexdigest()
    assert ev.size == 2048 and ev.content_limit == 1024
    ev = diff(Item("app", "/a/bin", None, seen("/a/bin", b"\x7fELF\0\1")), ctx())
    assert ev.content is None and ev.binary and not ev.content_truncated


def test_delete_and_create_of_the_same_bytes_in_one_batch_is_a_move() -> None:
    k = known("/c/a/docker-compose.yml", COMPOSE)
    other = known("/c/b/docker-compose.yml", b"services: {}\n")
    items = [Item("docker_compose", k.path, k, None),
             Item("docker_compose", "/c/x/docker-compose.yml", None, seen("/c/x/docker-compose.yml", COMPOSE)),
             Item("docker_compose", other.path, other, None)]
    evs = decide(items, ctx())
    assert [(e.change_type, e.path, e.old_path) for e in evs] == [
        ("MOVE", "/c/x/docker-compose.yml", k.path), ("DELETE", other.path, None)]
    assert evs[0].impact.risk_level == "LOW" and not evs[0].impact.requires_restart
    assert evs[1].sha256 is None and evs[1].previous_sha256 == other.sha256
    assert evs[1].impact.risk_level == "HIGH"


def test_event_ids_are_deterministic_per_change() -> None:
    item = Item("docker_compose", "/c/docker-compose.yml", None, seen("/c/docker-compose.yml", COMPOSE))
    a, b = diff(item, ctx()), diff(item, ctx(now=NOW + 5))
    assert a.event_id == b.event_id
    changed = Item("docker_compose", item.path, None, seen(item.path, COMPOSE, mtime=NOW - 2))
    assert diff(changed, ctx()).event_id != a.event_id


def test_user_defined_type_has_no_parser() -> None:
    ev = diff(Item("app", "/srv/app.ini", None, seen("/srv/app.ini", b"[x]\na=1\n")), ctx())
    assert ev.parsed is None and ev.parse_error is None
    assert (ev.impact.risk_level, ev.impact.confidence) == ("MEDIUM", 0.5)


@pytest.mark.parametrize("unit, level", [("app.service", "HIGH"), ("sshd.service", "CRITICAL")])
def test_systemd_exec_start_change(unit: str, level: str) -> None:
    path = f"/etc/systemd/system/{unit}"
    text = b"[Service]\nExecStart=/usr/bin/x\n[Install]\nWantedBy=multi-user.target\n"
    k = known(path, text, "systemd_units")
    ev = diff(Item("systemd_units", path, k, seen(path, text.replace(b"/x", b"/y"))), ctx())
    assert ev.impact.risk_level == level and ev.impact.restart_services == [unit]
    assert ev.impact.actions[:2] == ["systemctl daemon-reload", f"systemctl restart {unit}"]


def test_nginx_listen_change_needs_a_reload() -> None:
    imp = assess("proxy_configs", "/etc/nginx/conf.d/a.conf", "MODIFY",
                 Side(parsed={"listen": ["80"], "servers": {"a": {"listen": ["80"]}}}, text="a"),
                 Side(parsed={"listen": ["8080"], "servers": {"a": {"listen": ["8080"]}}}, text="b"))
    assert imp.requires_reload and not imp.requires_restart and imp.reload_services == ["nginx"]
    assert (imp.risk_level, imp.risk_rule) == ("HIGH", "nginx: listen or TLS settings changed")
    assert imp.summary.changed == ["listen", "servers.a.listen"]


def test_flatten_quotes_keys_with_dots() -> None:
    assert flatten({"servers": {"a.example.org": {"listen": ["80"]}}, "x": []}) == {
        "servers.[a.example.org].listen": ["80"], "x": []}
