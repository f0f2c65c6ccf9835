"""HTTP load with wrk (the C load generator), so a benchmark measures the server, not a Python client."""

from __future__ import annotations

import re
import shutil
import subprocess
from dataclasses import dataclass

MISSING = "wrk is not installed (Debian: apt-get install wrk): the HTTP load figures are skipped"
_UNITS = {"us": 1e-3, "ms": 1.0, "s": 1e3, "m": 60e3, "h": 3600e3}


@dataclass(frozen=True)
class WrkResult:
    rps: float
    p50_ms: float
    p99_ms: float
    requests: int
    bad: int  # non-2xx/3xx answers and socket errors

    def line(self, label: str) -> str:
        warn = f"   ({self.bad} errors or non-2xx!)" if self.bad else ""
        return (f"  {label:<52} {self.rps:8.0f} req/s   p50 {self.p50_ms:7.2f} ms   p99 {self.p99_ms:7.2f} ms"
                f"   ({self.requests} requests){warn}")


def available() -> bool:
    return shutil.which("wrk") is not None


def _ms(text: str) -> float:
    m = re.fullmatch(r"([\d.]+)(us|ms|s|m|h)", text)
    if not m:
        raise ValueError(f"unexpected wrk latency {text!r}")
    return float(m.group(1)) * _UNITS[m.group(2)]


def parse(out: str) -> WrkResult:
    """The figures of ``wrk --latency`` output."""
    pct = dict(re.findall(r"^\s+(50|99)%\s+(\S+)\s*$", out, re.M))
    rps = re.search(r"^Requests/sec:\s+([\d.]+)", out, re.M)
    total = re.search(r"^\s+(\d+) requests in", out, re.M)
    if rps is None or total is None or set(pct) != {"50", "99"}:
        raise ValueError(f"cannot read wrk's output:\n{out}")
    non2xx = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", out)
    sock = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    bad = (int(non2xx.group(1)) if non2xx else 0) + (sum(map(int, sock.groups())) if sock else 0)
    return WrkResult(float(rps.group(1)), _ms(pct["50"]), _ms(pct["99"]), int(total.group(1)), bad)


def run(url: str, seconds: float, connections: int, headers: dict[str, str] | None = None,
        threads: int = 1) -> WrkResult:
    """``wrk --latency`` against ``url``."""
    args = ["wrk", f"-t{threads}", f"-c{connections}", f"-d{seconds:g}s", "--latency", "--timeout", "10s"]
    for k, v in (headers or {}).items():
        args += ["-H", f"{k}: {v}"]
    res = subprocess.run([*args, url], capture_output=True, text=True, timeout=seconds + 60)
    if res.returncode != 0:
        raise RuntimeError(f"wrk failed ({res.returncode}): {res.stderr.strip()}")
    return parse(res.stdout)
