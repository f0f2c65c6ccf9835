"""The event reference in docs/ is generated from the code and must match it."""

from pathlib import Path

from shared.schema_docs import render_json_schema, render_markdown

DOCS = Path(__file__).resolve().parent.parent / "docs"


def test_docs_events_md_is_up_to_date():
    assert (DOCS / "events.md").read_text() == render_markdown(), "run `infrawatch docs` and commit the result"


def test_docs_events_schema_is_up_to_date():
    assert (DOCS / "events.schema.json").read_text() == render_json_schema(), "run `infrawatch docs`"


def test_every_event_kind_has_a_subject():
    text = render_markdown()
    table = text.split("## Event types", 1)[1].split("\n## ", 1)[0]
    rows = [r for r in table.splitlines() if r.startswith("| `")]
    assert rows and all("| `infra." in r for r in rows), [r for r in rows if "| `infra." not in r]
