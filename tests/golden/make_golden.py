"""(Re)create the golden event files: one fully populated event per kind, as ``encode`` writes it.

Run it ONLY when a new schema version is deliberately introduced, into a new folder
(``python -m tests.golden.make_golden v2``), or to add the file of a new event kind; it writes
only missing files. Never use it to make tests/test_golden_events.py pass after an incompatible
change: the v1 files are what v1 producers put on the wire, and they must keep decoding.
See tests/golden/README.md.

Payloads come from the collector's captured outputs (the expected ``.json`` beside each
``.txt``), the config event from a real nginx.conf of tests/corpus/nginx run through the
watcher's change decision; a few fields no capture fills are set here, so that every field
of every struct holds a value somewhere in its file.
"""

from __future__ import annotations

import hashlib
import json
import sys
import typing
import uuid
from datetime import UTC, datetime
from pathlib import Path

import msgspec

from shared import events
from tests.golden.contract import event_info, to_json, unfilled

ROOT = Path(__file__).resolve().parents[2]
NS = uuid.UUID("0c6f1f43-3c55-4d5e-9b8e-7a1f2d3c4b5a")
AT = datetime(2024, 5, 14, 9, 30, 12, 345678, tzinfo=UTC)
DEVICE = "nas-01"


def _earlier_containers(p: typing.Any) -> typing.Any:
    """The same host before a one-shot container was cleaned up."""
    gone = msgspec.structs.replace(p.containers[-1], id="c4e5f6a7b8c9" + "0" * 52, name="certbot",
                                   image="certbot/certbot:v2.10.0")
    return msgspec.structs.replace(p, containers=[*p.containers, gone])


def _earlier_inventory(p: typing.Any) -> typing.Any:
    """The same host before a kernel and package upgrade, a pip install and a shell change."""
    first = msgspec.structs.replace(p.packages[0], version="0.0.1-r0")
    return msgspec.structs.replace(
        p, kernel="6.6.10-0-rpi", packages=[first, *p.packages[1:]], python_packages=p.python_packages[:-1],
        env=p.env | {"SHELL": "/bin/sh"})


# data type -> (the capture, how to get the previous snapshot for with_previous, or None)
SAMPLES: dict[str, tuple[str, typing.Callable | None]] = {
    "system_metrics": ("local", None),
    "containers": ("docker-24-compose", _earlier_containers),
    "drive_health": ("sas-and-failing", None),
    "network": ("debian11-docker-wireguard", None),
    "zfs": ("ubuntu-degraded", None),
    "systemd_services": ("debian12-server", None),
    "inventory": ("alpine-3.19-arm64", _earlier_inventory),
}


def uid(name: str) -> uuid.UUID:
    return uuid.uuid5(NS, name)


def envelope(kind: str, **fields: typing.Any) -> dict[str, typing.Any]:
    base = dict(
        event_id=uid(f"{kind}.event"), operation_id=uid(f"{kind}.operation"), device_id=uid(DEVICE),
        device=DEVICE, occurred_at=AT, service="collector", instance="collector-a1", trigger="refresh",
        status="partial", duration_ms=412.5, ssh_command_count=3, data_size_bytes=18234,
        error="one of the commands failed; the payload holds what the others returned",
        warnings=["a command's output was cut short"],
    )
    return base | fields


def _testdata(data_type: str) -> Path:
    for folder in (ROOT / "shared" / "datatypes" / data_type / "testdata", ROOT / "tests" / "collector" / "testdata" / data_type):
        if folder.is_dir():
            return folder
    raise SystemExit(f"no captured outputs for {data_type}")


def _payload_type(cls: type) -> type:
    (field,) = [f for f in event_info(cls).fields if f.name == "payload"]
    return next(m.cls for m in field.type.types if isinstance(m, msgspec.inspect.StructType))


def _with_previous(data_type: str, previous: typing.Any, payload: typing.Any) -> typing.Any:
    """The collector's own ``with_previous`` (the containers removed, the inventory drift)."""
    try:
        from shared.datatypes import REGISTRY
        module = REGISTRY[data_type].collect
    except ImportError:
        from services.collector.registry import DATA_TYPES
        module = DATA_TYPES[data_type]
    return module.with_previous(previous, payload)


def _declared_sample(data_type: str) -> str:
    """The capture a type's declaration names (the one the simulator answers with)."""
    from shared.datatypes import REGISTRY
    return Path(REGISTRY[data_type].sample).stem


