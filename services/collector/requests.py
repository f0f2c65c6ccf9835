"""The collector's answers to requests and its security events: refresh requests (served or
refused with an ``Audited`` event) and the audit events of refused devices and changed host keys.
A mixin of :class:`services.collector.service.Collector`, which holds the state it uses."""

from __future__ import annotations

import asyncio
import logging
import uuid
from typing import TYPE_CHECKING

from nats.aio.msg import Msg

from services.collector import policy
from services.collector.registry import DATA_TYPES
from services.collector.runner import SERVICE
from services.collector.state import CollectorState
from shared import events
from shared.events import Audited, DeviceSpec, RefreshRequested
from shared.runtime.publish import publish_event

if TYPE_CHECKING:
    from services.collector.schedule import Device

log = logging.getLogger("services.collector.service")


class Requests(CollectorState):
    """Refresh requests and audit events (needs the Collector's js, names, settings, stats,
    membership, ``_find``, ``_refused``, ``_background`` and ``collect_and_publish``)."""

    def _refusal_of(self, device_id: uuid.UUID | None, name: str | None) -> policy.RefusedSetting | None:
        hit = self._refused.get(device_id) if device_id is not None else None
        if hit is None and name:
            hit = next((r for r in self._refused.values() if r[0].name == name), None)
        return hit[1] if hit is not None else None

    async def _publish_refused(self, spec: DeviceSpec, refused: policy.RefusedSetting) -> None:
        """The audit event of a refused device (by its owner only, so once per change)."""
        self.stats.devices_refused += 1
        log.error("SECURITY: device %s refused, nothing runs for it: %s", spec.name, refused)
        if not self.membership.owns(spec.id):
            return
        ev = events.new_event(
            Audited, device_id=spec.id, device=spec.name, service=SERVICE, instance=self.settings.instance,
            trigger="api", status="error", action="device_refused", error=str(refused),
            data_type="*",  # every data type of the device: also what makes the writer keep an audit row
            detail={"field": refused.field, "value": getattr(spec, refused.field, None)},
        )
        try:
            await publish_event(self.js, self.names.audit(SERVICE), ev)
        except Exception as exc:
            log.error("publishing the refusal of device %s failed: %s", spec.name, exc)

    async def _check_host_key(self, dev: Device) -> None:
        """Publish a security event for each connect refused because the host key changed."""
        refusals = getattr(dev.transport, "host_key_refusals", 0)
        if refusals <= dev.key_refusals_seen:
            return
        dev.key_refusals_seen = refusals
        self.stats.host_key_alerts += 1
        spec = dev.spec
        ev = events.new_event(
            Audited, device_id=spec.id, device=spec.name, service=SERVICE, instance=self.settings.instance,
            trigger="poll", status="error", action="host_key_changed",
            error=f"the host key of {spec.address}:{spec.port} changed: connection refused",
            detail={"address": spec.address, "port": spec.port, "known_hosts": str(self.settings.known_hosts_path),
                    "presented_fingerprint": getattr(dev.transport, "presented_fingerprint", None)},
        )
        log.error("SECURITY: host key of device %s (%s:%d) changed; refusing to connect",
                  spec.name, spec.address, spec.port)
        try:
            await publish_event(self.js, self.names.audit(SERVICE), ev)
        except Exception as exc:
            log.error("publishing the host key alert failed: %s", exc)

    async def on_refresh(self, msg: Msg) -> None:
        """Core NATS callback: handle each request in its own task so one slow device
        does not hold up the others."""
        task = asyncio.create_task(self._refresh(msg))
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    async def _refresh(self, msg: Msg) -> None:
        try:
            req = events.decode(msg.data)
        except Exception as exc:
            log.warning("undecodable refresh request on %s: %s", msg.subject, exc)
            return
        if not isinstance(req, RefreshRequested):
            log.warning("unexpected %s event on %s", type(req).__name__, msg.subject)
            return
        tokens = msg.subject.split(".")
        name = req.device or (tokens[-2] if len(tokens) >= 4 else None)
        dev = self._find(req.device_id, name)
        reason = None
        if req.data_type not in DATA_TYPES:
            reason = f"unknown data type {req.data_type!r}; known: {', '.join(sorted(DATA_TYPES))}"
        elif dev is None and (refused := self._refusal_of(req.device_id, name)) is not None:
            reason = f"device {name!r} is refused: {refused}"
        elif dev is None:
            reason = f"device {name!r} is not registered or is disabled"
        if reason is not None or dev is None:
            await self._refuse(req, reason or "", msg)
            return
        self.stats.refreshes += 1
        ev = await self.collect_and_publish(
            dev, req.data_type, trigger="refresh", operation_id=req.operation_id, force_refresh=True
        )
        if msg.reply:
            try:
                await msg.respond(events.encode(ev))
            except Exception as exc:
                log.debug("refresh reply failed: %s", exc)

    async def _refuse(self, req: RefreshRequested, reason: str, msg: Msg) -> None:
        self.stats.refused += 1
        log.warning("refresh refused: %s", reason)
        ev = events.new_event(
            Audited, operation_id=req.operation_id, device_id=req.device_id, device=req.device,
            service=SERVICE, instance=self.settings.instance, trigger="refresh", status="error",
            error=reason, action="refresh_refused", data_type=req.data_type, force_refresh=True,
        )
        try:
            await publish_event(self.js, self.names.audit(SERVICE), ev)
            if msg.reply:
                await msg.respond(events.encode(ev))
        except Exception as exc:
            log.warning("publishing refusal failed: %s", exc)
