"""`infrawatch device ...` and `infrawatch apikey ...`."""

from __future__ import annotations

import asyncio
import uuid
from typing import Annotated

import typer

from services.cli_common import cli_settings, fail, with_js

device_app = typer.Typer(no_args_is_help=True, help="Register, list and remove devices.")
apikey_app = typer.Typer(no_args_is_help=True, help="Manage API keys.")


def _change_device(change, done: str) -> None:
    """Run ``change(js, names, instance)`` (a register or remove), then print ``done``."""
    from shared.names import Names
    from shared.runtime import devices

    async def go(settings, js):
        try:
            await change(js, Names(settings.subject_prefix), settings.instance)
        except devices.DeviceError as exc:
            fail(str(exc))
        typer.echo(done)

    asyncio.run(with_js(go))


@device_app.command("add")
def device_add(
    name: str,
    address: Annotated[str, typer.Option(help="host name or IP address")] = "127.0.0.1",
    port: Annotated[int, typer.Option()] = 22,
    username: Annotated[str | None, typer.Option()] = None,
    transport: Annotated[str, typer.Option(help="ssh, or local for the collector's own host")] = "ssh",
    tofu: Annotated[bool, typer.Option("--tofu", help="trust the host key on first use")] = False,
    device_type: Annotated[str | None, typer.Option("--type")] = None,
) -> None:
    """Register a device."""
    from shared.events import DeviceSpec
    from shared.runtime import devices

    if transport not in ("ssh", "local"):
        fail("transport must be ssh or local")
    spec = DeviceSpec(id=uuid.uuid4(), name=name, address=address, port=port, username=username,
                      transport=transport, trust_on_first_use=tofu, device_type=device_type)  # type: ignore[arg-type]
    _change_device(lambda js, names, instance: devices.register(js, names, spec, "cli", instance),
                   f"registered {name} ({spec.id})")


@device_app.command("list")
def device_list(as_json: Annotated[bool, typer.Option("--json")] = False) -> None:
    """List registered devices."""
    from shared.names import Names
    from shared.runtime.devices import DeviceRegistry

    async def go(settings, js):
        reg = DeviceRegistry(js, Names(settings.subject_prefix))
        await reg.start()
        await reg.stop()
        return sorted(reg.by_name.values(), key=lambda d: d.name)

    specs = asyncio.run(with_js(go))
    if as_json:
        import msgspec

        typer.echo(msgspec.json.encode(specs).decode())
        return
    for d in specs:
        typer.echo(f"{d.name:20} {d.transport:6} {d.username or '-'}@{d.address}:{d.port}  {d.id}")


@device_app.command("rm")
def device_rm(name: str) -> None:
    """Remove a device (its history stays in the database)."""
    from shared.runtime import devices

    _change_device(lambda js, names, instance: devices.remove(js, names, name, "cli", instance), f"removed {name}")


@apikey_app.command("create")
def apikey_create(
    role: Annotated[str, typer.Option(help="viewer, operator or admin")] = "viewer",
    name: Annotated[str, typer.Option(help="a label for the key")] = "cli",
) -> None:
    """Create an API key and print it once."""
    from services.api.keys import create_api_key

    if role not in ("viewer", "operator", "admin"):
        fail("role must be viewer, operator or admin")
    settings = cli_settings("api")
    try:
        key, key_id = asyncio.run(create_api_key(settings.database_url, role, name))
    except OSError as exc:
        fail(f"cannot reach the database: {exc}")
    typer.echo(key)
    typer.secho(f"key {key_id} ({role}); it is shown only this once", err=True)
