"""Run the benchmarks one after the other, each in its own process, then print every figure of
bench/results.json (name, value, unit, limit, ratio, conditions).

    .venv/bin/python bench/run.py [--quick] [--only NAME,...] [--skip NAME,...]
                                  [--args 'NAME=--opt value ...'] [--table]

A full run starts from an empty results file; with --only/--skip the other figures are kept.
Exits non-zero when a benchmark crashes (or exceeds --timeout), not when a figure misses its
limit.
"""

from __future__ import annotations

import argparse
import shlex
import signal
import subprocess
import sys
import time
from pathlib import Path

BENCH = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH.parent))

from bench.common import RESULTS, table
from shared.runtime.embedded import stop_process

# name, script, arguments of a full run, arguments of --quick
BENCHMARKS: list[tuple[str, str, list[str], list[str]]] = [
    ("writer_ingest", "writer_ingest.py", ["--events", "60000"], ["--events", "10000"]),
    ("writer_scaleout", "writer_scaleout.py", ["--events", "60000"], ["--events", "10000"]),
    ("api", "api_bench.py", [], ["--seconds", "3", "--refreshes", "10"]),
    ("range_read", "range_read.py", [], ["--devices", "100", "--seconds", "3"]),
    ("watcher_latency", "watcher_latency.py", [], ["--count", "30"]),
    ("collector_fanout", "collector_fanout.py", [], ["--hosts", "200", "--interval", "10", "--cycles", "1"]),
    ("ssh_connections", "ssh_connections.py", [], ["--hosts", "30", "--seconds", "40", "--warmup", "15"]),
    ("service_rss", "service_rss.py", [], ["--hosts", "20", "--seconds", "30", "--warmup", "15"]),
    ("redact", "redact_bench.py", [], ["--repeat", "2"]),
    ("api_diff", "diff_bench.py", [], ["--seconds", "5"]),
    ("config_search", "config_search.py", [], ["--runs", "200", "--seconds", "3"]),
    ("policy_eval", "policy_eval.py", [], ["--events", "300", "--changes", "30"]),
]
NAMES = [b[0] for b in BENCHMARKS]


def run_one(script: str, args: list[str], timeout: float) -> int:
    """Run a benchmark script; on timeout interrupt it (so it stops its servers), then kill it."""
    proc = subprocess.Popen([sys.executable, str(BENCH / script), *args], cwd=BENCH.parent)
    try:
        return proc.wait(timeout)
    except subprocess.TimeoutExpired:
        print(f"timed out after {timeout:g}s: interrupting", file=sys.stderr)
        stop_process(proc, 60, signal.SIGINT)
        return -1
    except KeyboardInterrupt:
        proc.wait()
        raise


def names(text: str | None) -> list[str]:
    chosen = [n.strip() for n in (text or "").split(",") if n.strip()]
    unknown = sorted(set(chosen) - set(NAMES))
    if unknown:
        sys.exit(f"unknown benchmark(s) {', '.join(unknown)}: one of {', '.join(NAMES)}")
    return chosen


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="small sizes and short runs (a few minutes in all)")
    p.add_argument("--only", help=f"comma-separated, of: {', '.join(NAMES)}")
    p.add_argument("--skip", help="comma-separated benchmarks not to run")
    p.add_argument("--args", action="append", default=[], metavar="NAME=ARGS",
                   help="extra arguments for one benchmark, after its defaults; repeatable")
    p.add_argument("--timeout", type=float, default=1800, help="seconds per benchmark")
    p.add_argument("--table", action="store_true", help="only print the table of bench/results.json")
    opts = p.parse_args()
    if opts.table:
        print(table())
        return 0
    only, skip = names(opts.only), names(opts.skip)
    extra: dict[str, list[str]] = {}
    for a in opts.args:
        name, sep, rest = a.partition("=")
        if not sep or name not in NAMES:
            sys.exit(f"--args {a!r}: NAME=ARGS expected, NAME one of {', '.join(NAMES)}")
        extra.setdefault(name, []).extend(shlex.split(rest))
    chosen = [b for b in BENCHMARKS if (not only or b[0] in only) and b[0] not in skip]
    if not only and not skip and RESULTS.exists():
        RESULTS.unlink()  # a full run: no figure from an earlier run is left in the table
    summary = []
    started = time.monotonic()
    for name, script, full, quick in chosen:
        args = [*(quick if opts.quick else full), *extra.get(name, [])]
        print(f"\n=== {name}: {script} {shlex.join(args)}", flush=True)
        t0 = time.monotonic()
        rc = run_one(script, args, opts.timeout)
        summary.append((name, time.monotonic() - t0, rc))
    print(f"\n=== results ({RESULTS.relative_to(BENCH.parent)})\n")
    print(table())
    print(f"\n{'benchmark':18} {'seconds':>8}  status")
    for name, seconds, rc in summary:
        print(f"{name:18} {seconds:8.0f}  {'ok' if rc == 0 else f'CRASHED (exit {rc})'}")
    print(f"{'total':18} {time.monotonic() - started:8.0f}")
    return 1 if any(rc != 0 for _, _, rc in summary) else 0


if __name__ == "__main__":
    sys.exit(main())
