"""The device-side scanner, prober and inotify loop, run here with the real tools, and the
parsing of their NUL-separated output."""

from __future__ import annotations

import asyncio
import hashlib
import os
import subprocess
from pathlib import Path

import pytest

from services.watcher import remote
from services.watcher.paths import watch_spec

ODD = "we'ird \"name\" $(x) `y`\nline.conf"


@pytest.fixture
def tree(tmp_path) -> Path:
    (tmp_path / "etc/nginx/conf.d").mkdir(parents=True)
    (tmp_path / "opt/app").mkdir(parents=True)
    (tmp_path / "etc/nginx/conf.d" / ODD).write_text("server {}\n")
    (tmp_path / "opt/app/compose.yaml").write_text("services: {}\n")
    (tmp_path / "opt/app/big.bin").write_bytes(b"\0" * 10)  # in a watched dir, matching no glob
    (tmp_path / "opt/app/deep").mkdir()
    (tmp_path / "opt/app/deep/compose.yaml").write_text("too deep\n")
    return tmp_path


@pytest.mark.parametrize("python", ["python3", None], ids=["python3", "find"])
def test_scan_and_probe_agree_between_python_and_find(tree, python) -> None:
    spec = watch_spec({}, str(tree))
    out = subprocess.run(remote.scan_argv(python, spec.file_regex, spec.dir_regex, spec.ancestors(), spec.bases()),
                         capture_output=True, check=True).stdout
    listing = remote.parse_records(out)
    odd = str(tree / "etc/nginx/conf.d" / ODD)
    compose = str(tree / "opt/app/compose.yaml")
    assert set(listing.files) == {odd, compose}
    assert listing.files[odd].sha256 == hashlib.sha256(b"server {}\n").hexdigest()
    assert listing.files[odd].mode == "0644" and listing.files[odd].size == 10
    assert {str(tree / "opt"), str(tree / "opt/app"), str(tree), "/"} <= listing.dirs
    assert str(tree / "opt/app/deep") not in listing.dirs

    probe = remote.parse_records(subprocess.run(remote.probe_argv(python, [odd, compose, str(tree / "nope")], 11),
                                                capture_output=True, check=True).stdout)
    assert probe.contents == {odd: b"server {}\n"}, "compose.yaml is over the limit: no content"
    assert probe.files[compose].sha256 == listing.files[compose].sha256
    assert probe.gone == {str(tree / "nope")}


@pytest.mark.parametrize("mode, program, python", [("inotifywait", "inotifywait", "python3"),
                                                   ("inotifywait", "inotifywait", None), ("python", "python3", "python3")],
                         ids=["inotifywait+python3", "inotifywait+sh", "python3"])
async def test_watch_stream_reports_events_and_the_files_they_name(tmp_path, mode, program, python) -> None:
    """Each event, then the state of each matching file it names, read right after it: content
    up to the limit, only the hash above it, nothing for a file that is gone."""
    spec = watch_spec({"app": [f"{tmp_path}/**/*.conf"]})
    argv = remote.watch_argv(mode, program, True, [str(tmp_path)], python=python, file_regex=spec.file_regex,
                             ignore=None, limit=16)
    proc = await asyncio.create_subprocess_exec(*argv, stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
                                                stderr=asyncio.subprocess.PIPE, start_new_session=True)
    try:
        err = b""
        async with asyncio.timeout(60):
            while remote.ESTABLISHED not in err:
                err += await proc.stderr.read(4096)
            (tmp_path / "sub").mkdir()
            await asyncio.sleep(0.5)  # the new directory gets its watch
            (tmp_path / "sub" / ODD).write_text("x")
            (tmp_path / "sub" / "big.conf").write_text("y" * 17)
            (tmp_path / "sub" / "notes.txt").write_text("not a config file")
            os.rename(tmp_path / "sub" / ODD, tmp_path / "sub" / "b.conf")
            buf, seen = b"", []
            while not any(isinstance(i, remote.Probed) and i.path.endswith("b.conf") and i.stat for i in seen):
                items, buf = remote.parse_stream(buf + await proc.stdout.read(4096))
                seen += items
        odd, big = str(tmp_path / "sub" / ODD), str(tmp_path / "sub" / "big.conf")
        events = [(i.path, i.flags) for i in seen if isinstance(i, remote.Event)]
        assert (str(tmp_path / "sub"), True) in [(p, "ISDIR" in f and "CREATE" in f) for p, f in events]
        assert any(p == odd and "CLOSE_WRITE" in f for p, f in events)
        assert any(p == odd and "MOVED_FROM" in f for p, f in events)
        states = {i.path: i for i in seen if isinstance(i, remote.Probed)}
        assert states[str(tmp_path / "sub" / "b.conf")].content == b"x"
        assert states[str(tmp_path / "sub" / "b.conf")].stat.sha256 == hashlib.sha256(b"x").hexdigest()
        assert states[big].content is None and states[big].stat.sha256 == hashlib.sha256(b"y" * 17).hexdigest()
        assert states[big].stat.size == 17 and states[big].stat.mode == "0644"
        assert str(tmp_path / "sub" / "notes.txt") not in states, "files matching no glob are not read"
    finally:
        proc.stdin.close()  # the wrapper stops the watcher when its stdin closes
        async with asyncio.timeout(30):
            assert await proc.wait() is not None
    await asyncio.sleep(0.5)
    left = subprocess.run(["pgrep", "-f", str(tmp_path)], capture_output=True, text=True).stdout.split()
    assert left == [], "nothing keeps running once the stream's stdin is closed"


def test_records_cut_short_are_ignored() -> None:
    data = b"D\0/a\0F\0/a/x\0003 1.5 root 644\0" + b"ab" * 32 + b"\0F\0/a/y\0001 2"
    listing = remote.parse_records(data)
    assert listing.dirs == {"/a"} and list(listing.files) == ["/a/x"] and listing.files["/a/x"].mode == "0644"
    items, rest = remote.parse_stream(b"E\0/a/b\0CREATE\0P\0/a/b\0\0\0-\0E\0/a/c\0CLOSE_WR")
    assert items == [remote.Event("/a/b", frozenset({"CREATE"})), remote.Probed("/a/b", None, None)]
    assert rest == b"E\0/a/c\0CLOSE_WR"


def test_a_stream_out_of_step_is_an_error() -> None:
    with pytest.raises(remote.StreamError, match="unexpected data"):
        remote.parse_stream(b"/a/b\0CREATE\0")
