"""deploy/nats/accounts.conf: each service runs under its own NATS user, with enough rights to
do its job and none to publish outside its own subjects; TLS and nkey logins."""

from __future__ import annotations

import asyncio
import datetime
import ipaddress
import json
import os
import re
import shutil
from pathlib import Path

import httpx
import nats
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from services.api.keys import create_api_key
from shared.names import Names
from shared.runtime.bootstrap import ensure
from shared.runtime.embedded import free_port
from shared.runtime.nats_conn import connect
from shared.runtime.publish import publish_event
from shared.settings import Settings
from tests.factories import metrics_event
from tests.nats_cluster import NatsNode, password_env, passwords, render_single
from tests.util import start_service, wait_until

NAMES = Names("infra")
SERVICES = ("collector", "watcher", "writer", "api", "alerts", "policy")
PERF_REPORTERS = {"watcher", "writer", "api", "alerts", "policy"}  # the services that publish performance counters

# (user, subject it must not publish to)
FORBIDDEN = [
    ("collector", "infra.config.dev1.proxy_configs"),
    ("collector", "infra.device.dev1"),
    ("collector", "infra.refresh.dev1.system_metrics"),
    ("collector", "infra.audit.api"),
    ("collector", "infra.perf.writer"),
    ("collector", "$JS.API.STREAM.DELETE.INFRA_CONFIG"),
    ("collector", "$JS.API.STREAM.UPDATE.INFRA_CONFIG"),
    ("watcher", "infra.collected.dev1.system_metrics"),
    ("watcher", "infra.device.dev1"),
    ("watcher", "$KV.infra_cache.dev1.system_metrics"),
    ("api", "infra.collected.dev1.system_metrics"),
    ("api", "infra.config.dev1.proxy_configs"),
    ("api", "infra.alert.dev1.cpu"),
    ("writer", "infra.collected.dev1.system_metrics"),
    ("writer", "infra.device.dev1"),
    ("writer", "infra.refresh.dev1.system_metrics"),
    ("writer", "$KV.infra_cache.dev1.system_metrics"),
    ("alerts", "infra.collected.dev1.system_metrics"),
    ("alerts", "infra.device.dev1"),
    ("policy", "infra.collected.dev1.system_metrics"),
    ("policy", "infra.config.dev1.proxy_configs"),
    ("policy", "infra.device.dev1"),
    ("policy", "infra.refresh.dev1.system_metrics"),
    ("api", "$KV.infra_cache.dev1.system_metrics"),  # the api purges cache keys, never writes them
    *[(user, "$JS.API.STREAM.CREATE.INFRA_COLLECTED") for user in SERVICES],  # bootstrap's (admin's) job
    *[(user, "$JS.API.STREAM.CREATE.KV_infra_cache") for user in SERVICES],
    *[(user, f"$JS.API.CONSUMER.DELETE.{stream}.writer") for user in SERVICES
      for stream in ("INFRA_DEVICES", "INFRA_COLLECTED")],
]
# (user, subject it may publish to): the control that shows the refusals are not vacuous
ALLOWED = [
    ("collector", "infra.collected.dev1.system_metrics"),
    ("watcher", "infra.config.dev1.proxy_configs"),
    ("api", "infra.device.dev1"),
    ("api", "infra.refresh.dev1.system_metrics"),
    ("writer", "infra.dlq.writer.collected"),
    ("alerts", "infra.alert.dev1.cpu"),
]


@pytest.fixture
def secured(tmp_path):
    """nats-server running deploy/nats/single.conf (with accounts.conf) on a free port."""
    pw = passwords()
    conf, port = render_single(tmp_path / "nats")
    node = NatsNode("single", conf, port, password_env(pw)).start()
    yield node, pw
    node.stop()


def _violations(log: str) -> list[str]:
    return [line for line in log.splitlines() if "Violation" in line]


