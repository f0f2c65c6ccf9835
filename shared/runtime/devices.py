"""The device registry lives on the devices stream: one subject per device name.

Registering and removing use ``Nats-Expected-Last-Subject-Sequence`` so that two API
replicas cannot register the same name twice. Services keep a live mirror with
:class:`DeviceRegistry`, an ordered consumer that replays the stream and then follows it.
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import re
import uuid
from collections.abc import Awaitable, Callable

from nats.aio.msg import Msg
from nats.js import JetStreamContext
from nats.js.api import DeliverPolicy
from nats.js.errors import APIError, NotFoundError

from shared import events
from shared.events import DeviceChanged, DeviceSpec
from shared.names import DEVICE_NAME_RE, EXPECTED_LAST_SUBJECT_SEQ, Names
from shared.runtime.publish import publish_event

log = logging.getLogger(__name__)

WRONG_LAST_SEQUENCE = 10071


class DeviceError(Exception):
    """A registry operation that was refused."""


class DeviceExists(DeviceError):
    pass


class DeviceNotFound(DeviceError):
    pass


# One DNS label: letters, digits and inner hyphens (RFC 1123), at most 63 characters.
_LABEL_RE = re.compile(r"^[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?$")


def validate_address(address: str) -> str:
    """A device's ``address``: a hostname or an IPv4/IPv6 address, nothing else (no patterns,
    lists, spaces or user parts: it is written into known_hosts and given to the SSH client)."""
    if not isinstance(address, str) or not address or len(address) > 253:
        raise DeviceError(f"invalid address {address!r}: give a hostname or an IP address")
    if ":" in address:  # only IPv6 has colons; no zone ids ("%eth0")
        try:
            return str(ipaddress.IPv6Address(address))
        except ValueError:
            raise DeviceError(f"invalid address {address!r}: not an IPv6 address") from None
    if not all(_LABEL_RE.match(label) for label in address.split(".")):
        raise DeviceError(
            f"invalid address {address!r}: a hostname is dot-separated labels of letters, digits and "
            "inner hyphens; an IP address is four decimal numbers or IPv6"
        )
    if address.replace(".", "").isdigit():
        try:
            ipaddress.IPv4Address(address)
        except ValueError:
            raise DeviceError(f"invalid address {address!r}: not an IPv4 address") from None
    return address


def validate_spec(spec: DeviceSpec) -> DeviceSpec:
    """Check the fields of a device that reach the SSH client and known_hosts."""
    validate_name(spec.name)
    validate_address(spec.address)
    if not 0 < spec.port < 65536:
        raise DeviceError(f"invalid port {spec.port}: 1-65535")
    return spec


def validate_name(name: str) -> str:
    if not DEVICE_NAME_RE.match(name):
        raise DeviceError(
            f"invalid device name {name!r}: use 1-63 letters, digits, '-' or '_', starting with a letter or digit"
        )
    return name


async def _last(js: JetStreamContext, names: Names, name: str) -> tuple[int, DeviceChanged | None]:
    try:
        msg = await js.get_last_msg(names.stream_devices, names.device(name))
    except NotFoundError:
        return 0, None
    ev = events.decode(msg.data or b"")
    return msg.seq or 0, ev if isinstance(ev, DeviceChanged) else None


async def current(js: JetStreamContext, names: Names, name: str) -> DeviceSpec | None:
    """The registered device of that name, read from the stream (not from a mirror)."""
    _, ev = await _last(js, names, name)
    return None if ev is None or ev.action == "removed" else ev.spec


async def _publish(
    js: JetStreamContext, names: Names, action: str, spec: DeviceSpec, expected: int, service: str, instance: str
) -> DeviceChanged:
    ev = events.new_event(
        DeviceChanged, action=action, spec=spec, device_id=spec.id, device=spec.name,
        service=service, instance=instance, trigger="api",
    )
    try:
        await publish_event(js, names.device(spec.name), ev, {EXPECTED_LAST_SUBJECT_SEQ: str(expected)})
    except APIError as exc:
        if exc.err_code == WRONG_LAST_SEQUENCE:
            raise DeviceExists(f"device {spec.name!r} was changed concurrently; try again") from exc
        raise
    return ev


async def register(
    js: JetStreamContext, names: Names, spec: DeviceSpec, service: str, instance: str
) -> DeviceChanged:
    validate_spec(spec)
    seq, last = await _last(js, names, spec.name)
    if last is not None and last.action != "removed":
        raise DeviceExists(f"device {spec.name!r} already exists")
    return await _publish(js, names, "registered", spec, seq, service, instance)


async def update(
    js: JetStreamContext, names: Names, spec: DeviceSpec, service: str, instance: str
) -> DeviceChanged:
    validate_spec(spec)
    seq, last = await _last(js, names, spec.name)
    if last is None or last.action == "removed":
        raise DeviceNotFound(f"device {spec.name!r} not found")
    if last.spec.id != spec.id:
        raise DeviceError("a device's id cannot change")
    return await _publish(js, names, "updated", spec, seq, service, instance)


async def remove(js: JetStreamContext, names: Names, name: str, service: str, instance: str) -> DeviceChanged:
    seq, last = await _last(js, names, name)
    if last is None or last.action == "removed":
        raise DeviceNotFound(f"device {name!r} not found")
    return await _publish(js, names, "removed", last.spec, seq, service, instance)


Listener = Callable[[DeviceChanged], Awaitable[None]]


class DeviceRegistry:
    """A live in-memory mirror of the registry, fed by an ordered consumer on the devices stream."""

    def __init__(self, js: JetStreamContext, names: Names) -> None:
        self._js = js
        self._names = names
        self.by_id: dict[uuid.UUID, DeviceSpec] = {}
        self.by_name: dict[str, DeviceSpec] = {}
        self._listeners: list[Listener] = []
        self._synced = asyncio.Event()
        self._target_seq = 0
        self._sub: JetStreamContext.PushSubscription | None = None

    def on_change(self, listener: Listener) -> None:
        self._listeners.append(listener)

    def get(self, key: str) -> DeviceSpec | None:
        """Look a device up by UUID or name."""
        try:
            return self.by_id.get(uuid.UUID(key))
        except ValueError:
            return self.by_name.get(key)

    def apply(self, ev: DeviceChanged) -> None:
        spec = ev.spec
        old = self.by_id.pop(spec.id, None)
        if old is not None:
            self.by_name.pop(old.name, None)
        if ev.action != "removed":
            self.by_id[spec.id] = spec
            self.by_name[spec.name] = spec

    async def start(self) -> None:
        """Replay the stream, then follow it; returns once the replay is complete."""
        info = await self._js.stream_info(self._names.stream_devices)
        self._target_seq = info.state.last_seq
        if self._target_seq == 0:
            self._synced.set()
        self._sub = await self._js.subscribe(
            self._names.all("device"), ordered_consumer=True, deliver_policy=DeliverPolicy.ALL, cb=self._on_msg
        )
        await asyncio.wait_for(self._synced.wait(), timeout=30)

    async def _on_msg(self, msg: Msg) -> None:
        try:
            ev = events.decode(msg.data)
        except Exception as exc:
            log.error("undecodable device event on %s: %s", msg.subject, exc)
            ev = None
        if isinstance(ev, DeviceChanged):
            self.apply(ev)
            for listener in self._listeners:
                try:
                    await listener(ev)
                except Exception:
                    log.exception("device listener failed")
        if msg.metadata.sequence.stream >= self._target_seq:
            self._synced.set()

    async def stop(self) -> None:
        if self._sub is not None:
            await self._sub.unsubscribe()
            self._sub = None
