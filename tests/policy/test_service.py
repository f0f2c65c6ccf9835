"""The policy evaluator on the real servers: the watcher's events of real files on NATS, the writer
and the evaluator on PostgreSQL, a webhook receiver. A violation fires when a version matches,
names the change that introduced it, and resolves naming the change that fixed it."""

from __future__ import annotations

import json
from datetime import timedelta

import nats
import pytest

from services.policy import pack
from services.writer.projections.config import row_ids
from shared import events
from shared.names import Names
from shared.runtime.publish import publish_event
from tests.alerts.receiver import Receiver
from tests.policy.conftest import CORPUS, WatchedHost, add_device, add_policy, rows, violations
from tests.util import wait_until

COMPOSE = CORPUS / "compose" / "nginx-proxy" / "docker-compose.yml"  # mounts the docker socket
PATH = "/srv/proxy/docker-compose.yml"
PACK = {p.name: p for p in pack.PACK}
SOCKET = PACK["compose-docker-socket"].jsonpath  # the default pack's rules
PRIVILEGED = PACK["compose-privileged"].jsonpath


def _without_socket(data: bytes) -> bytes:
    """The same project with the socket mount taken out (the fix an operator makes)."""
    return data.replace(b"    volumes:\n      - /var/run/docker.sock:/tmp/docker.sock:ro\n", b"")


async def _violation_rows(settings) -> list[dict]:
    return await rows(settings.database_url, "SELECT * FROM config_violations ORDER BY opened_at, policy_name")


async def test_a_violation_fires_names_its_change_resolves_when_fixed_and_reaches_the_webhook(
        settings, js, services):
    names = Names(settings.subject_prefix)
    host = WatchedHost("web-1")
    async with Receiver() as receiver:
        socket = await add_policy(settings.database_url, "compose-docker-socket", "docker_compose", SOCKET,
                                  severity="critical", message="the docker socket is mounted",
                                  webhook_url=receiver.url + "/hook/token123")
        await add_policy(settings.database_url, "compose-privileged", "docker_compose", PRIVILEGED)
        services.writer()
        await add_device(js, settings, host)
        await services.policy()
        now = events.utcnow().replace(microsecond=0)
        data = COMPOSE.read_bytes()
        created = host.change("docker_compose", PATH, data, now - timedelta(minutes=10))
        await publish_event(js, names.config(host.name, "docker_compose"), created)

        async def fired():
            return [v for v in await violations(js, settings) if v.state == "fired"]

        [ev] = await wait_until(fired, timeout=60, what="the violation to fire")
        assert ev.policy == "compose-docker-socket" and ev.policy_id == socket and ev.severity == "critical"
        assert ev.device == "web-1" and ev.device_id == host.id and ev.path == PATH
        assert ev.matches == ["nginx-proxy"] and ev.match_count == 1
        assert ev.introduced_by.event_id == created.event_id
        assert ev.introduced_by.snapshot_id == row_ids(created.event_id)[0]
        assert ev.introduced_by.sha256 == created.sha256 and ev.since == created.occurred_at
        assert "nginx-proxy" in ev.message and ev.fixed_by is None
        # the introducing change is the writer's stored snapshot, the one the diff route reads
        snap = await wait_until(lambda: rows(settings.database_url, "SELECT id, event_id FROM configuration_snapshots "
                                             "WHERE id = $1", ev.introduced_by.snapshot_id), timeout=60,
                                what="the snapshot")
        assert snap[0]["event_id"] == created.event_id

        [row] = await _violation_rows(settings)
        assert row["state"] == "open" and row["policy_name"] == "compose-docker-socket"
        assert json.loads(row["matches"]) == ["nginx-proxy"] and row["message"] == "the docker socket is mounted"

        # the webhook gets the event as it is on the wire; the token in its URL is never recorded
        [req] = await wait_until(lambda: receiver.requests, timeout=60, what="the webhook")
        assert req.path == "/hook/token123"
        body = json.loads(req.body)
        assert body["kind"] == "config_violation" and body["state"] == "fired"
        assert body["introduced_by"]["event_id"] == str(created.event_id)

        # an unrelated edit that still mounts the socket changes nothing
        edited = host.change("docker_compose", PATH, data + b"\n# comment\n", now - timedelta(minutes=5))
        await publish_event(js, names.config(host.name, "docker_compose"), edited)
        fixed = host.change("docker_compose", PATH, _without_socket(data), now - timedelta(minutes=1))
        await publish_event(js, names.config(host.name, "docker_compose"), fixed)

        async def resolved():
            return [v for v in await violations(js, settings) if v.state == "resolved"]

        [res] = await wait_until(resolved, timeout=60, what="the violation to resolve")
        assert res.violation_id == ev.violation_id and res.resolution == "fixed"
        assert res.introduced_by.event_id == created.event_id  # still the change that introduced it
        assert res.fixed_by is not None and res.fixed_by.event_id == fixed.event_id
        assert res.fixed_by.snapshot_id == row_ids(fixed.event_id)[0]
        assert len(await fired()) == 1  # the edit in between opened nothing
        [row] = await _violation_rows(settings)
        assert row["state"] == "resolved" and row["resolution"] == "fixed"
        assert json.loads(row["fixed_by"])["event_id"] == str(fixed.event_id)
        await wait_until(lambda: len(receiver.requests) == 2, timeout=60, what="the resolved webhook")
        assert json.loads(receiver.requests[1].body)["state"] == "resolved"
        notes = await wait_until(lambda: rows(settings.database_url, "SELECT * FROM alert_notifications"),
                                 timeout=60, what="the notification records")
        assert {n["rule_id"] for n in notes} == {socket} and all(n["status"] == "delivered" for n in notes)
        assert all("token123" not in n["url"] for n in notes)


