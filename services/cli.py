"""The `infrawatch` command: run services, manage devices and keys, parse captured output."""

from __future__ import annotations

import asyncio
import json
import logging
import sys
import uuid
from datetime import datetime, timezone
from pathlib import Path
from typing import Annotated, Optional

import typer

from shared.settings import Settings

app = typer.Typer(no_args_is_help=True, add_completion=False, help=__doc__)
device_app = typer.Typer(no_args_is_help=True, help="Register, list and remove devices.")
apikey_app = typer.Typer(no_args_is_help=True, help="Manage API keys.")
app.add_typer(device_app, name="device")
app.add_typer(apikey_app, name="apikey")


def _settings() -> Settings:
    from pydantic import ValidationError

    try:
        s = Settings()
    except ValidationError as exc:
        problems = "; ".join(f"INFRAWATCH_{'_'.join(map(str, e['loc'])).upper()}: {e['msg']}" for e in exc.errors())
        _fail(f"invalid settings: {problems}")
    logging.basicConfig(level=s.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    if s.log_level.upper() != "DEBUG":
        logging.getLogger("asyncssh").setLevel(logging.WARNING)  # one line per channel otherwise
    return s


def _cli_settings(db_role: str | None = None) -> Settings:
    """Settings of a command-line command; beside a running `infrawatch up`, with its credentials
    (NATS as admin, the database as ``db_role``) for what the environment does not set."""
    from services.up import UpStateError, login_from_up

    try:
        return login_from_up(_settings(), db_role)
    except UpStateError as exc:
        _fail(str(exc))


def _fail(message: str, code: int = 1) -> None:
    typer.secho(message, fg=typer.colors.RED, err=True)
    raise typer.Exit(code)


def _run_service(name: str, module: str) -> None:
    settings = _settings()
    from importlib import import_module

    from shared.nats_conn import stop_event_on_signals

    mod = import_module(module)

    async def main() -> None:
        await mod.run(settings, stop_event_on_signals())

    try:
        asyncio.run(main())
    except OSError as exc:
        _fail(f"{name}: cannot reach a server: {exc}")


@app.command()
def up() -> None:
    """Run the whole system locally: nats-server, PostgreSQL, migrations, every service, device `local`."""
    from services.up import run_up
    from shared.embedded import ServerError

    try:
        code = run_up(_settings())
    except ServerError as exc:
        _fail(str(exc))
    raise typer.Exit(code)


def _service_command(name: str, module: str, doc: str) -> None:
    def command() -> None:
        _run_service(name, module)

    command.__doc__ = doc
    app.command(name)(command)


for _name, _doc in (("collector", "Run the collector service."), ("watcher", "Run the watcher service."),
                    ("alerts", "Run the alert evaluator service."), ("writer", "Run the writer service.")):
    _service_command(_name, f"services.{_name}.service", _doc)


@app.command()
def api() -> None:
    """Run the API service."""
    from services.api.main import serve
    from shared.settings import api_bind_problem

    settings = _settings()
    problem = api_bind_problem(settings)
    if problem:
        _fail(problem)
    serve(settings)


@app.command()
def migrate(revision: Annotated[str, typer.Argument(help="target revision")] = "head",
            down: Annotated[bool, typer.Option("--down", help="downgrade to REVISION")] = False) -> None:
    """Upgrade (or downgrade) the database schema."""
    from schema.migrate import downgrade, upgrade
    from shared.db_roles import grant

    settings = _cli_settings("owner")
    try:
        (downgrade if down else upgrade)(settings.database_url, revision)
        asyncio.run(grant(settings.database_url))  # the roles' privileges on new tables
    except OSError as exc:
        _fail(f"cannot reach the database: {exc}")
    typer.echo(f"database at {'base' if down and revision == 'base' else revision}")


@app.command()
def bootstrap(
    database: Annotated[bool, typer.Option("--database/--no-database", help="roles and schema")] = True,
    nats_: Annotated[bool, typer.Option("--nats/--no-nats", help="streams and KV buckets")] = True,
) -> None:
    """Create what the services may not: database roles and schema, JetStream streams and buckets.

    The database part connects with INFRAWATCH_DATABASE_URL as a superuser, creates the roles
    (passwords from INFRAWATCH_DB_OWNER_PASSWORD, _WRITER_, _API_, _READER_PASSWORD), migrates
    as the owner and grants each role its tables. The NATS part logs in as the admin user."""
    from shared.db_roles import ROLES, bootstrap_database, passwords_from_env

    settings = _cli_settings()
    if database:
        try:
            bootstrap_database(settings.database_url, passwords_from_env())
        except (OSError, ValueError) as exc:
            _fail(f"database: {exc}")
        typer.echo(f"database roles {', '.join(ROLES.values())} and schema ready")
    if nats_:
        asyncio.run(_with_js(lambda settings, js: asyncio.sleep(0)))  # _with_js creates the streams
        typer.echo("streams and KV buckets ready")


@app.command()
def replay(
    seq: Annotated[Optional[int], typer.Option("--seq", help="start at this stream sequence")] = None,
    since: Annotated[Optional[datetime], typer.Option("--since", help="start at this time (ISO 8601)")] = None,
    kind: Annotated[Optional[list[str]], typer.Option("--kind", help="only these streams, e.g. collected")] = None,
) -> None:
    """Rebuild the database projections from the streams (from the beginning by default)."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from services.writer.replay import replay as run_replay

    settings = _cli_settings("writer")
    if since is not None and since.tzinfo is None:
        since = since.replace(tzinfo=timezone.utc)
    with Progress(TextColumn("{task.description:>10}"), BarColumn(), MofNCompleteColumn(),
                  TimeElapsedColumn()) as bar:
        tasks: dict[str, int] = {}

        def progress(k: str, done: int, total: int) -> None:
            if k not in tasks:
                tasks[k] = bar.add_task(k, total=total)
            bar.update(tasks[k], completed=done)

        try:
            result = asyncio.run(run_replay(settings, seq=seq, since=since, kinds=kind, progress=progress))
        except Exception as exc:
            _fail(f"replay failed: {type(exc).__name__}: {exc}")
    for k, n in result.events.items():
        typer.echo(f"{k}: {n} events replayed, {result.skipped.get(k, 0)} undecodable skipped")


@app.command()
def collect(device: str, data_type: str) -> None:
    """Run one collection on a device now and print the event (nothing is published)."""
    from services.collector.collect_cli import collect_once

    raise typer.Exit(asyncio.run(collect_once(_settings(), device, data_type)))


@app.command()
def parse(data_type: str, files: list[Path]) -> None:
    """Run a data type's parser on captured command output and print the payload as JSON."""
    from services.collector.parse_cli import parse_files

    raise typer.Exit(parse_files(data_type, files))


@app.command()
def docs(out: Annotated[Path, typer.Option(help="folder to write into")] = Path("docs")) -> None:
    """Write the event reference (events.md, events.schema.json) from the msgspec definitions."""
    from shared.schema_docs import render_json_schema, render_markdown

    out.mkdir(parents=True, exist_ok=True)
    (out / "events.md").write_text(render_markdown())
    (out / "events.schema.json").write_text(render_json_schema())
    typer.echo(f"wrote {out / 'events.md'} and {out / 'events.schema.json'}")


@app.command("parse-config")
def parse_config(config_type: str, files: list[Path]) -> None:
    """Parse configuration files as the watcher would and print parsed data and impact as JSON."""
    from services.watcher.parse_cli import parse_config_files

    raise typer.Exit(parse_config_files(config_type, files))


async def _with_js(fn):
    from shared.bootstrap import ensure
    from shared.nats_conn import connect

    settings = _cli_settings()
    try:
        nc = await connect(settings, "cli", wait=False)
    except Exception as exc:
        _fail(f"cannot reach NATS at {settings.nats_url}: {exc}")
    try:
        js = nc.jetstream()
        await ensure(js, settings)
        return await fn(settings, js)
    finally:
        await nc.close()


@app.command()
def status(as_json: Annotated[bool, typer.Option("--json")] = False) -> None:
    """Streams, consumers with their lag, KV buckets, devices and which services are alive."""
    import dataclasses

    from rich.console import Console
    from rich.table import Table

    from services.status import gather

    st = asyncio.run(_with_js(lambda settings, js: gather(js, settings)))
    if as_json:
        typer.echo(json.dumps(dataclasses.asdict(st), indent=2, default=str))
        return
    console = Console()
    for title, rows in (("streams", st.streams), ("consumers", st.consumers), ("KV buckets", st.buckets),
                        ("devices", st.devices), ("services", st.services)):
        table = Table(title=title, title_justify="left")
        for col in (rows[0].keys() if rows else ["(none)"]):
            table.add_column(col)
        for r in rows:
            table.add_row(*("-" if v is None else str(v) for v in r.values()))
        console.print(table)


@app.command()
def simulate(
    devices: Annotated[int, typer.Option("--devices", min=1, help="number of simulated hosts")] = 10,
    base_port: Annotated[Optional[int], typer.Option(help="host i listens on BASE_PORT+i (default: free ports)")] = None,
    register: Annotated[bool, typer.Option("--register", help="register the hosts as devices on NATS")] = False,
    misbehave: Annotated[Optional[list[str]], typer.Option(
        help="HOST=KIND[:VALUE], KIND one of slow:S, hang, garbage, huge:MB, unreachable; repeatable")] = None,
    state_dir: Annotated[Optional[Path], typer.Option(help="keys, known_hosts and file trees "
                                                      "(default: <data dir>/simulator)")] = None,
    change_every: Annotated[float, typer.Option(help="seconds between file changes on each host; 0: never")] = 60.0,
    prefix: Annotated[str, typer.Option(help="host names are PREFIX-0, PREFIX-1, ...")] = "host",
) -> None:
    """Serve simulated SSH hosts on 127.0.0.1 (a test tool: see services/simulator)."""
    from services.simulator import Simulator, parse_specs
    from shared.nats_conn import stop_event_on_signals

    settings = _cli_settings()
    try:
        bad = parse_specs(misbehave or [])
        sim = Simulator(devices, state_dir or settings.data_dir / "simulator", bad, prefix=prefix,
                        base_port=base_port, change_interval_s=change_every or None)
    except ValueError as exc:
        _fail(str(exc))

    async def main() -> None:
        stop = stop_event_on_signals()
        async with sim:
            if register:
                from shared.bootstrap import ensure
                from shared.names import Names
                from shared.nats_conn import connect

                nc = await connect(settings, "simulator")
                try:
                    js = nc.jetstream()
                    await ensure(js, settings)
                    await sim.register(js, Names(settings.subject_prefix))
                finally:
                    await nc.close()
            first, last = sim.hosts[0], sim.hosts[-1]
            typer.echo(f"{len(sim.hosts)} hosts {first.name} … {last.name} on 127.0.0.1 ports "
                       f"{first.port} … {last.port}, user {first.username}"
                       + (", registered as devices" if register else ""))
            for h in sim.hosts:
                if h.misbehave:
                    typer.echo(f"  {h.name} (port {h.port}): {h.misbehave}")
            typer.echo(f"client key   {sim.client_key}")
            typer.echo(f"known_hosts  {sim.known_hosts}")
            typer.echo(f"hosts        {sim.state_dir / 'hosts.json'}")
            typer.echo("collector/watcher settings:")
            for k, v in sim.settings_env().items():
                typer.echo(f"  {k}='{v}'")
            await stop.wait()

    try:
        asyncio.run(main())
    except OSError as exc:
        _fail(f"simulate: {exc}")


@device_app.command("add")
def device_add(
    name: str,
    address: Annotated[str, typer.Option(help="host name or IP address")] = "127.0.0.1",
    port: Annotated[int, typer.Option()] = 22,
    username: Annotated[Optional[str], typer.Option()] = None,
    transport: Annotated[str, typer.Option(help="ssh, or local for the collector's own host")] = "ssh",
    tofu: Annotated[bool, typer.Option("--tofu", help="trust the host key on first use")] = False,
    device_type: Annotated[Optional[str], typer.Option("--type")] = None,
) -> None:
    """Register a device."""
    from shared import devices
    from shared.events import DeviceSpec
    from shared.names import Names

    if transport not in ("ssh", "local"):
        _fail("transport must be ssh or local")
    spec = DeviceSpec(id=uuid.uuid4(), name=name, address=address, port=port, username=username,
                      transport=transport, trust_on_first_use=tofu, device_type=device_type)  # type: ignore[arg-type]

    async def go(settings, js):
        try:
            await devices.register(js, Names(settings.subject_prefix), spec, "cli", settings.instance)
        except devices.DeviceError as exc:
            _fail(str(exc))
        typer.echo(f"registered {name} ({spec.id})")

    asyncio.run(_with_js(go))


@device_app.command("list")
def device_list(as_json: Annotated[bool, typer.Option("--json")] = False) -> None:
    """List registered devices."""
    from shared.devices import DeviceRegistry
    from shared.names import Names

    async def go(settings, js):
        reg = DeviceRegistry(js, Names(settings.subject_prefix))
        await reg.start()
        await reg.stop()
        return sorted(reg.by_name.values(), key=lambda d: d.name)

    specs = asyncio.run(_with_js(go))
    if as_json:
        import msgspec

        typer.echo(msgspec.json.encode(specs).decode())
        return
    for d in specs:
        typer.echo(f"{d.name:20} {d.transport:6} {d.username or '-'}@{d.address}:{d.port}  {d.id}")


@device_app.command("rm")
def device_rm(name: str) -> None:
    """Remove a device (its history stays in the database)."""
    from shared import devices
    from shared.names import Names

    async def go(settings, js):
        try:
            await devices.remove(js, Names(settings.subject_prefix), name, "cli", settings.instance)
        except devices.DeviceError as exc:
            _fail(str(exc))
        typer.echo(f"removed {name}")

    asyncio.run(_with_js(go))


@apikey_app.command("create")
def apikey_create(
    role: Annotated[str, typer.Option(help="viewer, operator or admin")] = "viewer",
    name: Annotated[str, typer.Option(help="a label for the key")] = "cli",
) -> None:
    """Create an API key and print it once."""
    from services.api.keys import create_api_key

    if role not in ("viewer", "operator", "admin"):
        _fail("role must be viewer, operator or admin")
    settings = _cli_settings("api")
    try:
        key, key_id = asyncio.run(create_api_key(settings.database_url, role, name))
    except OSError as exc:
        _fail(f"cannot reach the database: {exc}")
    typer.echo(key)
    typer.secho(f"key {key_id} ({role}); it is shown only this once", err=True)


def main() -> None:
    app()


if __name__ == "__main__":
    sys.exit(main())
