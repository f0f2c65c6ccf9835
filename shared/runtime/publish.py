"""Publishing events to JetStream with de-duplication and retries."""

from __future__ import annotations

import asyncio
import logging

from nats.errors import (
    ConnectionReconnectingError,
    NoRespondersError,
    OutboundBufferLimitError,
    StaleConnectionError,
    TimeoutError as NatsTimeoutError,
)
from nats.js import JetStreamContext
from nats.js.api import PubAck
from nats.js.errors import NoStreamResponseError, ServiceUnavailableError

from shared import events
from shared.names import MSG_ID

log = logging.getLogger(__name__)

# Failures that end when the server is back: no ack in time (server gone, or restarting),
# nobody answering for the stream yet (JetStream still restoring it), JetStream 503, the client
# reconnecting or its reconnect buffer full.
RETRIED = (
    NatsTimeoutError, asyncio.TimeoutError, NoRespondersError, NoStreamResponseError, ServiceUnavailableError,
    ConnectionReconnectingError, OutboundBufferLimitError, StaleConnectionError,
)
# Retries stop after this long: well inside the streams' duplicate window (120 s by default),
# so a retry of a publish the server stored without acknowledging is still recognised.
RETRY_S = 60.0
ACK_TIMEOUT_S = 5.0
MAX_DELAY_S = 2.0


async def publish_event(
    js: JetStreamContext,
    subject: str,
    event: events.Event,
    headers: dict[str, str] | None = None,
    attempts: int | None = None,
    retry_s: float = RETRY_S,
) -> PubAck:
    """Publish with ``Nats-Msg-Id`` = event_id; unacknowledged publishes are retried with
    the same id for up to ``retry_s`` (and at most ``attempts`` times, when given), so the
    stream stores the event exactly once across a nats-server restart."""
    data = events.encode(event)
    hdrs = {MSG_ID: str(event.event_id), **(headers or {})}
    loop = asyncio.get_running_loop()
    deadline = loop.time() + retry_s
    delay = 0.2
    attempt = 0
    while True:
        attempt += 1
        timeout = max(min(ACK_TIMEOUT_S, deadline - loop.time()), 0.5)
        try:
            return await js.publish(subject, data, headers=hdrs, timeout=timeout)
        except RETRIED as exc:
            if (attempts is not None and attempt >= attempts) or loop.time() + delay > deadline:
                raise
            log.warning("publish to %s not acknowledged (%s), retry %d", subject, type(exc).__name__, attempt)
            await asyncio.sleep(delay)
            delay = min(delay * 2, MAX_DELAY_S)
