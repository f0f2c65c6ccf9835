"""Likely causes of an alert, on timelines built from captured collector outputs and real config files."""

from __future__ import annotations

import hashlib
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import msgspec
import pytest

from services.alerts.causes import (
    Change,
    from_alert,
    from_collection,
    from_config,
    from_containers,
    from_inventory,
    from_systemd,
    rank,
    relation,
)
from services.watcher import changes
from services.watcher.remote import FileStat
from shared import events
from shared.alert_events import AlertChanged
from shared.config_events import ConfigChanged
from shared.datatypes import REGISTRY, captures
from shared.envelope import Collected
from tests.golden import make_golden

DEV = uuid.UUID("00000000-0000-4000-8000-00000000c0de")
OTHER = uuid.UUID("00000000-0000-4000-8000-0000000000ff")
T = datetime(2024, 5, 14, 10, 0, tzinfo=UTC)
ROOT = Path(__file__).resolve().parents[2]


def before(minutes: float) -> datetime:
    return T - timedelta(minutes=minutes)


def capture(data_type: str, name: str) -> Any:
    return msgspec.json.decode((captures(data_type) / f"{name}.json").read_bytes(), type=REGISTRY[data_type].payload)


def collected(data_type: str, payload: Any, at: datetime, device_id: uuid.UUID = DEV, **kw: Any) -> Collected:
    return events.new_event(REGISTRY[data_type].event, device_id=device_id, device="nas-01", service="collector",
                            instance="test", trigger="poll", occurred_at=at, payload=payload, **kw)


def nginx_change(at: datetime, device_id: uuid.UUID = DEV) -> ConfigChanged:
    """The Debian default site edited into a reverse proxy, as the watcher decided it (HIGH risk)."""
    ev = make_golden.config(ConfigChanged)
    assert isinstance(ev, ConfigChanged)
    return msgspec.structs.replace(ev, occurred_at=at, device_id=device_id, event_id=uuid.uuid4())


def compose_created(at: datetime) -> ConfigChanged:
    """The nginx-proxy project's compose file appearing in /srv/proxy, through the watcher's decision."""
    data = (ROOT / "tests" / "corpus" / "compose" / "nginx-proxy" / "docker-compose.yml").read_bytes()
    path = "/srv/proxy/docker-compose.yml"
    ctx = changes.Context(device=events.DeviceSpec(id=DEV, name="nas-01"), instance="watcher-a1",
                          watch_mode="poll", trigger="watch", now=at.timestamp())
    stat = FileStat(path=path, size=len(data), mtime=at.timestamp(), owner="root:root", mode="0644",
                    sha256=hashlib.sha256(data).hexdigest())
    ev = changes.diff(changes.Item(config_type="docker_compose", path=path, old=None,
                                   new=changes.Seen(stat=stat, content=data)), ctx)
    assert ev is not None
    return ev


def redeployed(at: datetime, device_id: uuid.UUID = DEV) -> tuple[Any, Collected]:
    """docker-24-compose, then the same host with web-nginx-1 recreated on nginx:1.27-alpine, promtail
    restarted three more times and web-db-1 gone."""
    previous, current = capture("containers", "docker-24-compose"), capture("containers", "docker-24-compose")
    kept = []
    for c in current.containers:
        if c.name == "web-nginx-1":
            c = msgspec.structs.replace(c, id="7" * 64, image="nginx:1.27-alpine", status="Up 10 seconds")
        elif c.name == "promtail":
            c = msgspec.structs.replace(c, restart_count=17)
        if c.name != "web-db-1":
            kept.append(c)
    current = REGISTRY["containers"].collect.with_previous(previous, msgspec.structs.replace(current, containers=kept))
    return previous, collected("containers", current, at, device_id)


def container_changes(at: datetime, device_id: uuid.UUID = DEV) -> list[Change]:
    previous, ev = redeployed(at, device_id)
    return from_containers(previous, ev.payload, ev)


