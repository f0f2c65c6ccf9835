"""GET /alerts/active: the (rule, device) pairs whose newest alert event is ``fired``, as the writer stored them."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import pytest

from shared import events
from shared.alert_events import AlertChanged, Cause
from tests.api.conftest import auth, project

T = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
NGINX = Cause(time=T - timedelta(minutes=4), kind="config", subject="/etc/nginx/nginx.conf",
              summary="nginx /etc/nginx/nginx.conf MODIFY: 1 changed (HIGH)", risk="HIGH", ref=str(uuid.uuid4()),
              score=3.5, reasons=["4m before", "risk HIGH"], detail={"config_type": "proxy_configs"})


def alert(rule: dict, device: dict, minutes: int, state: str = "fired", since: int | None = None,
          **kw) -> AlertChanged:
    return events.new_event(
        AlertChanged, device_id=uuid.UUID(device["id"]), device=device["name"], service="alerts", instance="test",
        trigger="watch", occurred_at=T + timedelta(minutes=minutes), rule_id=uuid.UUID(rule["id"]), rule=rule["name"],
        metric=rule["metric"], operator=">", state=state, value=95.0, threshold=90.0,
        since=T + timedelta(minutes=minutes if since is None else since), message=f"{rule['name']} {state}", **kw)


@pytest.fixture
async def world(client, keys, settings) -> dict[str, dict]:
    """cpu-high fired and resolved on web-1, fired and fired again on web-2; disk-full fired on web-1
    (with a cause); a deleted rule's alert still fired on web-2."""
    admin = auth(keys["admin"])
    made: dict[str, dict] = {}
    for name in ("web-1", "web-2"):
        r = await client.post("/devices", json={"name": name}, headers=admin)
        assert r.status_code == 201, r.text
        made[name] = r.json()
    for body in ({"name": "cpu-high", "metric": "cpu", "threshold": 90},
                 {"name": "disk-full", "metric": "disk", "threshold": 90, "selector": "/data"},
                 {"name": "gone", "metric": "memory", "threshold": 90}):
        r = await client.post("/rules", json=body, headers=admin)
        assert r.status_code == 201, r.text
        made[body["name"]] = r.json()
    cpu, disk, gone, w1, w2 = (made[k] for k in ("cpu-high", "disk-full", "gone", "web-1", "web-2"))
    await project(settings.database_url,
                  alert(cpu, w1, 0), alert(cpu, w1, 5, "resolved", since=0),
                  alert(cpu, w2, 1), alert(cpu, w2, 7, since=1, refire=True),
                  alert(disk, w1, 3, causes=[NGINX]), alert(gone, w2, 9))
    assert (await client.delete(f"/rules/{gone['id']}", headers=admin)).status_code == 204
    return made


async def test_the_alerts_firing_now_newest_first(client, keys, world):
    r = await client.get("/alerts/active", headers=auth(keys["viewer"]))
    assert r.status_code == 200, r.text
    page = r.json()
    got = [(a["rule_name"], a["device"], a["metric"]) for a in page["items"]]
    assert got == [("cpu-high", "web-2", "cpu"), ("disk-full", "web-1", "disk")]
    assert page["total_count"] == 2
    cpu, disk = page["items"]
    assert datetime.fromisoformat(cpu["time"]) == T + timedelta(minutes=7)
    assert datetime.fromisoformat(cpu["since"]) == T + timedelta(minutes=1)
    assert cpu["device_id"] == world["web-2"]["id"] and cpu["rule_id"] == world["cpu-high"]["id"]
    assert (cpu["value"], cpu["threshold"], cpu["message"], cpu["selector"]) == (95.0, 90.0, "cpu-high fired", None)
    assert disk["selector"] == "/data"


async def test_filters_and_pages(client, keys, world):
    h = auth(keys["viewer"])
    only = (await client.get("/alerts/active", params={"device": "web-1"}, headers=h)).json()
    assert [a["rule_name"] for a in only["items"]] == ["disk-full"]
    by_id = (await client.get("/alerts/active", params={"device": world["web-2"]["id"]}, headers=h)).json()
    assert [a["rule_name"] for a in by_id["items"]] == ["cpu-high"]
    cpu = (await client.get("/alerts/active", params={"metric": "cpu"}, headers=h)).json()
    assert [a["device"] for a in cpu["items"]] == ["web-2"]
    second = (await client.get("/alerts/active", params={"page": 2, "page_size": 1}, headers=h)).json()
    assert [a["rule_name"] for a in second["items"]] == ["disk-full"]
    assert (second["total_count"], second["total_pages"]) == (2, 2)
    assert (await client.get("/alerts/active", params={"device": "ghost"}, headers=h)).status_code == 404
    assert (await client.get("/alerts/active", params={"metric": "nonsense"}, headers=h)).status_code == 422
    assert (await client.get("/alerts/active")).status_code == 401


async def test_each_alert_with_the_causes_found_when_it_fired(client, keys, world):
    items = (await client.get("/alerts/active", headers=auth(keys["viewer"]))).json()["items"]
    cpu, disk = items
    assert cpu["causes"] == []
    [cause] = disk["causes"]
    assert datetime.fromisoformat(cause.pop("time")) == NGINX.time
    assert cause == {"kind": "config", "subject": NGINX.subject, "summary": NGINX.summary, "risk": "HIGH",
                     "ref": NGINX.ref, "score": 3.5, "reasons": ["4m before", "risk HIGH"],
                     "detail": {"config_type": "proxy_configs"}}
