"""Restarts: the last known hashes live in the watch-state KV bucket, so a restarted watcher
publishes each change made while it was away exactly once, and nothing for unchanged files."""

from __future__ import annotations

import os

import psutil
import pytest

from tests.util import wait_until

pytestmark = [pytest.mark.ssh, pytest.mark.faults]


@pytest.mark.parametrize("mode", ["inotifywait", "poll"])
async def test_changes_made_while_down_are_published_once(watching, root, mode) -> None:
    confs = root / "config/nginx/site-confs"
    confs.mkdir(parents=True)
    a, b, c, d = (confs / f"{n}.conf" for n in "abcd")
    for f in (a, b, c):
        f.write_text(f"server {{ server_name {f.stem}.example.org; listen 80; }}\n")
    w = await watching(mode)
    assert sorted(e.path for e in await w.wait_for(3)) == sorted(map(str, (a, b, c)))
    await w.settle(2)
    await w.kill()  # cancelled mid-flight, as a crash would

    b.write_text("server { server_name b.example.org; listen 8080; }\n")
    c.unlink()
    d.write_text("server { server_name d.example.org; listen 80; }\n")
    os.utime(a)  # a new mtime, the same bytes: not a change
    before = len(w.events)
    await w.start(expect_mode=mode)
    await w.wait_for(before + 3)
    await w.settle()
    after = [(e.change_type, e.path) for e in w.events[before:]]
    assert sorted(after) == sorted([("MODIFY", str(b)), ("DELETE", str(c)), ("CREATE", str(d))]), after
    modified = next(e for e in w.events[before:] if e.change_type == "MODIFY")
    # the previous version came back from the stream: the diff is complete
    assert "-server { server_name b.example.org; listen 80; }" in modified.impact.unified_diff
    assert modified.impact.summary.changed and modified.impact.risk_level == "HIGH"

    await w.kill()
    await w.start(expect_mode=mode)  # and a restart with nothing changed publishes nothing
    await w.settle()
    assert len(w.events) == before + 3


def _watch_processes(root) -> list[psutil.Process]:
    """The inotifywait processes watching below ``root`` (this test's own directory)."""
    out = []
    for p in psutil.process_iter(["name", "cmdline"]):
        cmd = p.info["cmdline"] or []
        if p.info["name"] == "inotifywait" and any(a.startswith(str(root)) for a in cmd):
            out.append(p)
    return out


def _session_of(proc: psutil.Process) -> psutil.Process:
    """The sshd process serving the connection the command runs on."""
    for parent in proc.parents():
        if parent.name().startswith("sshd"):
            return parent
    raise AssertionError(f"no sshd above {proc}")


@pytest.mark.parametrize("what", ["channel", "connection"])
async def test_a_lost_stream_or_connection_is_followed_by_a_rescan(watching, root, what) -> None:
    confs = root / "config/nginx/proxy-confs"
    confs.mkdir(parents=True)
    w = await watching("inotifywait")
    (confs / "one.conf").write_text("location /one { proxy_pass http://one:1; }\n")
    await w.wait_for(1)
    procs = _watch_processes(root)
    assert procs, "inotifywait runs on the device"
    victims = procs if what == "channel" else [_session_of(procs[0])]
    for p in victims:
        p.kill()
    (confs / "two.conf").write_text("location /two { proxy_pass http://two:2; }\n")
    got = await w.wait_for(2)
    assert [e.path for e in got] == [str(confs / "one.conf"), str(confs / "two.conf")]
    assert got[1].parsed["proxy_pass"] == ["http://two:2"]
    await w.settle()
    assert len(w.events) == 2
    assert _watch_processes(root), "watching again"
    await w.halt()
    await wait_until(lambda: _none_left(root), timeout=60, what="inotifywait gone after the watcher stopped")


async def _none_left(root) -> bool:
    return not _watch_processes(root)
