"""The `infrawatch` command: run services, manage devices and keys, parse captured output."""

from __future__ import annotations

import asyncio
import json
from datetime import datetime, timezone
from pathlib import Path
from typing import Annotated

import typer

from services.cli_alerts import alerts_app
from services.cli_common import cli_settings, fail, load_settings, run_service, with_js
from services.cli_config import config_app
from services.cli_devices import apikey_app, device_app

app = typer.Typer(no_args_is_help=True, add_completion=False, help=__doc__)
app.add_typer(device_app, name="device")
app.add_typer(apikey_app, name="apikey")
app.add_typer(alerts_app, name="alerts")
app.add_typer(config_app, name="config")


@app.command()
def up() -> None:
    """Run the whole system locally: nats-server, PostgreSQL, migrations, every service, device `local`."""
    from services.up import run_up
    from shared.runtime.embedded import ServerError

    try:
        code = run_up(load_settings())
    except ServerError as exc:
        fail(str(exc))
    raise typer.Exit(code)


def _service_command(name: str, module: str, doc: str) -> None:
    def command() -> None:
        run_service(name, module)

    command.__doc__ = doc
    app.command(name)(command)


for _name, _doc in (("collector", "Run the collector service."), ("watcher", "Run the watcher service."),
                    ("writer", "Run the writer service."),
                    ("policy", "Run the configuration policy evaluator service.")):
    _service_command(_name, f"services.{_name}.service", _doc)


@app.command()
def api() -> None:
    """Run the API service."""
    from services.api.main import serve
    from shared.settings import api_bind_problem

    settings = load_settings()
    problem = api_bind_problem(settings)
    if problem:
        fail(problem)
    serve(settings)


@app.command()
def migrate(revision: Annotated[str, typer.Argument(help="target revision")] = "head",
            down: Annotated[bool, typer.Option("--down", help="downgrade to REVISION")] = False) -> None:
    """Upgrade (or downgrade) the database schema."""
    from schema.migrate import downgrade, upgrade
    from shared.runtime.db_roles import grant

    settings = cli_settings("owner")
    try:
        (downgrade if down else upgrade)(settings.database_url, revision)
        asyncio.run(grant(settings.database_url))  # the roles' privileges on new tables
    except OSError as exc:
        fail(f"cannot reach the database: {exc}")
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
    from shared.runtime.db_roles import ROLES, bootstrap_database, passwords_from_env

    settings = cli_settings()
    if database:
        try:
            bootstrap_database(settings.database_url, passwords_from_env())
        except (OSError, ValueError) as exc:
            fail(f"database: {exc}")
        typer.echo(f"database roles {', '.join(ROLES.values())} and schema ready")
    if nats_:
        asyncio.run(with_js(lambda settings, js: asyncio.sleep(0)))  # with_js creates the streams
        typer.echo("streams and KV buckets ready")


@app.command()
def replay(
    seq: Annotated[int | None, typer.Option("--seq", help="start at this stream sequence")] = None,
    since: Annotated[datetime | None, typer.Option("--since", help="start at this time (ISO 8601)")] = None,
    kind: Annotated[list[str] | None, typer.Option("--kind", help="only these streams, e.g. collected")] = None,
) -> None:
    """Rebuild the database projections from the streams (from the beginning by default)."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TaskID, TextColumn, TimeElapsedColumn

    from services.writer.replay import replay as run_replay

    settings = cli_settings("writer")
    if since is not None and since.tzinfo is None:
        since = since.replace(tzinfo=timezone.utc)
    with Progress(TextColumn("{task.description:>10}"), BarColumn(), MofNCompleteColumn(),
                  TimeElapsedColumn()) as bar:
        tasks: dict[str, TaskID] = {}

        def progress(k: str, done: int, total: int) -> None:
            if k not in tasks:
                tasks[k] = bar.add_task(k, total=total)
            bar.update(tasks[k], completed=done)

        try:
            result = asyncio.run(run_replay(settings, seq=seq, since=since, kinds=kind, progress=progress))
        except Exception as exc:
            fail(f"replay failed: {type(exc).__name__}: {exc}")
    for k, n in result.events.items():
        typer.echo(f"{k}: {n} events replayed, {result.skipped.get(k, 0)} undecodable skipped")


@app.command()
def collect(device: str, data_type: str) -> None:
    """Run one collection on a device now and print the event (nothing is published)."""
    from services.collector.collect_cli import collect_once

    raise typer.Exit(asyncio.run(collect_once(load_settings(), device, data_type)))


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


@app.command()
def status(as_json: Annotated[bool, typer.Option("--json")] = False) -> None:
    """Streams, consumers with their lag, KV buckets, devices and which services are alive."""
    import dataclasses

    from rich.console import Console
    from rich.table import Table

    from services.status import gather

    st = asyncio.run(with_js(lambda settings, js: gather(js, settings)))
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
    base_port: Annotated[int | None, typer.Option(help="host i listens on BASE_PORT+i (default: free ports)")] = None,
    register: Annotated[bool, typer.Option("--register", help="register the hosts as devices on NATS")] = False,
    misbehave: Annotated[list[str] | None, typer.Option(
        help="HOST=KIND[:VALUE], KIND one of slow:S, hang, garbage, huge:MB, unreachable; repeatable")] = None,
    state_dir: Annotated[Path | None, typer.Option(help="keys, known_hosts and file trees "
                                                      "(default: <data dir>/simulator)")] = None,
    change_every: Annotated[float, typer.Option(help="seconds between file changes on each host; 0: never")] = 60.0,
    prefix: Annotated[str, typer.Option(help="host names are PREFIX-0, PREFIX-1, ...")] = "host",
) -> None:
    """Serve simulated SSH hosts on 127.0.0.1 (a test tool: see services/simulator)."""
    from services.simulator import Simulator, parse_specs
    from shared.runtime.nats_conn import stop_event_on_signals

    settings = cli_settings()
    try:
        bad = parse_specs(misbehave or [])
        sim = Simulator(devices, state_dir or settings.data_dir / "simulator", bad, prefix=prefix,
                        base_port=base_port, change_interval_s=change_every or None)
    except ValueError as exc:
        fail(str(exc))

    async def main() -> None:
        stop = stop_event_on_signals()
        async with sim:
            if register:
                from shared.names import Names
                from shared.runtime.bootstrap import ensure
                from shared.runtime.nats_conn import connect

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
        fail(f"simulate: {exc}")


def main() -> None:
    app()


if __name__ == "__main__":
    main()
