"""What the `infrawatch` commands share: settings, failing with a message, a JetStream session."""

from __future__ import annotations

import asyncio
import logging
from typing import NoReturn

import typer

from shared.settings import Settings


def fail(message: str, code: int = 1) -> NoReturn:
    typer.secho(message, fg=typer.colors.RED, err=True)
    raise typer.Exit(code)


def load_settings() -> Settings:
    """Settings from the environment (or fail naming the bad ones), with logging configured."""
    from pydantic import ValidationError

    try:
        s = Settings()
    except ValidationError as exc:
        problems = "; ".join(f"INFRAWATCH_{'_'.join(map(str, e['loc'])).upper()}: {e['msg']}" for e in exc.errors())
        fail(f"invalid settings: {problems}")
    logging.basicConfig(level=s.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    if s.log_level.upper() != "DEBUG":
        logging.getLogger("asyncssh").setLevel(logging.WARNING)  # one line per channel otherwise
    return s


def cli_settings(db_role: str | None = None) -> Settings:
    """Settings of a command-line command; beside a running `infrawatch up`, with its credentials
    (NATS as admin, the database as ``db_role``) for what the environment does not set."""
    from services.up import UpStateError, login_from_up

    try:
        return login_from_up(load_settings(), db_role)
    except UpStateError as exc:
        fail(str(exc))


def run_service(name: str, module: str) -> None:
    """Run ``module``'s ``run(settings, stop)`` until a signal stops it."""
    settings = load_settings()
    from importlib import import_module

    from shared.runtime.nats_conn import stop_event_on_signals

    mod = import_module(module)

    async def main() -> None:
        await mod.run(settings, stop_event_on_signals())

    try:
        asyncio.run(main())
    except OSError as exc:
        fail(f"{name}: cannot reach a server: {exc}")


async def with_js(fn):
    """``await fn(settings, js)`` on a NATS connection whose streams and buckets exist."""
    from shared.runtime.bootstrap import ensure
    from shared.runtime.nats_conn import connect

    settings = cli_settings()
    try:
        nc = await connect(settings, "cli", wait=False)
    except Exception as exc:
        fail(f"cannot reach NATS at {settings.nats_url}: {exc}")
    try:
        js = nc.jetstream()
        await ensure(js, settings)
        return await fn(settings, js)
    finally:
        await nc.close()
