"""Audit events leave in batches: each read still one event in the stream, failures counted."""

from __future__ import annotations

import asyncio
import uuid
from types import SimpleNamespace

from services.api.audit import Auditor
from shared import events
from shared.names import Names


async def test_a_burst_of_reads_is_one_event_each_in_the_stream(js, settings):
    names = Names(settings.subject_prefix)
    auditor = Auditor(js, names, "test")
    spec = SimpleNamespace(id=uuid.uuid4(), name="web-1")
    for _ in range(120):  # one loop iteration: one batch
        auditor.read(spec, "system_metrics", cache_hit=True, force_refresh=False, key_prefix="abcd1234")
    await asyncio.sleep(0)
    assert len(auditor._pending) == 1
    await auditor.drain(30)
    assert (auditor.published, auditor.failed) == (120, 0)
    info = await js.stream_info(names.stream_audit)
    assert info.state.messages == 120
    ids = {events.decode((await js.get_msg(names.stream_audit, seq)).data).event_id for seq in range(1, 121)}
    assert len(ids) == 120


async def test_events_no_stream_takes_are_retried_then_counted_as_failed(js, caplog):
    auditor = Auditor(js, Names(f"nostream{uuid.uuid4().hex[:8]}"), "test")
    auditor.retry_s = 0.5
    spec = SimpleNamespace(id=uuid.uuid4(), name="web-1")
    for _ in range(3):
        auditor.read(spec, "system_metrics", cache_hit=True, force_refresh=False, key_prefix="abcd1234")
    await auditor.drain(30)
    assert (auditor.published, auditor.failed) == (0, 3)
    assert sum("not published" in r.getMessage() for r in caplog.records) == 3