def upgraded(at: datetime) -> list[Change]:
    """rocky9-rpm-proxy, then the same host a week later: the drift the collector computes."""
    inventory = REGISTRY["inventory"].collect.with_previous(capture("inventory", "rocky9-rpm-proxy"),
                                                            capture("inventory", "rocky9-a-week-later"))
    return from_inventory(inventory, collected("inventory", inventory, at))


def by_subject(changes_: list[Change]) -> dict[str, Change]:
    return {c.subject: c for c in changes_}


# --- the scenario ---------------------------------------------------------------------------------

def test_a_cpu_alert_ranks_the_high_risk_nginx_change_before_the_newer_redeployed_container():
    nginx = from_config(nginx_change(before(20)))
    web = [c for c in container_changes(before(5)) if c.subject == "web-nginx-1"]
    too_old = from_config(nginx_change(before(45)))
    elsewhere = from_config(nginx_change(before(10), OTHER)) + container_changes(before(5), OTHER)

    got = rank(too_old + elsewhere + nginx + web, device_id=DEV, at=T, metric="cpu")

    # nginx: 1 - 20/30 + HIGH 1.5 + related 2 (a HIGH config change); container: 1 - 5/30 + MEDIUM 0.5 + related 2
    assert [s.change for s in got] == [nginx[0], web[0]]
    assert [s.score for s in got] == [pytest.approx(3.8333), pytest.approx(3.3333)]
    assert got[1].change.summary == "container web-nginx-1 restarted with a new image nginx:1.25-alpine → nginx:1.27-alpine"
    assert got[0].reasons == ("20m before", "risk HIGH", "a HIGH config change on the host")
    assert got[1].reasons == ("5m before", "risk MEDIUM", "container changes affect cpu")
    refs = {s.change.ref for s in got}
    assert not refs & {c.ref for c in too_old + elsewhere}


def test_a_rule_on_the_nginx_container_relates_the_nginx_config_too():
    nginx = from_config(nginx_change(before(20)))
    web = [c for c in container_changes(before(5)) if c.subject == "web-nginx-1"]
    got = rank(nginx + web, device_id=DEV, at=T, metric="container_restarts", selector="web-nginx-*")
    assert all(len(s.reasons) == 3 for s in got)
    assert "nginx config, and the rule watches web-nginx-*" in got[0].reasons
    # both related: the HIGH config change before the newer MEDIUM container change
    assert [s.change for s in got] == [nginx[0], web[0]]
    assert got[0].score - got[1].score == pytest.approx(0.5)


# --- extraction -------------------------------------------------------------------------------------

def test_from_config_summarises_the_watchers_decision():
    ev = nginx_change(before(1))
    (c,) = from_config(ev)
    assert (c.kind, c.subject, c.risk, c.ref, c.time) == ("config", ev.path, "HIGH", str(ev.event_id), ev.occurred_at)
    assert c.summary == ("nginx /etc/nginx/sites-enabled/default MODIFY: 3 changed, 13 added, 13 removed, "
                         "mode, owner changed (HIGH)")
    assert c.detail["changed"] == ["proxy_pass", "server_names", "upstream_hosts"]
    assert c.detail["risk_rule"] == "nginx: a server or location was removed"


def test_from_config_names_the_containers_of_a_compose_file():
    (c,) = from_config(compose_created(before(1)))
    assert c.summary.startswith("compose /srv/proxy/docker-compose.yml CREATE")
    assert c.detail["containers"] == ["nginx-proxy", "proxy-whoami-1", "proxy_whoami_1", "whoami"]


def test_from_containers_reads_a_redeploy():
    got = by_subject(container_changes(before(1)))
    assert set(got) == {"web-nginx-1", "promtail", "web-db-1"}
    assert got["web-nginx-1"].risk == "MEDIUM"
    assert got["web-nginx-1"].detail["image_old"] == "nginx:1.25-alpine"
    assert got["promtail"].summary == "container promtail restarted (14 → 17 restarts)"
    assert got["promtail"].risk == "HIGH"
    assert got["web-db-1"].summary == "container web-db-1 removed: postgres:16"


