"""The pure parts: the state machine, what each metric reads, the webhook requests."""

from __future__ import annotations

import json
import uuid

import msgspec
import pytest

from services.alerts import notify
from services.alerts.evaluate import RuleState, alert_id, apply, check, retire, step
from services.alerts.rules import applies, no_data_interval_s, no_data_types, read
from shared import events
from tests.factories import at, config_change, containers, cpu, drives, metrics_event, pools, rule, units

DEV = uuid.UUID("00000000-0000-4000-8000-000000000001")


def run(r, values: list[tuple[float, float | None]], state: RuleState | None = None):
    """Step through (seconds, value) pairs; returns the final state and the transitions."""
    state = state or RuleState()
    out = []
    for seconds, value in values:
        state, t = step(state, value, at(seconds), r)
        if t:
            out.append((seconds, t.state, t.value, t.since, t.refire))
    return state, out


def test_fires_only_after_the_condition_held_for_the_duration_and_resolves_when_it_clears():
    r = rule(threshold=90, duration_s=30)
    state, out = run(r, [(0, 95), (10, 96), (29, 97)])
    assert state.status == "pending" and state.since == at(0) and out == []
    state, out = run(r, [(30, 98)], state)
    assert state.status == "firing" and out == [(30, "fired", 98, at(0), False)]
    state, out = run(r, [(40, 99), (100, 50)], state)
    assert state.status == "ok" and out == [(100, "resolved", 50, at(0), False)]


def test_a_dip_restarts_the_duration():
    r = rule(threshold=90, duration_s=30)
    state, out = run(r, [(0, 95), (20, 80), (25, 95), (50, 95)])
    assert state.status == "pending" and state.since == at(25) and out == []
    _, out = run(r, [(55, 95)], state)
    assert out == [(55, "fired", 95, at(25), False)]


def test_zero_duration_fires_on_the_first_event_and_no_value_changes_nothing():
    r = rule(threshold=90, duration_s=0)
    state, out = run(r, [(0, None), (5, 91)])
    assert out == [(5, "fired", 91, at(5), False)]
    same, out = run(r, [(6, None)], state)
    assert same is state and out == []


def test_refires_no_more_often_than_the_interval():
    r = rule(threshold=90, duration_s=0, refire_interval_s=60)
    _, out = run(r, [(0, 95), (30, 95), (59, 95), (60, 95), (100, 95), (121, 95)])
    assert [(s, refire) for s, _, _, _, refire in out] == [(0, False), (60, True), (121, True)]
    assert all(since == at(0) for _, _, _, since, _ in out)


def test_operators():
    for op, value, fires in [(">", 5, False), (">=", 5, True), ("<", 4, True), ("<=", 6, False), ("==", 5, True),
                             ("!=", 5, False)]:
        _, out = run(rule(operator=op, threshold=5, duration_s=0), [(0, value)])
        assert bool(out) is fires, op


def test_apply_uses_occurred_at_ignores_redelivered_and_older_events_and_builds_the_alert():
    r = rule(threshold=90, duration_s=30)
    state, alert = apply(r, RuleState(), cpu(DEV, 0, 95), "i1")
    assert state.status == "pending" and alert is None
    late = cpu(DEV, 31, 97)
    fired, alert = apply(r, state, late, "i1")
    assert alert is not None and alert.state == "fired" and alert.since == at(0) and alert.occurred_at == at(31)
    assert (alert.value, alert.threshold, alert.device, alert.rule_id, alert.source_event_id) == \
           (97, 90, "dev1", r.id, late.event_id)
    assert "cpu = 97" in alert.message and "for 30s" in alert.message
    again, none = apply(r, fired, late, "i2")  # a redelivered event
    assert again is fired and none is None
    older, none = apply(r, fired, cpu(DEV, 10, 10), "i1")
    assert older is fired and none is None
    # Another instance deciding from the same state publishes the same event id.
    _, twin = apply(r, state, late, "i2")
    assert twin is not None and twin.event_id == alert.event_id
    state_round_trip = msgspec.json.decode(msgspec.json.encode(fired), type=RuleState)
    assert state_round_trip == fired


def test_alert_ids_differ_per_decision():
    r = rule()
    _, a = apply(r, RuleState(), cpu(DEV, 0, 95), "i")
    r0 = rule(duration_s=0)
    s1, f1 = apply(r0, RuleState(), cpu(DEV, 0, 95), "i")
    _, f2 = apply(r0, s1, cpu(DEV, 10, 10), "i")
    assert a is None and f1 and f2 and f1.event_id != f2.event_id
    assert f1.event_id == alert_id(r0, DEV, step(RuleState(), 95, at(0), r0)[1])


