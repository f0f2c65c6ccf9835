"""`infrawatch config search|compare|drift`: fleet configuration questions, through the API."""

from __future__ import annotations

import json
import logging
from typing import Annotated, Any

import typer

from services.cli_alerts import api_access
from services.cli_common import fail

config_app = typer.Typer(no_args_is_help=True, help="Search, compare and find drift in the fleet's configuration files.")
MATCHES_SHOWN = 200  # characters of a hit's matches on its line


def _get(route: str, params: dict[str, Any] | list[tuple[str, Any]], page_size: int = 0) -> Any:
    """GET ``route`` from the API (every page of a list, ``page_size`` items a page, when given); exits
    with the API's message on an error."""
    import httpx

    logging.getLogger("httpx").setLevel(logging.WARNING)
    url, key = api_access()
    items: list[Any] = []
    page = 1
    with httpx.Client(base_url=url, headers={"Authorization": f"Bearer {key}"}, timeout=60) as client:
        while True:
            query = [*(params.items() if isinstance(params, dict) else params)]
            if page_size:
                query += [("page", page), ("page_size", page_size)]
            try:
                r = client.get(route, params=[(k, v) for k, v in query if v is not None])
            except httpx.HTTPError as exc:
                fail(f"cannot reach the API at {url}: {exc}")
            if r.status_code != 200:
                body = r.json() if r.headers.get("content-type", "").startswith("application/json") else {}
                fail(f"the API answered {r.status_code}: {body.get('message') or body.get('detail') or r.text}")
            if not page_size:
                return r.json()
            items += r.json()["items"]
            if page >= r.json()["total_pages"]:
                return items
            page += 1


def _as_json(value: Any, as_json: bool) -> bool:
    """Print ``value`` as JSON when asked; True when printed."""
    if as_json:
        typer.echo(json.dumps(value, indent=2))
    return as_json


def _short(value: Any, limit: int = MATCHES_SHOWN) -> str:
    text = json.dumps(value, separators=(",", ":"))
    return text if len(text) <= limit else text[: limit - 1] + "…"


@config_app.command("search")
def search(
    jsonpath: Annotated[str | None, typer.Option(help='a PostgreSQL jsonpath, e.g. \'$.services.* ? (@.privileged == true)\'')] = None,
    config_type: Annotated[str | None, typer.Option("--type", help="a config type, e.g. docker_compose")] = None,
    device: Annotated[list[str] | None, typer.Option(help="a device name or UUID (repeat, or separate by commas)")] = None,
    path: Annotated[str | None, typer.Option(help="a glob on the file path (* also matches /)")] = None,
    at: Annotated[str | None, typer.Option(help="search the versions current at this time, e.g. 2026-05-01T12:00:00Z")] = None,
    include_deleted: Annotated[bool, typer.Option(help="also list deleted files")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="the API's hits as JSON")] = False,
) -> None:
    """Files whose current parsed data matches a JSONPath: one line per file, `device path matches`.

    Reads GET /config/search through the API: INFRAWATCH_API_URL with the key INFRAWATCH_API_KEY (a viewer key is enough); beside a running `infrawatch up`, its API and key by default.
    """
    params: list[tuple[str, Any]] = [("jsonpath", jsonpath), ("config_type", config_type), ("path", path), ("at", at),
                                     ("include_deleted", str(include_deleted).lower())]
    params += [("device", d) for d in device or []]
    hits = _get("/config/search", params, page_size=200)
    if _as_json(hits, as_json):
        return
    for h in hits:
        found = f" {_short(h['matches'])}" if jsonpath is not None else ""
        deleted = " (deleted)" if h["change_type"] == "DELETE" else ""
        typer.echo(f"{h['device'] or h['device_id']} {h['path']}{deleted}{found}")
    if not hits:
        typer.echo("no file matches")


@config_app.command("compare")
def compare(
    path: Annotated[str, typer.Argument(help="the file's path")],
    devices: Annotated[str | None, typer.Option(
        help="devices, comma-separated, the first is the reference; <device>:<path> for a file at another path")] = None,
    against: Annotated[str | None, typer.Option(help="a baseline instead: <device>[:<path>]@<time>")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="the API's answer as JSON")] = False,
) -> None:
    """One file across devices: the structured differences and the unified diff against the reference."""
    res = _get("/config/compare", {"path": path, "devices": devices, "against": against})
    if _as_json(res, as_json):
        return
    ref = res["reference"]
    typer.echo(f"reference: {ref['device'] or ref['device_id']}" + (" (missing)" if ref["missing"] else f" {ref['time']}"))
    for c in res["comparisons"]:
        v = c["version"]
        state = "missing" if v["missing"] else "identical" if c["identical"] else "differs"
        typer.echo(f"{v['device'] or v['device_id']}: {state}")
        for s in c["structured"]:
            typer.echo(f"  {s['op']} {s['path']}: {_short(s['old'], 80)} -> {_short(s['new'], 80)}")
        if c["unified_diff"]:
            typer.echo("".join(f"  {ln}" for ln in c["unified_diff"].splitlines(keepends=True)), nl=False)


@config_app.command("drift")
def drift(
    config_type: Annotated[str | None, typer.Option("--type", help="a config type, e.g. proxy_configs")] = None,
    path: Annotated[str | None, typer.Option(help="a glob on the file path")] = None,
    device: Annotated[list[str] | None, typer.Option(help="a device name or UUID (repeat, or separate by commas)")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="the API's items as JSON")] = False,
) -> None:
    """Paths whose content differs between devices: one line per path, its devices by version."""
    params: list[tuple[str, Any]] = [("type", config_type), ("path", path), *(("device", d) for d in device or [])]
    items = _get("/config/drift", params, page_size=100)
    if _as_json(items, as_json):
        return
    for p in items:
        groups = " | ".join(",".join(d["name"] or str(d["id"]) for d in g["devices"]) for g in p["groups"])
        typer.echo(f"{'DRIFT' if p['drifted'] else 'same '} {p['path']} ({p['devices_total']} devices): {groups}")
