"""Helpers shared by the benchmarks: percentiles, local servers, service and simulator
processes, process usage, and bench/results.json with its table."""

from __future__ import annotations

import asyncio
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.request
from contextlib import contextmanager
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import psutil

from shared.runtime.embedded import NatsServer, PostgresServer, free_port, port_is_free

RESULTS = ROOT / "bench" / "results.json"
MiB = 2**20
# RSS budget of one service process (collector, watcher, writer, api, alerts) under load.
RSS_BUDGET_MIB = 256


def pct(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))]


def machine() -> str:
    return f"{os.cpu_count()} cores, {platform.machine()}, Python {platform.python_version()}"


def record(name: str, value: float, unit: str, limit: float | None = None, conditions: str = "") -> None:
    """Merge one figure into bench/results.json as {name: {value, unit, limit, ratio, conditions}}."""
    data = json.loads(RESULTS.read_text()) if RESULTS.exists() else {}
    data[name] = {
        "value": round(value, 3), "unit": unit, "limit": None if limit is None else round(limit, 3),
        "ratio": None if not limit else round(value / limit, 3), "conditions": f"{conditions}; {machine()}".strip("; "),
    }
    RESULTS.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n")


def table(path: Path = RESULTS) -> str:
    """Every figure of bench/results.json as a text table."""
    data = json.loads(path.read_text()) if path.exists() else {}
    if not data:
        return "(no results)"

    def num(v) -> str:
        return "-" if v is None else f"{v:,.3f}".rstrip("0").rstrip(".")

    rows = [(k, num(v["value"]), v["unit"], num(v["limit"]), num(v["ratio"]), v["conditions"])
            for k, v in sorted(data.items())]
    head = ("name", "value", "unit", "limit", "ratio", "conditions")
    w = [max(len(r[i]) for r in [head, *rows]) for i in range(5)]
    lines = [f"{head[0]:<{w[0]}}  {head[1]:>{w[1]}}  {head[2]:<{w[2]}}  {head[3]:>{w[3]}}  {head[4]:>{w[4]}}  {head[5]}"]
    lines.append("-" * len(lines[0]))
    for r in rows:
        lines.append(f"{r[0]:<{w[0]}}  {r[1]:>{w[1]}}  {r[2]:<{w[2]}}  {r[3]:>{w[3]}}  {r[4]:>{w[4]}}  {r[5]}")
    return "\n".join(lines)


@contextmanager
def workdir(prefix: str = "infrawatch-bench-"):
    """A temporary folder that the servers' own users (PostgreSQL's) can enter."""
    with tempfile.TemporaryDirectory(prefix=prefix) as d:
        work = Path(d)
        work.chmod(0o755)
        yield work


def run_in_workdir(bench, args) -> None:
    """``asyncio.run(bench(args, work))`` with ``work`` a fresh :func:`workdir`."""
    with workdir() as work:
        asyncio.run(bench(args, work))


@contextmanager
def servers(postgres: bool = True):
    """A nats-server and (optionally) a PostgreSQL in a temporary directory."""
    tmp = Path(tempfile.mkdtemp(prefix="infrawatch-bench-"))
    tmp.chmod(0o755)
    nats = NatsServer(tmp / "nats").start()
    pg = None
    try:
        pg = PostgresServer(tmp / "pg").start() if postgres else None
        yield nats, pg, tmp
    finally:
        if pg:
            pg.stop()
        nats.stop()
        shutil.rmtree(tmp, ignore_errors=True)


# ---------------------------------------------------------------- service processes


def service_env(nats_url: str, data_dir: Path, database_url: str | None = None, prefix: str = "bench",
                **settings) -> dict[str, str]:
    """Environment for an `infrawatch` child: the servers, quiet logs, /metrics off, and
    ``settings`` as INFRAWATCH_<NAME> (non-strings as JSON)."""
    env = {**os.environ, "PYTHONPATH": str(ROOT), "INFRAWATCH_NATS_URL": nats_url,
           "INFRAWATCH_SUBJECT_PREFIX": prefix, "INFRAWATCH_DATA_DIR": str(data_dir),
           "INFRAWATCH_LOG_LEVEL": "WARNING", "INFRAWATCH_METRICS_PORT": "-1"}
    if database_url:
        env["INFRAWATCH_DATABASE_URL"] = database_url
    for k, v in settings.items():
        env[f"INFRAWATCH_{k.upper()}"] = v if isinstance(v, str) else json.dumps(v)
    return env


def start_service(name: str, env: dict[str, str], log_path: Path, *args: str) -> subprocess.Popen:
    """``python -m services.cli <name> [args]`` as a child, output to ``log_path``."""
    with open(log_path, "ab") as log:
        return subprocess.Popen([sys.executable, "-m", "services.cli", name, *args], env=env, cwd=ROOT,
                                stdout=log, stderr=subprocess.STDOUT, start_new_session=True)


def stop_procs(procs: list[subprocess.Popen], timeout: float = 30) -> None:
    """SIGTERM each process (a clean shutdown), SIGKILL what is left after ``timeout``."""
    for p in procs:
        if p.poll() is None:
            p.terminate()
    deadline = time.monotonic() + timeout
    for p in procs:
        try:
            p.wait(max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()


def tail(path: Path, n: int = 20) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-n:])
    except OSError:
        return "(no log)"


def check_alive(procs: dict[str, subprocess.Popen], logs: Path) -> None:
    """Raise if one of the named processes has exited."""
    for name, p in procs.items():
        if p.poll() is not None:
            raise RuntimeError(f"{name} exited with {p.returncode}:\n{tail(logs / f'{name}.log')}")


