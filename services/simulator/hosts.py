"""Simulated hosts: their misbehaviour, their file trees and the changes made to them."""

from __future__ import annotations

import asyncio
import logging
import random
import uuid
from dataclasses import dataclass
from pathlib import Path

from shared.events import DeviceSpec

log = logging.getLogger(__name__)

KINDS = ("slow", "hang", "garbage", "huge", "unreachable")
DEFAULTS = {"slow": 5.0, "garbage": 4096.0, "huge": 100.0}  # seconds, bytes, MiB
NAMESPACE = uuid.UUID("5d1f6c3e-8b1a-4a8e-9a51-3c1f0e6b2a70")  # device ids: stable per host name


@dataclass(frozen=True)
class Misbehaviour:
    """How a host misbehaves: ``slow`` (delay each answer by ``value`` s), ``hang`` (never
    answer a command), ``garbage`` (``value`` random bytes), ``huge`` (``value`` MiB of output),
    ``unreachable`` (nothing listens on its port: connection refused)."""

    kind: str
    value: float = 0.0

    @classmethod
    def parse(cls, text: str) -> Misbehaviour:
        """``hang``, ``slow:2.5``, ``huge:100``, ``garbage``, ``unreachable``."""
        kind, _, value = text.partition(":")
        kind = kind.strip()
        if kind not in KINDS:
            raise ValueError(f"unknown misbehaviour {kind!r}: one of {', '.join(KINDS)}")
        try:
            number = float(value) if value else DEFAULTS.get(kind, 0.0)
        except ValueError:
            raise ValueError(f"{kind}: a number expected after ':', not {value!r}") from None
        if number < 0:
            raise ValueError(f"{kind}: a value >= 0 expected")
        return cls(kind, number)

    def __str__(self) -> str:
        return self.kind + (f":{self.value:g}" if self.kind in DEFAULTS else "")


def parse_specs(specs: list[str]) -> dict[str, Misbehaviour]:
    """``["host-3=hang", "host-7=huge:100"]`` as a mapping from host name to misbehaviour."""
    result: dict[str, Misbehaviour] = {}
    for spec in specs:
        name, sep, what = spec.partition("=")
        if not sep or not name.strip():
            raise ValueError(f"misbehaviour {spec!r}: HOST=KIND[:VALUE] expected, e.g. host-3=hang")
        result[name.strip()] = Misbehaviour.parse(what)
    return result


@dataclass
class SimHost:
    """One simulated host: where it listens, how to log in, and its file tree (``root``)."""

    name: str
    port: int
    username: str
    client_key: Path
    known_hosts: Path
    root: Path
    address: str = "127.0.0.1"
    misbehave: Misbehaviour | None = None
    connections: int = 0  # SSH connections accepted
    commands: int = 0  # commands received
    passwords_offered: int = 0  # password authentications tried by clients (every one is refused)
    revision: int = 0  # changes made to its files

    @property
    def watch_paths(self) -> dict[str, list[str]]:
        """Globs of its tree, by the watcher's config types (added to the watcher's defaults)."""
        r = self.root
        return {
            "proxy_configs": [f"{r}/config/nginx/proxy-confs/*.conf"],
            "docker_compose": [f"{r}/docker-compose.yml"],
            "systemd_units": [f"{r}/etc/systemd/system/*.service"],
        }

    def spec(self) -> DeviceSpec:
        """The device to register for this host; its id is stable for its name."""
        return DeviceSpec(
            id=uuid.uuid5(NAMESPACE, self.name), name=self.name, address=self.address, port=self.port,
            username=self.username, description="simulated host", tags={"simulated": "true"},
            watch_paths=self.watch_paths,
        )

    def info(self) -> dict:
        return {"name": self.name, "address": self.address, "port": self.port, "username": self.username,
                "client_key": str(self.client_key), "known_hosts": str(self.known_hosts), "root": str(self.root),
                "misbehave": str(self.misbehave) if self.misbehave else None}


# ---------------------------------------------------------------- files


def _nginx(host: SimHost) -> str:
    return (f"# revision {host.revision}\n"
            "server {\n"
            "    listen 443 ssl;\n"
            f"    server_name app.{host.name}.example.internal;\n"
            "    location / {\n"
            f"        proxy_pass http://127.0.0.1:{8000 + host.revision % 1000};\n"
            "        proxy_set_header Host $host;\n"
            "    }\n"
            "}\n")


def _compose(host: SimHost) -> str:
    return ("services:\n"
            "  web:\n"
            f"    image: nginx:1.25.{host.revision % 10}\n"
            "    restart: unless-stopped\n"
            "    ports:\n"
            "      - \"8080:80\"\n"
            "    environment:\n"
            f"      REVISION: \"{host.revision}\"\n"
            "  db:\n"
            "    image: postgres:16\n"
            "    volumes:\n"
            "      - db:/var/lib/postgresql/data\n"
            "volumes:\n"
            "  db: {}\n")


def _unit(host: SimHost) -> str:
    return ("[Unit]\n"
            "Description=Simulated application\n"
            "After=network-online.target\n\n"
            "[Service]\n"
            f"Environment=REVISION={host.revision}\n"
            "ExecStart=/usr/local/bin/app --port 9000\n"
            "Restart=on-failure\n\n"
            "[Install]\n"
            "WantedBy=multi-user.target\n")


FILES = {
    "config/nginx/proxy-confs/app.conf": _nginx,
    "docker-compose.yml": _compose,
    "etc/systemd/system/app.service": _unit,
}


def write_tree(host: SimHost) -> None:
    """Create the host's tree: an nginx proxy conf, a compose file and a systemd unit."""
    for rel, render in FILES.items():
        path = host.root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(render(host))


def change_one(host: SimHost, rng: random.Random) -> Path:
    """Change one of the host's files (a new revision); the path changed."""
    host.revision += 1
    rel = rng.choice(list(FILES))
    path = host.root / rel
    path.write_text(FILES[rel](host))
    return path


async def change_files(hosts: list[SimHost], interval_s: float, seed: int = 0) -> None:
    """Every ``interval_s``, change one file on each host, until cancelled."""
    rng = random.Random(seed)
    while True:
        await asyncio.sleep(interval_s)
        for host in hosts:
            try:
                change_one(host, rng)
            except OSError as exc:
                log.warning("cannot change a file of %s: %s", host.name, exc)