async def test_each_service_runs_end_to_end_under_its_own_user(secured, database_url, ssh_server, tmp_path):
    node, pw = secured
    settings = Settings(nats_url=node.url, database_url=database_url, subject_prefix="infra", data_dir=tmp_path,
                        instance="test", writer_batch_wait_s=0.2)
    known_hosts = tmp_path / "known_hosts"
    shutil.copy(ssh_server.known_hosts, known_hosts)
    api_port = free_port()
    common = {
        "INFRAWATCH_SSH_CLIENT_KEYS": json.dumps([str(ssh_server.client_key)]),
        "INFRAWATCH_SSH_KNOWN_HOSTS": str(known_hosts),
        "INFRAWATCH_API_PORT": str(api_port),
        "INFRAWATCH_PERF_INTERVAL_S": "2",
        "INFRAWATCH_METRICS_PORT": "-1",
    }
    key, _ = await create_api_key(database_url, "admin", "permissions")
    await _bootstrap(node, pw, settings)  # the services may not create streams
    procs = {}
    for name in SERVICES:
        env = {**common, "INFRAWATCH_NATS_USER": name, "INFRAWATCH_NATS_PASSWORD": pw[name]}
        procs[name] = await start_service(name, settings, tmp_path / f"{name}.log", env)
    admin = await nats.connect(node.url, user="admin", password=pw["admin"])
    try:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{api_port}", timeout=10,
                                     headers={"Authorization": f"Bearer {key}"}) as client:
            await wait_until(lambda: _ready(client), timeout=60, interval=0.3, what="API ready")
            r = await client.post("/devices", json={"name": "sshbox", "address": ssh_server.host,
                                                    "port": ssh_server.port, "username": ssh_server.username})
            assert r.status_code == 201, r.text

            async def metrics():
                resp = await client.get("/devices/sshbox/metrics")
                return resp.json() if resp.status_code == 200 else None

            body = await wait_until(metrics, timeout=30, interval=0.3, what="metrics from the API")
            assert body["cpu_count"] >= 1
            # the api asks the policy evaluator for a fleet evaluation, which answers under its own user
            r = await client.post("/config/policies/evaluate", json={})
            assert r.status_code == 200, r.text
            assert set(r.json()) >= {"files", "opened", "resolved", "open"}

            js = admin.jetstream()

            async def every_service_reported() -> bool:
                info = await js.stream_info(NAMES.stream_perf, subjects_filter=NAMES.all("perf"))
                reported = {s.rsplit(".", 1)[-1] for s in (info.state.subjects or {})}
                return reported >= PERF_REPORTERS

            await wait_until(every_service_reported, timeout=30, interval=0.5, what="perf counters of every service")
            info = await js.consumer_info(NAMES.stream_collected, "writer")
            await wait_until(lambda: _acked(js, info.stream_name), timeout=20, what="writer acknowledgements")
        for name, proc in procs.items():
            assert proc.returncode is None, f"{name} exited:\n{(tmp_path / f'{name}.log').read_text()[-3000:]}"
        assert not _violations(node.log()), "\n".join(_violations(node.log()))
        for name in SERVICES:
            log = (tmp_path / f"{name}.log").read_text(errors="replace")
            assert "nats error" not in log and "ermission" not in log, f"{name}:\n{log[-3000:]}"
    finally:
        await admin.close()
        for p in procs.values():
            if p.returncode is None:
                p.terminate()
        await asyncio.gather(*(p.wait() for p in procs.values()))


async def _bootstrap(node, pw, settings) -> None:
    """What `infrawatch bootstrap` does on NATS: the streams and buckets, as the admin user."""
    admin = await connect(settings.model_copy(update={"nats_user": "admin", "nats_password": pw["admin"]}),
                          "bootstrap", wait=False)
    try:
        await ensure(admin.jetstream(), settings)
    finally:
        await admin.close()


