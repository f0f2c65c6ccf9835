"""The one wrapper every data type runs through: command, retries, parse, and the event.

:func:`collect` never raises for a failing device, command or parser; the failure is the
event's ``status`` (``error`` or ``unsupported``) and ``error`` message.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from dataclasses import dataclass, field
from types import ModuleType
from typing import Any

from services.collector.registry import DATA_TYPES
from services.collector.types.errors import ParseError
from shared.events import Collected, DeviceSpec, Status, Trigger, new_event
from shared.settings import Settings
from shared.transport import CommandResult, CommandTimeout, HostKeyError, Transport, TransportError

log = logging.getLogger(__name__)

SERVICE = "collector"
RETRY_DELAY_S = 1.0
STDERR_IN_MESSAGE = 300
EXIT_NOT_FOUND = 127


@dataclass
class Outcome:
    status: Status
    payload: Any = None
    error: str | None = None
    warnings: list[str] = field(default_factory=list)


def _with_stderr(message: str, result: CommandResult) -> str:
    text = result.stderr.decode("utf-8", errors="replace").strip()[-STDERR_IN_MESSAGE:]
    return f"{message}: {text}" if text else message


def interpret(module: ModuleType, result: CommandResult) -> Outcome:
    """Turn a finished command into an outcome (pure: no I/O)."""
    if result.truncated:
        return Outcome("error", error=f"output exceeded the size limit and was cut ({len(result.stdout)} bytes kept)")
    if result.exit_status == EXIT_NOT_FOUND:
        message = "command not available on the device (exit status 127)"
        return Outcome("unsupported", error=_with_stderr(message, result))
    if result.exit_status is None:
        message = "command ended without an exit status (killed by a signal?)"
        return Outcome("error", error=_with_stderr(message, result))
    if result.exit_status != 0:
        return Outcome("error", error=_with_stderr(f"command failed with exit status {result.exit_status}", result))
    try:
        parsed = module.parse(result.stdout.decode("utf-8", errors="replace"))
    except ParseError as exc:
        return Outcome("error", error=f"parse error: {exc}")
    except Exception as exc:  # a parser bug must not stop the collector
        log.exception("%s parser failed", module.NAME)
        return Outcome("error", error=f"parser failed: {type(exc).__name__}: {exc}")
    return Outcome("partial" if parsed.warnings else "success", parsed.payload, warnings=list(parsed.warnings))


def freshness_s(data_type: str, settings: Settings) -> int:
    """The type's freshness threshold, unless overridden in settings."""
    return settings.freshness_overrides.get(data_type, DATA_TYPES[data_type].FRESHNESS_S)


async def collect(
    transport: Transport,
    device: DeviceSpec,
    data_type: str,
    *,
    trigger: Trigger,
    operation_id: uuid.UUID | None = None,
    settings: Settings,
    force_refresh: bool = False,
) -> Collected:
    """Run ``data_type``'s command on ``device`` (with its timeout and retries) and return the
    event. Raises KeyError only for a data type that is not in the registry."""
    module = DATA_TYPES[data_type]
    start = time.monotonic()
    commands = 0
    result: CommandResult | None = None
    outcome: Outcome | None = None
    attempts = 1 + module.RETRIES
    for attempt in range(1, attempts + 1):
        try:
            result = await transport.run(list(module.ARGV), timeout=module.TIMEOUT_S)
            commands += 1
            outcome = None
            break
        except HostKeyError as exc:  # retrying cannot help
            outcome = Outcome("error", error=str(exc))
            break
        except CommandTimeout as exc:
            commands += 1
            outcome = Outcome("error", error=f"{exc} (attempt {attempt} of {attempts})")
        except TransportError as exc:  # ConnectError and others: retried
            outcome = Outcome("error", error=str(exc))
        except Exception as exc:  # an unexpected transport failure must not stop the collector
            log.exception("collecting %s on %s failed", data_type, device.name)
            outcome = Outcome("error", error=f"{type(exc).__name__}: {exc}")
            break
        if attempt < attempts:
            await asyncio.sleep(RETRY_DELAY_S * attempt)
    if outcome is None:
        assert result is not None
        outcome = interpret(module, result)
    if outcome.status in ("error", "unsupported"):
        log.warning("%s on %s: %s: %s", data_type, device.name, outcome.status, outcome.error)
    fields: dict[str, Any] = {}
    if operation_id is not None:
        fields["operation_id"] = operation_id
    return new_event(
        module.EVENT,
        device_id=device.id,
        device=device.name,
        service=SERVICE,
        instance=settings.instance,
        trigger=trigger,
        status=outcome.status,
        duration_ms=round((time.monotonic() - start) * 1000, 3),
        ssh_command_count=commands,
        data_size_bytes=len(result.stdout) if result is not None else 0,
        error=outcome.error,
        warnings=outcome.warnings,
        collection_method=transport.method,
        force_refresh=force_refresh,
        freshness_threshold_s=freshness_s(data_type, settings),
        payload=outcome.payload,
        **fields,
    )
