"""Every valid event fits its tables: each event kind, generated with extreme but valid values
(tests/event_strategies.py), is encoded, decoded, projected and written to a real PostgreSQL by
the writer's own sink. The database refuses none of them."""

from __future__ import annotations

import asyncio
import os

import asyncpg
import msgspec
import pytest
from hypothesis import HealthCheck, given, settings

from services.writer.projection import ProjectionError, merge, rows
from services.writer.sink import write
from shared import events
from shared.events import AnyEvent
from tests.event_strategies import struct
from tests.factories import device_event

KINDS = [t.cls for t in msgspec.inspect.type_info(AnyEvent).types]
EXAMPLES = int(os.environ.get("INFRAWATCH_FIDELITY_EXAMPLES", "40"))


@pytest.fixture
def loop():
    lp = asyncio.new_event_loop()
    yield lp
    lp.close()


@pytest.fixture
def conn(loop, database_url):
    c = loop.run_until_complete(asyncpg.connect(database_url))
    yield c
    loop.run_until_complete(c.close())


@pytest.mark.parametrize("kind", KINDS, ids=lambda k: events.tag_of(k))
def test_extreme_events_of_every_kind_are_written_without_refusal(kind, loop, conn):
    written: list[int] = []

    @settings(max_examples=EXAMPLES, deadline=None, database=None,
              suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow,
                                     HealthCheck.data_too_large, HealthCheck.large_base_example])
    @given(struct(kind))
    def check(ev) -> None:
        wire = events.encode(ev)
        decoded = events.decode(wire)  # what the writer sees; a failure here is a strategy bug
        if isinstance(decoded, events.DeviceChanged):  # the registry gives each live name one id
            decoded.spec.name = f"d{decoded.spec.id.hex}"
        try:
            batch = rows(decoded, stream_seq=1)
        except ProjectionError:
            # Only events the contract says cannot be placed (no device) may be refused, and
            # they are refused by the projection with a reason, never by the database.
            assert decoded.device_id is None or isinstance(decoded, events.RefreshRequested)
            return
        written.append(loop.run_until_complete(write(conn, batch)))

    check()
    assert written, f"no {kind.__name__} reached the database"


def test_a_name_removed_and_registered_again_in_one_batch_keeps_one_live_row(loop, conn):
    first = device_event("web1")
    gone = events.new_event(events.DeviceChanged, action="removed", spec=first.spec, service="api",
                            instance="t", trigger="api")
    again = device_event("web1")
    batch: dict = {}
    for seq, ev in enumerate((first, gone, again), start=1):
        merge(batch, rows(ev, seq))
    assert loop.run_until_complete(write(conn, batch)) == 2
    live = loop.run_until_complete(conn.fetch("SELECT id FROM devices WHERE name = 'web1' AND deleted_at IS NULL"))
    assert [r["id"] for r in live] == [again.spec.id]
