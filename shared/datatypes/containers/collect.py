"""containers: every container with its state, health, restarts, ports and resource use.

docker first: ``docker ps -a`` and ``docker stats --no-stream`` in their JSON formats (one
object a line), then ``docker inspect`` on the containers found, for the restart count and
the health status. When docker is absent (exit 127), podman's JSON (one array) instead. A
docker CLI whose daemon is not running, with no podman, is unsupported.

A container of the previous snapshot that is gone from this one is listed in ``removed``
(``with_previous``; the collector keeps the previous snapshot per device).
"""

from __future__ import annotations

import json
import re
from datetime import datetime, timezone
from typing import Any

from shared.datatypes.capture import Output, Session, read_nonempty
from shared.datatypes.containers.payload import Container, Containers, Port, RemovedContainer
from shared.datatypes.parsing import CommandFailed, ParseError, ParseResult, Unsupported

NAME = "containers"
TIMEOUT_S = 20.0
RETRIES = 1
INTERVAL_S = 30
FRESHNESS_S = 30

DOCKER = {
    "ps": ["docker", "ps", "-a", "--no-trunc", "--format", "{{json .}}"],
    "stats": ["docker", "stats", "--no-stream", "--no-trunc", "--format", "{{json .}}"],
}
# One line per container: "<id> <restart count> <health or ->"
INSPECT_FORMAT = "{{.Id}} {{.RestartCount}} {{if .State.Health}}{{.State.Health.Status}}{{else}}-{{end}}"
PODMAN = {
    "podman ps": ["podman", "ps", "-a", "--format", "json"],
    "podman stats": ["podman", "stats", "--no-stream", "--format", "json"],
}

# Cannot connect to the Docker daemon at unix:///var/run/docker.sock. Is the docker daemon running?
NO_DAEMON_RE = re.compile(r"Cannot connect to the Docker daemon|Is the docker daemon running")


def inspect_argv(ids: list[str]) -> list[str]:
    """``docker inspect`` of the given containers; each id is its own argument."""
    return ["docker", "inspect", "--format", INSPECT_FORMAT, "--", *ids]


async def gather(session: Session) -> None:
    """Run docker's commands, or podman's when docker is not installed."""
    out = await session.run_all(DOCKER)
    if out["ps"].not_found:
        await session.run_all(PODMAN)
        return
    if out["ps"].ok:
        ids = [c["ID"] for c in _json_lines(out["ps"]) if isinstance(c.get("ID"), str)]
        if ids:
            await session.run("inspect", inspect_argv(ids))


# ---------------------------------------------------------------- sizes and percentages

UNITS = {
    "b": 1, "kb": 1000, "mb": 1000**2, "gb": 1000**3, "tb": 1000**4, "pb": 1000**5,
    "kib": 1024, "mib": 1024**2, "gib": 1024**3, "tib": 1024**4, "pib": 1024**5,
}
# 10.2MiB   1.05kB   0B   7.667GiB   512 B
SIZE_RE = re.compile(r"^(\d+(?:\.\d+)?)\s*([kKMGTP]?i?B)$")


def size(text: str) -> int | None:
    """A docker/podman size ("10.2MiB", "1.05kB") in bytes; None for "--" or an unknown unit."""
    m = SIZE_RE.match(text.strip())
    if not m:
        return None
    return round(float(m.group(1)) * UNITS[m.group(2).lower()])


def pair(text: str | None) -> tuple[int | None, int | None]:
    """ "used / limit" or "rx / tx" into two byte counts."""
    if not text or "/" not in text:
        return None, None
    a, _, b = text.partition("/")
    return size(a), size(b)


def percent(text: str | None) -> float | None:
    if not text:
        return None
    try:
        return float(text.strip().rstrip("%"))
    except ValueError:
        return None


# 0.0.0.0:8080->80/tcp   :::8080->80/tcp   443/tcp   0.0.0.0:8000-8002->8000-8002/udp   [::1]:53->53/udp
PORT_RE = re.compile(r"^(?:(?P<ip>\[[^\]]*\]|[^\s,]*?):(?P<host>\d+(?:-\d+)?)->)?(?P<port>\d+(?:-\d+)?)/(?P<proto>\w+)$")