async def _acked(js, stream: str) -> bool:
    info = await js.consumer_info(stream, "writer")
    return info.delivered.stream_seq > 0 and info.num_ack_pending == 0 and info.num_pending == 0


async def _ready(client: httpx.AsyncClient) -> bool:
    try:
        return (await client.get("/ready")).status_code == 200
    except httpx.TransportError:
        return False


async def _publish_as(url: str, subject: str, admin, **login) -> tuple[list[str], bool]:
    """Publish one message logged in with ``login``; returns the errors the server sent and
    whether an admin subscriber (full rights) received it."""
    errors: list[str] = []
    got = asyncio.Event()

    async def on_error(exc: Exception) -> None:
        errors.append(str(exc))

    async def on_msg(msg) -> None:
        got.set()

    sub = await admin.subscribe(subject, cb=on_msg)
    await admin.flush()
    nc = await nats.connect(url, error_cb=on_error, allow_reconnect=False, **login)
    try:
        await nc.publish(subject, b"{}")
        await nc.flush()
        await wait_until(lambda: _settled(errors, got), timeout=5, what=f"publish to {subject} settled")
    finally:
        await nc.close()
        await sub.unsubscribe()
    return errors, got.is_set()


async def _settled(errors: list[str], got: asyncio.Event) -> bool:
    return bool(errors) or got.is_set()


async def test_a_service_cannot_publish_outside_its_subjects(secured):
    node, pw = secured
    admin = await nats.connect(node.url, user="admin", password=pw["admin"])
    try:
        for user, subject in FORBIDDEN:
            errors, received = await _publish_as(node.url, subject, admin, user=user, password=pw[user])
            assert any("permissions violation" in e.lower() for e in errors), (user, subject, errors)
            assert not received, f"{user} published to {subject}"
        for user, subject in ALLOWED:
            errors, received = await _publish_as(node.url, subject, admin, user=user, password=pw[user])
            assert received and not errors, (user, subject, errors)
    finally:
        await admin.close()
    assert all(user in node.log() for user, _ in FORBIDDEN)  # the server logs each refusal


async def test_a_wrong_password_is_refused(secured):
    node, pw = secured
    with pytest.raises(Exception):
        await nats.connect(node.url, user="collector", password=pw["writer"], allow_reconnect=False,
                           max_reconnect_attempts=0, connect_timeout=5)


