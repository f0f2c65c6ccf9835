"""GET /config/search over files stored by the writer: JSONPath, filters, past versions, deletions, auth."""

from __future__ import annotations

import pytest_asyncio

from tests.api.conftest import auth
from tests.api.fleet_fixtures import COMPOSE, NGINX, T0, change, compose, nginx, register, store

OLD = "/srv/old/docker-compose.yml"
PRIVILEGED = "$.services.* ? (@.privileged == true)"
IMAGE_1250 = '$.services.*.image ? (@ == "nginx:1.25.0")'


@pytest_asyncio.fixture
async def fleet(client, keys, settings) -> dict[str, dict]:
    devs = await register(client, keys, "web-1", "web-2")
    w1, w2 = devs["web-1"], devs["web-2"]
    await store(
        settings,
        change(w1, 0, COMPOSE, compose("nginx:1.25.0"), "CREATE"),
        change(w1, 10, COMPOSE, compose("nginx:1.25.1", privileged=True)),
        change(w2, 5, COMPOSE, compose("nginx:1.25.0")),
        change(w2, 1, NGINX, nginx(80), "CREATE"),
        change(w1, 0, OLD, compose("nginx:1.25.0"), "CREATE"),
        change(w1, 20, OLD, None, "DELETE"),
        change(w1, 2, "/etc/nginx/conf.d/a_b.conf", nginx(81), "CREATE"),
        change(w1, 2, "/etc/nginx/conf.d/aXb.conf", nginx(82), "CREATE"),
    )
    return devs


async def _search(client, keys, **params):
    r = await client.get("/config/search", params=params, headers=auth(keys["viewer"]))
    assert r.status_code == 200, r.text
    return r.json()


def _hits(page: dict) -> list[tuple[str, str]]:
    return [(h["device"], h["path"]) for h in page["items"]]


async def test_jsonpath_finds_current_versions_with_their_matches(client, keys, fleet):
    page = await _search(client, keys, jsonpath=PRIVILEGED)
    assert _hits(page) == [("web-1", COMPOSE)] and page["total_count"] == 1
    hit = page["items"][0]
    assert hit["match_count"] == 1 and hit["matches"][0]["image"] == "nginx:1.25.1"
    assert hit["config_type"] == "docker_compose" and hit["change_type"] == "MODIFY" and len(hit["content_hash"]) == 64
    snap = await client.get(f"/devices/web-1/config/snapshots/{hit['snapshot_id']}", headers=auth(keys["viewer"]))
    assert "nginx:1.25.1" in snap.json()["raw_content"]

    page = await _search(client, keys, jsonpath=IMAGE_1250)
    assert _hits(page) == [("web-2", COMPOSE)]
    assert (page["items"][0]["matches"], page["items"][0]["match_count"]) == (["nginx:1.25.0"], 1)
    images = await _search(client, keys, jsonpath="$.services.*.image", device="web-2", config_type="docker_compose")
    assert sorted(images["items"][0]["matches"]) == ["nginx:1.25.0", "redis:7"] and images["items"][0]["match_count"] == 2


async def test_matches_are_capped_at_twenty(client, keys, fleet):
    page = await _search(client, keys, jsonpath="$.**", path=COMPOSE, device="web-1")
    hit = page["items"][0]
    assert hit["match_count"] > 20 and len(hit["matches"]) == 20


async def test_at_searches_the_versions_current_then(client, keys, fleet):
    at = (T0.replace(minute=7)).isoformat()
    assert (await _search(client, keys, jsonpath=PRIVILEGED, at=at))["items"] == []
    page = await _search(client, keys, jsonpath=IMAGE_1250, at=at)
    assert _hits(page) == sorted([("web-1", COMPOSE), ("web-1", OLD), ("web-2", COMPOSE)],
                                 key=lambda h: (fleet[h[0]]["id"], h[1]))
    before_all = await _search(client, keys, at=(T0.replace(year=2020)).isoformat())
    assert before_all["items"] == []