async def test_deleted_broken_and_repeated_versions(settings, js, services):
    """A file that does not parse decides nothing; an older or repeated change is skipped; a deleted
    file resolves its violations as deleted."""
    names = Names(settings.subject_prefix)
    host = WatchedHost("web-2")
    await add_policy(settings.database_url, "compose-docker-socket", "docker_compose", SOCKET)
    services.writer()
    await add_device(js, settings, host)
    await services.policy()
    now = events.utcnow().replace(microsecond=0)
    subject = names.config(host.name, "docker_compose")
    created = host.change("docker_compose", PATH, COMPOSE.read_bytes(), now - timedelta(minutes=10))
    broken = host.change("docker_compose", PATH, b"services: [unclosed\n", now - timedelta(minutes=8))
    assert broken.parse_error and broken.parsed is None
    for ev in (created, broken):
        await publish_event(js, subject, ev)
    await wait_until(lambda: violations(js, settings), timeout=60, what="the violation")
    # the broken version, then the creation again (a redelivery, under another message id): no change
    stale = events.new_event(type(created), **{**{f: getattr(created, f) for f in created.__struct_fields__
                                                  if f not in ("event_id", "operation_id")},
                                               "occurred_at": now - timedelta(minutes=20)})
    await publish_event(js, subject, stale)
    deleted = host.change("docker_compose", PATH, None, now - timedelta(minutes=2))
    await publish_event(js, subject, deleted)

    async def resolved():
        return [v for v in await violations(js, settings) if v.state == "resolved"]

    [res] = await wait_until(resolved, timeout=60, what="the deletion to resolve the violation")
    assert res.resolution == "deleted" and res.fixed_by is not None and res.fixed_by.event_id == deleted.event_id
    assert res.introduced_by.event_id == created.event_id
    assert [v.state for v in await violations(js, settings)] == ["fired", "resolved"]  # the stale one opened none


async def test_a_new_policy_finds_existing_violations_with_the_change_that_introduced_them(settings, js, services):
    """Over the fleet's current files, a policy added later opens violations whose introducing
    change is the first of the file's matching versions; the request subject answers with counts."""
    names = Names(settings.subject_prefix)
    host = WatchedHost("web-3")
    services.writer()
    await add_device(js, settings, host, tags={"env": "prod"})
    await services.policy()
    now = events.utcnow().replace(microsecond=0)
    subject = names.config(host.name, "docker_compose")
    clean = host.change("docker_compose", PATH, _without_socket(COMPOSE.read_bytes()), now - timedelta(hours=3))
    mounted = host.change("docker_compose", PATH, COMPOSE.read_bytes(), now - timedelta(hours=2))
    edited = host.change("docker_compose", PATH, COMPOSE.read_bytes() + b"\n# x\n", now - timedelta(hours=1))
    for ev in (clean, mounted, edited):
        await publish_event(js, subject, ev)
    await wait_until(lambda: rows(settings.database_url, "SELECT 1 FROM config_current WHERE event_id = $1",
                                  edited.event_id), timeout=60, what="the writer")
    # a policy for other tags does not apply; one for this device's tags does
    await add_policy(settings.database_url, "socket-staging", "docker_compose", SOCKET, tags={"env": "staging"})
    pid = await add_policy(settings.database_url, "socket-prod", "docker_compose", SOCKET, tags={"env": "prod"})
    [ev] = await wait_until(lambda: violations(js, settings), timeout=60, what="the fleet evaluation")
    assert ev.policy_id == pid and ev.matches == ["nginx-proxy"]
    assert ev.introduced_by.event_id == mounted.event_id  # not the edit after it, nor the clean version before
    assert ev.introduced_by.snapshot_id == row_ids(mounted.event_id)[0]

    nc = await nats.connect(settings.nats_url)
    try:
        reply = await nc.request(names.policy_evaluate, b'{"policy_id": null}', timeout=30)
    finally:
        await nc.close()
    counts = json.loads(reply.data)
    assert counts["open"] == 1 and counts["opened"] == 0 and counts["files"] >= 1

    # disabling the policy resolves its violation as "policy", with no fixing change
    conn_rows = await rows(settings.database_url, "UPDATE config_policies SET enabled = false, updated_at = now() "
                           "WHERE id = $1 RETURNING id", pid)
    assert conn_rows

    async def resolved():
        return [v for v in await violations(js, settings) if v.state == "resolved"]

    [res] = await wait_until(resolved, timeout=60, what="the disabled policy's violation to resolve")
    assert res.resolution == "policy" and res.fixed_by is None


