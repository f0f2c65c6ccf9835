"""Rebuild the projections from the streams: ``infrawatch replay``.

Each projected stream is read through an ephemeral consumer from the chosen start (the
beginning, a sequence number or a time) and written with the writer's own projection and
sink, so a replay into a dropped-and-migrated database gives back the same rows, and a replay
into a live one adds nothing twice.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field
from datetime import datetime

import nats.errors
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy

from services.writer.service import PROJECTED, Writer, create_pool
from shared.runtime.bootstrap import ensure
from shared.runtime.nats_conn import connect
from shared.settings import Settings

log = logging.getLogger(__name__)


@dataclass
class ReplayResult:
    events: dict[str, int] = field(default_factory=dict)
    skipped: dict[str, int] = field(default_factory=dict)


class _ReplayWriter(Writer):
    """A writer that counts undecodable messages instead of dead-lettering them a second time."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.skipped = 0

    async def dead_letter(self, kind: str, msg, reason: str) -> None:
        self.skipped += 1
        log.warning("replay skipped %s seq %d: %s", msg.subject, msg.metadata.sequence.stream, reason)
        await msg.term()


def _start(seq: int | None, since: datetime | None) -> ConsumerConfig:
    cfg = ConsumerConfig(ack_policy=AckPolicy.EXPLICIT, ack_wait=60, inactive_threshold=300,
                         max_ack_pending=-1, deliver_policy=DeliverPolicy.ALL)
    if seq is not None:
        cfg.deliver_policy, cfg.opt_start_seq = DeliverPolicy.BY_START_SEQUENCE, seq
    elif since is not None:
        # nats-py sends a string as is; older versions cannot serialise a datetime
        cfg.deliver_policy, cfg.opt_start_time = DeliverPolicy.BY_START_TIME, since.isoformat()  # type: ignore[assignment]
    return cfg


async def replay(settings: Settings, *, seq: int | None = None, since: datetime | None = None,
                 kinds: list[str] | None = None, progress=None) -> ReplayResult:
    """Replay the projected streams; ``progress(kind, done, total)`` is called after each batch."""
    result = ReplayResult()
    nc = await connect(settings, "replay", wait=False)
    stop = asyncio.Event()
    try:
        js = nc.jetstream()
        await ensure(js, settings)
        pool = await create_pool(settings, stop)
        assert pool is not None
        try:
            for kind, attr in PROJECTED:
                if kinds and kind not in kinds:
                    continue
                writer = _ReplayWriter(settings, js, pool)
                stream = getattr(writer.names, attr)
                info = await js.stream_info(stream)
                first = max(seq or info.state.first_seq, info.state.first_seq)
                total = max(info.state.last_seq - first + 1, 0) if info.state.messages else 0
                done = 0
                if progress:
                    progress(kind, 0, total)
                if total:
                    psub = await js.pull_subscribe(writer.names.all(kind), stream=stream, config=_start(seq, since))
                    try:
                        while True:
                            try:
                                msgs = await psub.fetch(settings.writer_batch_size, timeout=2)
                            except nats.errors.TimeoutError:
                                break
                            await writer.handle(kind, msgs)
                            done += len(msgs)
                            if progress:
                                progress(kind, done, total)
                            if msgs[-1].metadata.num_pending == 0:
                                break
                    finally:
                        await psub.unsubscribe()
                result.events[kind] = done
                result.skipped[kind] = writer.skipped
        finally:
            await pool.close()
    finally:
        await nc.close()
    return result
