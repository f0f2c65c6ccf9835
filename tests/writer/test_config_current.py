"""config_current through the real writer: the newest change of each file wins, whatever order or
how often the events arrive; deletions and moves keep a DELETE row."""

from __future__ import annotations

import asyncio
import json
import uuid
from datetime import datetime, timedelta, timezone

import asyncpg
from nats.js.errors import NotFoundError

from services.writer.projection import merge, rows
from services.writer.projections.config import row_ids
from services.writer.service import run
from services.writer.sink import write
from shared import events
from shared.config_events import ConfigChanged
from shared.names import MSG_ID, Names
from shared.policy_events import path_key
from tests.util import fetch, fetchval, wait_until

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=timezone.utc)
COMPOSE = "/srv/app/docker-compose.yml"


def change(dev: uuid.UUID, minutes: float, image: str | None, change_type: str = "MODIFY", path: str = COMPOSE,
           old_path: str | None = None) -> ConfigChanged:
    parsed = None if image is None else {"services": {"web": {"image": image}}}
    return events.new_event(
        ConfigChanged, device_id=dev, device="dev1", service="watcher", instance="test", trigger="watch",
        occurred_at=T0 + timedelta(minutes=minutes), config_type="docker_compose", path=path, old_path=old_path,
        change_type=change_type, sha256=None if image is None else f"sha-{image}", parsed=parsed)


async def _current(url: str, dev: uuid.UUID) -> dict[str, dict]:
    out = {}
    for r in await fetch(url, "SELECT * FROM config_current WHERE device_id = $1", dev):
        row = dict(r)
        row["parsed"] = json.loads(row["parsed"]) if row["parsed"] is not None else None
        out[row["file_path"]] = row
    return out


async def _writer(settings, js, evs: list[ConfigChanged], count: int):
    """Publish ``evs`` (each under a fresh message id, so repeats are redeliveries), run the writer
    until ``count`` change events are stored, then stop it."""
    names = Names(settings.subject_prefix)
    for ev in evs:
        await js.publish(names.config("dev1", ev.config_type), events.encode(ev), headers={MSG_ID: str(uuid.uuid4())})
    stop = asyncio.Event()
    task = asyncio.create_task(run(settings, stop))
    try:
        await wait_until(lambda: _stored(settings.database_url, count), timeout=60, what=f"{count} change events")
        await wait_until(lambda: _drained(js, names, settings.writer_durable), timeout=60, what="config stream acknowledged")
    finally:
        stop.set()
        await asyncio.wait_for(task, 30)


async def _stored(url: str, n: int) -> bool:
    return await fetchval(url, "SELECT count(*) FROM configuration_change_events") >= n


async def _drained(js, names: Names, durable: str) -> bool:
    try:
        info = await js.consumer_info(names.stream_config, durable)
    except NotFoundError:  # the writer has not created its consumer yet
        return False
    return info.num_pending == 0 and info.num_ack_pending == 0


async def test_newest_change_wins_out_of_order_and_redelivered(settings, js):
    dev = uuid.uuid4()
    old, new = change(dev, 0, "nginx:1.25"), change(dev, 5, "nginx:1.26")
    await _writer(settings, js, [new, old], 2)
    cur = (await _current(settings.database_url, dev))[COMPOSE]
    assert (cur["event_id"], cur["content_hash"], cur["parsed"]) == (
        new.event_id, "sha-nginx:1.26", {"services": {"web": {"image": "nginx:1.26"}}})
    assert cur["snapshot_id"] == row_ids(new.event_id)[0] and cur["path_key"] == path_key(COMPOSE)
    assert cur["change_type"] == "MODIFY" and cur["time"] == new.occurred_at

    await _writer(settings, js, [old, new, old], 2)  # redelivered, the older one last
    assert (await _current(settings.database_url, dev))[COMPOSE]["event_id"] == new.event_id
    assert await fetchval(settings.database_url, "SELECT count(*) FROM config_current WHERE device_id = $1", dev) == 1


async def test_delete_keeps_a_delete_row_and_a_later_create_replaces_it(settings, js):
    dev = uuid.uuid4()
    created, deleted = change(dev, 0, "redis:7", "CREATE"), change(dev, 1, None, "DELETE")
    await _writer(settings, js, [created, deleted], 2)
    cur = (await _current(settings.database_url, dev))[COMPOSE]
    assert (cur["change_type"], cur["content_hash"], cur["parsed"]) == ("DELETE", "", None)
    again = change(dev, 2, "redis:8", "CREATE")
    await _writer(settings, js, [again], 3)
    cur = (await _current(settings.database_url, dev))[COMPOSE]
    assert (cur["change_type"], cur["parsed"]["services"]["web"]["image"]) == ("CREATE", "redis:8")


async def test_move_marks_the_old_path_deleted(settings, js):
    dev = uuid.uuid4()
    moved_to = "/srv/app/compose.yml"
    await _writer(settings, js, [change(dev, 0, "nginx:1", "CREATE"),
                                 change(dev, 1, "nginx:1", "MOVE", path=moved_to, old_path=COMPOSE)], 2)
    cur = await _current(settings.database_url, dev)
    assert (cur[COMPOSE]["change_type"], cur[COMPOSE]["parsed"]) == ("DELETE", None)
    assert (cur[moved_to]["change_type"], cur[moved_to]["parsed"]) == ("MOVE", {"services": {"web": {"image": "nginx:1"}}})
    assert cur[COMPOSE]["event_id"] == cur[moved_to]["event_id"]


async def test_one_batch_with_several_changes_of_one_file(settings):
    """The sink writes a whole batch in one statement per table: it keeps the newest row of each file."""
    dev = uuid.uuid4()
    evs = [change(dev, 3, "b"), change(dev, 1, "a"), change(dev, 7, "c"), change(dev, 5, "d")]
    batch: dict = {}
    for ev in [*evs, evs[2], evs[0]]:  # repeats within the batch too
        merge(batch, rows(ev))
    conn = await asyncpg.connect(settings.database_url)
    try:
        await write(conn, batch)
        older: dict = {}
        merge(older, rows(change(dev, 6, "older")))
        await write(conn, older)
    finally:
        await conn.close()
    cur = (await _current(settings.database_url, dev))[COMPOSE]
    assert (cur["event_id"], cur["parsed"]["services"]["web"]["image"]) == (evs[2].event_id, "c")
    assert await fetchval(settings.database_url, "SELECT count(*) FROM configuration_snapshots WHERE device_id = $1",
                          dev) == 5
