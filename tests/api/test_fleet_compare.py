"""GET /config/compare and GET /config/drift over files stored by the writer."""

from __future__ import annotations

import pytest_asyncio

from tests.api.conftest import auth
from tests.api.fleet_fixtures import COMPOSE, NGINX, T0, change, compose, nginx, register, store

GONE = "/srv/gone/docker-compose.yml"
ELSEWHERE = "/opt/app@1/docker-compose.yml"


@pytest_asyncio.fixture
async def fleet(client, keys, settings) -> dict[str, dict]:
    devs = await register(client, keys, "web-1", "web-2", "web-3")
    w1, w2, w3 = devs["web-1"], devs["web-2"], devs["web-3"]
    await store(
        settings,
        change(w1, 0, COMPOSE, compose("nginx:1.25.0"), "CREATE"),
        change(w1, 10, COMPOSE, compose("nginx:1.25.1")),
        change(w2, 5, COMPOSE, compose("nginx:1.25.1")),
        change(w3, 5, COMPOSE, compose("nginx:1.25.0", privileged=True)),
        change(w1, 1, NGINX, nginx(80), "CREATE"),
        change(w2, 1, NGINX, nginx(8080), "CREATE"),
        change(w1, 1, GONE, compose("a:1"), "CREATE"),
        change(w2, 1, GONE, compose("b:1"), "CREATE"),
        change(w2, 3, GONE, None, "DELETE"),
        change(w3, 2, ELSEWHERE, compose("nginx:1.25.1"), "CREATE"),
    )
    return devs


async def _get(client, keys, route: str, status: int = 200, **params):
    r = await client.get(route, params=params, headers=auth(keys["viewer"]))
    assert r.status_code == status, r.text
    return r.json()


async def test_compare_shows_structured_and_unified_differences(client, keys, fleet):
    res = await _get(client, keys, "/config/compare", path=COMPOSE, devices="web-3,web-1")
    assert res["reference"]["device"] == "web-3" and not res["reference"]["missing"]
    (c,) = res["comparisons"]
    assert c["version"]["device"] == "web-1" and c["identical"] is False
    assert {(s["path"], s["op"], s["old"], s["new"]) for s in c["structured"]} >= {
        ("services.web.image", "changed", "nginx:1.25.0", "nginx:1.25.1"),
        ("services.web.privileged", "changed", True, False),
    }
    assert "-    image: nginx:1.25.0\n" in c["unified_diff"] and "+    image: nginx:1.25.1\n" in c["unified_diff"]
    assert c["unified_diff"].startswith("--- web-3:/srv/app/docker-compose.yml\t")
    assert c["counts"]["changed"] == len(c["structured"]) and (c["counts"]["added_lines"], c["counts"]["removed_lines"]) == (2, 2)

    res = await _get(client, keys, "/config/compare", path=NGINX, devices="web-1,web-2")
    (c,) = res["comparisons"]
    changes = {(s["path"], s["op"], s["old"], s["new"]) for s in c["structured"]}
    assert {("listen[0]", "changed", "80", "8080"),
            ('servers["app.example"].listen[0]', "changed", "80", "8080")} <= changes
    assert "-  listen 80;\n+  listen 8080;\n" in c["unified_diff"]


async def test_identical_and_missing_files(client, keys, fleet):
    res = await _get(client, keys, "/config/compare", path=COMPOSE, devices=["web-1", "web-2,web-3"])
    same, other = res["comparisons"]
    assert same["version"]["device"] == "web-2" and same["identical"] is True
    assert same["structured"] == [] and same["unified_diff"] == "" and same["counts"]["changed"] == 0
    assert other["identical"] is False
    res = await _get(client, keys, "/config/compare", path=NGINX, devices="web-1,web-3")
    assert res["comparisons"][0]["version"] == {**res["comparisons"][0]["version"], "missing": True, "snapshot_id": None}
    assert res["comparisons"][0]["unified_diff"] is None and res["comparisons"][0]["identical"] is False
    res = await _get(client, keys, "/config/compare", path=GONE, devices="web-2,web-1")  # deleted on web-2
    assert res["reference"]["missing"] is True and res["comparisons"][0]["version"]["missing"] is False


