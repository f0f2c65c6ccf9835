"""nats-server processes started from the configurations in deploy/nats, rendered for a test:
free loopback ports, store directories under the test's folder, and passwords in the environment."""

from __future__ import annotations

import os
import re
import secrets
import subprocess
from pathlib import Path

from shared.runtime.embedded import free_port, nats_server_binary, stop_process, wait_for_port

DEPLOY_NATS = Path(__file__).resolve().parent.parent / "deploy" / "nats"
USERS = ("system", "admin", "collector", "watcher", "writer", "api", "alerts", "policy")


def passwords() -> dict[str, str]:
    """A fresh random password per user of deploy/nats/accounts.conf."""
    return {user: secrets.token_hex(16) for user in USERS}


def password_env(pw: dict[str, str]) -> dict[str, str]:
    """The variables accounts.conf reads its passwords from."""
    return {f"{user.upper()}_NATS_PASSWORD": value for user, value in pw.items()}


class NatsNode:
    """One nats-server running a configuration file."""

    def __init__(self, name: str, conf: Path, port: int, env: dict[str, str]) -> None:
        self.name = name
        self.conf = conf
        self.port = port
        self.env = env
        self.log_file = conf.with_suffix(".log")
        self.proc: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"nats://127.0.0.1:{self.port}"

    def start(self) -> NatsNode:
        with open(self.log_file, "ab") as out:
            self.proc = subprocess.Popen([nats_server_binary(), "-c", str(self.conf)], stdout=out,
                                         stderr=subprocess.STDOUT, env={**os.environ, **self.env},
                                         start_new_session=True)
        wait_for_port(self.port, self.proc, f"nats-server {self.name}", self.log_file)
        return self

    def kill(self) -> None:
        """kill -9."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()

    def stop(self) -> None:
        stop_process(self.proc)

    def log(self) -> str:
        return self.log_file.read_text(errors="replace") if self.log_file.exists() else ""


def _copy_accounts(base: Path) -> None:
    (base / "accounts.conf").write_text((DEPLOY_NATS / "accounts.conf").read_text())


def render_single(base: Path, extra: str = "") -> tuple[Path, int]:
    """deploy/nats/single.conf with a free port, no monitoring port and a store under ``base``;
    ``extra`` is appended (e.g. a tls block)."""
    base.mkdir(parents=True, exist_ok=True)
    _copy_accounts(base)
    port = free_port()
    text = (DEPLOY_NATS / "single.conf").read_text()
    text = re.sub(r"(?m)^port: \d+$", f"listen: 127.0.0.1:{port}", text)
    text = re.sub(r"(?m)^http(_port)?: \S+\n", "", text)
    text = text.replace("store_dir: /data", f'store_dir: "{base / "store"}"')
    conf = base / "single.conf"
    conf.write_text(text + "\n" + extra)
    return conf, port


class NatsCluster:
    """The three nodes of deploy/nats/cluster on free loopback ports."""

    SHIPPED = {1: (4222, 6222, 8222), 2: (4223, 6223, 8223), 3: (4224, 6224, 8224)}

    def __init__(self, base: Path, env: dict[str, str]) -> None:
        self.base = base
        (base / "cluster").mkdir(parents=True, exist_ok=True)
        _copy_accounts(base)
        mapping = {old: free_port() for ports in self.SHIPPED.values() for old in ports}
        self.nodes: dict[str, NatsNode] = {}
        for i, (client, _, _) in self.SHIPPED.items():
            text = (DEPLOY_NATS / "cluster" / f"n{i}.conf").read_text()
            text = re.sub(r"127\.0\.0\.1:(\d+)", lambda m: f"127.0.0.1:{mapping.get(int(m.group(1)), m.group(1))}",
                          text)
            text = re.sub(r"store_dir: /var/lib/nats/(\S+)", lambda m: f'store_dir: "{base / "store" / m.group(1)}"',
                          text)
            conf = base / "cluster" / f"n{i}.conf"
            conf.write_text(text)
            self.nodes[f"n{i}"] = NatsNode(f"n{i}", conf, mapping[client], env)

    @property
    def url(self) -> str:
        """Every node, as INFRAWATCH_NATS_URL lists them."""
        return ",".join(n.url for n in self.nodes.values())

    def start(self) -> NatsCluster:
        for node in self.nodes.values():
            node.start()
        return self

    def stop(self) -> None:
        for node in self.nodes.values():
            node.stop()
