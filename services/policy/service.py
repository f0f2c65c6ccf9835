"""The policy evaluator service: config policies applied to every configuration change.

It consumes the config stream (durable consumer ``policy``, shared by every instance). For each
``ConfigChanged`` it locks the file, skips a change older than the last one applied, evaluates
the applicable policies on the parsed data in PostgreSQL and writes the violations it opens,
updates or resolves, all in one transaction; then it publishes each transition as a
``ConfigViolation`` on the alert subject (``Nats-Msg-Id`` = the transition's stable id), marks
it published, and only then acknowledges the message. A crash in between leaves the row
unpublished; the sweep publishes it. Webhooks are delivered from the same outbox (``notified``).

The fleet's current files are evaluated again at start, when the policies change (their
fingerprint is polled), every ``policy_reevaluate_s`` and on request
(``<prefix>.policy.evaluate``).
"""

from __future__ import annotations

import asyncio
import json
import logging
import uuid

import asyncpg
import httpx
import msgspec
from nats.aio.msg import Msg
from nats.js import JetStreamContext
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy

from services.alerts import notify as alert_notify
from services.policy import fleet, notify, store
from services.policy.evaluate import SERVICE, decide, version_of
from services.policy.settings import PolicySettings, policy_settings
from shared import events
from shared.alert_events import NotificationAttempted, redact_url
from shared.config_events import ConfigChanged
from shared.names import Names
from shared.runtime.bootstrap import ensure
from shared.runtime.fetch import batches, each_event, finish, unsubscribe
from shared.runtime.nats_conn import connect, drain
from shared.runtime.perf import Perf, publish_loop, serve_metrics
from shared.runtime.publish import publish_event
from shared.settings import Settings

log = logging.getLogger(__name__)
logging.getLogger("httpx").setLevel(logging.WARNING)  # request URLs may hold webhook tokens
logging.getLogger("httpcore").setLevel(logging.WARNING)

_FINGERPRINT = "SELECT count(*), coalesce(max(updated_at)::text, '') FROM config_policies"


