"""The alert evaluator service. NATS only: rules come from the rules KV bucket (the API mirrors
the ``alert_rules`` table there), state per rule and device lives in the state KV bucket, alerts
and notification outcomes are published on the alerts stream, and the writer records them.

Several instances share the durable consumers, so each event is evaluated once. Every state
change is a KV update against the revision that was read (compare-and-set): two instances
deciding from the same state cannot both win, and the loser re-reads and finds the event
applied. A decided alert is written into the state (``outbox``) in that same update, published
with a ``Nats-Msg-Id`` derived from the decision, then cleared; whoever next reads a state with
an outbox publishes it unless it is already the last alert on its subject. Messages are
acknowledged only after that, so a crash at any point republishes rather than loses.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Callable, Coroutine
from typing import Any

import httpx
import msgspec
from nats.js import JetStreamContext
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy
from nats.js.errors import KeyNotFoundError, KeyWrongLastSequenceError, NotFoundError
from nats.js.kv import KV_DEL, KV_PURGE, KeyValue

from services.alerts import history, nodata, notify
from services.alerts.evaluate import SERVICE, RuleState, apply, state_key
from services.alerts.rules import applies
from services.alerts.settings import AlertSettings, alert_settings
from shared import events
from shared.alert_events import AlertChanged, AlertRule, Cause, NotificationAttempted
from shared.names import MSG_ID, Names
from shared.runtime.bootstrap import ensure
from shared.runtime.devices import DeviceRegistry
from shared.runtime.fetch import batches, each_event, finish, unsubscribe
from shared.runtime.nats_conn import connect, drain
from shared.runtime.perf import Perf, publish_loop, serve_metrics
from shared.runtime.publish import publish_event
from shared.settings import Settings

log = logging.getLogger(__name__)
# httpx logs every request's full URL at INFO; webhook URLs may hold tokens.
logging.getLogger("httpx").setLevel(logging.WARNING)
logging.getLogger("httpcore").setLevel(logging.WARNING)

EVALUATED = (("collected", "stream_collected"), ("config", "stream_config"))
CAS_ATTEMPTS = 20
_decode_rule = msgspec.json.Decoder(AlertRule).decode
_decode_state = msgspec.json.Decoder(RuleState).decode
_encode = msgspec.json.Encoder().encode


Retire = Callable[[uuid.UUID, AlertRule | None, str], Coroutine[Any, Any, None]]


class RuleBook:
    """The rules, kept current by a watch over the rules KV bucket (key: rule id).

    A rule deleted or disabled is handed to ``on_retire`` (rule id, the rule if known, the reason),
    also for deletions and disabled rules found at start: its firing alerts are resolved.
    """

    def __init__(self, kv: KeyValue, on_retire: Retire | None = None) -> None:
        self.kv = kv
        self.on_retire = on_retire
        self._retiring: set[asyncio.Task] = set()
        self.rules: dict[uuid.UUID, AlertRule] = {}
        self._watcher: KeyValue.KeyWatcher | None = None
        self._task: asyncio.Task | None = None
        self._synced = asyncio.Event()

    async def start(self, timeout: float = 60) -> None:
        """Start watching; returns once the current rules are loaded."""
        self._watcher = await self.kv.watchall()
        self._task = asyncio.create_task(self._run(), name="alert-rules")
        await asyncio.wait_for(self._synced.wait(), timeout)

    def apply(self, key: str, operation: str | None, value: bytes | None) -> None:
        try:
            rule_id = uuid.UUID(key)
        except ValueError:
            return
        if operation in (KV_DEL, KV_PURGE):
            self._retire(rule_id, self.rules.pop(rule_id, None), "rule deleted")
            return
        try:
            rule = self.rules[rule_id] = _decode_rule(value or b"")
        except msgspec.MsgspecError as exc:
            self.rules.pop(rule_id, None)
            log.warning("rule %s is unreadable, ignored: %s", key, exc)
            return
        if not rule.enabled:
            self._retire(rule_id, rule, "rule disabled")

    def _retire(self, rule_id: uuid.UUID, rule: AlertRule | None, reason: str) -> None:
        if self.on_retire is not None:
            task = asyncio.create_task(self.on_retire(rule_id, rule, reason), name=f"retire-{rule_id}")
            self._retiring.add(task)
            task.add_done_callback(self._retiring.discard)

    async def _run(self) -> None:
        assert self._watcher is not None
        async for entry in self._watcher:
            if entry is None:
                self._synced.set()
                continue
            self.apply(entry.key, entry.operation, entry.value)

    def matching(self, ev: events.Event) -> list[AlertRule]:
        return [r for r in list(self.rules.values()) if applies(r, ev)]

    async def stop(self) -> None:
        if self._watcher is not None:
            try:
                await self._watcher.stop()
            except Exception as exc:
                log.debug("rules watch stop: %s", exc)
        tasks = [t for t in (self._task, *self._retiring) if t is not None]
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


class Evaluator:
    """Evaluates the rules on collected and config events, and notifies the rules' webhooks."""

    def __init__(self, settings: AlertSettings, js: JetStreamContext, rules: RuleBook, state: KeyValue,
                 http: httpx.AsyncClient, devices: DeviceRegistry | None = None) -> None:
        self.settings = settings
        self.devices = devices
        self.names = Names(settings.subject_prefix)
        self.js = js
        self.rules = rules
        self.state = state
        self.http = http
        self.perf = Perf(SERVICE)

    # --- consuming -----------------------------------------------------------------------------

    async def subscribe(self, subject: str, stream: str, durable: str, ack_wait: float = 60):
        """Bind to (or create) a durable pull consumer; a first start begins with new messages."""
        cfg = ConsumerConfig(durable_name=durable, ack_policy=AckPolicy.EXPLICIT, deliver_policy=DeliverPolicy.NEW,
                             ack_wait=ack_wait, max_deliver=-1, max_ack_pending=self.settings.alerts_batch_size * 4)
        return await self.js.pull_subscribe(subject, durable=durable, stream=stream, config=cfg)

    async def consume(self, psub, handle, stop: asyncio.Event) -> None:
        """Fetch batches and hand them to ``handle`` until ``stop``."""
        try:
            async for msgs in batches(psub, self.settings.alerts_batch_size, self.settings.alerts_batch_wait_s, stop):
                await handle(msgs)
        finally:
            await unsubscribe(psub)

    async def evaluate_batch(self, msgs: list) -> None:
        """Evaluate messages in stream order; each is acked once its alerts are published."""
        await each_event(msgs, self._evaluate_all, self.perf, "evaluating")

    async def _evaluate_all(self, ev: events.Event) -> None:
        for rule in self.rules.matching(ev):
            await self.evaluate(rule, ev)

    # --- one rule on one event -----------------------------------------------------------------

    async def _read(self, key: str) -> tuple[int | None, RuleState]:
        try:
            entry = await self.state.get(key)
        except KeyNotFoundError:
            return 0, RuleState()
        try:
            return entry.revision, _decode_state(entry.value or b"")
        except msgspec.MsgspecError as exc:
            log.warning("alert state %s unreadable, starting over: %s", key, exc)
            return entry.revision, RuleState()

    async def evaluate(self, rule: AlertRule, ev: events.Event) -> AlertChanged | None:
        """Apply ``ev`` to the rule's state on its device; publish what it decides."""
        assert ev.device_id is not None
        return await self.decide(rule, state_key(rule.id, ev.device_id),
                                 lambda state: apply(rule, state, ev, self.settings.instance))

    async def decide(self, rule: AlertRule | None, key: str,
                     decision: Callable[[RuleState], tuple[RuleState, AlertChanged | None]]) -> AlertChanged | None:
        """Update one state with compare-and-set by ``decision`` (which returns the state itself for
        no change); publish the alert it decides."""
        found: dict[uuid.UUID, list[Cause]] = {}
        for _ in range(CAS_ATTEMPTS):
            rev, state = await self._read(key)
            if state.outbox is not None:
                await self._flush(key, rev, state)
                continue
            new, alert = decision(state)
            if new is state:
                return None
            if alert is not None:
                alert = await self._with_causes(rule, alert, found)
                new = msgspec.structs.replace(new, outbox=alert)
            try:
                rev = await self.state.update(key, _encode(new), last=rev)
            except KeyWrongLastSequenceError:
                self.perf.error("state_conflict")
                continue
            if alert is not None:
                await self._flush(key, rev, new)
            return alert
        raise RuntimeError(f"alert state {key} kept changing under {CAS_ATTEMPTS} attempts")

    async def _with_causes(self, rule: AlertRule | None, alert: AlertChanged,
                           found: dict[uuid.UUID, list[Cause]]) -> AlertChanged:
        """A fired ``alert`` with its likely causes (read once per alert, kept in ``found``); without
        them when its device's history cannot be read."""
        if rule is None or alert.state != "fired":
            return alert
        if alert.event_id not in found:
            try:
                found[alert.event_id] = await history.causes_of(self.js, self.names, rule, alert)
            except Exception as exc:
                log.warning("history of %s unreadable, %s fires without causes: %s: %s", alert.device, alert.rule,
                            type(exc).__name__, exc)
                self.perf.error("history_unreadable")
                found[alert.event_id] = []
        return msgspec.structs.replace(alert, causes=found[alert.event_id])

    async def _flush(self, key: str, rev: int | None, state: RuleState) -> None:
        """Publish the state's outbox (unless it is already the last alert on its subject), then clear it."""
        alert = state.outbox
        assert alert is not None
        subject = self.names.alert(alert.device or str(alert.device_id), alert.rule)
        if not await self._is_last(subject, alert.event_id):
            await publish_event(self.js, subject, alert)
            log.info("%s", alert.message)
        try:
            await self.state.update(key, _encode(msgspec.structs.replace(state, outbox=None)), last=rev)
        except KeyWrongLastSequenceError:
            pass  # someone else moved the state on (and flushed this outbox first)

    async def _is_last(self, subject: str, event_id: uuid.UUID) -> bool:
        try:
            msg = await self.js.get_last_msg(self.names.stream_alerts, subject)
        except NotFoundError:
            return False
        return (msg.headers or {}).get(MSG_ID) == str(event_id)

    # --- notifications -------------------------------------------------------------------------

    async def notify_batch(self, msgs: list) -> None:
        sem = asyncio.Semaphore(self.settings.alerts_webhook_concurrency)

        async def one(msg) -> None:
            async with sem:
                try:
                    ev = events.decode(msg.data)
                except (msgspec.DecodeError, msgspec.ValidationError) as exc:
                    log.warning("undecodable alert on %s skipped: %s", msg.subject, exc)
                    await msg.term()
                    return
                try:
                    if isinstance(ev, AlertChanged):
                        await self.notify(ev)
                except Exception as exc:
                    log.warning("notification of %s failed, redelivered later: %s: %s", ev.event_id,
                                type(exc).__name__, exc)
                    await msg.nak(delay=5)
                    return
                await msg.ack()

        await asyncio.gather(*(one(m) for m in msgs))

    async def notify(self, alert: AlertChanged) -> NotificationAttempted | None:
        """Deliver ``alert`` to its rule's webhook and publish the outcome; None without a webhook."""
        rule = self.rules.rules.get(alert.rule_id)
        if rule is None or not rule.webhook_url:
            return None
        subject = self.names.alert_notification(alert.device or str(alert.device_id), alert.rule)
        record_id = uuid.uuid5(alert.event_id, "notification")
        if await self._is_last(subject, record_id):
            return None  # delivered (or given up on) before a restart
        s = self.settings
        t0 = asyncio.get_running_loop().time()
        outcome = await notify.deliver(
            self.http, rule.webhook_url, notify.request(alert, rule.webhook_format, s.alerts_dashboard_url),
            s.alerts_webhook_attempts,
            s.alerts_webhook_timeout_s, s.alerts_webhook_backoff_s, s.alerts_webhook_backoff_max_s,
            s.alerts_webhook_allow_private)
        ms = (asyncio.get_running_loop().time() - t0) * 1000
        url = notify.redact_url(rule.webhook_url)
        record = NotificationAttempted(
            event_id=record_id, operation_id=alert.operation_id, device_id=alert.device_id, device=alert.device,
            occurred_at=events.utcnow(), service=SERVICE, instance=s.instance, trigger="watch",
            status="success" if outcome.delivered else "error", duration_ms=round(ms, 2),
            error=outcome.last_error if not outcome.delivered else None, alert_event_id=alert.event_id,
            rule_id=rule.id, rule=rule.name, alert_state=alert.state, url=url, format=rule.webhook_format,
            attempts=outcome.attempts, delivered=outcome.delivered, http_status=outcome.http_status,
            last_error=outcome.last_error,
        )
        await publish_event(self.js, subject, record)
        if outcome.delivered:
            log.info("%s %s notified at %s (%s, %d attempts)", alert.rule, alert.state, url, rule.webhook_format,
                     outcome.attempts)
        else:
            self.perf.error("webhook_failed")
            log.error("%s %s NOT notified at %s after %d attempts: %s", alert.rule, alert.state, url,
                      outcome.attempts, outcome.last_error)
        return record

    def notify_ack_wait(self) -> float:
        """Long enough for every attempt and backoff of one delivery."""
        s = self.settings
        total = s.alerts_webhook_attempts * (s.alerts_webhook_timeout_s + s.alerts_webhook_backoff_max_s)
        return max(60.0, total + 30.0)


