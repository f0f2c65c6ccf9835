"""`infrawatch status`: streams, consumers and their lag, KV buckets, devices and live services,
read from NATS alone."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timezone

from nats.js import JetStreamContext
from nats.js.errors import NotFoundError

from shared import events
from shared.events import PerfReported
from shared.names import Names
from shared.runtime.devices import DeviceRegistry
from shared.settings import Settings


@dataclass
class Status:
    streams: list[dict] = field(default_factory=list)
    consumers: list[dict] = field(default_factory=list)
    buckets: list[dict] = field(default_factory=list)
    devices: list[dict] = field(default_factory=list)
    services: list[dict] = field(default_factory=list)


def _age(ts: datetime | None, now: datetime) -> float | None:
    return None if ts is None else round((now - ts).total_seconds(), 1)


async def gather(js: JetStreamContext, settings: Settings) -> Status:
    names = Names(settings.subject_prefix)
    now = datetime.now(timezone.utc)
    st = Status()
    for attr in ("stream_collected", "stream_config", "stream_devices", "stream_audit", "stream_perf",
                 "stream_alerts", "stream_dlq"):
        stream = getattr(names, attr)
        try:
            info = await js.stream_info(stream)
        except NotFoundError:
            continue
        st.streams.append({"stream": stream, "messages": info.state.messages, "bytes": info.state.bytes,
                           "last_seq": info.state.last_seq, "consumers": info.state.consumer_count})
        for c in await js.consumers_info(stream):
            st.consumers.append({"stream": stream, "consumer": c.name, "lag": c.num_pending,
                                 "ack_pending": c.num_ack_pending, "redelivered": c.num_redelivered})
    for bucket in (names.cache_bucket, names.watch_state_bucket):
        try:
            kv = await js.key_value(bucket)
            s = await kv.status()
            st.buckets.append({"bucket": bucket, "values": s.values, "bytes": s.stream_info.state.bytes})
        except Exception:  # noqa: S112 (a bucket that cannot be read is left out)
            continue
    registry = DeviceRegistry(js, names)
    await registry.start()
    await registry.stop()
    cache = None
    try:
        cache = await js.key_value(names.cache_bucket)
    except Exception:  # noqa: S110 (no cache: no last collection shown)
        pass
    for spec in sorted(registry.by_name.values(), key=lambda d: d.name):
        last, status = None, None
        if cache is not None:
            try:
                entry = await cache.get(Names.cache_key(spec.name, "system_metrics"))
                ev = events.decode(entry.value or b"")
                last, status = ev.occurred_at, ev.status
            except Exception:  # noqa: S110 (no readable cached value: no last collection shown)
                pass
        st.devices.append({"device": spec.name, "transport": spec.transport, "address": spec.address,
                           "enabled": spec.enabled, "last_collection_age_s": _age(last, now), "status": status})
    for service in ("collector", "watcher", "writer", "api", "alerts"):
        try:
            msg = await js.get_last_msg(names.stream_perf, names.perf(service))
        except NotFoundError:
            st.services.append({"service": service, "alive": False, "last_report_age_s": None, "instance": None})
            continue
        ev = events.decode(msg.data or b"")
        age = _age(ev.occurred_at, now)
        alive = isinstance(ev, PerfReported) and age is not None and age < 2.5 * max(ev.window_s, 1.0)
        st.services.append({"service": service, "alive": alive, "last_report_age_s": age, "instance": ev.instance})
    return st