class PolicyEvaluator:
    def __init__(self, settings: PolicySettings, js: JetStreamContext, pool: asyncpg.Pool,
                 http: httpx.AsyncClient) -> None:
        self.settings = settings
        self.names = Names(settings.subject_prefix)
        self.js = js
        self.pool = pool
        self.http = http
        self.perf = Perf(SERVICE)
        self._notifying: set[uuid.UUID] = set()
        self._fleet_lock = asyncio.Lock()

    # --- one change ----------------------------------------------------------------------------

    async def handle(self, ev: ConfigChanged) -> list[uuid.UUID]:
        """Apply one change to its file's violations; returns the violations to publish."""
        if ev.device_id is None:
            raise ValueError("config event without device_id")
        v = version_of(ev)
        now = events.utcnow()
        changed: list[uuid.UUID] = []
        async with self.pool.acquire() as conn, conn.transaction():
            await conn.execute(f"SET LOCAL statement_timeout = {int(self.settings.policy_statement_timeout_ms)}")
            if ev.change_type == "MOVE" and ev.old_path:
                await store.lock(conn, ev.device_id, ev.old_path)
                moved = msgspec.structs.replace(v, path=ev.old_path)
                old = await store.open_violations(conn, ev.device_id, ev.old_path)
                plan = decide(moved, [], old, now, self.settings.instance, gone="moved")
                changed += await store.apply(conn, moved, plan, {}, now)
            await store.lock(conn, ev.device_id, ev.path)
            if not await store.advance(conn, ev.device_id, ev.path, ev.occurred_at, ev.event_id):
                return changed
            open_ = await store.open_violations(conn, ev.device_id, ev.path)
            if ev.change_type == "DELETE":
                plan = decide(v, None, open_, now, self.settings.instance, gone="deleted")
                results = []
            elif ev.parsed is None:
                return changed  # not parsed (a parse error, or no parser): decides nothing
            else:
                results = await store.results(conn, ev.config_type, ev.device_id, ev.parsed)
                plan = decide(v, results, open_, now, self.settings.instance)
            changed += await store.apply(conn, v, plan, {r.policy_id: r.message for r in results}, now)
        return changed

    async def evaluate_batch(self, msgs: list[Msg]) -> None:
        """Apply changes in stream order; each is acked once its violations are published."""
        await each_event(msgs, self._apply, self.perf, "applying policies to")

    async def _apply(self, ev: events.Event) -> None:
        if isinstance(ev, ConfigChanged):
            await self.publish(await self.handle(ev))

    # --- the outbox ----------------------------------------------------------------------------

    async def publish(self, ids: list[uuid.UUID] | None) -> int:
        """Publish the unpublished transitions (of ``ids``, or all of them), then deliver their webhooks."""
        if ids == []:
            return 0
        async with self.pool.acquire() as conn:
            rows = await store.unpublished(conn, ids)
            for row in rows:
                ev = store.event_of(row, self.settings.instance)
                ack = await publish_event(self.js, self.names.alert(row["device"] or str(row["device_id"]),
                                                                     row["policy_name"]), ev)
                if not ack.duplicate:  # another instance's sweep may have published it first
                    log.info("%s", ev.message)
                await store.mark_published(conn, row["id"], row["updated_at"])
        for row in rows:
            if row["id"] not in self._notifying:
                self._notifying.add(row["id"])
                asyncio.get_running_loop().create_task(self._notify(row["id"]))
        return len(rows)

    async def _notify(self, violation_id: uuid.UUID) -> None:
        try:
            await self.notify(violation_id)
        except Exception as exc:
            log.warning("webhook of violation %s failed, retried by the sweep: %s: %s", violation_id,
                        type(exc).__name__, exc)
        finally:
            self._notifying.discard(violation_id)

    async def notify(self, violation_id: uuid.UUID) -> NotificationAttempted | None:
        """Deliver a published transition to its policy's webhook, once (the row is locked meanwhile)."""
        s = self.settings
        async with self.pool.acquire() as conn, conn.transaction():
            row = await conn.fetchrow(store._ROWS + " WHERE v.id = $1 AND v.published AND NOT v.notified "
                                      "FOR UPDATE OF v SKIP LOCKED", violation_id)
            if row is None:
                return None
            if not row["webhook_url"]:
                await conn.execute("UPDATE config_violations SET notified = true WHERE id = $1", violation_id)
                return None
            ev = store.event_of(row, s.instance)
            t0 = asyncio.get_running_loop().time()
            outcome = await alert_notify.deliver(
                self.http, row["webhook_url"], notify.request(ev, row["webhook_format"], s.alerts_dashboard_url),
                s.alerts_webhook_attempts, s.alerts_webhook_timeout_s, s.alerts_webhook_backoff_s,
                s.alerts_webhook_backoff_max_s, s.alerts_webhook_allow_private)
            url = redact_url(row["webhook_url"])
            record = NotificationAttempted(
                event_id=uuid.uuid5(ev.event_id, "notification"), operation_id=ev.operation_id,
                device_id=ev.device_id, device=ev.device, occurred_at=events.utcnow(), service=SERVICE,
                instance=s.instance, trigger="watch", status="success" if outcome.delivered else "error",
                duration_ms=round((asyncio.get_running_loop().time() - t0) * 1000, 2),
                error=None if outcome.delivered else outcome.last_error, alert_event_id=ev.event_id,
                rule_id=ev.policy_id, rule=ev.policy, alert_state=ev.state, url=url, format=row["webhook_format"],
                attempts=outcome.attempts, delivered=outcome.delivered, http_status=outcome.http_status,
                last_error=outcome.last_error)
            await publish_event(self.js, self.names.alert_notification(ev.device or str(ev.device_id), ev.policy),
                                record)
            await conn.execute("UPDATE config_violations SET notified = true WHERE id = $1 AND updated_at = $2",
                               violation_id, row["updated_at"])
        if outcome.delivered:
            log.info("%s %s notified at %s", ev.policy, ev.state, url)
        else:
            self.perf.error("webhook_failed")
            log.error("%s %s NOT notified at %s after %d attempts: %s", ev.policy, ev.state, url, outcome.attempts,
                      outcome.last_error)
        return record

    async def sweep(self) -> None:
        """Publish what a crash left unpublished, deliver what is left undelivered."""
        await self.publish(None)
        async with self.pool.acquire() as conn:
            ids = [r["id"] for r in await conn.fetch(
                "SELECT id FROM config_violations WHERE published AND NOT notified LIMIT 500")]
        for vid in ids:
            if vid not in self._notifying:
                self._notifying.add(vid)
                await self._notify(vid)

    async def gauges(self) -> None:
        async with self.pool.acquire() as conn:
            n = await conn.fetchval("SELECT count(*) FROM config_violations WHERE state = 'open'")
        self.perf.gauge("open_violations", float(n), "configuration policy violations open")

    # --- the fleet -----------------------------------------------------------------------------

    async def evaluate_fleet(self, policy_id: uuid.UUID | None = None) -> fleet.Outcome:
        async with self._fleet_lock:
            outcome, changed = await fleet.evaluate(self.pool, self.settings.instance, events.utcnow(), policy_id)
        await self.publish(changed)
        log.info("policies over the fleet: %d files decided, %d opened, %d resolved, %d open", outcome.files,
                 outcome.opened, outcome.resolved, outcome.open)
        return outcome

    async def on_request(self, msg: Msg) -> None:
        """``{"policy_id": uuid | null}`` -> the counts of a fleet evaluation, or ``{"error": …}``."""
        try:
            body = json.loads(msg.data or b"{}")
            pid = body.get("policy_id") if isinstance(body, dict) else None
            outcome = await self.evaluate_fleet(uuid.UUID(str(pid)) if pid else None)
            reply = msgspec.json.encode(outcome)
        except Exception as exc:
            log.warning("evaluation request failed: %s: %s", type(exc).__name__, exc)
            reply = msgspec.json.encode({"error": f"{type(exc).__name__}: {exc}"[:500]})
        if msg.reply:
            await msg.respond(reply)

    async def background(self, stop: asyncio.Event) -> None:
        """Sweep the outbox, and evaluate the fleet when the policies change or the period is over."""
        s = self.settings
        seen = None
        last_full = -1e18
        loop = asyncio.get_running_loop()
        while not stop.is_set():
            try:
                async with self.pool.acquire() as conn:
                    fp = tuple(await conn.fetchrow(_FINGERPRINT))
                if fp != seen or loop.time() - last_full >= s.policy_reevaluate_s:
                    await self.evaluate_fleet()
                    seen, last_full = fp, loop.time()
                await self.sweep()
            except Exception as exc:
                log.warning("policy sweep failed, retried: %s: %s", type(exc).__name__, exc)
                self.perf.error(type(exc).__name__)
            try:
                await asyncio.wait_for(stop.wait(), s.policy_poll_s)
            except TimeoutError:
                pass


