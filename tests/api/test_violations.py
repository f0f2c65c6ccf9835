"""Config violations through the API: rows as the policy evaluator writes them, read back with every filter."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime, timedelta

import asyncpg

from shared.policy_events import path_key
from tests.api.conftest import auth

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


def _ref(minutes: int) -> dict:
    return {"event_id": str(uuid.uuid4()), "snapshot_id": str(uuid.uuid4()),
            "time": (T0 + timedelta(minutes=minutes)).isoformat(), "change_type": "MODIFY", "sha256": "ab" * 32}


async def _insert(url: str, device_id: str, policy: str, severity: str, path: str, minutes: int,
                  state: str = "open", config_type: str = "proxy_configs", policy_id: uuid.UUID | None = None) -> dict:
    """One row of config_violations as the evaluator writes it; returns its id and refs."""
    row = {"id": uuid.uuid4(), "introduced_by": _ref(minutes),
           "fixed_by": _ref(minutes + 5) if state == "resolved" else None}
    conn = await asyncpg.connect(url)
    try:
        await conn.execute(
            "INSERT INTO config_violations (id, policy_id, policy_name, severity, message, device_id, config_type, "
            "file_path, path_key, state, matches, match_count, opened_at, introduced_by, resolved_at, fixed_by, "
            "resolution, fired_event_id, published, notified) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, "
            "$11::jsonb, $12, $13, $14::jsonb, $15, $16::jsonb, $17, $18, true, true)",
            row["id"], policy_id or uuid.uuid5(uuid.NAMESPACE_DNS, policy), policy, severity, f"{policy} broken",
            uuid.UUID(device_id), config_type, path, path_key(path), state, json.dumps(["on", {"x": 1}]), 3,
            T0 + timedelta(minutes=minutes), json.dumps(row["introduced_by"]),
            T0 + timedelta(minutes=minutes + 5) if state == "resolved" else None,
            json.dumps(row["fixed_by"]) if row["fixed_by"] else None, "fixed" if state == "resolved" else None,
            uuid.uuid4())
    finally:
        await conn.close()
    return row


async def _seed(client, keys, settings, device) -> dict:
    r = await client.post("/devices", json={"name": "db-1", "address": "10.0.0.6"}, headers=auth(keys["admin"]))
    db1 = r.json()
    url = settings.database_url
    return {
        "a": await _insert(url, device["id"], "autoindex", "high", "/etc/nginx/sites/a_b.conf", 1),
        "b": await _insert(url, device["id"], "tls-old", "critical", "/etc/nginx/nginx.conf", 2),
        "c": await _insert(url, db1["id"], "tls-old", "critical", "/etc/nginx/nginx.conf", 3),
        "d": await _insert(url, db1["id"], "root-unit", "medium", "/etc/systemd/system/x.service", 4,
                           config_type="systemd_units"),
        "e": await _insert(url, device["id"], "autoindex", "high", "/etc/nginx/sites/axb.conf", 5, state="resolved"),
        "db1": db1,
    }


async def test_violations_are_listed_newest_first_with_counts_by_severity(client, keys, settings, device):
    rows = await _seed(client, keys, settings, device)
    viewer = auth(keys["viewer"])
    r = await client.get("/config/violations", headers=viewer)
    assert r.status_code == 200, r.text
    page = r.json()
    assert [i["id"] for i in page["items"]] == [str(rows[k]["id"]) for k in "dcba"]  # open only, newest first
    assert page["total_count"] == 4
    assert page["by_severity"] == {"critical": 2, "high": 1, "medium": 1, "low": 0, "info": 0}
    assert list(page["by_severity"]) == ["critical", "high", "medium", "low", "info"]

    item = next(i for i in page["items"] if i["id"] == str(rows["b"]["id"]))
    ref = rows["b"]["introduced_by"]
    assert (item["policy"], item["severity"], item["device"], item["device_id"], item["path"], item["state"]) == \
           ("tls-old", "critical", "web-1", device["id"], "/etc/nginx/nginx.conf", "open")
    assert (item["matches"], item["match_count"], item["fixed_by"], item["resolution"]) == (["on", {"x": 1}], 3,
                                                                                            None, None)
    assert item["introduced_by"]["snapshot_id"] == ref["snapshot_id"]
    assert item["introduced_by"]["diff_url"] == f"/devices/{device['id']}/config/snapshots/{ref['snapshot_id']}/diff"
    assert (await client.get(f"/config/violations/{rows['b']['id']}", headers=viewer)).json() == item

    resolved = (await client.get(f"/config/violations/{rows['e']['id']}", headers=viewer)).json()
    assert (resolved["state"], resolved["resolution"]) == ("resolved", "fixed")
    assert resolved["fixed_by"]["snapshot_id"] == rows["e"]["fixed_by"]["snapshot_id"]
    assert resolved["fixed_by"]["diff_url"].endswith(f"/snapshots/{rows['e']['fixed_by']['snapshot_id']}/diff")
    assert (await client.get(f"/config/violations/{uuid.uuid4()}", headers=viewer)).status_code == 404


async def test_every_filter_of_the_violations(client, keys, settings, device):
    rows = await _seed(client, keys, settings, device)
    viewer = auth(keys["viewer"])

    async def ids(**params) -> list[str]:
        r = await client.get("/config/violations", params=params, headers=viewer)
        assert r.status_code == 200, r.text
        return [i["id"] for i in r.json()["items"]]

    def of(keys_: str) -> list[str]:
        return [str(rows[k]["id"]) for k in keys_]

    assert await ids(state="resolved") == of("e")
    assert await ids(state="all") == of("edcba")
    assert await ids(severity="critical") == of("cb")
    assert await ids(severity="critical,medium") == of("dcb")
    assert await ids(severity=["high", "medium"], state="all") == of("eda")
    assert await ids(device="db-1") == of("dc")
    assert await ids(device=rows["db1"]["id"]) == of("dc")
    assert await ids(policy="tls-old") == of("cb")
    assert await ids(policy=str(uuid.uuid5(uuid.NAMESPACE_DNS, "autoindex")), state="all") == of("ea")
    assert await ids(config_type="systemd_units") == of("d")
    assert await ids(path="/etc/nginx/*") == of("cba")
    assert await ids(path="/etc/nginx/sites/a_b.conf", state="all") == of("a")  # "_" is no wildcard
    assert await ids(path="/etc/nginx/sites/a?b.conf", state="all") == of("ea")
    assert await ids(path="*.service") == of("d")
    assert await ids(page_size=2, page=2) == of("ba")

    r = await client.get("/config/violations", params={"device": "web-1"}, headers=viewer)
    assert r.json()["by_severity"] == {"critical": 1, "high": 1, "medium": 0, "low": 0, "info": 0}
    r = await client.get("/config/violations", params={"severity": "critical", "state": "resolved"}, headers=viewer)
    assert r.json()["items"] == [] and r.json()["by_severity"]["high"] == 1  # counts: open, every other filter
    for bad in ({"severity": "urgent"}, {"state": "closed"}, {"policy": "a.b"}, {"page_size": 501}):
        r = await client.get("/config/violations", params=bad, headers=viewer)
        assert r.status_code == 422, (bad, r.text)
    r = await client.get("/config/violations", params={"device": "ghost"}, headers=viewer)
    assert r.status_code == 404
