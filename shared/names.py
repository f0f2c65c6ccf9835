"""Every subject, stream, consumer, KV bucket and header name, in one place."""

from __future__ import annotations

import re

# Headers
MSG_ID = "Nats-Msg-Id"
EXPECTED_LAST_SUBJECT_SEQ = "Nats-Expected-Last-Subject-Sequence"
DLQ_REASON = "Infrawatch-Dlq-Reason"
DLQ_SUBJECT = "Infrawatch-Dlq-Subject"
DLQ_STREAM_SEQ = "Infrawatch-Dlq-Stream-Seq"

# KV buckets
CACHE_BUCKET = "infra_cache"
WATCH_STATE_BUCKET = "infra_watch_state"
COLLECTORS_BUCKET = "infra_collectors"
ALERT_RULES_BUCKET = "infra_alert_rules"
ALERT_STATE_BUCKET = "infra_alert_state"

# Device names become subject tokens and KV keys, so they are restricted.
DEVICE_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,62}$")
TOKEN_RE = re.compile(r"^[A-Za-z0-9_-]+$")


def valid_token(value: str) -> bool:
    return bool(TOKEN_RE.match(value))


class Names:
    """Subjects and stream names under one configurable prefix (default ``infra``)."""

    def __init__(self, prefix: str = "infra") -> None:
        self.prefix = prefix
        up = prefix.upper().replace("-", "_")
        self.stream_collected = f"{up}_COLLECTED"
        self.stream_config = f"{up}_CONFIG"
        self.stream_devices = f"{up}_DEVICES"
        self.stream_audit = f"{up}_AUDIT"
        self.stream_perf = f"{up}_PERF"
        self.stream_alerts = f"{up}_ALERTS"
        self.stream_dlq = f"{up}_DLQ"
        self.cache_bucket = CACHE_BUCKET if prefix == "infra" else f"{prefix}_cache"
        self.watch_state_bucket = WATCH_STATE_BUCKET if prefix == "infra" else f"{prefix}_watch_state"
        self.collectors_bucket = COLLECTORS_BUCKET if prefix == "infra" else f"{prefix}_collectors"
        self.alert_rules_bucket = ALERT_RULES_BUCKET if prefix == "infra" else f"{prefix}_alert_rules"
        self.alert_state_bucket = ALERT_STATE_BUCKET if prefix == "infra" else f"{prefix}_alert_state"
        # core NATS request/reply: evaluate the config policies over the fleet's current files now
        self.policy_evaluate = f"{prefix}.policy.evaluate"

    # subject builders
    def collected(self, device: str, data_type: str) -> str:
        return f"{self.prefix}.collected.{device}.{data_type}"

    def config(self, device: str, config_type: str) -> str:
        return f"{self.prefix}.config.{device}.{config_type}"

    def device(self, device: str) -> str:
        return f"{self.prefix}.device.{device}"

    def audit(self, service: str) -> str:
        return f"{self.prefix}.audit.{service}"

    def perf(self, service: str) -> str:
        return f"{self.prefix}.perf.{service}"

    def alert(self, device: str, rule: str) -> str:
        return f"{self.prefix}.alert.{device}.{rule}"

    def alert_notification(self, device: str, rule: str) -> str:
        """Webhook delivery outcomes of one rule on one device (``alert.<device>.<rule>.notify``)."""
        return f"{self.prefix}.alert.{device}.{rule}.notify"

    def refresh(self, device: str, data_type: str) -> str:
        return f"{self.prefix}.refresh.{device}.{data_type}"

    def dlq(self, service: str, stream: str) -> str:
        return f"{self.prefix}.dlq.{service}.{stream}"

    def all(self, kind: str) -> str:
        """Wildcard subject of one kind, e.g. ``infra.collected.>``."""
        return f"{self.prefix}.{kind}.>"

    @staticmethod
    def cache_key(device: str, data_type: str) -> str:
        return f"{device}.{data_type}"
