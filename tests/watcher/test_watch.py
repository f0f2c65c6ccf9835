"""The watcher over a real sshd with real inotifywait, the python3 inotify loop and polling:
every change arrives once, with the right type and content."""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.watcher.conftest import MODES

pytestmark = pytest.mark.ssh


@pytest.fixture(params=list(MODES))
def mode(request) -> str:
    return request.param


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


async def test_create_modify_delete_move(watching, root, mode) -> None:
    confs = root / "config/nginx/proxy-confs"
    confs.mkdir(parents=True)
    w = await watching(mode)
    conf = confs / "radarr.subdomain.conf"
    first = b"server {\n  server_name radarr.*;\n  location / { proxy_pass http://radarr:7878; }\n}\n"
    conf.write_bytes(first)
    created = (await w.wait_for(1))[0]
    assert (created.change_type, created.path, created.config_type) == ("CREATE", str(conf), "proxy_configs")
    assert created.sha256 == sha(first) and created.previous_sha256 is None and created.content == first.decode()
    assert created.parsed["server_names"] == ["radarr.*"] and created.watch_mode == mode
    assert created.size == len(first) and created.mode == "0644" and created.owner
    if mode == "poll":  # a poll does not know when the file changed
        assert created.detection_latency_ms is None
    else:
        assert created.detection_latency_ms is not None and created.detection_latency_ms >= 0

    second = first.replace(b"7878", b"7879")
    conf.write_bytes(second)
    modified = (await w.wait_for(2))[1]
    assert (modified.change_type, modified.sha256, modified.previous_sha256) == ("MODIFY", sha(second), sha(first))
    assert "-  location / { proxy_pass http://radarr:7878; }" in modified.impact.unified_diff
    assert modified.impact.requires_reload and modified.impact.reload_services == ["nginx"]

    moved = confs / "sonarr.subdomain.conf"
    os.rename(conf, moved)
    mv = (await w.wait_for(3))[2]
    assert (mv.change_type, mv.path, mv.old_path, mv.sha256) == ("MOVE", str(moved), str(conf), sha(second))

    moved.unlink()
    gone = (await w.wait_for(4))[3]
    assert (gone.change_type, gone.path, gone.sha256, gone.previous_sha256) == ("DELETE", str(moved), None, sha(second))
    await w.settle()
    assert len(w.events) == 4, [(e.change_type, e.path) for e in w.events]


def vim_edit(path, command: str, backupcopy: str = "no") -> None:
    """Edit with real vim; backupcopy=no renames the original away and writes a new file."""
    subprocess.run(["vim", "-E", "-s", "-N", "-n", "-u", "NONE", "-i", "NONE", "-c", f"set backupcopy={backupcopy}",
                    "-c", "set writebackup", "-c", command, "-c", "wq", str(path)], check=True, timeout=60)


@pytest.mark.skipif(shutil.which("vim") is None, reason="needs vim (apt-get install vim)")
async def test_rename_replace_by_vim_and_sed_is_one_modify_each(watching, root, mode) -> None:
    units = root / "etc/systemd/system"
    units.mkdir(parents=True)
    unit = units / "app.service"
    unit.write_text("[Unit]\nDescription=app\nAfter=network.target\n\n[Service]\nExecStart=/usr/bin/app --port 1\n"
                    "\n[Install]\nWantedBy=multi-user.target\n")
    w = await watching(mode)
    # nothing was known about the device: its first scan publishes the file as created
    baseline = (await w.wait_for(1))[0]
    assert (baseline.change_type, baseline.trigger) == ("CREATE", "poll" if mode == "poll" else "scan")
    vim_edit(unit, "%s/--port 1/--port 2/")
    await w.wait_for(2)
    subprocess.run(["sed", "-i", "s/--port 2/--port 3/", str(unit)], check=True)
    await w.wait_for(3)
    vim_edit(unit, "%s/--port 3/--port 4/", backupcopy="yes")
    await w.wait_for(4)
    await w.settle()
    kinds = [(e.change_type, e.path) for e in w.events]
    assert kinds == [("CREATE", str(unit))] + [("MODIFY", str(unit))] * 3, kinds
    last = w.events[-1]
    assert "--port 4" in last.content and last.sha256 == sha(unit.read_bytes())
    assert last.parsed["exec_start"] == ["/usr/bin/app --port 4"]
    assert last.impact.restart_services == ["app.service"] and last.impact.risk_level == "HIGH"
    assert "systemctl daemon-reload" in last.impact.actions


async def test_burst_of_a_thousand_files(watching, root, mode) -> None:
    conf_d = root / "etc/nginx/conf.d"
    conf_d.mkdir(parents=True)
    w = await watching(mode)
    for i in range(1000):
        (conf_d / f"site{i}.conf").write_text(f"server {{ server_name s{i}.example.org; listen 80; }}\n")
    await w.wait_for(1000)
    for i in range(1000):
        (conf_d / f"site{i}.conf").write_text(f"server {{ server_name s{i}.example.org; listen 8080; }}\n")
    await w.wait_for(2000)
    await w.settle()
    assert len(w.events) == 2000
    for i in (0, 499, 999):
        kinds = [e.change_type for e in w.of(conf_d / f"site{i}.conf")]
        assert kinds == ["CREATE", "MODIFY"], (i, kinds)
    assert {e.parsed["listen"][0] for e in w.events if e.change_type == "MODIFY"} == {"8080"}


async def test_a_path_with_spaces_quotes_and_command_substitution(watching, root, mode) -> None:
    name = f"iw-injected-{os.getpid()}"
    markers = [Path.home() / name, Path.cwd() / name, Path("/") / name]
    odd = root / "opt" / f"my app 'x' \"y\" $(touch {name}) `touch {name}`; touch {name}"
    odd.mkdir(parents=True)
    w = await watching(mode)
    compose = odd / "docker-compose.yml"
    compose.write_text("services:\n  web:\n    image: nginx:1.25\n    ports: ['8080:80']\n"
                       "    environment:\n      DB_PASSWORD: hunter2\n")
    ev = (await w.wait_for(1))[0]
    assert (ev.change_type, ev.path, ev.config_type) == ("CREATE", str(compose), "docker_compose")
    assert ev.parsed["services"]["web"]["environment"] == ["DB_PASSWORD"]
    assert "hunter2" not in ev.content and [r.name for r in ev.redactions] == ["DB_PASSWORD"]
    assert ev.sha256 == sha(compose.read_bytes())
    compose.unlink()
    assert (await w.wait_for(2))[1].change_type == "DELETE"
    assert not any(m.exists() for m in markers)


async def test_new_directories_and_files_are_picked_up(watching, root, mode) -> None:
    w = await watching(mode)
    app = root / "compose" / "media"
    app.mkdir(parents=True)  # neither directory existed when the watch started
    (app / "compose.yaml").write_text("services:\n  jellyfin:\n    image: jellyfin/jellyfin\n")
    ev = (await w.wait_for(1))[0]
    assert (ev.change_type, ev.path) == ("CREATE", str(app / "compose.yaml"))
    (app / "compose.yaml").write_text("services:\n  jellyfin:\n    image: jellyfin/jellyfin:10.9\n")
    ev = (await w.wait_for(2))[1]
    assert ev.change_type == "MODIFY" and ev.impact.risk_level == "HIGH"
    assert ev.impact.affected_services == ["jellyfin"]
    await w.settle()
    assert len(w.events) == 2
