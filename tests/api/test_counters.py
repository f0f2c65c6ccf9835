"""The counters of a read cost no Prometheus label lookup once warm."""

from __future__ import annotations

from shared.runtime.perf import Perf


def test_each_prometheus_child_is_looked_up_once(monkeypatch):
    perf = Perf("api")
    lookups: list[tuple] = []
    for metric in (perf._ops, perf._cached, perf._duration, perf._errors):
        original = metric.labels
        monkeypatch.setattr(metric, "labels", lambda *a, _o=original, **k: lookups.append(a) or _o(*a, **k))
    for _ in range(50):
        perf.operation("success", 1.0, cached=True)
        perf.operation("error", 2.0, error_type="read")
    assert sorted(lookups) == sorted([("api", "success"), ("api", "error"), ("api",), ("api",), ("api", "read")])
    text = perf.metrics_text().decode()
    assert 'infrawatch_operations_total{service="api",status="success"} 50.0' in text
    assert 'infrawatch_operations_cached_total{service="api"} 50.0' in text
    assert 'infrawatch_errors_total{service="api",type="read"} 50.0' in text
    assert 'infrawatch_operation_duration_seconds_count{service="api"} 100.0' in text