def test_from_containers_reads_stops_starts_and_without_a_previous_snapshot_only_the_removed():
    previous = capture("containers", "docker-24-compose")
    now = capture("containers", "docker-24-compose")
    for c in now.containers:
        if c.name == "web-db-1":
            c.state, c.status = "exited", "Exited (137) 3 seconds ago"
        elif c.name == "worker":
            c.state, c.status = "running", "Up 2 seconds"
    ev = collected("containers", now, before(1))
    got = by_subject(from_containers(previous, now, ev))
    assert got["web-db-1"].summary == "container web-db-1 stopped: Exited (137) 3 seconds ago"
    assert got["web-db-1"].risk == "HIGH"
    assert got["worker"].summary == "container worker started"
    assert set(got) == {"web-db-1", "worker"}

    _, ev = redeployed(before(1))
    assert [c.subject for c in from_containers(None, ev.payload, ev)] == ["web-db-1"]


def test_from_inventory_reads_the_drift_of_a_week():
    got = by_subject(upgraded(before(1)))
    assert got["postgresql-server"].summary == "package postgresql-server upgraded 13.11-1.el9 → 13.14-1.el9_3"
    assert got["nginx"].summary == "package nginx installed 1.20.1-14.el9_2.1"
    assert got["gpg-pubkey"].summary == "package gpg-pubkey removed (was 350d275d-6279464b)"
    kernels = [c for c in upgraded(before(1)) if c.subject == "kernel"]
    assert {c.summary for c in kernels} == {
        "system kernel changed 5.14.0-362.18.1.el9_3.x86_64 → 5.14.0-362.24.1.el9_3.x86_64",
        "package kernel upgraded 5.14.0-284.30.1.el9_2, 5.14.0-362.18.1.el9_3 → "
        "5.14.0-362.18.1.el9_3, 5.14.0-362.24.1.el9_3",
    }
    first = capture("inventory", "rocky9-rpm-proxy")
    assert first.drift is None and from_inventory(first, collected("inventory", first, T)) == []


def test_from_systemd_reads_units_newly_failed():
    now = capture("systemd_services", "debian12-server")
    healthy = msgspec.structs.replace(now, failed=[], units=[
        msgspec.structs.replace(u, active="active", sub="running", result="success") if u.name == "nginx.service"
        else u for u in now.units])
    ev = collected("systemd_services", now, before(1))
    (c,) = from_systemd(healthy, now, ev)
    assert (c.kind, c.subject, c.summary, c.risk) == ("unit", "nginx.service", "unit nginx.service failed (exit-code)",
                                                      "HIGH")
    assert from_systemd(now, now, ev) == [] and from_systemd(None, now, ev) == []


def test_from_alert_reads_fired_alerts_only():
    ev = make_golden.alert(AlertChanged)
    assert isinstance(ev, AlertChanged)
    fired = msgspec.structs.replace(ev, refire=False)
    (c,) = from_alert(fired)
    assert (c.kind, c.subject, c.summary) == ("alert", "disk over 90%", "alert disk over 90% fired (mount /data)")
    assert c.detail["metric"] == "disk"
    assert from_alert(ev) == [] and from_alert(msgspec.structs.replace(fired, state="resolved")) == []


@pytest.mark.parametrize(("status", "risk"), [("error", "HIGH"), ("unsupported", "MEDIUM"), ("success", None)])
def test_from_collection_reads_failed_collections(status: str, risk: str | None):
    error = "smartctl: Permission denied\nrun as root" if status != "success" else None
    ev = collected("drive_health", None, before(1), status=status, error=error)
    got = from_collection(ev)
    if risk is None:
        assert got == []
        return
    (c,) = got
    assert (c.kind, c.subject, c.risk) == ("collection", "drive_health", risk)
    verb = "failed" if status == "error" else "unsupported"
    assert c.summary == f"drive_health collection {verb}: smartctl: Permission denied"


