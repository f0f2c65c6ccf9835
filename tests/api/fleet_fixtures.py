"""Configuration files of several devices, stored through the writer's projection and sink."""

from __future__ import annotations

import hashlib
import uuid
from datetime import datetime, timedelta, timezone

from services.watcher.configtypes import config_type
from shared import events
from shared.config_events import ConfigChanged
from tests.api.conftest import auth, project

T0 = datetime(2026, 5, 1, 8, 0, tzinfo=timezone.utc)
COMPOSE = "/srv/app/docker-compose.yml"
NGINX = "/etc/nginx/conf.d/app.conf"


def compose(image: str, privileged: bool = False) -> str:
    return (f"services:\n  web:\n    image: {image}\n    privileged: {'true' if privileged else 'false'}\n"
            "    ports:\n      - \"80:80\"\n  cache:\n    image: redis:7\n")


def nginx(port: int) -> str:
    return f"server {{\n  listen {port};\n  server_name app.example;\n  location / {{ proxy_pass http://app:8080; }}\n}}\n"


def change(device: dict, minutes: float, path: str, text: str | None, change_type: str = "MODIFY",
           kind: str | None = None) -> ConfigChanged:
    """A ConfigChanged of ``device`` as the watcher makes it: the content, its hash and the real parser's data."""
    ctype = kind or ("docker_compose" if path.endswith(".yml") else "proxy_configs")
    parsed = None if text is None else config_type(ctype).parse(text, path)
    return events.new_event(
        ConfigChanged, device_id=uuid.UUID(device["id"]), device=device["name"], service="watcher", instance="t",
        trigger="watch", occurred_at=T0 + timedelta(minutes=minutes), config_type=ctype, path=path,
        change_type=change_type, content=text, parsed=parsed,
        sha256=None if text is None else hashlib.sha256(text.encode()).hexdigest(),
    )


async def register(client, keys, *names: str) -> dict[str, dict]:
    out = {}
    for i, name in enumerate(names):
        r = await client.post("/devices", json={"name": name, "address": f"10.0.0.{i + 10}"},
                              headers=auth(keys["admin"]))
        assert r.status_code == 201, r.text
        out[name] = r.json()
    return out


async def store(settings, *evs: ConfigChanged) -> None:
    await project(settings.database_url, *evs)
