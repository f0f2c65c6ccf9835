"""The inotify queue overflows: the kernel drops events and reports IN_Q_OVERFLOW. The watcher
counts it, rescans, and publishes every file's final version once, whatever was dropped."""

from __future__ import annotations

import hashlib
import logging
import signal
from collections import Counter
from pathlib import Path

import psutil
import pytest

from services.watcher import remote
from shared import events
from shared.events import PerfReported
from tests.util import wait_until
from tests.watcher import conftest as watcher_tests

root, settings, watching = watcher_tests.root, watcher_tests.settings, watcher_tests.watching  # their fixtures

pytestmark = [pytest.mark.ssh]

QUEUE = Path("/proc/sys/fs/inotify/max_queued_events")
SMALL_QUEUE = 16
FILES = 200
ROUNDS = 3  # each file is rewritten this many times in the burst: 600 events for a queue of 16
WAIT_S = 120  # bounds waits on a shared 2-core machine; not a performance assertion


@pytest.fixture
def small_inotify_queue():
    """Lowers fs.inotify.max_queued_events for inotify instances created from now on; call the
    returned function once the watcher's instances exist, so other programs are spared (the value
    is read at inotify_init). Restored in teardown in any case."""
    if not QUEUE.exists():
        pytest.skip(reason=f"{QUEUE} does not exist: no inotify on this kernel")
    original = QUEUE.read_text().strip()
    try:
        QUEUE.write_text(str(SMALL_QUEUE))
    except OSError as exc:
        pytest.skip(reason=f"cannot lower the inotify queue (needs root and a writable {QUEUE}): {exc}")

    def restore() -> None:
        QUEUE.write_text(original)

    yield restore
    restore()


def _watch_processes(root: Path, mode: str) -> list[psutil.Process]:
    """The inotifywait processes, or python3 inotify loops (not their sh wrappers), watching below ``root``."""
    out = []
    for p in psutil.process_iter(["name", "cmdline"]):
        cmd = p.info["cmdline"] or []
        if not any(a.startswith(str(root)) for a in cmd):
            continue
        if (mode == "inotifywait" and p.info["name"] == "inotifywait") or \
                (mode == "python" and cmd[1:3] == ["-c", remote.INOTIFY_PY] and "python" in Path(cmd[0]).name):
            out.append(p)
    return out


def _content(i: int, version: int) -> str:
    return f"server {{ server_name s{i}.example.org; listen {8000 + version}; }}\n"


@pytest.mark.parametrize("mode", ["inotifywait", "python"])
async def test_an_overflow_is_counted_and_rescanned_and_loses_nothing(watching, root, js, small_inotify_queue,
                                                                       caplog, mode) -> None:
    caplog.set_level(logging.WARNING, logger="services.watcher.device")
    confs = root / "config/nginx/site-confs"
    confs.mkdir(parents=True)
    files = [confs / f"s{i:03d}.conf" for i in range(FILES)]
    for i, f in enumerate(files):
        f.write_text(_content(i, 0))
    w = await watching(mode, perf_interval_s=1.0, metrics_port=-1)
    small_inotify_queue()  # the watcher's inotify instances exist: the rest of the machine gets the default back
    await w.wait_for(FILES)
    await w.settle(2)
    assert [e.change_type for e in w.events] == ["CREATE"] * FILES
    before = len(w.events)
    status = await w.status()
    assert status["overflows"] == 0
    scans = status["scans"]

    reports: list[PerfReported] = []

    async def on_perf(msg) -> None:
        reports.append(events.decode(msg.data))

    await js.subscribe(w.names.perf("watcher"), ordered_consumer=True, cb=on_perf)

    # the reader is held while the files change, so the kernel queue must overflow
    procs = _watch_processes(root, mode)
    assert len(procs) == 1, f"one {mode} watch (one inotify instance) runs on the device: {procs}"
    for p in procs:
        p.send_signal(signal.SIGSTOP)
    try:
        for version in range(1, ROUNDS + 1):
            for i, f in enumerate(files):
                f.write_text(_content(i, version))
    finally:
        for p in procs:
            p.send_signal(signal.SIGCONT)
    final = {str(f): hashlib.sha256(_content(i, ROUNDS).encode()).hexdigest() for i, f in enumerate(files)}

    async def all_final() -> bool:
        latest = {e.path: e.sha256 for e in w.events}
        return latest == final

    await wait_until(all_final, timeout=WAIT_S, interval=0.2, what="every file's final version published")
    await w.settle()

    burst = w.events[before:]
    assert sorted(e.path for e in burst) == sorted(final), "each file changed once as far as anyone can tell"
    assert all(e.change_type == "MODIFY" and e.sha256 == final[e.path] for e in burst)
    # at most the queued events name a file; the rest is found by the rescan
    assert sum(e.trigger == "scan" for e in burst) >= FILES - SMALL_QUEUE
    pairs = Counter((e.path, e.sha256) for e in w.events)
    assert [p for p, n in pairs.items() if n > 1] == [], "no version published twice"

    status = await w.status()
    assert status["overflows"] == 1, "the kernel reports one overflow until the queue is read"
    assert status["scans"] == scans + 1, "one rescan followed it"
    logged = [r for r in caplog.records if "inotify queue overflow; rescanning" in r.getMessage()]
    assert len(logged) == status["overflows"]

    async def overflows_reported() -> int:
        n = sum(r.error_types.get("inotify_overflow", 0) for r in reports)
        return n if n == status["overflows"] else 0

    await wait_until(overflows_reported, timeout=WAIT_S, what="the overflow in the watcher's perf counters")