async def test_two_evaluators_open_one_violation(settings, js, services):
    names = Names(settings.subject_prefix)
    host = WatchedHost("web-4")
    await add_policy(settings.database_url, "compose-docker-socket", "docker_compose", SOCKET)
    services.writer()
    await add_device(js, settings, host)
    await services.policy("policy-a")
    await services.policy("policy-b")
    now = events.utcnow().replace(microsecond=0)
    paths = [f"/srv/p{i}/docker-compose.yml" for i in range(6)]
    for i, path in enumerate(paths):
        await publish_event(js, names.config(host.name, "docker_compose"),
                            host.change("docker_compose", path, COMPOSE.read_bytes(), now - timedelta(minutes=i)))
    got = await wait_until(lambda: _open_count(settings, len(paths)), timeout=60, what="a violation per file")
    assert got == len(paths)

    async def fired():
        found = [v for v in await violations(js, settings) if v.state == "fired"]
        return found if len(found) >= len(paths) else None

    opened = await wait_until(fired, timeout=60, what="the fired events")
    assert sorted(v.path for v in opened) == sorted(paths)  # one fired event per file, not one per evaluator
    assert len({v.violation_id for v in opened}) == len(paths)


async def _open_count(settings, want: int) -> int | None:
    n = len(await rows(settings.database_url, "SELECT id FROM config_violations WHERE state = 'open'"))
    return n if n >= want else None



FIXES = [
    # (config type, watched path, real file, default-pack policy, its matches, the fix an operator makes)
    ("proxy_configs", "/config/nginx/proxy-confs/grafana.subdomain.conf",
     CORPUS / "nginx" / "swag" / "grafana.subdomain.conf.sample", "nginx-tls-without-hsts", ["grafana.*"],
     lambda b: b.replace(b"    server_name grafana.*;\n",
                         b"    server_name grafana.*;\n    add_header Strict-Transport-Security \"max-age=63072000\";\n")),
    ("systemd_units", "/etc/systemd/system/cron.service", CORPUS / "systemd" / "cron" / "cron.service",
     "systemd-root-unhardened", ["cron.service"],
     lambda b: b.replace(b"KillMode=process\n", b"KillMode=process\nNoNewPrivileges=yes\nProtectSystem=full\n")),
]


@pytest.mark.parametrize(("config_type", "path", "source", "policy", "matches", "fix"), FIXES,
                         ids=[f[3] for f in FIXES])
async def test_nginx_and_systemd_violations_resolve_when_fixed(settings, js, services, config_type, path, source,
                                                               policy, matches, fix):
    names = Names(settings.subject_prefix)
    host = WatchedHost("edge-1")
    spec = PACK[policy]
    await add_policy(settings.database_url, spec.name, spec.config_type, spec.jsonpath, spec.severity, spec.message)
    services.writer()
    await add_device(js, settings, host)
    await services.policy()
    now = events.utcnow().replace(microsecond=0)
    data = source.read_bytes()
    assert fix(data) != data
    created = host.change(config_type, path, data, now - timedelta(minutes=3))
    fixed = host.change(config_type, path, fix(data), now - timedelta(minutes=1))
    for ev in (created, fixed):
        await publish_event(js, names.config(host.name, config_type), ev)

    async def both():
        found = await violations(js, settings)
        return found if len(found) == 2 else None

    fired, resolved = await wait_until(both, timeout=60, what="the violation to fire and resolve")
    assert (fired.state, resolved.state) == ("fired", "resolved") and fired.policy == policy
    assert fired.matches == matches and resolved.violation_id == fired.violation_id
    assert fired.introduced_by.event_id == resolved.introduced_by.event_id == created.event_id
    assert resolved.fixed_by is not None and resolved.fixed_by.event_id == fixed.event_id
    assert resolved.resolution == "fixed"


async def test_a_policy_that_cannot_be_evaluated_is_left_out_and_the_others_still_decide(settings, js, services,
                                                                                          caplog):
    """A JSONPath PostgreSQL refuses (stored past the API's check) costs only its own policy."""
    names = Names(settings.subject_prefix)
    host = WatchedHost("web-5")
    await add_policy(settings.database_url, "broken", "docker_compose", "$.services ? (@ like_regex")
    await add_policy(settings.database_url, "compose-docker-socket", "docker_compose", SOCKET)
    services.writer()
    await add_device(js, settings, host)
    await services.policy()
    created = host.change("docker_compose", PATH, COMPOSE.read_bytes(), events.utcnow().replace(microsecond=0))
    await publish_event(js, names.config(host.name, "docker_compose"), created)
    [ev] = await wait_until(lambda: violations(js, settings), timeout=60, what="the working policy to fire")
    assert ev.policy == "compose-docker-socket" and ev.introduced_by.event_id == created.event_id
    assert any("policy broken cannot be evaluated" in r.getMessage() for r in caplog.records)