def test_disk_reads_the_selected_mount_or_the_worst_one():
    ev = metrics_event(DEV, at=at(0))
    assert read(rule("disk"), ev).value == 40.0 and read(rule("disk"), ev).detail == "mount /"
    assert read(rule("disk", selector="*"), ev).value == 40.0
    assert read(rule("disk", selector="/data"), ev) is None


def test_cpu_memory_load_and_failed_collections():
    ev = metrics_event(DEV, at=at(0), cpu=77.0)
    assert read(rule("cpu"), ev).value == 77.0
    assert read(rule("memory"), ev).value == 25.0
    assert read(rule("load"), ev).value == 0.5 and read(rule("load", selector="15"), ev).value == 0.3
    assert read(rule("cpu"), metrics_event(DEV, at=at(0), status="error")) is None


def test_containers():
    ev = containers(DEV, 0, ("web", "running", "healthy", 0), ("db", "exited", None, 7),
                    ("api", "running", "unhealthy", 2))
    assert read(rule("container_state"), ev).value == 1
    assert read(rule("container_state", selector="web"), ev).value == 0
    assert read(rule("container_state", selector="gone"), ev).value == 1  # a named container that is absent
    assert read(rule("container_state", selector="x*"), ev).value == 0
    assert read(rule("container_health"), ev).value == 1
    r = read(rule("container_restarts"), ev)
    assert (r.value, r.detail) == (7, "container db")


def test_drives_units_pools():
    ev = drives(DEV, 0, ("/dev/sda", 41, False), ("/dev/sdb", 55, True), ("/dev/nvme0", None, False))
    assert read(rule("drive_temperature"), ev).value == 55
    assert read(rule("drive_temperature", selector="/dev/sda"), ev).value == 41
    assert read(rule("drive_failing"), ev).value == 1
    u = read(rule("systemd_failed"), units(DEV, 0, "a.service", "b.timer"))
    assert u.value == 2 and "a.service" in u.detail
    assert read(rule("systemd_failed", selector="*.service"), units(DEV, 0, "a.service", "b.timer")).value == 1
    p = read(rule("zfs_pool_not_online"), pools(DEV, 0, ("tank", "DEGRADED"), ("rpool", "ONLINE")))
    assert p.value == 1 and "tank DEGRADED" in p.detail


def test_collection_failures_count_in_a_row_and_a_success_resets():
    r = rule("collection_failures", operator=">=", threshold=3, duration_s=0)
    state, fired = RuleState(), []
    for i, status in enumerate(["error", "error", "success", "error", "error", "error"]):
        state, alert = apply(r, state, metrics_event(DEV, at=at(i), status=status), "i")
        fired += [alert] if alert else []
    assert [a.value for a in fired] == [3] and state.streaks == {"system_metrics": 3}
    state, alert = apply(r, state, metrics_event(DEV, at=at(10)), "i")
    assert alert.state == "resolved" and state.streaks == {}


def test_config_risk_at_or_above_a_level():
    r = rule("config_risk", operator=">=", threshold=3, duration_s=0, refire_interval_s=0)
    state, a = apply(r, RuleState(), config_change(DEV, 0, "MEDIUM"), "i")
    assert a is None
    state, a = apply(r, state, config_change(DEV, 1, "CRITICAL"), "i")
    assert a.state == "fired" and a.value == 4
    state, a = apply(r, state, config_change(DEV, 2, "HIGH"), "i")
    assert a.state == "fired" and a.refire  # every high-risk change, with refire_interval_s 0
    _, a = apply(r, state, config_change(DEV, 3, "LOW"), "i")
    assert a.state == "resolved"
    assert read(rule("config_risk", selector="docker_compose"), config_change(DEV, 0, "HIGH")) is None


def test_applies_by_metric_device_and_enabled():
    ev = metrics_event(DEV, at=at(0))
    assert applies(rule("cpu"), ev) and applies(rule("collection_failures"), ev)
    assert not applies(rule("container_state"), ev) and not applies(rule("config_risk"), ev)
    assert not applies(rule("cpu", device_id=uuid.uuid4()), ev) and applies(rule("cpu", device_id=DEV), ev)
    assert not applies(rule("cpu", enabled=False), ev)
    assert not applies(rule("cpu"), metrics_event(DEV, at=at(0), skipped_fresh=True, payload=None))
    assert applies(rule("config_risk"), config_change(DEV, 0, "LOW"))


