"""The watcher's own host without SSH, and the writer projecting config events into PostgreSQL."""

from __future__ import annotations

import asyncio
import uuid

import msgspec
import pytest

from services.watcher.settings import WatcherSettings
from services.writer.projections.config import row_ids
from services.writer.service import run as run_writer
from shared import events
from shared.events import DeviceSpec
from shared.names import MSG_ID
from tests.util import fetch, fetchval, wait_until


async def test_local_device_is_watched_without_ssh(watching, root) -> None:
    spec = DeviceSpec(id=uuid.uuid4(), name="here", transport="local", watch_paths={"app": [f"{root}/srv/*.ini"]})
    (root / "srv").mkdir()
    w = await watching("inotifywait", spec=spec, watcher_local_devices=["here"])
    ini = root / "srv" / "app.ini"
    ini.write_text("[db]\npassword = hunter2\nhost = db\n")
    ev = (await w.wait_for(1))[0]
    assert (ev.change_type, ev.config_type, ev.watch_mode, ev.device) == ("CREATE", "app", "inotifywait", "here")
    assert ev.parsed is None and ev.parse_error is None, "a user-defined type has no parser"
    assert ev.content == "[db]\npassword = <redacted>\nhost = db\n"
    assert [(r.line, r.name) for r in ev.redactions] == [(2, "password")]
    assert ev.impact.risk_level == "MEDIUM"


@pytest.fixture
def settings(nats_url, database_url, tmp_path, ssh_server, root) -> WatcherSettings:
    """With a database, for the writer."""
    return WatcherSettings(
        nats_url=nats_url, database_url=database_url, subject_prefix=f"t{uuid.uuid4().hex[:10]}",
        data_dir=tmp_path / "data", instance="test", writer_batch_wait_s=0.2, watcher_root_prefix=str(root),
        ssh_client_keys=[ssh_server.client_key], ssh_known_hosts=ssh_server.known_hosts,
    )


@pytest.mark.ssh
async def test_writer_stores_snapshots_and_change_events(watching, root, settings, js) -> None:
    stop = asyncio.Event()
    writer = asyncio.create_task(run_writer(settings, stop))
    try:
        compose_dir = root / "compose" / "web"
        compose_dir.mkdir(parents=True)
        w = await watching("inotifywait")
        path = compose_dir / "docker-compose.yml"
        path.write_text("services:\n  web:\n    image: nginx:1.25\n    environment:\n      API_TOKEN: abc\n")
        await w.wait_for(1)
        path.write_text("services:\n  web:\n    image: nginx:1.27\n    environment:\n      API_TOKEN: abc\n")
        created, modified = await w.wait_for(2)
        url = settings.database_url

        async def rows() -> int:
            return await fetchval(url, "SELECT count(*) FROM configuration_change_events") >= 2
        await wait_until(rows, timeout=120, what="two change events in the database")

        snaps = await fetch(url, "SELECT * FROM configuration_snapshots ORDER BY time")
        assert [(r["change_type"], r["file_path"], r["event_id"]) for r in snaps] == [
            ("CREATE", str(path), created.event_id), ("MODIFY", str(path), modified.event_id)]
        snap = snaps[1]
        assert snap["id"] == row_ids(modified.event_id)[0]
        assert snap["content_hash"] == modified.sha256 and snap["previous_hash"] == created.sha256
        assert "abc" not in snap["raw_content"] and "API_TOKEN: <redacted>" in snap["raw_content"]
        assert snap["risk_level"] == "HIGH" and snap["requires_restart"]
        assert snap["collection_source"] == "watch:inotifywait"
        changes = await fetch(url, "SELECT * FROM configuration_change_events ORDER BY time")
        change = changes[1]
        assert change["id"] == row_ids(modified.event_id)[1] and change["snapshot_id"] == snap["id"]
        summary = msgspec.json.decode(change["changes_summary"])
        assert "services.web.image" in summary["changed"] and "+    image: nginx:1.27" in summary["unified_diff"]
        assert summary["watch_mode"] == "inotifywait"

        # the same event again under another message id: no second row
        await js.publish(w.names.config(w.spec.name, "docker_compose"), events.encode(modified),
                         headers={MSG_ID: f"again-{modified.event_id}"})
        path.write_text("services:\n  web:\n    image: nginx:1.27\n")  # a later change, to know the repeat was seen
        await w.wait_for(3)

        async def three() -> bool:
            return await fetchval(url, "SELECT count(*) FROM configuration_snapshots") >= 3
        await wait_until(three, timeout=120, what="the third snapshot")
        await asyncio.sleep(2)
        assert await fetchval(url, "SELECT count(*) FROM configuration_snapshots") == 3
        assert await fetchval(url, "SELECT count(*) FROM configuration_change_events") == 3
    finally:
        stop.set()
        await asyncio.wait_for(writer, 60)