def tree(pid: int) -> list[psutil.Process]:
    """A process and its descendants (those that can still be read)."""
    try:
        p = psutil.Process(pid)
        return [p, *p.children(recursive=True)]
    except psutil.NoSuchProcess:
        return []


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of a process and its living descendants."""
    total = 0.0
    for p in tree(pid):
        try:
            t = p.cpu_times()
            total += t.user + t.system
        except psutil.NoSuchProcess:
            pass
    return total


def rss_mib(pid: int) -> float:
    """Resident memory of a process and its descendants, MiB."""
    total = 0
    for p in tree(pid):
        try:
            total += p.memory_info().rss
        except psutil.NoSuchProcess:
            pass
    return total / MiB


def scrape(port: int) -> dict[str, float]:
    """A /metrics page as {metric name: sum over its label sets}."""
    text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10).read().decode()
    out: dict[str, float] = {}
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        name, _, value = line.rpartition(" ")
        name = name.split("{", 1)[0]
        out[name] = out.get(name, 0.0) + float(value)
    return out


# ---------------------------------------------------------------- simulated hosts


def free_port_range(n: int, start: int = 20000) -> int:
    """The first of ``n`` consecutive free ports below the ephemeral range."""
    try:
        low = int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        low = 32768
    base = start
    while base + n <= low:
        busy = next((p for p in range(base, base + n) if not port_is_free(p)), None)
        if busy is None:
            return base
        base = busy + 1
    raise RuntimeError(f"no {n} consecutive free ports between {start} and {low}")


class Simulators:
    """``hosts`` simulated hosts served by ``processes`` `infrawatch simulate` children (so their
    CPU is not the measured service's), sharing one client key and one host key. Host names
    are ``sim<k>-<i>``; with ``register`` the children register them as devices."""

    def __init__(self, work: Path, hosts: int, processes: int, env: dict[str, str], *, register: bool = True,
                 change_every: float = 0.0) -> None:
        self.work, self.hosts, self.env = work / "simulators", hosts, env
        self.processes = max(1, min(processes, hosts))
        self.register, self.change_every = register, change_every
        self.procs: list[subprocess.Popen] = []
        self.client_key = self.work / "id_ed25519"
        self.known_hosts = self.work / "known_hosts"
        self.base_port = 0

    def start(self, timeout: float = 300) -> Simulators:
        import asyncssh

        self.work.mkdir(parents=True)
        client = asyncssh.generate_private_key("ssh-ed25519")
        host = asyncssh.generate_private_key("ssh-ed25519")
        self.base_port = free_port_range(self.hosts)
        first = 0
        for k in range(self.processes):
            n = self.hosts // self.processes + (1 if k < self.hosts % self.processes else 0)
            state = self.work / f"sim{k}"
            state.mkdir(mode=0o700)
            for key, name in ((client, "id_ed25519"), (host, "ssh_host_ed25519_key")):
                key.write_private_key(str(state / name))
                key.write_public_key(str(state / f"{name}.pub"))
                (state / name).chmod(0o600)
            args = ["--devices", str(n), "--base-port", str(self.base_port + first), "--prefix", f"sim{k}",
                    "--state-dir", str(state), "--change-every", str(self.change_every)]
            if self.register:
                args.append("--register")
            self.procs.append(start_service("simulate", self.env, self.work / f"sim{k}.log", *args))
            first += n
        deadline = time.monotonic() + timeout
        for k, p in enumerate(self.procs):
            log = self.work / f"sim{k}.log"
            while "collector/watcher settings" not in log.read_text(errors="replace"):
                if p.poll() is not None:
                    raise RuntimeError(f"simulator {k} exited with {p.returncode}:\n{tail(log)}")
                if time.monotonic() > deadline:
                    raise RuntimeError(f"simulator {k} not ready within {timeout:g}s:\n{tail(log)}")
                time.sleep(0.2)
        self.known_hosts.write_text("".join((self.work / f"sim{k}" / "known_hosts").read_text()
                                            for k in range(self.processes)))
        client.write_private_key(str(self.client_key))
        self.client_key.chmod(0o600)
        return self

    def ssh_env(self) -> dict[str, str]:
        """The settings a collector or watcher needs to log in to the hosts."""
        return {"INFRAWATCH_SSH_CLIENT_KEYS": json.dumps([str(self.client_key)]),
                "INFRAWATCH_SSH_KNOWN_HOSTS": str(self.known_hosts)}

    def names(self) -> list[str]:
        out = []
        for k in range(self.processes):
            out += [h["name"] for h in json.loads((self.work / f"sim{k}" / "hosts.json").read_text())]
        return out

    def cpu_seconds(self) -> float:
        return sum(cpu_seconds(p.pid) for p in self.procs)

    def stop(self) -> None:
        stop_procs(self.procs)

    def __enter__(self) -> Simulators:
        try:
            return self.start()
        except BaseException:
            self.stop()
            raise

    def __exit__(self, *exc) -> None:
        self.stop()


__all__ = ["MiB", "RSS_BUDGET_MIB", "ROOT", "Simulators", "check_alive", "cpu_seconds", "free_port", "machine",
           "pct", "record", "rss_mib", "scrape", "servers", "service_env", "start_service", "stop_procs", "table",
           "tail"]


def load_arguments(parser) -> None:
    """Options shared by the benchmarks that run services against simulated hosts."""
    parser.add_argument("--hosts", type=int, default=100)
    parser.add_argument("--simulators", type=int, default=2, help="simulator processes")
    parser.add_argument("--seconds", type=float, default=120, help="measured window after the warm-up")
    parser.add_argument("--warmup", type=float, default=30)
    parser.add_argument("--max-interval", type=float, default=60, help="poll every type at least this often")
