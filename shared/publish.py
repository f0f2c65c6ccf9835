"""Publishing events to JetStream with de-duplication and retries."""

from __future__ import annotations

import asyncio
import logging

from nats.errors import NoRespondersError, TimeoutError as NatsTimeoutError
from nats.js import JetStreamContext
from nats.js.api import PubAck

from shared import events
from shared.names import MSG_ID

log = logging.getLogger(__name__)


async def publish_event(
    js: JetStreamContext,
    subject: str,
    event: events.Event,
    headers: dict[str, str] | None = None,
    attempts: int = 8,
) -> PubAck:
    """Publish with ``Nats-Msg-Id`` = event_id; unacknowledged publishes are retried with
    the same id, so the stream stores the event exactly once."""
    data = events.encode(event)
    hdrs = {MSG_ID: str(event.event_id), **(headers or {})}
    delay = 0.2
    for attempt in range(1, attempts + 1):
        try:
            return await js.publish(subject, data, headers=hdrs, timeout=5)
        except (NatsTimeoutError, NoRespondersError, asyncio.TimeoutError) as exc:
            if attempt == attempts:
                raise
            log.warning("publish to %s not acknowledged (%s), retry %d", subject, type(exc).__name__, attempt)
            await asyncio.sleep(delay)
            delay = min(delay * 2, 5.0)
    raise AssertionError("unreachable")
