"""Fixtures and helpers of the alert tests: evaluators and writers run in-process on the real servers."""

from __future__ import annotations

import asyncio

import msgspec
import pytest_asyncio
from nats.js.errors import NotFoundError

from services.alerts.service import run as run_alerts
from services.writer.service import run as run_writer
from shared import events
from shared.alert_events import AlertChanged, AlertRule, NotificationAttempted
from shared.names import Names
from tests.api.conftest import api_settings, app, client, device, keys  # noqa: F401  (API fixtures)
from tests.util import wait_until


class Services:
    """Start evaluators and writers as tasks; every one still running is stopped at teardown."""

    def __init__(self, settings) -> None:
        self.settings = settings.model_copy(update={"metrics_port": -1})
        self.running: list[tuple[asyncio.Task, asyncio.Event]] = []

    async def evaluator(self, instance: str = "alerts-1", **update):
        from services.alerts.settings import AlertSettings

        # the receivers of these tests listen on loopback, which webhooks may target only when allowed
        s = AlertSettings(**{**self.settings.model_dump(), "alerts_webhook_backoff_s": 0.05, "instance": instance,
                             "alerts_webhook_allow_private": True, **update})
        handle = self._start(run_alerts(s, stop := asyncio.Event()), stop)
        names = Names(s.subject_prefix)
        js = None

        async def ready():
            nonlocal js
            import nats

            nc = await nats.connect(s.nats_url)
            try:
                js = nc.jetstream()
                for stream, durable in ((names.stream_collected, s.alerts_durable),
                                        (names.stream_config, s.alerts_durable),
                                        (names.stream_alerts, s.alerts_notify_durable)):
                    try:
                        await js.consumer_info(stream, durable)
                    except NotFoundError:
                        return False
                return True
            finally:
                await nc.close()

        await wait_until(ready, timeout=60, interval=0.2, what="the evaluator's consumers")
        return handle

    def writer(self, **update):
        return self._start(run_writer(self.settings.model_copy(update=update), stop := asyncio.Event()), stop)

    def _start(self, coro, stop: asyncio.Event):
        task = asyncio.create_task(coro)
        self.running.append((task, stop))
        return task, stop

    @staticmethod
    async def stop(handle) -> None:
        task, stop = handle
        stop.set()
        await asyncio.wait_for(task, 60)

    async def close(self) -> None:
        for _, stop in self.running:
            stop.set()
        await asyncio.gather(*(asyncio.wait_for(t, 60) for t, _ in self.running), return_exceptions=True)


@pytest_asyncio.fixture
async def services(settings):
    s = Services(settings)
    yield s
    await s.close()


async def put_rule(js, settings, rule: AlertRule) -> None:
    """What the API does on every rule change: the rule, by id, in the rules KV bucket."""
    kv = await js.key_value(Names(settings.subject_prefix).alert_rules_bucket)
    await kv.put(str(rule.id), msgspec.json.encode(rule))


async def stream_events(js, stream: str) -> list[events.Event]:
    info = await js.stream_info(stream)
    out = []
    if info.state.messages == 0:
        return out
    for seq in range(info.state.first_seq, info.state.last_seq + 1):
        try:
            msg = await js.get_msg(stream, seq)
        except NotFoundError:
            continue
        out.append(events.decode(msg.data))
    return out


async def alerts(js, settings) -> list[AlertChanged]:
    return [e for e in await stream_events(js, Names(settings.subject_prefix).stream_alerts)
            if isinstance(e, AlertChanged)]


async def notifications(js, settings) -> list[NotificationAttempted]:
    return [e for e in await stream_events(js, Names(settings.subject_prefix).stream_alerts)
            if isinstance(e, NotificationAttempted)]


async def caught_up(js, settings, durable: str = "alerts") -> bool:
    """Every collected and config event delivered to the evaluators and acknowledged."""
    names = Names(settings.subject_prefix)
    for stream in (names.stream_collected, names.stream_config):
        last = (await js.stream_info(stream)).state.last_seq
        info = await js.consumer_info(stream, durable)
        if info.num_pending or info.num_ack_pending or info.delivered.stream_seq < last:
            return False
    return True


async def wait_caught_up(js, settings) -> None:
    await wait_until(lambda: caught_up(js, settings), timeout=60, interval=0.1, what="the evaluators to catch up")