def _cert(subject: str, key, issuer=None, issuer_key=None, ca: bool = False, server: bool = False):
    now = datetime.datetime.now(datetime.timezone.utc)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)])
    builder = (x509.CertificateBuilder().subject_name(name).issuer_name(issuer or name)
               .public_key(key.public_key()).serial_number(x509.random_serial_number())
               .not_valid_before(now - datetime.timedelta(minutes=5)).not_valid_after(now + datetime.timedelta(days=1))
               .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True))
    if server:
        builder = builder.add_extension(x509.SubjectAlternativeName(
            [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), critical=False)
    return builder.sign(issuer_key or key, hashes.SHA256())


def _write(path: Path, cert=None, key=None) -> Path:
    if cert is not None:
        path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    else:
        path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
        path.chmod(0o600)
    return path


def _throwaway_pki(d: Path) -> dict[str, Path]:
    """A CA, a server certificate for 127.0.0.1 and a client certificate, all signed by the CA."""
    d.mkdir(parents=True, exist_ok=True)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca = _cert("infrawatch test CA", ca_key, ca=True)
    out = {"ca": _write(d / "ca.pem", ca)}
    for who in ("server", "client"):
        key = ec.generate_private_key(ec.SECP256R1())
        cert = _cert(f"infrawatch {who}", key, issuer=ca.subject, issuer_key=ca_key, server=who == "server")
        out[f"{who}_cert"] = _write(d / f"{who}.pem", cert)
        out[f"{who}_key"] = _write(d / f"{who}-key.pem", key=key)
    return out


async def test_tls_with_client_certificates(tmp_path):
    pki = _throwaway_pki(tmp_path / "pki")
    tls = (f'tls {{\n  cert_file: "{pki["server_cert"]}"\n  key_file: "{pki["server_key"]}"\n'
           f'  ca_file: "{pki["ca"]}"\n  verify: true\n  timeout: 5\n}}\n')
    pw = passwords()
    conf, port = render_single(tmp_path / "nats", extra=tls)
    node = NatsNode("tls", conf, port, password_env(pw)).start()
    tls_env = {"INFRAWATCH_NATS_TLS_CA": str(pki["ca"]), "INFRAWATCH_NATS_TLS_CERT": str(pki["client_cert"]),
               "INFRAWATCH_NATS_TLS_KEY": str(pki["client_key"])}
    settings = Settings(nats_url=node.url, subject_prefix="infra", data_dir=tmp_path, instance="test",
                        metrics_port=-1)
    proc = None
    try:
        with pytest.raises(Exception):  # plain text: the server requires TLS
            await nats.connect(node.url, user="admin", password=pw["admin"], allow_reconnect=False,
                               max_reconnect_attempts=0, connect_timeout=5)
        admin = await connect(settings.model_copy(update={
            "nats_user": "admin", "nats_password": pw["admin"], "nats_tls_ca": pki["ca"],
            "nats_tls_cert": pki["client_cert"], "nats_tls_key": pki["client_key"]}), "test", wait=False)
        try:
            await ensure(admin.jetstream(), settings)  # bootstrap: the collector may not create streams
            # the collector, a real process, logs in over TLS and heartbeats into its bucket
            proc = await start_service("collector", settings, tmp_path / "collector.log", {
                **tls_env, "INFRAWATCH_NATS_USER": "collector", "INFRAWATCH_NATS_PASSWORD": pw["collector"],
                "INFRAWATCH_METRICS_PORT": "-1"})
            js = admin.jetstream()

            async def heartbeat() -> bool:
                try:
                    kv = await js.key_value(NAMES.collectors_bucket)
                    return bool(await kv.keys())
                except Exception:  # bucket not created yet, or no keys
                    return False

            await wait_until(heartbeat, timeout=45, interval=0.5, what="collector heartbeat over TLS")
            assert proc.returncode is None
        finally:
            await admin.close()
        assert "TLS" in node.log() or "tls" in node.log().lower()
    finally:
        if proc is not None and proc.returncode is None:
            proc.terminate()
            await proc.wait()
        node.stop()


async def test_nkey_user(tmp_path):
    nkeys = pytest.importorskip("nkeys", reason="nkey logins need the nkeys package (nats-py[nkeys])")
    seed = nkeys.encode_seed(os.urandom(32), nkeys.PREFIX_BYTE_USER)
    public = nkeys.from_seed(bytearray(seed)).public_key.decode()
    seed_file = tmp_path / "collector.nk"
    seed_file.write_bytes(seed)
    seed_file.chmod(0o600)
    pw = passwords()
    conf, port = render_single(tmp_path / "nats")
    accounts = conf.parent / "accounts.conf"
    # as accounts.conf says: the collector's password replaced by its public nkey
    text, n = re.subn(r"user: collector, password: \$COLLECTOR_NATS_PASSWORD", f"nkey: {public}",
                      accounts.read_text())
    assert n == 1
    accounts.write_text(text)
    node = NatsNode("nkey", conf, port, password_env(pw)).start()
    try:
        settings = Settings(nats_url=node.url, nats_nkey_seed=seed_file, subject_prefix="infra", data_dir=tmp_path)
        nc = await connect(settings, "collector", wait=False)  # the services' own login path
        admin = await nats.connect(node.url, user="admin", password=pw["admin"])
        try:
            got = asyncio.Event()

            async def on_msg(msg) -> None:
                got.set()

            await admin.subscribe("infra.collected.>", cb=on_msg)
            await admin.flush()
            await nc.publish("infra.collected.dev1.system_metrics", b"{}")
            await nc.flush()
            await asyncio.wait_for(got.wait(), timeout=10)
            # the nkey user keeps the collector's permissions
            errors, received = await _publish_as(node.url, "infra.device.dev1", admin, nkeys_seed=str(seed_file))
            assert any("permissions violation" in e.lower() for e in errors) and not received
        finally:
            await admin.close()
            await nc.close()
    finally:
        node.stop()


async def _login(node, pw, user: str):
    return await nats.connect(node.url, user=user, password=pw[user], allow_reconnect=False,
                              max_reconnect_attempts=0, connect_timeout=5)


async def _writer_consumer(node, pw) -> None:
    """The writer's durable consumer on the collected stream, created as the writer creates it."""
    writer = await _login(node, pw, "writer")
    try:
        await writer.jetstream().pull_subscribe(NAMES.all("collected"), durable="writer",
                                                stream=NAMES.stream_collected)
    finally:
        await writer.close()


async def test_no_service_creates_streams_or_deletes_the_writers_consumer(secured, tmp_path):
    """Streams come from the bootstrap step alone, and the writer's durable consumer survives
    a delete request by every other service (each gets no answer but the server's refusal)."""
    node, pw = secured
    settings = Settings(nats_url=node.url, subject_prefix="infra", data_dir=tmp_path, instance="test")
    for user in SERVICES:
        nc = await _login(node, pw, user)
        try:
            with pytest.raises(Exception):  # ensure() would create the missing streams
                await ensure(nc.jetstream(timeout=2), settings)
        finally:
            await nc.close()
    admin = await _login(node, pw, "admin")
    try:
        await ensure(admin.jetstream(), settings)
        await _writer_consumer(node, pw)
        jsm = admin.jetstream()
        for user in ("collector", "watcher", "api", "alerts"):
            nc = await _login(node, pw, user)
            try:
                with pytest.raises(Exception):
                    await nc.jetstream(timeout=2).delete_consumer(NAMES.stream_collected, "writer")
            finally:
                await nc.close()
            assert (await jsm.consumer_info(NAMES.stream_collected, "writer")).name == "writer", user
    finally:
        await admin.close()


async def test_the_api_may_purge_a_cache_key_but_not_write_one(secured, tmp_path):
    node, pw = secured
    settings = Settings(nats_url=node.url, subject_prefix="infra", data_dir=tmp_path, instance="test")
    admin = await _login(node, pw, "admin")
    api = await _login(node, pw, "api")
    try:
        await ensure(admin.jetstream(), settings)
        collector = await _login(node, pw, "collector")
        try:  # the collector fills the cache
            await (await collector.jetstream().key_value(NAMES.cache_bucket)).put("dev1.system_metrics", b"real")
        finally:
            await collector.close()
        api_kv = await api.jetstream(timeout=2).key_value(NAMES.cache_bucket)
        assert (await api_kv.get("dev1.system_metrics")).value == b"real"  # it reads
        with pytest.raises(Exception):
            await api_kv.put("dev1.system_metrics", b"forged")
        with pytest.raises(Exception):
            await api_kv.put("dev2.system_metrics", b"forged")
        admin_kv = await admin.jetstream().key_value(NAMES.cache_bucket)
        assert (await admin_kv.get("dev1.system_metrics")).value == b"real"
        # invalidation, as DELETE /cache/{device}/{type} does it
        await api.jetstream().purge_stream(f"KV_{NAMES.cache_bucket}",
                                           subject=f"$KV.{NAMES.cache_bucket}.dev1.system_metrics")
        with pytest.raises(Exception):
            await admin_kv.get("dev1.system_metrics")
    finally:
        await api.close()
        await admin.close()


async def test_the_api_reads_a_devices_recent_events_with_ordered_consumers(secured, tmp_path):
    """GET /devices/{device}/changes reads the collected, config and alerts streams through
    unnamed ordered consumers; a durable consumer there stays out of the api's reach."""
    node, pw = secured
    subjects = {NAMES.stream_collected: NAMES.collected("dev1", "containers"),
                NAMES.stream_config: NAMES.config("dev1", "proxy_configs"),
                NAMES.stream_alerts: NAMES.alert("dev1", "cpu-high")}
    admin = await _login(node, pw, "admin")
    try:
        await ensure(admin.jetstream(), Settings(nats_url=node.url, subject_prefix="infra", data_dir=tmp_path))
        for subject in subjects.values():
            await admin.jetstream().publish(subject, subject.encode())
    finally:
        await admin.close()
    api = await _login(node, pw, "api")
    try:
        js = api.jetstream(timeout=2)
        for stream, subject in subjects.items():
            sub = await js.subscribe(subject, stream=stream, ordered_consumer=True)
            try:
                assert (await sub.next_msg(timeout=5)).data == subject.encode()
            finally:
                await sub.unsubscribe()
            with pytest.raises(Exception):
                await js.pull_subscribe(subject, durable="api-reader", stream=stream)
    finally:
        await api.close()


async def test_the_evaluator_reads_a_devices_history_and_touches_no_other_consumer(secured, tmp_path):
    """The causes of a fired alert are read through unnamed ordered consumers on the collected,
    config and alerts streams; the alerts user still creates no stream, and cannot take over,
    read from or delete the writer's consumer."""
    from services.alerts.history import device_changes
    from tests.alerts.test_causes import DEV, nginx_change

    node, pw = secured
    settings = Settings(nats_url=node.url, subject_prefix="infra", data_dir=tmp_path, instance="test")
    now = datetime.datetime.now(datetime.UTC)
    change = nginx_change(now - datetime.timedelta(minutes=5))
    failed = metrics_event(DEV, "dev1", at=now - datetime.timedelta(minutes=3), status="error")
    admin = await _login(node, pw, "admin")
    try:
        await ensure(admin.jetstream(), settings)
        await publish_event(admin.jetstream(), NAMES.config("dev1", "proxy_configs"), change)
        await publish_event(admin.jetstream(), NAMES.collected("dev1", "system_metrics"), failed)
        await _writer_consumer(node, pw)
        before = (await admin.jetstream().consumer_info(NAMES.stream_collected, "writer")).config
        alerts = await _login(node, pw, "alerts")
        try:
            js = alerts.jetstream(timeout=2)
            got = await device_changes(js, NAMES, "dev1", DEV, now - datetime.timedelta(minutes=30), now)
            assert [c.ref for c in got] == [str(change.event_id), str(failed.event_id)]
            with pytest.raises(Exception):
                await js.add_stream(name="INFRA_FORGED", subjects=["forged.>"])
            hijack = {"stream_name": NAMES.stream_collected, "config": {
                "name": "writer", "deliver_policy": "all", "ack_policy": "none", "filter_subject": "infra.>"}}
            # an unnamed consumer cannot take the writer's name
            reply = await alerts.request(f"$JS.API.CONSUMER.CREATE.{NAMES.stream_collected}",
                                         json.dumps(hijack).encode(), timeout=2)
            assert "error" in json.loads(reply.data), reply.data
            for subject in (f"$JS.API.CONSUMER.CREATE.{NAMES.stream_collected}.writer",
                            f"$JS.API.CONSUMER.MSG.NEXT.{NAMES.stream_collected}.writer",
                            f"$JS.API.CONSUMER.DELETE.{NAMES.stream_collected}.writer"):
                with pytest.raises(Exception):
                    await alerts.request(subject, json.dumps(hijack).encode(), timeout=2)
        finally:
            await alerts.close()
        assert (await admin.jetstream().consumer_info(NAMES.stream_collected, "writer")).config == before
        with pytest.raises(Exception):
            await admin.jetstream().stream_info("INFRA_FORGED")
    finally:
        await admin.close()