def parse_ports(text: str) -> list[Port]:
    ports: list[Port] = []
    for item in text.split(","):
        item = item.strip()
        if not item:
            continue
        m = PORT_RE.match(item)
        if not m:
            raise ParseError("unexpected port mapping in docker ps", item)
        ip = m["ip"].strip("[]") if m["ip"] is not None else None
        ports.append(Port(container_port=m["port"], protocol=m["proto"], host_ip=ip, host_port=m["host"]))
    return ports


# Up 3 weeks (healthy)   Up 2 minutes (health: starting)   Exited (137) 5 days ago   Up 4 hours (Paused)
HEALTH_RE = re.compile(r"\((healthy|unhealthy|health: starting)\)")


def health_from_status(status: str) -> str | None:
    m = HEALTH_RE.search(status)
    return None if m is None else ("starting" if m.group(1) == "health: starting" else m.group(1))


def state_from_status(status: str) -> str:
    """The state docker before 20.10 did not print, from its Status text."""
    s = status.lower()
    if "(paused)" in s:
        return "paused"
    for prefix, state in (("up", "running"), ("restarting", "restarting"), ("exited", "exited"),
                          ("created", "created"), ("removal in progress", "removing"), ("dead", "dead")):
        if s.startswith(prefix):
            return state
    return "unknown"


# 2024-03-02 09:14:51 +0000 UTC     (Go's time.Time.String(), docker ps CreatedAt)
CREATED_RE = re.compile(r"^(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d) ([+-]\d{4})")


def created_at(text: str | None) -> datetime | None:
    m = CREATED_RE.match(text or "")
    if not m:
        return None
    return datetime.strptime(f"{m.group(1)} {m.group(2)}", "%Y-%m-%d %H:%M:%S %z").astimezone(timezone.utc)


# ---------------------------------------------------------------- docker


