"""Unified diffs of configuration snapshots, bounded in size and time and run off the event loop.

difflib's matcher is quadratic on some inputs (two 233 KiB files took 16.6 s). Each side is
capped in bytes and lines before any work starts; the matching then runs in a worker and checks
a deadline between the blocks it matches, so a pathological pair stops after ``DIFF_BUDGET_S``
instead of holding a worker, or the event loop, for minutes. The workers are processes: a
thread would share the interpreter lock with the event loop, and /health's p99 rose 4-fold
while 1 MiB diffs ran in one (bench/diff_bench.py).
"""

from __future__ import annotations

import asyncio
import difflib
import multiprocessing
import time
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool

MAX_DIFF_BYTES = 2 * 1024 * 1024  # per side
MAX_DIFF_LINES = 100_000  # per side
DIFF_BUDGET_S = 5.0  # matching time of one diff, in its thread
DIFF_WORKERS = 2  # diffs running at once per API process; others wait for a worker

_pool: ProcessPoolExecutor | None = None


def _workers() -> ProcessPoolExecutor:
    global _pool
    if _pool is None:  # started on first use; "spawn": the API process runs threads and an event loop
        _pool = ProcessPoolExecutor(DIFF_WORKERS, mp_context=multiprocessing.get_context("spawn"))
    return _pool


class DiffTooLarge(Exception):
    """A side is past the byte or line cap, or matching took longer than the budget."""


class _Matcher(difflib.SequenceMatcher):
    """A SequenceMatcher that gives up once ``deadline`` (monotonic seconds) has passed."""

    def __init__(self, a: list[str], b: list[str], deadline: float) -> None:
        self.deadline = deadline
        super().__init__(None, a, b)

    def find_longest_match(self, alo=0, ahi=None, blo=0, bhi=None):
        if time.monotonic() > self.deadline:
            raise DiffTooLarge(f"the diff took longer than {DIFF_BUDGET_S:g} s to compute")
        return super().find_longest_match(alo, ahi, blo, bhi)


def _lines(text: str, side: str) -> list[str]:
    if len(text.encode()) > MAX_DIFF_BYTES:
        raise DiffTooLarge(f"the {side} snapshot is larger than {MAX_DIFF_BYTES} bytes")
    lines = text.splitlines(keepends=True)
    if len(lines) > MAX_DIFF_LINES:
        raise DiffTooLarge(f"the {side} snapshot has more than {MAX_DIFF_LINES} lines")
    return lines


def _range(start: int, stop: int) -> str:
    length = stop - start
    first = start + 1 if length else start
    return str(first) if length == 1 else f"{first},{length}"


def unified(a: list[str], b: list[str], fromfile: str, tofile: str, fromdate: str, todate: str, n: int,
            budget_s: float = DIFF_BUDGET_S) -> list[str]:
    """The lines of ``difflib.unified_diff(a, b, ...)``, or DiffTooLarge past ``budget_s``."""
    out: list[str] = []
    for group in _Matcher(a, b, time.monotonic() + budget_s).get_grouped_opcodes(n):
        if not out:
            out.append(f"--- {fromfile}{chr(9) + fromdate if fromdate else ''}\n")
            out.append(f"+++ {tofile}{chr(9) + todate if todate else ''}\n")
        first, last = group[0], group[-1]
        out.append(f"@@ -{_range(first[1], last[2])} +{_range(first[3], last[4])} @@\n")
        for tag, i1, i2, j1, j2 in group:
            if tag == "equal":
                out.extend(" " + ln for ln in a[i1:i2])
                continue
            if tag in ("replace", "delete"):
                out.extend("-" + ln for ln in a[i1:i2])
            if tag in ("replace", "insert"):
                out.extend("+" + ln for ln in b[j1:j2])
    return out


async def diff(old: str, new: str, *, fromfile: str, tofile: str, fromdate: str, todate: str, n: int) -> list[str]:
    """The unified diff of two texts, computed in a worker process; raises DiffTooLarge."""
    global _pool
    a, b = _lines(old, "old"), _lines(new, "new")
    try:
        return await asyncio.get_running_loop().run_in_executor(
            _workers(), unified, a, b, fromfile, tofile, fromdate, todate, n, DIFF_BUDGET_S)
    except BrokenProcessPool:  # a worker died (killed, out of memory): the next diff starts new ones
        _pool = None
        raise