# --- relation, cut, empty ---------------------------------------------------------------------------

def test_a_container_rule_prefers_its_containers_change_over_a_package_change_at_the_same_time():
    same_time = before(3)
    web = [c for c in container_changes(same_time) if c.subject == "web-nginx-1"]
    packages = [c for c in upgraded(same_time) if c.subject == "gpg-pubkey"]
    assert packages[0].risk == web[0].risk == "MEDIUM"
    got = rank(packages + web, device_id=DEV, at=T, metric="container_state", selector="web-nginx-1")
    assert [s.change.subject for s in got] == ["web-nginx-1", "gpg-pubkey"]
    assert got[0].score - got[1].score == pytest.approx(2)
    assert "container web-nginx-1 is watched by the rule" in got[0].reasons


def test_relations_by_metric():
    compose = from_config(compose_created(before(1)))[0]
    assert relation(compose, "container_state", "proxy-whoami-1") == "compose file defines container proxy-whoami-1"
    assert relation(compose, "container_state", "promtail") is None
    assert relation(compose, "cpu") is None
    drives = from_collection(collected("drive_health", None, before(1), status="error", error="timeout"))[0]
    nginx_pkg = by_subject(upgraded(before(1)))["nginx"]
    assert relation(drives, "drive_failing") and relation(drives, "disk", "/data")
    assert relation(nginx_pkg, "disk") is None and relation(nginx_pkg, "memory")
    promtail = by_subject(container_changes(before(1)))["promtail"]
    assert relation(promtail, "container_restarts", "web-*") is None
    assert relation(promtail, "container_restarts") == "container promtail is watched by the rule"
    nginx_conf = from_config(nginx_change(before(1)))[0]
    assert relation(nginx_conf, "config_risk", "proxy_*") and relation(nginx_conf, "config_risk", "docker_*") is None
    assert relation(nginx_conf, "systemd_failed", "nginx.service")  # the selector mentions nginx
    assert relation(nginx_conf, "systemd_failed", "backup.service") == "a HIGH config change on the host"
    assert relation(msgspec.structs.replace(nginx_conf, risk="MEDIUM"), "systemd_failed", "backup.service") is None


def test_top_cuts_after_the_best():
    timeline = container_changes(before(2)) + upgraded(before(4)) + from_config(nginx_change(before(6)))
    full = rank(timeline, device_id=DEV, at=T, metric="memory", top=100)
    assert len(full) == len({(c.kind, c.subject) for c in timeline}) > 3
    assert rank(timeline, device_id=DEV, at=T, metric="memory", top=3) == full[:3]
    assert [s.score for s in full] == sorted((s.score for s in full), reverse=True)
    assert rank(timeline, device_id=DEV, at=T, metric="memory", top=0) == []


def test_nothing_to_rank():
    assert rank([], device_id=DEV, at=T, metric="cpu") == []
    later = from_config(nginx_change(T + timedelta(seconds=1)))
    assert rank(later, device_id=DEV, at=T, metric="config_risk") == []


def test_a_file_found_by_a_scan_dates_from_its_mtime_not_from_when_it_was_found():
    """The watcher's first look at a host reports every file it finds; one written months ago is
    no change of the last half hour, while one an inotify event reported dates from the event."""
    found = msgspec.structs.replace(nginx_change(before(1)), trigger="scan", mtime=before(60 * 24 * 90))
    (c,) = from_config(found)
    assert c.time == found.mtime
    assert rank([c], device_id=DEV, at=T, metric="cpu") == []
    watched = msgspec.structs.replace(found, trigger="watch")
    assert from_config(watched)[0].time == watched.occurred_at


def test_a_file_changed_several_times_is_one_cause_counting_the_others():
    edits = [c for m in (20, 12, 4) for c in from_config(nginx_change(before(m)))]
    (only,) = rank(edits, device_id=DEV, at=T, metric="cpu")
    assert only.change.time == before(4)
    assert only.reasons[-1] == "2 more change(s) of it in the window"