async def run(settings: Settings, stop: asyncio.Event) -> None:
    """Run the evaluator until ``stop`` is set; INFRAWATCH_POLICY_* settings come from the environment."""
    s = policy_settings(settings)
    names = Names(s.subject_prefix)
    nc = await connect(s, SERVICE)
    pool = await asyncpg.create_pool(s.asyncpg_dsn, min_size=1, max_size=4, init=store.init_connection)
    try:
        js = nc.jetstream()
        await ensure(js, s)
        async with httpx.AsyncClient(follow_redirects=False) as http:
            ev = PolicyEvaluator(s, js, pool, http)
            cfg = ConsumerConfig(durable_name=s.policy_durable, ack_policy=AckPolicy.EXPLICIT,
                                 deliver_policy=DeliverPolicy.NEW, ack_wait=60, max_deliver=-1,
                                 max_ack_pending=s.policy_batch_size * 4)
            psub = await js.pull_subscribe(names.all("config"), durable=s.policy_durable, stream=names.stream_config,
                                           config=cfg)
            req = await nc.subscribe(names.policy_evaluate, queue=SERVICE, cb=ev.on_request)

            async def consume() -> None:
                try:
                    async for msgs in batches(psub, s.policy_batch_size, s.policy_batch_wait_s, stop):
                        await ev.evaluate_batch(msgs)
                finally:
                    await unsubscribe(psub)

            tasks = [asyncio.create_task(consume(), name="policy-consume"),
                     asyncio.create_task(ev.background(stop), name="policy-background"),
                     asyncio.create_task(publish_loop(js, s, ev.perf, stop, ev.gauges), name="policy-perf")]
            serve_metrics(ev.perf, s)
            log.info("policy evaluator running")
            await stop.wait()
            await req.unsubscribe()
            await finish(tasks, s.policy_batch_wait_s + 10)
    finally:
        await pool.close()
        await drain(nc)
