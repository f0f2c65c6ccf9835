"""The pure decision of one file version against its policies and open violations."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

from services.policy.evaluate import FileVersion, OpenViolation, PolicyResult, decide, event_ids
from shared.policy_events import ConfigRef

NOW = datetime(2026, 11, 29, 12, 0, tzinfo=UTC)
DEV = uuid.uuid4()
P1, P2 = uuid.uuid4(), uuid.uuid4()


def _ref(minutes: int) -> ConfigRef:
    return ConfigRef(event_id=uuid.uuid4(), snapshot_id=uuid.uuid4(), time=NOW - timedelta(minutes=minutes),
                     change_type="MODIFY", sha256="a" * 64)


def _version(minutes: int = 0) -> FileVersion:
    return FileVersion(device_id=DEV, device="web-1", config_type="docker_compose", path="/srv/compose.yaml",
                       ref=_ref(minutes), operation_id=uuid.uuid4())


def _result(pid: uuid.UUID, found: list) -> PolicyResult:
    return PolicyResult(policy_id=pid, name=f"p-{str(pid)[:4]}", severity="high", message="bad", found=found)


def _open(pid: uuid.UUID, matches: list) -> OpenViolation:
    vid = uuid.uuid4()
    return OpenViolation(id=vid, policy_id=pid, policy_name="p", severity="high", message="bad", matches=matches,
                         match_count=len(matches), opened_at=NOW - timedelta(hours=1), introduced_by=_ref(60),
                         fired_event_id=event_ids(vid)[0])


def test_a_match_without_an_open_violation_opens_one_introduced_by_this_version():
    v = _version()
    plan = decide(v, [_result(P1, ["web", "db"]), _result(P2, [])], [], NOW, "i")
    [ev] = plan.opened
    assert ev.policy_id == P1 and ev.state == "fired" and ev.matches == ["web", "db"] and ev.match_count == 2
    assert ev.introduced_by == v.ref and ev.since == v.ref.time and ev.event_id == event_ids(ev.violation_id)[0]
    assert "(web, db)" in ev.message and not plan.resolved and not plan.updated


def test_matches_are_capped_and_counted():
    [ev] = decide(_version(), [_result(P1, list(range(50)))], [], NOW, "i").opened
    assert len(ev.matches) == 20 and ev.match_count == 50 and "and 45 more" in ev.message


def test_a_still_matching_violation_is_kept_and_its_values_updated():
    o = _open(P1, ["web"])
    assert not decide(_version(), [_result(P1, ["web"])], [o], NOW, "i")
    plan = decide(_version(), [_result(P1, ["web", "db"])], [o], NOW, "i")
    assert [(u.id, u.matches) for u in plan.updated] == [(o.id, ["web", "db"])] and not plan.opened


def test_no_longer_matching_resolves_as_fixed_by_this_version():
    o, v = _open(P1, ["web"]), _version()
    [ev] = decide(v, [_result(P1, [])], [o], NOW, "i").resolved
    assert ev.violation_id == o.id and ev.resolution == "fixed" and ev.fixed_by == v.ref
    assert ev.introduced_by == o.introduced_by and ev.event_id == event_ids(o.id)[1] and ev.since == o.opened_at


def test_a_policy_gone_resolves_without_a_fixing_change():
    [ev] = decide(_version(), [_result(P2, [])], [_open(P1, ["web"])], NOW, "i").resolved
    assert ev.resolution == "policy" and ev.fixed_by is None


def test_a_version_that_did_not_parse_decides_nothing():
    assert not decide(_version(), None, [_open(P1, ["web"])], NOW, "i")


def test_a_deleted_file_resolves_everything_as_deleted():
    v = _version()
    plan = decide(v, None, [_open(P1, ["a"]), _open(P2, ["b"])], NOW, "i", gone="deleted")
    assert sorted(e.resolution or "" for e in plan.resolved) == ["deleted", "deleted"] and not plan.opened
    assert all(e.fixed_by == v.ref for e in plan.resolved)


def test_only_one_policy_and_a_policy_change_as_the_cause():
    o1, o2 = _open(P1, ["a"]), _open(P2, ["b"])
    plan = decide(_version(), [_result(P1, []), _result(P2, [])], [o1, o2], NOW, "i", only=P2, cleared="policy")
    [ev] = plan.resolved
    assert ev.violation_id == o2.id and ev.resolution == "policy" and ev.fixed_by is None
