"""Connecting to NATS: automatic reconnects, and a drain on SIGTERM/SIGINT."""

from __future__ import annotations

import asyncio
import logging
import signal
import ssl
from collections.abc import Awaitable, Callable
from typing import Any

import nats
from nats.aio.client import Client

from shared.settings import Settings, redact_url

log = logging.getLogger(__name__)


async def connect(settings: Settings, name: str, wait: bool = True) -> Client:
    """Connect with unlimited reconnects; logs disconnects and reconnects.

    With ``wait`` (services) the first connection is retried until NATS is up; without it
    (command-line tools) an unreachable server raises at once."""

    async def on_error(exc: Exception) -> None:
        log.warning("nats error: %s", exc)

    conn: list[Client] = []

    async def on_disconnect() -> None:
        if conn and (conn[0].is_closed or conn[0].is_draining):  # our own close or drain: no fault
            log.debug("nats connection closed")
            return
        log.warning("nats disconnected")

    async def on_reconnect() -> None:
        log.info("nats reconnected")

    opts: dict[str, Any] = dict(
        servers=[s.strip() for s in settings.nats_url.split(",")],
        name=f"infrawatch-{name}-{settings.instance}",
        max_reconnect_attempts=-1 if wait else 1,
        reconnect_time_wait=1,
        connect_timeout=5,
        allow_reconnect=wait,
        error_cb=on_error,
        disconnected_cb=on_disconnect,
        reconnected_cb=on_reconnect,
    )
    if settings.nats_creds:
        opts["user_credentials"] = str(settings.nats_creds)
    elif settings.nats_nkey_seed:
        opts["nkeys_seed"] = str(settings.nats_nkey_seed)
    elif settings.nats_user:
        opts["user"] = settings.nats_user
        opts["password"] = settings.nats_password
    tls = tls_context(settings)
    if tls is not None:
        opts["tls"] = tls
        if settings.nats_tls_hostname:
            opts["tls_hostname"] = settings.nats_tls_hostname
    log.info("connecting to nats at %s", redact_url(settings.nats_url))
    nc = await nats.connect(**opts)
    conn.append(nc)
    return nc


def tls_context(settings: Settings) -> ssl.SSLContext | None:
    """A client TLS context from the CA / certificate / key files of the settings (None: none set)."""
    if not (settings.nats_tls_ca or settings.nats_tls_cert):
        return None
    ctx = ssl.create_default_context(ssl.Purpose.SERVER_AUTH,
                                     cafile=str(settings.nats_tls_ca) if settings.nats_tls_ca else None)
    if settings.nats_tls_cert:
        ctx.load_cert_chain(str(settings.nats_tls_cert), str(settings.nats_tls_key) if settings.nats_tls_key else None)
    return ctx


async def drain(nc: Client, timeout: float = 10) -> None:
    """Drain (finish in-flight work, then close); close outright if that fails or takes too long."""
    if nc.is_closed:
        return
    try:
        await asyncio.wait_for(nc.drain(), timeout=timeout)
    except Exception as exc:  # drain on a dead connection
        log.warning("nats drain: %s", exc)
        await nc.close()


def stop_event_on_signals() -> asyncio.Event:
    """An event set by SIGTERM or SIGINT, for graceful shutdown."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    return stop


async def run_until_signal(
    main: Callable[[asyncio.Event], Awaitable[None]], nc: Client | None = None
) -> None:
    """Run ``main(stop)`` until it returns; SIGTERM/SIGINT set ``stop``; then drain NATS."""
    stop = stop_event_on_signals()
    try:
        await main(stop)
    finally:
        if nc is not None:
            await drain(nc)