async def test_compare_against_a_past_version(client, keys, fleet):
    res = await _get(client, keys, "/config/compare", path=COMPOSE, devices="web-1",
                     against=f"web-1@{T0.replace(minute=5).isoformat()}")
    assert res["reference"]["time"].startswith("2026-05-01T08:00:00")
    (c,) = res["comparisons"]
    assert c["version"]["time"].startswith("2026-05-01T08:10:00")
    assert [(s["path"], s["old"], s["new"]) for s in c["structured"]] == [
        ("images[0]", "nginx:1.25.0", "nginx:1.25.1"), ("services.web.image", "nginx:1.25.0", "nginx:1.25.1")]
    res = await _get(client, keys, "/config/compare", path=COMPOSE, devices="web-2",
                     against="web-1@2020-01-01T00:00:00Z")
    assert res["reference"]["missing"] is True


async def test_compare_files_at_other_paths(client, keys, fleet):
    res = await _get(client, keys, "/config/compare", path=COMPOSE, devices=f"web-1,web-3:{ELSEWHERE},web-3")
    assert res["reference"]["path"] == COMPOSE
    elsewhere, same_path = res["comparisons"]
    assert (elsewhere["version"]["path"], elsewhere["identical"]) == (ELSEWHERE, True)
    assert (same_path["version"]["path"], same_path["identical"]) == (COMPOSE, False)
    res = await _get(client, keys, "/config/compare", path=COMPOSE, devices="web-3",
                     against=f"web-3:{ELSEWHERE}@{T0.replace(minute=3).isoformat()}")
    assert res["reference"]["path"] == ELSEWHERE and not res["reference"]["missing"]
    assert any(c["path"] == "services.web.privileged" for c in res["comparisons"][0]["structured"])
    await _get(client, keys, "/config/compare", 422, devices=f"web-1:{COMPOSE},web-2")  # web-2: which file?


async def test_compare_errors(client, keys, fleet):
    await _get(client, keys, "/config/compare", 422, path=COMPOSE, devices="web-1")
    await _get(client, keys, "/config/compare", 422, path=COMPOSE)
    await _get(client, keys, "/config/compare", 404, path=COMPOSE, devices="web-1,ghost")
    await _get(client, keys, "/config/compare", 422, path=COMPOSE, devices="web-2", against="web-1")
    await _get(client, keys, "/config/compare", 422, path=COMPOSE, devices="web-2", against="web-1@yesterday")
    await _get(client, keys, "/config/compare", 404, path=COMPOSE, devices="web-2", against="ghost@2026-01-01T00:00:00Z")
    await _get(client, keys, "/config/compare", 422, devices="web-1,web-2")


async def test_drift_groups_devices_by_content(client, keys, fleet):
    page = await _get(client, keys, "/config/drift")
    paths = [(p["path"], p["drifted"]) for p in page["items"]]
    assert paths == [(NGINX, True), (COMPOSE, True), (ELSEWHERE, False), (GONE, False)]
    compose_drift = next(p for p in page["items"] if p["path"] == COMPOSE)
    assert compose_drift["devices_total"] == 3 and compose_drift["config_type"] == "docker_compose"
    assert [[d["name"] for d in g["devices"]] for g in compose_drift["groups"]] == [["web-1", "web-2"], ["web-3"]]
    gone = next(p for p in page["items"] if p["path"] == GONE)
    assert [[d["name"] for d in g["devices"]] for g in gone["groups"]] == [["web-1"]]  # deleted on web-2

    page = await _get(client, keys, "/config/drift", type="docker_compose", device="web-1,web-2")
    assert [(p["path"], p["drifted"], p["devices_total"]) for p in page["items"]] == [(COMPOSE, False, 2), (GONE, False, 1)]
    page = await _get(client, keys, "/config/drift", path="/etc/*", page_size=1)
    assert [p["path"] for p in page["items"]] == [NGINX] and page["total_count"] == 1
    second = await _get(client, keys, "/config/drift", page_size=1, page=2)
    assert second["total_count"] == 4 and [p["path"] for p in second["items"]] == [COMPOSE]
    await _get(client, keys, "/config/drift", 404, device="ghost")
    await _get(client, keys, "/config/drift", 422, type="no such")