async def test_the_watch_mode_of_a_device_is_readable_through_the_api(settings, js, tmp_path):
    """The watcher reports its mode per device; the API serves it at /devices/{d}/watch."""
    import httpx

    from services.api.keys import create_api_key
    from services.api.main import create_app
    from services.watcher.service import run as run_watcher
    from shared.names import Names
    from shared.runtime import devices

    names = Names(settings.subject_prefix)
    (tmp_path / "etc" / "nginx").mkdir(parents=True)
    (tmp_path / "etc" / "nginx" / "nginx.conf").write_text("events {}\n")
    await devices.register(js, names, DeviceSpec(id=uuid.uuid4(), name="box", transport="local"), "test", "t")
    ws = WatcherSettings(**{**settings.model_dump(), "watcher_root_prefix": str(tmp_path), "watcher_mode": "poll",
                            "watcher_local_devices": ["box"]})
    stop = asyncio.Event()
    task = asyncio.create_task(run_watcher(ws, stop))
    key, _ = await create_api_key(settings.database_url, "viewer", "t")
    app = create_app(settings)
    try:
        async with app.router.lifespan_context(app), httpx.AsyncClient(
                transport=httpx.ASGITransport(app=app), base_url="http://api",
                headers={"Authorization": f"Bearer {key}"}) as client:
            async def status():
                r = await client.get("/devices/box/watch")
                return r.json() if r.status_code == 200 and r.json().get("watch_mode") else None

            body = await wait_until(status, timeout=60, what="the watcher's status through the API")
            assert body["watch_mode"] == "poll" and body["device"] == "box"
    finally:
        stop.set()
        await asyncio.wait_for(task, 60)


async def test_a_device_setting_cannot_make_the_watcher_read_its_own_host(settings, js, tmp_path) -> None:
    """``transport: local`` only for the names the watcher allows: another device naming it is
    refused, so its globs never read this host's files into snapshots."""
    from services.watcher.service import run as run_watcher
    from shared.names import Names
    from shared.runtime import devices

    names = Names(settings.subject_prefix)
    (tmp_path / "etc" / "nginx").mkdir(parents=True)
    (tmp_path / "etc" / "nginx" / "nginx.conf").write_text("events {}\n")
    secret = tmp_path / "host-secret.conf"
    secret.write_text("token = abc\n")
    globs = {"stolen": [str(secret)]}
    await devices.register(js, names, DeviceSpec(id=uuid.uuid4(), name="intruder", transport="local",
                                                 watch_paths=globs), "test", "t")
    await devices.register(js, names, DeviceSpec(id=uuid.uuid4(), name="box", transport="local"), "test", "t")
    ws = WatcherSettings(**{**settings.model_dump(), "watcher_root_prefix": str(tmp_path), "watcher_mode": "poll",
                            "watcher_local_devices": ["box"]})
    stop = asyncio.Event()
    task = asyncio.create_task(run_watcher(ws, stop))
    try:
        sub = await js.subscribe(names.all("config"), ordered_consumer=True)
        seen: list = []

        async def box_baselined():
            try:
                while True:
                    seen.append(events.decode((await sub.next_msg(timeout=0.5)).data))
            except Exception:
                pass
            return any(e.device == "box" for e in seen)

        await wait_until(box_baselined, timeout=60, what="the allowed local device's baseline")
        assert not [e for e in seen if e.device == "intruder"], "a refused device's files were read"
    finally:
        stop.set()
        await asyncio.wait_for(task, 60)
