"""The one wrapper every data type runs through: commands, retries, parse, and the event.

A data type module either has ``ARGV`` (one command; ``parse(stdout)``) or runs several
commands on the device's one connection: fixed ones in ``COMMANDS`` (run by one shell on one
channel, which prints them as a capture file: one remote shell start instead of one per
command) or chosen as it goes by ``async gather(session)`` (drive_health: lsblk, then
smartctl per drive at once, each on its own channel). Their outputs go to ``parse_outputs(outputs)``, the same function
``parse(capture_text)`` uses. A type may also define ``with_previous(previous, payload)``,
a pure function of the last successful payload (containers removed, inventory drift).

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

from services.collector.policy import RefusedSetting, check_sudo
from services.collector.registry import DATA_TYPES, EVENTS
from shared.datatypes.capture import Output, batch_argv, read
from shared.datatypes.parsing import CommandFailed, ParseError, Unsupported
from shared.events import Collected, DeviceSpec, Status, Trigger, new_event
from shared.runtime.transport import (
    DEFAULT_MAX_OUTPUT,
    CommandResult,
    CommandTimeout,
    HostKeyError,
    Transport,
    TransportError,
)
from shared.settings import Settings

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


def _with_stderr(message: str, stderr: str) -> str:
    text = stderr.strip()[-STDERR_IN_MESSAGE:]
    return f"{message}: {text}" if text else message


def to_output(name: str, result: CommandResult) -> Output:
    return Output(
        name=name, stdout=result.stdout.decode("utf-8", errors="replace"),
        stderr=result.stderr.decode("utf-8", errors="replace"), exit_status=result.exit_status,
        truncated=result.truncated,
    )


def _parsed(module: ModuleType, parse, arg) -> Outcome:
    try:
        parsed = parse(arg)
    except Unsupported as exc:
        return Outcome("unsupported", error=str(exc))
    except CommandFailed as exc:
        return Outcome("error", error=str(exc))
    except ParseError as exc:
        return Outcome("error", error=f"parse error: {exc}")
    except Exception as exc:  # a parser bug must not stop the collector
        log.exception("%s parser failed", module.NAME)
        return Outcome("error", error=f"parser failed: {type(exc).__name__}: {exc}")
    return Outcome("partial" if parsed.warnings else "success", parsed.payload, warnings=list(parsed.warnings))


def interpret(module: ModuleType, result: CommandResult | Output) -> Outcome:
    """Turn a single-command type's finished command into an outcome (pure: no I/O)."""
    out = result if isinstance(result, Output) else to_output(module.NAME, result)
    if out.killed:
        return Outcome("error", error=f"{out.stderr.strip() or 'the command did not finish'}; it was killed")
    if out.truncated:
        return Outcome("error", error=f"output exceeded the size limit and was cut ({len(out.stdout)} bytes kept)")
    if out.exit_status == EXIT_NOT_FOUND:
        return Outcome("unsupported", error=_with_stderr("command not available on the device (exit status 127)",
                                                         out.stderr))
    if out.exit_status is None:
        return Outcome("error", error=_with_stderr("command ended without an exit status (killed by a signal?)",
                                                   out.stderr))
    if out.exit_status != 0:
        return Outcome("error", error=_with_stderr(f"command failed with exit status {out.exit_status}", out.stderr))
    return _parsed(module, module.parse, out.stdout)


def interpret_outputs(module: ModuleType, outputs: dict[str, Output]) -> Outcome:
    """Turn a multi-command type's outputs into an outcome (pure: no I/O)."""
    return _parsed(module, module.parse_outputs, outputs)


class Session:
    """Runs one operation's commands on a device: each with the type's timeout and retries,
    counted, its output capped; a command that hangs is killed and the kill recorded in
    ``warnings``. A failing connection raises TransportError (after the retries)."""

    def __init__(self, transport: Transport, module: ModuleType, sudo: list[str] | None = None,
                 max_output: int = DEFAULT_MAX_OUTPUT) -> None:
        self.transport = transport
        self.module = module
        self.sudo = list(sudo or [])
        self.max_output = max_output
        self.outputs: dict[str, Output] = {}
        self.commands = 0
        self.bytes = 0
        self.warnings: list[str] = []

    async def run(self, name: str, argv: list[str], timeout: float | None = None, stdin: bytes | None = None) -> Output:
        timeout = timeout or self.module.TIMEOUT_S
        attempts = 1 + self.module.RETRIES
        out: Output | None = None
        failure: TransportError | None = None
        for attempt in range(1, attempts + 1):
            try:
                result = await self.transport.run(list(argv), timeout=timeout, stdin=stdin, max_output=self.max_output)
            except HostKeyError:
                raise  # retrying cannot help
            except CommandTimeout as exc:
                self.commands += 1
                self.warnings.append(f"{name}: killed after {timeout:g}s without finishing (attempt {attempt} of {attempts})")
                out = Output(name, stderr=f"{exc} (attempt {attempt} of {attempts})", exit_status=None, killed=True)
            except TransportError as exc:
                failure, out = exc, None
            else:
                self.commands += 1
                self.bytes += len(result.stdout)
                out = to_output(name, result)
                break
            if attempt < attempts:
                await asyncio.sleep(RETRY_DELAY_S * attempt)
        if out is None:
            assert failure is not None
            raise failure
        self.outputs[name] = out
        return out

    async def run_batch(self, commands: dict[str, list[str]]) -> dict[str, Output]:
        """Run fixed commands one after the other on ONE channel (capture.batch_argv); when the
        batch is killed or cut short, the commands it did not report are marked so."""
        out = await self.run(self.module.NAME, batch_argv(commands))
        self.outputs.pop(self.module.NAME, None)
        try:
            found = read(out.stdout) if out.exit_status == 0 or out.killed or out.truncated else {}
        except ParseError:
            found = {}
        if out.exit_status not in (0, None) and not found:
            raise CommandFailed(out.failure())
        for name in commands:
            self.outputs[name] = found.get(name) or Output(
                name, stderr=out.stderr, exit_status=None, killed=out.killed, truncated=out.truncated)
        return {n: self.outputs[n] for n in commands}

    async def run_all(self, commands: dict[str, list[str]]) -> dict[str, Output]:
        """Run several commands at once, each on its own channel of the same connection."""
        results = await asyncio.gather(*(self.run(n, a) for n, a in commands.items()), return_exceptions=True)
        for r in results:
            if isinstance(r, BaseException):
                raise r
        return {n: self.outputs[n] for n in commands}