def collected(cls: type) -> msgspec.Struct:
    data_type = events.tag_of(cls).split(".", 1)[1]
    name, previous = SAMPLES.get(data_type) or (_declared_sample(data_type), None)
    folder, ptype = _testdata(data_type), _payload_type(cls)
    payload = msgspec.json.decode((folder / f"{name}.json").read_bytes(), type=ptype)
    if previous is not None:
        payload = _with_previous(data_type, previous(payload), payload)
    FILL.get(data_type, lambda p: None)(payload)
    warnings = (folder / f"{name}.warnings").read_text().splitlines() if (folder / f"{name}.warnings").exists() else []
    return cls(**envelope(events.tag_of(cls), warnings=warnings or envelope("")["warnings"],
                          data_size_bytes=(folder / f"{name}.txt").stat().st_size),
               collection_method="ssh", force_refresh=True, freshness_threshold_s=60,
               skipped_fresh=False, served_by=uid(f"{data_type}.served_by"), payload=payload)


def _fill_containers(p: typing.Any) -> None:
    """docker ps shows no host IP for a port bound on every address; one bound to loopback has one."""
    port = next(pt for c in p.containers for pt in c.ports if pt.host_port)
    port.host_ip = "127.0.0.1"


def _fill_drive_health(p: typing.Any) -> None:
    """A drive that stopped answering after lsblk listed it (its error), beside the others."""
    sick = next(d for d in p.drives if d.failing)
    sick.error = "smartctl: Read SMART Data failed: scsi error badly formed scsi parameters"


def _fill_network(p: typing.Any) -> None:
    """An address with a label (``eth0:1``, an alias set with ifconfig)."""
    addr = next(a for i in p.interfaces for a in i.addresses if a.family == "inet" and a.scope == "global")
    addr.label = "eth0:1"


def _fill_zfs(p: typing.Any) -> None:
    """Fields the degraded pool's capture leaves empty: a scrub progress, a disk note, a log device."""
    pool = p.pools[0]
    pool.scrub_percent_done = 41.7
    disk = next(v for v in pool.vdevs if v.depth == 1)
    disk.note = "(resilvering)"
    pool.vdevs.append(type(disk)(name="nvme0n1p4", state="ONLINE", group="logs"))


FILL = {"containers": _fill_containers, "drive_health": _fill_drive_health, "network": _fill_network,
        "zfs": _fill_zfs}


def config(cls: type) -> msgspec.Struct:
    """The stock Debian nginx site, edited into a reverse proxy, through the watcher's own decision."""
    from services.watcher import changes
    from services.watcher.remote import FileStat

    src = ROOT / "tests" / "corpus" / "nginx" / "debian" / "nginx-common" / "etc" / "nginx" / "sites-available" / "default"
    before = src.read_text()
    after = before.replace("\tserver_name _;\n", "\tserver_name nas.example.org;\n", 1).replace(
        "\t\ttry_files $uri $uri/ =404;\n",
        "\t\tproxy_pass http://app;\n\t\tproxy_set_header Authorization \"Basic YWRtaW46aHVudGVyMg==\";\n", 1)
    after = "upstream app {\n\tserver 127.0.0.1:8080;\n}\n\n" + after
    assert after != before
    path, config_type = "/etc/nginx/sites-enabled/default", "proxy_configs"
    spec = events.DeviceSpec(id=uid(DEVICE), name=DEVICE)
    ctx = changes.Context(device=spec, instance="watcher-a1", watch_mode="inotifywait", trigger="watch",
                          now=AT.timestamp(), content_limit=1024 * 1024)
    known = changes.read_content(config_type, path, before.encode(), ctx)
    old = changes.Known(device_id=spec.id, path=path, config_type=config_type,
                        sha256=hashlib.sha256(before.encode()).hexdigest(), size=len(before.encode()),
                        mtime=AT.timestamp() - 86400, owner="root:root", mode="0644", text=known.text,
                        parsed=known.parsed)
    data = after.encode()
    stat = FileStat(path=path, size=len(data), mtime=AT.timestamp() - 0.8, owner="root:www-data", mode="0640",
                    sha256=hashlib.sha256(data).hexdigest())
    item = changes.Item(config_type=config_type, path=path, old=old, new=changes.Seen(stat=stat, content=data),
                        noticed_at=AT.timestamp() - 0.5)
    event = changes.diff(item, ctx)
    assert isinstance(event, cls)
    # A MODIFY has no old_path, a parse error comes without parsed data and nginx reloads rather
    # than restarts: these are set only to pin their types.
    error = "unexpected '}' in /etc/nginx/conf.d/extra.conf:12"
    impact = msgspec.structs.replace(event.impact, restart_services=["nginx"])
    return msgspec.structs.replace(event, impact=impact, old_path="/etc/nginx/sites-available/default", parse_error=error,
                                   status="partial", warnings=[f"parse error: {error}"],
                                   error="include /etc/nginx/conf.d/*.conf: one file did not parse",
                                   duration_ms=38.2, ssh_command_count=1)


def device(cls: type) -> msgspec.Struct:
    spec = events.DeviceSpec(
        id=uid(DEVICE), name=DEVICE, address="192.0.2.10", port=2222, username="infrawatch", transport="ssh",
        trust_on_first_use=True, device_type="nas", description="TrueNAS box in the rack, ZFS pools tank and backup",
        tags={"site": "home", "role": "storage"}, enabled=True, watch_paths={"proxy_configs": ["/srv/nginx/*.conf"]},
        sudo=["sudo", "-n"])
    return cls(**envelope("device", service="api", instance="api-a1", trigger="api", status="success",
                          ssh_command_count=1, error="host key not yet known; trusted on first use",
                          warnings=["port 2222 is not the default"]),
               action="updated", spec=spec)


