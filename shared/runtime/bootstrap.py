"""Idempotent creation of the JetStream streams and KV buckets the services share."""

from __future__ import annotations

import logging
from typing import Any

from nats.errors import TimeoutError as NatsTimeoutError
from nats.js import JetStreamContext
from nats.js.api import DiscardPolicy, KeyValueConfig, RetentionPolicy, StorageType, StreamConfig
from nats.js.errors import BadRequestError, NotFoundError

from shared.names import Names
from shared.settings import Settings

log = logging.getLogger(__name__)

COLLECTORS_TTL_S = 600


def stream_configs(settings: Settings) -> list[StreamConfig]:
    """The streams of DESIGN.md, retention set per kind (max_age 0 = never expires)."""
    n = Names(settings.subject_prefix)

    def cfg(name: str, kind: str, max_age_s: int, description: str) -> StreamConfig:
        return StreamConfig(
            name=name,
            description=description,
            subjects=[n.all(kind)],
            retention=RetentionPolicy.LIMITS,
            storage=StorageType.FILE,
            discard=DiscardPolicy.OLD,
            max_age=float(max_age_s) if max_age_s else None,
            duplicate_window=float(settings.duplicate_window_s),
            num_replicas=settings.stream_replicas,
        )

    return [
        cfg(n.stream_collected, "collected", settings.collected_max_age_s, "collection operations and their results"),
        cfg(n.stream_config, "config", 0, "configuration file changes, kept forever"),
        cfg(n.stream_devices, "device", 0, "device registrations, kept forever"),
        cfg(n.stream_audit, "audit", settings.audit_max_age_s, "operations that collect nothing"),
        cfg(n.stream_perf, "perf", settings.perf_max_age_s, "service performance counters"),
        cfg(n.stream_alerts, "alert", settings.alert_max_age_s, "alerts fired and resolved"),
        cfg(n.stream_dlq, "dlq", settings.dlq_max_age_s, "messages that could not be processed, with the reason"),
    ]


def kv_configs(settings: Settings) -> list[KeyValueConfig]:
    n = Names(settings.subject_prefix)
    def kv(bucket: str, description: str, **extra: Any) -> KeyValueConfig:
        return KeyValueConfig(bucket=bucket, description=description, history=1,
                              replicas=settings.stream_replicas, **{"storage": StorageType.FILE, **extra})

    return [
        kv(n.cache_bucket, "latest successful collection per <device>.<data_type>"),
        kv(n.watch_state_bucket, "watcher: last known hash and metadata per <device>.<file>"),
        kv(n.alert_rules_bucket, "alert rules by id, mirrored from the alert_rules table by the api"),
        kv(n.alert_state_bucket, "alert evaluator: state per <rule id>.<device id>, updated with compare-and-set"),
        # the TTL only clears keys of instances gone long ago; liveness is the heartbeat itself
        kv(n.collectors_bucket, "collector instances: one heartbeat key per live instance",
           ttl=COLLECTORS_TTL_S, storage=StorageType.MEMORY),
    ]


def _unchanged(current: StreamConfig, wanted: StreamConfig) -> bool:
    """True when the settings ``ensure`` manages already have the wanted values."""
    fields = ("subjects", "retention", "storage", "discard", "description", "num_replicas")
    if any(getattr(current, f) != getattr(wanted, f) for f in fields):
        return False
    return (current.max_age or 0) == (wanted.max_age or 0) and \
        (current.duplicate_window or 0) == (wanted.duplicate_window or 0)


async def ensure(js: JetStreamContext, settings: Settings) -> None:
    """Create or update every stream and KV bucket; safe to run from every service at start."""
    for cfg in stream_configs(settings):
        try:
            info = await js.stream_info(cfg.name)  # type: ignore[arg-type]
        except NotFoundError:
            await js.add_stream(cfg)
            log.info("created stream %s", cfg.name)
            continue
        if _unchanged(info.config, cfg):
            continue  # no update request: a service allowed only to create streams starts too
        try:
            await js.update_stream(cfg)
        except BadRequestError as exc:  # e.g. a replica change the cluster refuses
            log.warning("stream %s kept its configuration: %s", cfg.name, exc)
        except NatsTimeoutError:  # a user without the right to change streams gets no answer
            log.warning("stream %s kept its configuration: no answer to the update (not permitted to this "
                        "NATS user?); change it as the admin user", cfg.name)
    for kv in kv_configs(settings):
        try:
            await js.key_value(kv.bucket)
        except (NotFoundError, Exception) as exc:  # BucketNotFoundError subclasses vary
            if type(exc).__name__ not in ("BucketNotFoundError", "NotFoundError"):
                raise
            await js.create_key_value(kv)
            log.info("created KV bucket %s", kv.bucket)
