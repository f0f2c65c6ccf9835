"""The collector's parsers on the real outputs of the corpus: smartctl JSON, docker/podman CLI
JSON and /proc files.

Where a parser reads a capture of several commands, the capture is built from the real file
with ``capture.render`` exactly as the collector builds it: the real output under its command,
and beside it only what the data type needs to reach it (an lsblk listing naming the drive, a
ps line naming the container). Expected fields are read from the source file here.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import yaml

from shared.datatypes.capture import Output, render
from shared.datatypes.containers import collect as containers
from shared.datatypes.drive_health import collect as drive_health
from shared.datatypes.inventory import collect as inventory
from shared.datatypes.parsing import CommandFailed, ParseError, Unsupported
from shared.datatypes.system_metrics import collect as system_metrics
from tests.corpus_tests.common import CORPUS, files, rel, run

TYPED = (ParseError, Unsupported, CommandFailed)

# ---------------------------------------------------------------- smartctl --json

SMARTCTL = files("smartctl", "**/*.json")
# Failures by design in their source, each must come out as "unsupported": libblockdev's tests of
# output it must reject (exit status 7, malformed JSON, empty output), and smartctl_exporter's
# device that does not exist (exit status 1, "Unable to detect device type").
SMARTCTL_INVALID = {"smartctl/libblockdev/02_exit_err.json", "smartctl/libblockdev/04_malformed.json",
                    "smartctl/libblockdev/05_empty.json", "smartctl/smartctl_exporter/nonexistent-device.json"}


def _load(path: Path) -> dict | None:
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError:
        return None
    return doc if isinstance(doc, dict) else None


def _smartctl_capture(path: Path) -> str:
    """lsblk naming one drive, then that drive's smartctl output (with smartctl's exit status)."""
    doc = _load(path) or {}
    status = (doc.get("smartctl") or {}).get("exit_status", 0)
    lsblk = {"blockdevices": [{"name": "/dev/sda", "type": "disk", "size": None, "model": None, "serial": None,
                               "tran": None}]}
    return render([Output("lsblk", json.dumps(lsblk)),
                   Output("smartctl /dev/sda", path.read_text(encoding="utf-8"), exit_status=status)])


def _expected_temperature(doc: dict) -> int | None:
    # SCSI drives give 0 when they have no temperature log page; smartctl 7.4 may then report
    # the reading among the environmental reports.
    t = (doc.get("temperature") or {}).get("current")
    if (doc.get("device") or {}).get("protocol") == "SCSI" and not t:
        env = doc.get("scsi_environmental_reports") or {}
        t = next((r["current"] for k, r in sorted(env.items()) if k.startswith("temperature") and r.get("current")),
                 None)
    return t


def _expected_model(doc: dict) -> str | None:
    # ATA and NVMe: model_name; SCSI: vendor and product (scsi_ prefixed from smartctl 7.3 on)
    vendor, product = doc.get("scsi_vendor") or doc.get("vendor"), doc.get("scsi_product") or doc.get("product")
    return doc.get("model_name") or " ".join(x for x in (vendor, product) if x) or None


@pytest.fixture(scope="module")
def smartctl_tally():
    items = [(rel(p), lambda p=p: drive_health.parse(_smartctl_capture(p))) for p in SMARTCTL]
    return run("smartctl", items, TYPED)


def test_smartctl_corpus_parses(smartctl_tally) -> None:
    assert len(SMARTCTL) >= 100
    smartctl_tally.check_share(SMARTCTL_INVALID)
    protocols = {(_load(p) or {}).get("device", {}).get("protocol") for p in SMARTCTL}
    assert {"ATA", "NVMe", "SCSI"} <= protocols


def test_smartctl_temperature_hours_and_health_match_the_json(smartctl_tally) -> None:
    wrong = {}
    for p in SMARTCTL:
        result = smartctl_tally.parsed.get(rel(p))
        if result is None:
            continue
        doc = _load(p)
        (drive,) = result.payload.drives
        status = (doc.get("smartctl") or {}).get("exit_status", 0)
        expected = (_expected_temperature(doc), (doc.get("power_on_time") or {}).get("hours"),
                    bool(status & 0b11000), bool(status & 0b11),
                    _expected_model(doc))
        got = (drive.temperature_celsius, drive.power_on_hours, drive.failing, drive.could_not_open, drive.model)
        if got != expected:
            wrong[rel(p)] = (got, expected)
    assert not wrong, wrong


# ---------------------------------------------------------------- docker and podman CLI JSON

CONTAINERS = files("containers")


def _docker_ps_line(container_id: str, name: str, image: str = "", state: str = "running") -> str:
    return json.dumps({"ID": container_id, "Names": name, "Image": image, "State": state, "Status": "", "Ports": ""})


def _containers_capture(path: Path) -> tuple[str, dict]:
    """A capture around one real output, and what the parser must read from it."""
    text = path.read_text(encoding="utf-8")
    if path.name.startswith("docker-ps"):
        rows = [json.loads(line) for line in text.splitlines() if line.strip()]
        want = {r["ID"]: {"name": r["Names"].split(",")[0], "image": r["Image"], "state": r["State"],
                          "status": r["Status"]} for r in rows}
        return render([Output("ps", text), Output("stats", "")]), want
    if path.name.startswith("docker-") and "stats" in path.name:
        rows = [json.loads(line) for line in text.splitlines() if line.strip()]
        ps = "\n".join(_docker_ps_line(r["ID"], r["Name"]) for r in rows)
        want = {r["ID"]: {"cpu_percent": float(r["CPUPerc"].rstrip("%")), "memory_bytes": _bytes(r["MemUsage"].split("/")[0]),
                          "pids": int(r["PIDs"])} for r in rows}
        return render([Output("ps", ps), Output("stats", text)]), want
    if path.name.endswith(("container-inspect.json", "container-inspect.yaml")):
        doc = json.loads(text) if path.suffix == ".json" else yaml.safe_load(text)
        health = (doc["State"].get("Health") or {}).get("Status") or "-"
        ps = _docker_ps_line(doc["Id"], doc["Name"].lstrip("/"), doc["Config"]["Image"], doc["State"]["Status"])
        inspect = f"{doc['Id']} {doc['RestartCount']} {health}"
        want = {doc["Id"]: {"restart_count": doc["RestartCount"], "state": doc["State"]["Status"],
                            "health": None if health == "-" else health}}
        return render([Output("ps", ps), Output("stats", ""), Output("inspect", inspect)]), want
    if path.name == "podman-stats.json":
        rows = json.loads(text)
        ps = json.dumps([{"Id": r["id"], "Names": [r["name"]], "Image": "", "State": "running"} for r in rows])
        want = {r["id"]: {"name": r["name"], "memory_bytes": _bytes(r["mem_usage"].split("/")[0]), "pids": int(r["pids"])}
                for r in rows}
        return render([Output("ps", "", exit_status=127), Output("podman ps", ps), Output("podman stats", text)]), want
    raise AssertionError(f"no capture recipe for {path}")


def _bytes(text: str) -> int:
    number, unit = re.fullmatch(r"\s*([\d.]+)\s*([A-Za-z]+)\s*", text).groups()
    scale = {"B": 1, "kB": 1e3, "KB": 1e3, "MB": 1e6, "GB": 1e9, "KiB": 2**10, "MiB": 2**20, "GiB": 2**30}[unit]
    return round(float(number) * scale)


@pytest.fixture(scope="module")
def containers_tally():
    captures = {rel(p): _containers_capture(p) for p in CONTAINERS}
    tally = run("containers", [(k, lambda c=c: containers.parse(c[0])) for k, c in captures.items()], TYPED)
    return tally, captures


def test_container_corpus_parses(containers_tally) -> None:
    tally, _ = containers_tally
    assert len(CONTAINERS) >= 5
    tally.check_share()


def test_container_fields_match_the_cli_json(containers_tally) -> None:
    tally, captures = containers_tally
    wrong = {}
    for name, result in tally.parsed.items():
        want = captures[name][1]
        by_id = {c.id: c for c in result.payload.containers}
        assert set(by_id) == set(want), name
        for cid, fields in want.items():
            got = {k: getattr(by_id[cid], k) for k in fields}
            if got != fields:
                wrong[f"{name} {cid}"] = (got, fields)
    assert not wrong, wrong


# ---------------------------------------------------------------- /proc files

PROC = files("proc")
# Empty by design in its source (gopsutil's test of an empty /proc/stat).
PROC_INVALID = {"proc/gopsutil-3.22.10/cpu-times_empty/stat"}


def _lines(path: Path) -> list[tuple[int, str]]:
    return list(enumerate(path.read_text(encoding="utf-8", errors="replace").splitlines(), start=1))


# system_metrics reads each of these files; inventory reads cpuinfo and meminfo too.
SECTION_PARSERS = {
    "stat": lambda p: system_metrics.parse_cpu(_lines(p), _lines(p), []),
    "meminfo": lambda p: (system_metrics.parse_meminfo(_lines(p)), inventory.parse_meminfo(Output("meminfo", p.read_text()))),
    "loadavg": lambda p: system_metrics.parse_loadavg(_lines(p)),
    "uptime": lambda p: system_metrics.parse_uptime(_lines(p)),
    "dev": lambda p: system_metrics.parse_netdev(_lines(p)),
    "diskstats": lambda p: system_metrics.parse_diskstats(_lines(p)),
    "cpuinfo": lambda p: inventory.parse_cpuinfo(Output("cpuinfo", p.read_text())),
}


def _proc_expected(path: Path) -> object:
    """The value the section parser must find, read from the file with plain string work."""
    text = path.read_text(encoding="utf-8", errors="replace")
    if path.name == "stat":
        return max(sum(1 for line in text.splitlines() if re.match(r"cpu\d+\s", line)), 1)
    if path.name == "meminfo":
        return int(re.search(r"^MemTotal:\s+(\d+) kB", text, re.M).group(1)) * 1024
    if path.name == "cpuinfo":
        model = re.search(r"^model name\s*:\s*(.+?)\s*$", text, re.M)
        return model.group(1) if model else None, len(re.findall(r"^processor\s*:", text, re.M))
    if path.name in ("loadavg", "uptime"):
        return float(text.split()[0])
    if path.name == "dev":
        return [line.split(":")[0].strip() for line in text.splitlines() if ":" in line and "|" not in line]
    # diskstats: reads completed of every whole disk the parser keeps, by name
    return {f[2]: int(f[3]) for f in (line.split() for line in text.splitlines()) if len(f) >= 14}


def _proc_got(path: Path, value: object) -> object:
    if path.name == "stat":
        return value["cpu_count"]
    if path.name == "meminfo":
        metrics, inventory_total = value
        return metrics["memory_total_bytes"] if metrics["memory_total_bytes"] == inventory_total else (metrics, inventory_total)
    if path.name == "loadavg":
        return value["load_1"]
    if path.name == "dev":
        return [n.interface for n in value]
    if path.name == "diskstats":
        return {d.device: d.reads_completed for d in value}
    return value


@pytest.fixture(scope="module")
def proc_tally():
    return run("proc", [(rel(p), lambda p=p: SECTION_PARSERS[p.name](p)) for p in PROC], TYPED)


def test_proc_corpus_parses(proc_tally) -> None:
    assert len(PROC) >= 50 and len({p.parent for p in PROC}) >= 10 and {p.name for p in PROC} == set(SECTION_PARSERS)
    proc_tally.check_share(PROC_INVALID)


def test_proc_fields_match_the_files(proc_tally) -> None:
    wrong = {}
    for p in PROC:
        value = proc_tally.parsed.get(rel(p))
        if value is None:
            continue
        got, expected = _proc_got(p, value), _proc_expected(p)
        if p.name == "diskstats":
            expected = {k: v for k, v in expected.items() if k in got}  # partitions and virtual devices are skipped
            ok = got == expected and len(got) >= 1
        else:
            ok = got == expected
        if not ok:
            wrong[rel(p)] = (got, expected)
    assert not wrong, wrong


def _script_output(folder: Path, second_stat: Path | None = None) -> str:
    """The system_metrics script's output for one host's /proc files (no df: it is not /proc)."""
    parts = [("stat", folder / "stat"), ("stat", second_stat or folder / "stat"), ("meminfo", folder / "meminfo"),
             ("loadavg", folder / "loadavg"), ("uptime", folder / "uptime"), ("netdev", folder / "net/dev"),
             ("diskstats", folder / "diskstats")]
    out = "".join(f"@@ {name}\n{path.read_text(encoding='utf-8')}" for name, path in parts if path.exists())
    return out + "@@ df-exit\n0\n@@ end\n"


COMPLETE = sorted({p.parent for p in PROC if all((p.parent / n).exists() for n in ("stat", "meminfo", "loadavg", "uptime"))})


@pytest.mark.parametrize("folder", COMPLETE, ids=lambda f: rel(f))
def test_whole_script_output_of_each_host_parses(folder: Path) -> None:
    result = system_metrics.parse(_script_output(folder))
    metrics = result.payload
    assert metrics.uptime_seconds == float((folder / "uptime").read_text().split()[0])
    assert metrics.memory_total_bytes == _proc_expected(folder / "meminfo")
    assert [n.interface for n in metrics.network] == _proc_expected(folder / "net/dev")
    assert any("df printed nothing" in w for w in result.warnings)


def test_cpu_percent_between_two_real_samples_of_one_host() -> None:
    """sysstat's root1 and root2 are two readings of one host 31 s apart (its tests' README)."""
    base = CORPUS / "proc/sysstat-12.7.5"
    result = system_metrics.parse(_script_output(base / "root1", base / "root2/stat"))
    assert 0 < result.payload.cpu_percent <= 100
    assert not any("identical" in w for w in result.warnings)