def _json_lines(out: Output) -> list[dict[str, Any]]:
    items = []
    for no, line in enumerate(out.stdout.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            item = json.loads(line)
        except json.JSONDecodeError as exc:
            raise ParseError(f"{out.name}: a JSON object per line expected ({exc.msg})", line[:200], no) from None
        if not isinstance(item, dict):
            raise ParseError(f"{out.name}: a JSON object per line expected", line[:200], no)
        items.append(item)
    return items


# 3f1c...e9 2 healthy
INSPECT_RE = re.compile(r"^(\S+) (\d+) (\S+)$")


def _docker(outputs: dict[str, Output], warnings: list[str]) -> Containers:
    ps = outputs["ps"]
    if not ps.ok:
        if ps.exit_status is not None and NO_DAEMON_RE.search(ps.stderr):
            raise Unsupported(f"docker is installed but its daemon is not reachable: {ps.stderr_tail(200)}")
        raise CommandFailed(ps.failure())
    stats: dict[str, dict[str, Any]] = {}
    st = outputs.get("stats")
    if st is not None and st.ok:
        stats = {s.get("ID", ""): s for s in _json_lines(st)}
    elif st is not None:
        warnings.append(f"no resource usage: {st.failure()}")
    inspected: dict[str, tuple[int, str | None]] = {}
    ins = outputs.get("inspect")
    if ins is not None:
        for line in ins.stdout.splitlines():
            m = INSPECT_RE.match(line.strip())
            if m:
                inspected[m.group(1)] = (int(m.group(2)), None if m.group(3) == "-" else m.group(3))
        if not ins.ok:  # e.g. a container removed between ps and inspect: the others are still there
            warnings.append(f"restart counts incomplete: {ins.failure()}")
    containers = []
    for c in _json_lines(ps):
        cid, status = c.get("ID", ""), c.get("Status", "")
        if not cid:
            raise ParseError("docker ps: a container without ID", json.dumps(c)[:200])
        s = stats.get(cid) or next((v for k, v in stats.items() if k and cid.startswith(k)), {})
        mem, limit = pair(s.get("MemUsage"))
        rx, tx = pair(s.get("NetIO"))
        rd, wr = pair(s.get("BlockIO"))
        restarts, health = inspected.get(cid, (None, None))
        pids = s.get("PIDs", "")
        containers.append(Container(
            id=cid, name=c.get("Names", "").split(",")[0], image=c.get("Image", ""), status=status,
            state=c.get("State") or state_from_status(status), health=health or health_from_status(status),
            restart_count=restarts, ports=parse_ports(c.get("Ports", "")), created=created_at(c.get("CreatedAt")),
            cpu_percent=percent(s.get("CPUPerc")), memory_bytes=mem, memory_limit_bytes=limit, net_rx_bytes=rx,
            net_tx_bytes=tx, block_read_bytes=rd, block_write_bytes=wr,
            pids=int(pids) if isinstance(pids, str) and pids.isdigit() else None,
        ))
    return Containers(runtime="docker", containers=containers)


# ---------------------------------------------------------------- podman


def _json_array(out: Output) -> list[dict[str, Any]]:
    text = out.stdout.strip()
    if not text:
        return []
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ParseError(f"{out.name}: not JSON ({exc.msg})", text.splitlines()[0][:200], 1) from None
    if data is None:
        return []
    if not isinstance(data, list):
        raise ParseError(f"{out.name}: a JSON array expected")
    return [d for d in data if isinstance(d, dict)]


def _port_range(port: Any, n: int) -> str:
    """``80``, or ``8000-8002`` for a range of n ports."""
    return str(port) if n <= 1 else f"{port}-{port + n - 1}"


def _podman_ports(ports: list[dict[str, Any]] | None) -> list[Port]:
    result = []
    for p in ports or []:
        n = int(p.get("range") or 1)
        cport, hport = p.get("container_port"), p.get("host_port")
        result.append(Port(container_port=_port_range(cport, n), protocol=p.get("protocol", "tcp"),
                           host_ip=p.get("host_ip") or None, host_port=_port_range(hport, n) if hport else None))
    return result


def _podman(outputs: dict[str, Output], warnings: list[str]) -> Containers:
    ps = outputs.get("podman ps")
    if ps is None or ps.not_found:
        raise Unsupported("neither docker nor podman is installed (exit status 127)")
    if not ps.ok:
        raise CommandFailed(ps.failure())
    stats: dict[str, dict[str, Any]] = {}
    st = outputs.get("podman stats")
    if st is not None and st.ok:
        stats = {s.get("id", s.get("ID", "")): s for s in _json_array(st)}
    elif st is not None:
        warnings.append(f"no resource usage: {st.failure()}")
    containers = []
    for c in _json_array(ps):
        cid, status = c.get("Id", ""), c.get("Status", "")
        s = stats.get(cid) or next((v for k, v in stats.items() if k and cid.startswith(k)), {})
        mem, limit = pair(s.get("mem_usage"))
        rx, tx = pair(s.get("net_io"))
        rd, wr = pair(s.get("block_io"))
        created = c.get("Created")
        names = c.get("Names") or [""]
        pids = s.get("pids", "")
        containers.append(Container(
            id=cid, name=names[0], image=c.get("Image", ""), status=status,
            state=c.get("State") or state_from_status(status), health=health_from_status(status),
            restart_count=c.get("Restarts") if isinstance(c.get("Restarts"), int) else None,
            ports=_podman_ports(c.get("Ports")),
            created=datetime.fromtimestamp(created, timezone.utc) if isinstance(created, int) else None,
            cpu_percent=percent(s.get("cpu_percent")), memory_bytes=mem, memory_limit_bytes=limit,
            net_rx_bytes=rx, net_tx_bytes=tx, block_read_bytes=rd, block_write_bytes=wr,
            pids=int(pids) if isinstance(pids, str) and pids.isdigit() else None,
        ))
    return Containers(runtime="podman", containers=containers)


def parse_outputs(outputs: dict[str, Output]) -> ParseResult[Containers]:
    warnings: list[str] = []
    ps = outputs.get("ps")
    if ps is not None and not ps.not_found:
        payload = _docker(outputs, warnings)
    elif "podman ps" in outputs or ps is not None:
        payload = _podman(outputs, warnings)
    else:
        raise ParseError("no 'ps' or 'podman ps' section: not a capture of the containers type")
    payload.containers.sort(key=lambda c: c.name)
    return ParseResult(payload, warnings)


def parse(text: str) -> ParseResult[Containers]:
    """Parse a capture file with sections ps, stats, inspect (docker) or podman ps, podman stats."""
    return parse_outputs(read_nonempty(text))


def removed(previous: Containers | None, current: Containers) -> list[RemovedContainer]:
    """The containers of ``previous`` that ``current`` no longer lists (pure)."""
    if previous is None:
        return []
    now = {c.id for c in current.containers}
    return [RemovedContainer(id=c.id, name=c.name, image=c.image) for c in previous.containers if c.id not in now]


def with_previous(previous: Containers | None, current: Containers) -> Containers:
    current.removed = removed(previous, current)
    return current