async def test_filters_by_type_device_and_path_glob(client, keys, fleet):
    ids = {d["id"]: name for name, d in fleet.items()}
    everything = await _search(client, keys)
    assert len(everything["items"]) == 5 and all(h["path"] != OLD for h in everything["items"])
    assert [(ids[h["device_id"]], h["path"]) for h in everything["items"]] == _hits(everything)
    assert [(h["device_id"], h["path"]) for h in everything["items"]] == sorted(
        (h["device_id"], h["path"]) for h in everything["items"])
    assert {h["path"] for h in (await _search(client, keys, config_type="proxy_configs"))["items"]} == {
        NGINX, "/etc/nginx/conf.d/a_b.conf", "/etc/nginx/conf.d/aXb.conf"}
    assert len((await _search(client, keys, device="web-2"))["items"]) == 2
    assert len((await _search(client, keys, device="web-1,web-2"))["items"]) == 5
    r = await client.get("/config/search", params=[("device", "web-2"), ("device", fleet["web-1"]["id"])],
                         headers=auth(keys["viewer"]))
    assert len(r.json()["items"]) == 5
    assert _hits(await _search(client, keys, path="/srv/*/docker-compose.yml")) == sorted(
        [("web-1", COMPOSE), ("web-2", COMPOSE)], key=lambda h: fleet[h[0]]["id"])
    assert _hits(await _search(client, keys, path="/etc/nginx/conf.d/a_b.*")) == [("web-1", "/etc/nginx/conf.d/a_b.conf")]
    assert len((await _search(client, keys, path="/etc/nginx/conf.d/a?b.conf"))["items"]) == 2
    assert (await _search(client, keys, path="%"))["items"] == []


async def test_deleted_files_only_on_request(client, keys, fleet):
    page = await _search(client, keys, path=OLD, include_deleted="true")
    assert [(h["path"], h["change_type"], h["matches"]) for h in page["items"]] == [(OLD, "DELETE", [])]
    assert (await _search(client, keys, path=OLD))["items"] == []
    assert (await _search(client, keys, path=OLD, include_deleted="true", jsonpath="$.services"))["items"] == []


async def test_paging(client, keys, fleet):
    first = await _search(client, keys, page_size=2)
    second = await _search(client, keys, page_size=2, page=2)
    assert first["total_count"] == 5 and first["total_pages"] == 3
    assert len({h["snapshot_id"] for h in first["items"] + second["items"]}) == 4
    past = await _search(client, keys, page_size=2, page=9)
    assert (past["items"], past["total_count"]) == ([], 5)


async def test_invalid_jsonpath_and_unknown_device(client, keys, fleet):
    h = auth(keys["viewer"])
    r = await client.get("/config/search", params={"jsonpath": "$.services[*"}, headers=h)
    assert r.status_code == 422
    assert r.json()["detail"][0]["loc"] == ["query", "jsonpath"] and "syntax error" in r.json()["message"]
    r = await client.get("/config/search", params={"jsonpath": "x" * 1001}, headers=h)
    assert r.status_code == 422
    r = await client.get("/config/search", params={"device": "ghost"}, headers=h)
    assert r.status_code == 404 and "ghost" in r.json()["detail"]
    assert (await client.get("/config/search", params={"at": "yesterday"}, headers=h)).status_code == 422
    assert (await client.get("/config/search", params={"config_type": "a b"}, headers=h)).status_code == 422


async def test_a_key_is_required(client, fleet):
    for route in ("/config/search", "/config/drift", f"/config/compare?path={COMPOSE}&devices=web-1,web-2"):
        assert (await client.get(route)).status_code == 401
        assert (await client.get(route, headers=auth("not-a-key"))).status_code == 401


async def test_a_search_past_its_time_limit_is_503(client, keys, fleet, settings, monkeypatch):
    """A table locked by another transaction holds the search until its statement timeout."""
    import asyncpg

    from services.api.routes import fleet as routes

    monkeypatch.setattr(routes, "STATEMENT_TIMEOUT_MS", 200)
    conn = await asyncpg.connect(settings.database_url)
    try:
        async with conn.transaction():
            await conn.execute("LOCK TABLE config_current IN ACCESS EXCLUSIVE MODE")
            r = await client.get("/config/search", params={"jsonpath": PRIVILEGED}, headers=auth(keys["viewer"]))
            drift = await client.get("/config/drift", headers=auth(keys["viewer"]))
    finally:
        await conn.close()
    assert r.status_code == 503 and "longer than 0.2 s" in r.json()["detail"]
    assert drift.status_code == 503 and "drift" in drift.json()["detail"]
    assert (await client.get("/config/search", params={"jsonpath": PRIVILEGED}, headers=auth(keys["viewer"]))).status_code == 200