async def run(settings: Settings, stop: asyncio.Event) -> None:
    """Run the evaluator until ``stop`` is set; INFRAWATCH_ALERTS_* settings come from the environment."""
    s = alert_settings(settings)
    names = Names(s.subject_prefix)
    nc = await connect(s, SERVICE)
    rules: RuleBook | None = None
    devices: DeviceRegistry | None = None
    try:
        js = nc.jetstream()
        await ensure(js, s)
        rules = RuleBook(await js.key_value(names.alert_rules_bucket))
        state = await js.key_value(names.alert_state_bucket)
        devices = DeviceRegistry(js, names)
        await devices.start()
        async with httpx.AsyncClient(follow_redirects=False) as http:
            ev = Evaluator(s, js, rules, state, http, devices)
            rules.on_retire = lambda rule_id, rule, reason: nodata.retire(ev, rule_id, rule, reason)
            await rules.start()
            # Every consumer exists before anything is evaluated, so no alert predates its notifier.
            subs = [(await ev.subscribe(names.all(kind), getattr(names, attr), s.alerts_durable), ev.evaluate_batch)
                    for kind, attr in EVALUATED]
            subs.append((await ev.subscribe(f"{names.prefix}.alert.*.*", names.stream_alerts,
                                            s.alerts_notify_durable, ev.notify_ack_wait()), ev.notify_batch))
            tasks = [asyncio.create_task(ev.consume(psub, handle, stop)) for psub, handle in subs]
            tasks.append(asyncio.create_task(nodata.tick_loop(ev, stop), name="alerts-no-data"))
            serve_metrics(ev.perf, s)
            tasks.append(asyncio.create_task(publish_loop(js, s, ev.perf, stop, lambda: _gauges(ev)),
                                             name="alerts-perf"))
            log.info("alert evaluator running with %d rules", len(rules.rules))
            await stop.wait()
            await finish(tasks, s.alerts_batch_wait_s + 10)
    finally:
        if rules is not None:
            await rules.stop()
        if devices is not None:
            await devices.stop()
        await drain(nc)


async def _gauges(ev: Evaluator) -> None:
    ev.perf.gauge("rules", len(ev.rules.rules), "alert rules known")
