"""What changed on one device in a time range, read back from the streams: the candidates for the
likely causes of an alert (see :mod:`services.alerts.causes`).

Each stream (collected, config, alerts) is read by an ordered, ephemeral consumer filtered on the
device's subjects, from a start time to the end of what it holds. The reads are bounded: at most
``MAX_MESSAGES`` per stream and ``BUDGET_S`` seconds in all; a cut read is logged and what was read
is used. The collected stream is read from earlier (``baseline``) so that the first container and
systemd snapshot of the range has a predecessor to compare with.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from datetime import datetime, timedelta

import msgspec
from nats.errors import TimeoutError as NatsTimeout
from nats.js import JetStreamContext
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy

from services.alerts import causes
from shared import events
from shared.alert_events import AlertChanged, AlertRule, Cause
from shared.config_events import ConfigChanged
from shared.datatypes import REGISTRY
from shared.envelope import Collected
from shared.names import Names

log = logging.getLogger(__name__)

MAX_MESSAGES = 5000  # per stream
BUDGET_S = 5.0  # for every stream together
SNAPSHOT_TYPES = ("containers", "systemd_services")  # compared with their previous snapshot
# Events are stored a little after they occur (a collection takes time): read on this long past ``end``.
STORED_LATE = timedelta(minutes=2)
INACTIVE_S = 10.0  # the server removes an ephemeral consumer this long after its reader left


def baseline(start: datetime, end: datetime) -> datetime:
    """Where the collected stream is read from: ``start`` less the range, or less two collection
    intervals of the snapshot types when that is longer."""
    interval = max(REGISTRY[t].collect.INTERVAL_S for t in SNAPSHOT_TYPES)
    return start - max(end - start, timedelta(seconds=2 * interval))


async def _read(js: JetStreamContext, stream: str, subject: str, since: datetime, until: datetime,
                deadline: float) -> list[bytes]:
    """The messages on ``subject`` stored in ``[since, until]``, oldest first, within the bounds."""
    loop = asyncio.get_running_loop()
    cfg = ConsumerConfig(
        deliver_policy=DeliverPolicy.BY_START_TIME, opt_start_time=since, filter_subject=subject,
        deliver_subject=f"_INBOX.{uuid.uuid4().hex}", ack_policy=AckPolicy.NONE, max_deliver=1, flow_control=True,
        idle_heartbeat=5, num_replicas=1, mem_storage=True, inactive_threshold=INACTIVE_S)
    info = await asyncio.wait_for(js.add_consumer(stream, cfg), max(deadline - loop.time(), 0.1))
    if not info.num_pending:
        return []
    out: list[bytes] = []
    sub = await js.subscribe_bind(stream, cfg, info.name, ordered_consumer=True)
    try:
        while True:
            left = deadline - loop.time()
            if left <= 0 or len(out) >= MAX_MESSAGES:
                log.warning("history of %s on %s cut after %d messages (%s)", subject, stream, len(out),
                            "time budget used" if left <= 0 else "message limit")
                break
            try:
                msg = await sub.next_msg(timeout=left)
            except NatsTimeout:
                continue
            meta = msg.metadata
            if meta.timestamp > until:
                break
            out.append(msg.data)
            if not meta.num_pending:
                break
    finally:
        await sub.unsubscribe()
    return out


def _decoded(raw: list[bytes]) -> list[events.Event]:
    out = []
    for data in raw:
        try:
            out.append(events.decode(data))
        except (msgspec.DecodeError, msgspec.ValidationError) as exc:
            log.debug("undecodable event in the history skipped: %s", exc)
    return out


def _collected_changes(evs: list[events.Event]) -> list[causes.Change]:
    """Changes between successive collections of each data type. A failing or unsupported
    collection counts once, when the type's status changes to it, not at every poll."""
    out: list[causes.Change] = []
    previous: dict[str, msgspec.Struct] = {}
    status: dict[str, str] = {}
    for ev in evs:
        if not isinstance(ev, Collected) or ev.skipped_fresh:
            continue
        if status.get(ev.data_type) != ev.status:
            out += causes.from_collection(ev)
        status[ev.data_type] = ev.status
        payload = getattr(ev, "payload", None)
        if payload is None:
            continue
        if ev.data_type == "containers":
            out += causes.from_containers(previous.get("containers"), payload, ev)  # type: ignore[arg-type]
        elif ev.data_type == "systemd_services":
            out += causes.from_systemd(previous.get("systemd_services"), payload, ev)  # type: ignore[arg-type]
        elif ev.data_type == "inventory":
            out += causes.from_inventory(payload, ev)
        previous[ev.data_type] = payload
    return out


def _changes(evs: list[events.Event]) -> list[causes.Change]:
    out = _collected_changes(evs)
    for ev in evs:
        if isinstance(ev, ConfigChanged):
            out += causes.from_config(ev)
        elif isinstance(ev, AlertChanged):
            out += causes.from_alert(ev)
    return out


async def device_changes(js: JetStreamContext, names: Names, device: str, device_id: uuid.UUID, start: datetime,
                         end: datetime) -> list[causes.Change]:
    """The changes on ``device`` (by name, and only those of ``device_id``) with a time in
    ``[start, end]``, oldest first."""
    deadline = asyncio.get_running_loop().time() + BUDGET_S
    until = end + STORED_LATE
    reads = (
        (names.stream_collected, f"{names.collected(device, '>')}", baseline(start, end)),
        (names.stream_config, f"{names.config(device, '>')}", start),
        (names.stream_alerts, f"{names.alert(device, '*')}", start),  # not the webhook outcomes (``.notify``)
    )
    raws = await asyncio.gather(*(_read(js, stream, subject, since, until, deadline)
                                  for stream, subject, since in reads))
    evs = [ev for raw in raws for ev in _decoded(raw) if ev.device_id == device_id]
    changes = [c for c in _changes(evs) if start <= c.time <= end]
    changes.sort(key=lambda c: c.time)
    return changes


def to_causes(scored: list[causes.Scored]) -> list[Cause]:
    """The ranked changes as the causes an alert carries."""
    return [Cause(time=s.change.time, kind=s.change.kind, subject=s.change.subject, summary=s.change.summary,
                  risk=s.change.risk, ref=s.change.ref, score=s.score, reasons=list(s.reasons),
                  detail=dict(s.change.detail)) for s in scored]


async def causes_of(js: JetStreamContext, names: Names, rule: AlertRule, alert: AlertChanged) -> list[Cause]:
    """The likely causes of a fired ``alert`` of ``rule``: its device's changes in the rule's
    look-back window, ranked, the alert itself left out. Raises when the streams cannot be read."""
    if alert.device_id is None or not alert.device:
        return []
    window = timedelta(seconds=rule.cause_window_s)
    changes = await device_changes(js, names, alert.device, alert.device_id, alert.occurred_at - window,
                                   alert.occurred_at)
    changes = [c for c in changes if c.ref != str(alert.event_id)]
    return to_causes(causes.rank(changes, device_id=alert.device_id, at=alert.occurred_at, metric=rule.metric,
                          selector=rule.selector, window=window, top=rule.cause_top))
