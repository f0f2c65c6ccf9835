"""The structured diff of parsed configurations: paths, ops, lists by position, bounds."""

from __future__ import annotations

from services.api.structdiff import counts, structured_diff


def test_nested_changes_with_dotted_paths():
    old = {"services": {"web": {"image": "nginx:1.25.0", "ports": ["80:80"]}, "db": {"image": "postgres:16"}}}
    new = {"services": {"web": {"image": "nginx:1.25.1", "ports": ["80:80", "443:443"], "privileged": True}}}
    changes, truncated = structured_diff(old, new)
    assert not truncated
    assert changes == [
        {"path": "services.db", "op": "removed", "old": {"image": "postgres:16"}, "new": None},
        {"path": "services.web.image", "op": "changed", "old": "nginx:1.25.0", "new": "nginx:1.25.1"},
        {"path": "services.web.ports[1]", "op": "added", "old": None, "new": "443:443"},
        {"path": "services.web.privileged", "op": "added", "old": None, "new": True},
    ]
    assert counts(changes) == {"added": 2, "removed": 1, "changed": 1}


def test_identical_values_have_no_changes():
    doc = {"a": [1, {"b": None}], "c": "x"}
    assert structured_diff(doc, {"a": [1, {"b": None}], "c": "x"}) == ([], False)


def test_type_changes_and_odd_keys():
    changes, _ = structured_diff({"a.b": 1, "": True, "n": 1}, {"a.b": "1", "": 1, "n": [1]})
    assert [(c["path"], c["op"]) for c in changes] == [('[""]', "changed"), ('["a.b"]', "changed"), ("n", "changed")]
    assert structured_diff(None, {"a": 1})[0] == [{"path": "$", "op": "changed", "old": None, "new": {"a": 1}}]


def test_lists_compared_by_position():
    changes, _ = structured_diff({"l": ["a", "b", "c"]}, {"l": ["b", "c"]})
    assert [(c["path"], c["op"], c["old"], c["new"]) for c in changes] == [
        ("l[0]", "changed", "a", "b"), ("l[1]", "changed", "b", "c"), ("l[2]", "removed", "c", None)]


def test_depth_and_count_are_bounded():
    deep_old: dict = {"v": 1}
    deep_new: dict = {"v": 2}
    for _ in range(100):
        deep_old, deep_new = {"k": deep_old}, {"k": deep_new}
    changes, _ = structured_diff(deep_old, deep_new, max_depth=5)
    assert len(changes) == 1 and changes[0]["path"] == "k.k.k.k.k" and changes[0]["op"] == "changed"
    many_old = {f"k{i:03}": i for i in range(300)}
    changes, truncated = structured_diff(many_old, {}, max_changes=10)
    assert truncated and len(changes) == 10 and changes[0]["path"] == "k000"