def audit(cls: type) -> msgspec.Struct:
    return cls(**envelope("audit", trigger="api", status="success"), action="refused", data_type="zfs",
               cache_hit=True, force_refresh=True,
               detail={"reason": "device disabled", "requested_by": "api", "age_s": 12.5, "types": ["zfs"]})


def refresh(cls: type) -> msgspec.Struct:
    return cls(**envelope("refresh", service="api", instance="api-a1", trigger="api"), data_type="zfs",
               requested_by="admin@192.0.2.44")


def perf(cls: type) -> msgspec.Struct:
    return cls(**envelope("perf", trigger="poll"),
               window_s=60.0, operations_total=120, operations_successful=112, operations_failed=3,
               operations_cached=5, avg_duration_ms=231.4, min_duration_ms=12.1, max_duration_ms=2890.0,
               ssh_connections_created=2, ssh_connections_reused=118, ssh_commands_executed=367,
               cache_hit_ratio=0.042, cache_size_entries=14, cache_evictions=1, data_collected_bytes=1843211,
               database_writes=117, error_types={"timeout": 2, "unsupported": 1},
               gauges={"consumer_lag": 4.0, "pending_acks": 1.0})


def alert(cls: type) -> msgspec.Struct:
    return cls(**envelope("alert", service="alerts", instance="alerts-a1", trigger="poll", status="success"),
               rule_id=uid("rule.disk"), rule="disk over 90%", metric="disk", selector="/data*", operator=">=",
               state="fired", value=93.4, threshold=90.0, duration_s=300, since=AT.replace(minute=20),
               refire=True, detail="mount /data", message="disk over 90% on nas-01: mount /data at 93.4% (>= 90)",
               source_event_id=uid("collected.system_metrics.event"))


def alert_notification(cls: type) -> msgspec.Struct:
    return cls(**envelope("alert_notification", service="alerts", instance="alerts-a1", trigger="poll",
                          status="error", error="webhook failed after 3 attempts"),
               alert_event_id=uid("alert.event"), rule_id=uid("rule.disk"), rule="disk over 90%",
               alert_state="fired", url="https://hooks.example.com/…", format="slack", attempts=3,
               delivered=False, http_status=503, last_error="HTTP 503 Service Unavailable")


def config_violation(cls: type) -> msgspec.Struct:
    from shared.policy_events import ConfigRef

    def ref(name: str, minute: int, change: str) -> ConfigRef:
        return ConfigRef(event_id=uid(f"{name}.event"), snapshot_id=uid(f"{name}.snapshot"),
                         time=AT.replace(minute=minute), change_type=change, sha256="9f" * 32)

    return cls(**envelope("config_violation", service="policy", instance="policy-a1", trigger="watch",
                          status="success"),
               violation_id=uid("violation"), policy_id=uid("policy.socket"), policy="compose-docker-socket",
               config_type="docker_compose", path="/srv/proxy/docker-compose.yml", severity="critical",
               state="resolved", message="compose-docker-socket resolved on nas-01 /srv/proxy/docker-compose.yml: "
               "a service mounts the Docker socket", matches=["nginx-proxy"], match_count=1,
               since=AT.replace(minute=5), introduced_by=ref("config.created", 5, "CREATE"),
               fixed_by=ref("config.fixed", 25, "MODIFY"), resolution="fixed")


BUILDERS = {"device": device, "audit": audit, "refresh": refresh, "perf": perf, "config": config,
            "alert": alert, "alert_notification": alert_notification, "config_violation": config_violation}


def build(cls: type) -> msgspec.Struct:
    tag = events.tag_of(cls)
    return collected(cls) if tag.startswith("collected.") else BUILDERS[tag](cls)


def main(version: str) -> int:
    """Write the files of ``version`` that do not exist yet; an existing golden file is never rewritten."""
    out = Path(__file__).resolve().parent / version
    out.mkdir(exist_ok=True)
    problems, written = [], []
    for cls in typing.get_args(events.AnyEvent):
        tag = events.tag_of(cls)
        if (out / f"{tag}.json").exists():
            continue
        data = to_json(build(cls))
        empty = unfilled(data, event_info(cls))
        if empty:
            problems.append(f"{tag}: never filled: {', '.join(empty)}")
            continue
        (out / f"{tag}.json").write_text(json.dumps(data, indent=2, ensure_ascii=False) + "\n")
        written.append(tag)
    print("\n".join(problems) or f"wrote {len(written)} files to {out}: {', '.join(written) or 'none missing'}")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1] if len(sys.argv) > 1 else "v1"))