@pytest.mark.parametrize("url, shown", [
    ("https://hooks.slack.com/services/T000/B000/XXXXSECRET", "https://hooks.slack.com/…"),
    ("http://user:pw@127.0.0.1:8080/hook?token=abc", "http://127.0.0.1:8080/…"),
    ("https://ntfy.sh", "https://ntfy.sh"),
    ("http://[::1]:9000/x", "http://[::1]:9000/…"),
])
def test_urls_are_redacted_to_scheme_host_and_port(url, shown):
    assert notify.redact_url(url) == shown


def test_webhook_requests_of_each_format():
    r = rule(duration_s=0)
    _, alert = apply(r, RuleState(), cpu(DEV, 0, 95), "i")
    body = notify.request(alert, "json")
    assert events.decode(body.content) == alert and body.headers["Content-Type"] == "application/json"
    ntfy = notify.request(alert, "ntfy")
    assert ntfy.content.decode() == alert.message and ntfy.headers["Priority"] == "high"
    assert ntfy.headers["Title"] == f"{r.name} fired on dev1"
    slack = json.loads(notify.request(alert, "slack").content)
    assert alert.message in slack["text"] and slack["attachments"][0]["color"] == "danger"


def test_no_data_fires_after_n_intervals_without_a_success_and_resolves_on_the_next_one():
    r = rule("no_data", selector="system_metrics", operator=">=", threshold=3, duration_s=0, refire_interval_s=600)
    state, alert = check(r, RuleState(), DEV, "dev1", at(0), 60, "i")
    assert state.watched_from == at(0) and alert is None  # first seen: the clock starts
    state, alert = check(r, state, DEV, "dev1", at(179), 60, "i")
    assert alert is None
    state, alert = check(r, state, DEV, "dev1", at(180), 60, "i")
    assert (alert.state, alert.value, alert.since, alert.occurred_at) == ("fired", 3, at(0), at(180))
    assert "no successful system_metrics collection since" in alert.detail and state.fired == alert
    same, none = check(r, state, DEV, "dev1", at(300), 60, "i")
    assert same is state and none is None  # no repeat before refire_interval_s
    state, again = check(r, state, DEV, "dev1", at(780), 60, "i")
    assert again.refire and again.since == at(0)

    failed, none = apply(r, state, metrics_event(DEV, at=at(790), status="error"), "i")
    assert failed is state and none is None  # a failed collection is no data
    ok = metrics_event(DEV, at=at(800))
    state, resolved = apply(r, state, ok, "i")
    assert (resolved.state, resolved.since, resolved.source_event_id) == ("resolved", at(0), ok.event_id)
    assert (state.status, state.last_ok, state.fired) == ("ok", at(800), None)
    stale, none = apply(r, state, metrics_event(DEV, at=at(700)), "i")
    assert stale is state and none is None
    _, alert = check(r, state, DEV, "dev1", at(979), 60, "i")
    assert alert is None  # counted from the last success now
    _, alert = check(r, state, DEV, "dev1", at(980), 60, "i")
    assert alert.since == at(800) and "last successful system_metrics collection at" in alert.detail


def test_no_data_watches_the_selected_types_at_their_shortest_interval():
    ev = metrics_event(DEV, at=at(0))
    assert applies(rule("no_data"), ev) and applies(rule("no_data", selector="system_*"), ev)
    assert not applies(rule("no_data", selector="drive_health"), ev)
    assert no_data_interval_s("drive_health") == 3600
    assert no_data_interval_s("*") == min(no_data_interval_s(n) for n in no_data_types("*"))
    assert no_data_interval_s("system_metrics", {"system_metrics": 1.5}) == 1.5
    assert no_data_interval_s("nothing") is None and no_data_types("nothing") == []


def test_retiring_a_rule_resolves_its_firing_alert_even_when_the_rule_is_gone():
    r = rule(threshold=90, duration_s=0)
    state, fired = apply(r, RuleState(), cpu(DEV, 0, 95), "i")
    assert state.fired == fired
    for known in (r, None):
        new, resolved = retire(known, state, DEV, at(50), "rule deleted", "i")
        assert (new.status, new.fired) == ("ok", None)
        assert (resolved.state, resolved.rule, resolved.device, resolved.since, resolved.detail) == \
               ("resolved", r.name, "dev1", at(0), "rule deleted")
        assert "rule deleted" in resolved.message
    pending, _ = apply(rule(threshold=90, duration_s=60), RuleState(), cpu(DEV, 0, 95), "i")
    reset, none = retire(r, pending, DEV, at(5), "rule disabled", "i")
    assert reset.status == "ok" and none is None
    assert retire(r, RuleState(), DEV, at(5), "rule disabled", "i") == (RuleState(), None)
