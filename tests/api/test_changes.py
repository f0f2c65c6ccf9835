"""GET /devices/{device}/changes: a recorded timeline published to the real streams, read back and ranked."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import pytest

from services.alerts.causes import RELATED
from shared import events
from shared.alert_events import AlertChanged
from shared.names import Names
from shared.runtime.publish import publish_event
from tests.alerts.test_causes import collected, nginx_change, redeployed
from tests.api.conftest import auth

T = datetime.now(UTC).replace(microsecond=0)  # stored now, so every event is in the streams' time range


def ago(minutes: float) -> datetime:
    return T - timedelta(minutes=minutes)


def fired(at: datetime, device_id: uuid.UUID) -> AlertChanged:
    return events.new_event(AlertChanged, device_id=device_id, device="nas-01", service="alerts", instance="test",
                            trigger="watch", occurred_at=at, rule_id=uuid.uuid4(), rule="disk-full", metric="disk",
                            operator=">", state="fired", value=95, threshold=90, since=at, detail="mount /data")


@pytest.fixture
async def recorded(client, keys, js, settings) -> dict[str, uuid.UUID]:
    """nas-01: containers redeployed 5 minutes ago (promtail restarting, web-nginx-1 on a new image,
    web-db-1 gone), an nginx change 20 and 45 minutes ago and one a minute from now, a disk alert
    10 minutes ago and a failed drive_health collection 3 minutes ago; nas-02: the same redeploy."""
    ids = {}
    for name in ("nas-01", "nas-02"):
        r = await client.post("/devices", json={"name": name}, headers=auth(keys["admin"]))
        assert r.status_code == 201, r.text
        ids[name] = uuid.UUID(r.json()["id"])
    names, dev, other = Names(settings.subject_prefix), ids["nas-01"], ids["nas-02"]
    baseline, redeploy = redeployed(ago(5), dev)
    _, other_redeploy = redeployed(ago(5), other)
    published = [
        (names.collected("nas-01", "containers"), collected("containers", baseline, ago(40), dev)),
        (names.collected("nas-01", "containers"), redeploy),
        (names.config("nas-01", "proxy_configs"), nginx_change(ago(20), dev)),
        (names.config("nas-01", "proxy_configs"), nginx_change(ago(45), dev)),
        (names.config("nas-01", "proxy_configs"), nginx_change(T + timedelta(minutes=1), dev)),
        (names.alert("nas-01", "disk-full"), fired(ago(10), dev)),
        (names.collected("nas-01", "drive_health"),
         collected("drive_health", None, ago(3), dev, status="error", error="smartctl: command not found")),
        (names.collected("nas-02", "containers"), collected("containers", baseline, ago(40), other)),
        (names.collected("nas-02", "containers"), other_redeploy),
        (names.config("nas-02", "proxy_configs"), nginx_change(ago(15), other)),
    ]
    for subject, ev in published:
        await publish_event(js, subject, ev)
    return ids


def _minutes(item: dict) -> int:
    return round((T - datetime.fromisoformat(item["time"])).total_seconds() / 60)


async def test_the_changes_before_a_moment_ranked(client, keys, recorded):
    r = await client.get("/devices/nas-01/changes", params={"before": T.isoformat()}, headers=auth(keys["viewer"]))
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["device"] == "nas-01" and body["window_s"] == 1800
    assert datetime.fromisoformat(body["before"]) == T
    items = body["items"]
    assert len(items) == 5  # the top 5 of 6
    assert [(-i["score"], _minutes(i)) for i in items] == sorted((-i["score"], _minutes(i)) for i in items)
    drive = next(i for i in items if i["kind"] == "collection")
    assert drive["subject"] == "drive_health" and drive["risk"] == "HIGH" and "smartctl" in drive["summary"]
    assert drive["reasons"][:2] == ["3m before", "risk HIGH"] and uuid.UUID(drive["ref"])
    promtail = next(i for i in items if i["subject"] == "promtail")
    assert promtail["detail"]["restarts_new"] == 17 and _minutes(promtail) == 5


async def test_window_top_and_metric(client, keys, recorded):
    h = auth(keys["viewer"])
    every = (await client.get("/devices/nas-01/changes", params={"before": T.isoformat(), "top": 50},
                              headers=h)).json()["items"]
    assert sorted(_minutes(i) for i in every) == [3, 5, 5, 5, 10, 20]  # not 45 minutes ago, nor after ``before``
    hour = (await client.get("/devices/nas-01/changes", params={"before": T.isoformat(), "top": 50,
                                                                 "window": "3600"}, headers=h)).json()
    # the nginx file changed 45 and 20 minutes before: one cause, the newer, counting the other
    assert hour["window_s"] == 3600 and sorted(_minutes(i) for i in hour["items"]) == [3, 5, 5, 5, 10, 20]
    nginx = next(i for i in hour["items"] if i["kind"] == "config" and _minutes(i) == 20)
    assert nginx["reasons"][-1] == "1 more change(s) of it in the window"
    short = (await client.get("/devices/nas-01/changes", params={"before": ago(4).isoformat(), "window": "2m"},
                              headers=h)).json()["items"]
    assert short == []  # [6m, 4m] before T: nothing happened
    related = (await client.get("/devices/nas-01/changes", headers=h, params={
        "before": T.isoformat(), "metric": "container_state", "selector": "web-*", "top": 50})).json()["items"]
    plain = {i["ref"] + i["subject"]: i for i in every}
    for name in ("web-nginx-1", "web-db-1"):
        item = next(i for i in related if i["subject"] == name)
        assert item["reasons"][-1] == f"container {name} is watched by the rule"
        assert item["score"] == pytest.approx(plain[item["ref"] + name]["score"] + RELATED)
    promtail = next(i for i in related if i["subject"] == "promtail")
    assert promtail["score"] == plain[promtail["ref"] + "promtail"]["score"]  # not selected by web-*


async def test_only_the_devices_own_changes(client, keys, recorded):
    other = (await client.get("/devices/nas-02/changes", params={"before": T.isoformat(), "top": 50},
                              headers=auth(keys["viewer"]))).json()["items"]
    assert sorted((i["kind"], _minutes(i)) for i in other) == [
        ("config", 15), ("container", 5), ("container", 5), ("container", 5)]
    now = await client.get(f"/devices/{recorded['nas-02']}/changes", headers=auth(keys["viewer"]))
    assert now.status_code == 200 and {i["kind"] for i in now.json()["items"]} == {"config", "container"}


@pytest.mark.parametrize("params", [{"window": "8d"}, {"window": "0"}, {"window": "30x"}, {"window": "604801"},
                                    {"top": 0}, {"top": 51}, {"metric": "nonsense"}, {"before": "yesterday"}])
async def test_bad_parameters(client, keys, recorded, params):
    r = await client.get("/devices/nas-01/changes", params=params, headers=auth(keys["viewer"]))
    assert r.status_code == 422, r.text


async def test_unknown_device_and_no_key(client, keys, recorded):
    assert (await client.get("/devices/ghost/changes", headers=auth(keys["viewer"]))).status_code == 404
    assert (await client.get("/devices/nas-01/changes")).status_code == 401
    r = await client.get("/devices/nas-01/changes", params={"window": "7d"}, headers=auth(keys["viewer"]))
    assert r.status_code == 200 and r.json()["window_s"] == 7 * 86400


@pytest.mark.parametrize("before", ["0001-01-01T00:00:00Z", "1999-12-31T23:00:00Z", "9999-12-31T23:59:59Z"])
async def test_a_moment_out_of_the_recorded_range_has_no_changes(client, keys, recorded, before):
    r = await client.get("/devices/nas-01/changes", params={"before": before, "window": "7d"},
                         headers=auth(keys["viewer"]))
    assert r.status_code == 200, r.text
    assert r.json()["items"] == []
