"""The evaluator's /metrics passes the Prometheus text parser and its perf rows reach the database."""

from __future__ import annotations

import uuid

from shared.names import Names
from shared.runtime.embedded import free_port
from shared.runtime.publish import publish_event
from tests.alerts.conftest import put_rule, wait_caught_up
from tests.factories import cpu, rule
from tests.util import metric_families, perf_row


async def test_metrics_parse_and_perf_rows_are_written(settings, js, services):
    port = free_port()
    await put_rule(js, settings, rule(threshold=90))
    services.writer()
    await services.evaluator(metrics_port=port, perf_interval_s=1.0)
    await publish_event(js, Names(settings.subject_prefix).collected("dev1", "system_metrics"),
                        cpu(uuid.uuid4(), 0, 10))
    await wait_caught_up(js, settings)

    row = await perf_row(settings.database_url, "alerts", "operations_total")
    assert row["instance"] == "alerts-1" and row["operations_successful"] >= 1
    families = await metric_families(port)
    ops = [s for s in families["infrawatch_operations"].samples if s.name == "infrawatch_operations_total"]
    assert ops and ops[0].labels["service"] == "alerts" and ops[0].value >= 1
    assert "infrawatch_rules" in families
