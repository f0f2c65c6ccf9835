"""`infrawatch alerts`: the alert evaluator; `infrawatch alerts active`: the alerts firing now."""

from __future__ import annotations

import json
import logging
import os
from datetime import datetime
from typing import Annotated, Any

import typer

from services.cli_common import fail, load_settings, run_service

alerts_app = typer.Typer(invoke_without_command=True,
                         help="Run the alert evaluator service, or (`active`) list the alerts firing now.")
PAGE_SIZE = 1000


@alerts_app.callback()
def alerts(ctx: typer.Context) -> None:
    """Run the alert evaluator service (`infrawatch alerts active` lists the alerts firing now)."""
    if ctx.invoked_subcommand is None:
        run_service("alerts", "services.alerts.service")


def api_access() -> tuple[str, str]:
    """The API's URL and key: INFRAWATCH_API_URL and INFRAWATCH_API_KEY, else those of a running
    `infrawatch up` (its ``up.json`` in the data directory)."""
    state: dict[str, Any] = {}
    up = load_settings().data_dir / "up.json"
    if up.exists():
        try:
            state = json.loads(up.read_text())
        except (OSError, ValueError) as exc:
            fail(f"cannot read the state of `infrawatch up` ({up}): {exc}")
    url = os.environ.get("INFRAWATCH_API_URL") or state.get("api_url")
    key = os.environ.get("INFRAWATCH_API_KEY") or state.get("api_key")
    if not url or not key:
        fail("set INFRAWATCH_API_URL and INFRAWATCH_API_KEY, or run `infrawatch up` (its API and key are used)")
    return url.rstrip("/"), key


def _fetch(url: str, key: str, device: str | None) -> list[dict[str, Any]]:
    import httpx

    logging.getLogger("httpx").setLevel(logging.WARNING)  # its INFO line per request is noise here
    items: list[dict[str, Any]] = []
    page = 1
    with httpx.Client(base_url=url, headers={"Authorization": f"Bearer {key}"}, timeout=30) as client:
        while True:
            params: dict[str, Any] = {"page": page, "page_size": PAGE_SIZE}
            if device:
                params["device"] = device
            try:
                r = client.get("/alerts/active", params=params)
            except httpx.HTTPError as exc:
                fail(f"cannot reach the API at {url}: {exc}")
            if r.status_code != 200:
                fail(f"the API answered {r.status_code}: {r.json().get('message', r.text) if r.content else ''}")
            body = r.json()
            items += body["items"]
            if page >= body["total_pages"]:
                return items
            page += 1


def _when(value: str) -> str:
    return datetime.fromisoformat(value).strftime("%Y-%m-%d %H:%M:%SZ")


def _line(a: dict[str, Any]) -> str:
    what = f"{a['metric']}{'[' + a['selector'] + ']' if a.get('selector') else ''}"
    return (f"{a['rule_name']} on {a['device'] or a['device_id']}: {what} {a['value']:g} {a['operator']} "
            f"{a['threshold']:g} since {_when(a['since'])}" + (f" ({a['detail']})" if a.get("detail") else ""))


@alerts_app.command("active")
def active(
    device: Annotated[str | None, typer.Option(help="only this device (name or UUID)")] = None,
    top: Annotated[int, typer.Option(min=0, help="causes shown per alert")] = 5,
    as_json: Annotated[bool, typer.Option("--json", help="the API's items as JSON")] = False,
) -> None:
    """The alerts firing now, newest first, each followed by its likeliest causes (one line each).

    Reads GET /alerts/active through the API: INFRAWATCH_API_URL with the key INFRAWATCH_API_KEY (a viewer key is enough); beside a running `infrawatch up`, its API and key by default.
    """
    url, key = api_access()
    items = _fetch(url, key, device)
    if as_json:
        typer.echo(json.dumps(items, indent=2))
        return
    if not items:
        typer.echo("no alert is firing")
        return
    for a in items:
        typer.echo(_line(a))
        for i, c in enumerate(a["causes"][:top], 1):
            risk = f" {c['risk']}" if c.get("risk") else ""
            typer.echo(f"  {i}. [{c['kind']}{risk}] {c['summary']} ({_when(c['time'])})")