def freshness_s(data_type: str, settings: Settings) -> int:
    """The type's freshness threshold, unless overridden in settings."""
    return settings.freshness_overrides.get(data_type, DATA_TYPES[data_type].FRESHNESS_S)


def sudo_prefix(device: DeviceSpec, settings: Settings) -> list[str]:
    """The device's own prefix when the collector allows it (RefusedSetting otherwise), else the
    collector's setting (empty: no sudo)."""
    if device.sudo is not None:
        return check_sudo(device.sudo, settings)
    return list(getattr(settings, "collector_sudo", []) or [])


async def run_module(session: Session, module: ModuleType, memory: dict | None = None) -> Outcome:
    """Run the module's command(s) through ``session`` and interpret the outputs. ``memory``: what
    the module kept from this device's previous run (``stdin(memory)``, ``remember(memory, stdout)``)."""
    if hasattr(module, "ARGV"):
        keeps = memory is not None and hasattr(module, "remember")
        out = await session.run(module.NAME, list(module.ARGV), stdin=module.stdin(memory) if keeps else None)
        outcome = interpret(module, out)
        if keeps and outcome.status in ("success", "partial"):
            module.remember(memory, out.stdout)
        return outcome
    try:
        if hasattr(module, "gather"):
            await module.gather(session)
        else:
            await session.run_batch(module.COMMANDS)
    except CommandFailed as exc:
        return Outcome("error", error=str(exc))
    except ParseError as exc:  # output the module needed to choose its next commands was unreadable
        return Outcome("error", error=str(exc))
    except Unsupported as exc:
        return Outcome("unsupported", error=str(exc))
    return interpret_outputs(module, session.outputs)


async def collect(
    transport: Transport,
    device: DeviceSpec,
    data_type: str,
    *,
    trigger: Trigger,
    operation_id: uuid.UUID | None = None,
    settings: Settings,
    force_refresh: bool = False,
    previous: Any = None,
    memory: dict | None = None,
) -> Collected:
    """Run ``data_type``'s commands on ``device`` and return the event. ``previous`` is the
    last successful payload of this device and type, for types that report changes; ``memory`` a
dict the caller keeps per device and type for the type's own use (system_metrics' last CPU
sample). Raises
    KeyError only for a data type that is not in the registry."""
    module = DATA_TYPES[data_type]
    start = time.monotonic()
    max_output = getattr(settings, "collector_max_output_bytes", DEFAULT_MAX_OUTPUT)
    session = Session(transport, module, [], max_output)
    try:
        session.sudo = sudo_prefix(device, settings)
        outcome = await run_module(session, module, memory)
    except RefusedSetting as exc:  # nothing ran
        outcome = Outcome("error", error=f"refused: {exc}")
    except TransportError as exc:  # ConnectError, HostKeyError: nothing could run
        outcome = Outcome("error", error=str(exc))
    except Exception as exc:  # an unexpected failure must not stop the collector
        log.exception("collecting %s on %s failed", data_type, device.name)
        outcome = Outcome("error", error=f"{type(exc).__name__}: {exc}")
    if outcome.payload is not None and hasattr(module, "with_previous"):
        outcome.payload = module.with_previous(previous, outcome.payload)
    if outcome.status in ("error", "unsupported"):
        log.warning("%s on %s: %s: %s", data_type, device.name, outcome.status, outcome.error)
    fields: dict[str, Any] = {}
    if operation_id is not None:
        fields["operation_id"] = operation_id
    return new_event(
        EVENTS[data_type],
        device_id=device.id,
        device=device.name,
        service=SERVICE,
        instance=settings.instance,
        trigger=trigger,
        status=outcome.status,
        duration_ms=round((time.monotonic() - start) * 1000, 3),
        ssh_command_count=session.commands,
        data_size_bytes=session.bytes,
        error=outcome.error,
        warnings=[*session.warnings, *outcome.warnings],
        collection_method=transport.method,
        force_refresh=force_refresh,
        freshness_threshold_s=freshness_s(data_type, settings),
        payload=outcome.payload,
        **fields,
    )
