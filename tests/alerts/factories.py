"""Builders of rules and of events whose ``occurred_at`` the test controls."""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta, timezone

from shared import events
from shared.alert_events import AlertRule
from shared.collected import COLLECTED_TYPES
from shared.config_events import ConfigChanged
from shared.datatypes.containers.payload import Container, Containers
from shared.datatypes.drive_health.payload import Drive, DriveHealth
from shared.datatypes.systemd_services.payload import SystemdServices, Unit
from shared.datatypes.zfs.payload import Pool, Zfs
from shared.payloads.config import Impact
from tests.factories import metrics_event

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=timezone.utc)


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def rule(metric: str = "cpu", **kw) -> AlertRule:
    fields = dict(id=uuid.uuid4(), name=f"{metric.replace('_', '-')}-rule", metric=metric, operator=">",
                  threshold=90.0, duration_s=30, refire_interval_s=3600)
    return AlertRule(**{**fields, **kw})


def cpu(device_id: uuid.UUID, seconds: float, value: float, device: str = "dev1"):
    return metrics_event(device_id, device, at=at(seconds), cpu=value)


def _collected(cls, device_id: uuid.UUID, seconds: float, payload, device: str = "dev1", **kw):
    return events.new_event(cls, device_id=device_id, device=device, service="collector", instance="test",
                            trigger="poll", occurred_at=at(seconds), payload=payload, **kw)


def containers(device_id: uuid.UUID, seconds: float, *items: tuple[str, str, str | None, int]):
    """items: (name, state, health, restart_count)."""
    cs = [Container(id=f"id-{n}", name=n, image="img", status=s, state=s, health=h, restart_count=r)
          for n, s, h, r in items]
    return _collected(COLLECTED_TYPES["containers"], device_id, seconds, Containers(runtime="docker", containers=cs))


def drives(device_id: uuid.UUID, seconds: float, *items: tuple[str, int | None, bool]):
    """items: (name, temperature, failing)."""
    ds = [Drive(name=n, temperature_celsius=t, failing=f, healthy=not f) for n, t, f in items]
    return _collected(COLLECTED_TYPES["drive_health"], device_id, seconds, DriveHealth(drives=ds))


def units(device_id: uuid.UUID, seconds: float, *failed: str):
    us = [Unit(name=n, load="loaded", active="failed", sub="failed") for n in failed]
    us.append(Unit(name="ok.service", load="loaded", active="active", sub="running"))
    return _collected(COLLECTED_TYPES["systemd_services"], device_id, seconds,
                      SystemdServices(units=us, failed=list(failed), total=len(us), active=1))


def pools(device_id: uuid.UUID, seconds: float, *items: tuple[str, str]):
    return _collected(COLLECTED_TYPES["zfs"], device_id, seconds, Zfs(pools=[Pool(name=n, health=h) for n, h in items]))


def config_change(device_id: uuid.UUID, seconds: float, risk: str, config_type: str = "proxy_configs"):
    return events.new_event(
        ConfigChanged, device_id=device_id, device="dev1", service="watcher", instance="test", trigger="watch",
        occurred_at=at(seconds), config_type=config_type, path="/etc/nginx/site.conf", change_type="MODIFY",
        impact=Impact(risk_level=risk))
