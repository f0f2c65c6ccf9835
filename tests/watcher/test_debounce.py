"""When a batch of changed paths is released (pure: the clock is passed in)."""

from __future__ import annotations

from services.watcher.debounce import Batch
from services.watcher.remote import FileStat

QUIET, FINAL, MAX = 0.2, 0.015, 2.0
CLOSE_WRITE = frozenset({"CLOSE_WRITE", "CLOSE"})


def stat(path: str) -> FileStat:
    return FileStat(path, 1, 0.0, "root", "0644", "ab" * 32)


def batch() -> Batch:
    return Batch(QUIET, FINAL, MAX)


def test_a_final_event_with_the_files_state_waits_only_the_short_window() -> None:
    b = batch()
    b.event("/a", frozenset({"CREATE"}), 10.0, 1000.0)
    b.event("/a", CLOSE_WRITE, 10.001, 1000.001)
    assert b.due() == 10.001 + QUIET, "until the state read after the event has arrived"
    b.state("/a", stat("/a"), b"x", known=False)
    assert b.due() == 10.001 + FINAL
    out = b.take()
    assert out.pending == {"/a": 1000.0} and out.states == {"/a": (stat("/a"), b"x")} and not out.rescan
    assert b.due() is None


def test_an_event_after_the_state_makes_it_stale_and_other_events_wait_the_quiet_window() -> None:
    b = batch()
    b.event("/a", CLOSE_WRITE, 10.0, 1.0)
    b.state("/a", stat("/a"), b"x", known=True)
    b.event("/a", frozenset({"ATTRIB"}), 10.01, 1.01)
    assert b.due() == 10.01 + QUIET
    assert b.take().states == {}, "a state read before the last event is not used"


def test_the_batch_waits_for_its_slowest_path_but_not_beyond_the_maximum_delay() -> None:
    b = batch()
    b.event("/moved-away", frozenset({"MOVED_FROM"}), 10.0, 1.0)
    b.state("/moved-away", None, None, known=True)
    b.event("/moved-here", frozenset({"MOVED_TO"}), 10.0, 1.0)
    b.state("/moved-here", stat("/moved-here"), b"x", known=False)
    assert b.due() == 10.0 + QUIET, "both paths of a rename are released together (a MOVE)"
    for i in range(1, 100):  # a path that keeps changing
        b.event("/busy", CLOSE_WRITE, 10.0 + i * 0.1, 1.0)
        b.state("/busy", stat("/busy"), b"x", known=True)
    assert b.due() == 10.0 + MAX


def test_a_file_never_published_and_gone_again_leaves_the_batch() -> None:
    b = batch()
    b.event("/.a.tmp", CLOSE_WRITE, 10.0, 1.0)
    b.event("/.a.tmp", frozenset({"MOVED_FROM"}), 10.0, 1.0)
    b.state("/.a.tmp", None, None, known=False)
    assert b.due() is None and b.take().pending == {}
    b.event("/gone", frozenset({"DELETE"}), 11.0, 2.0)
    b.state("/gone", None, None, known=True)
    assert b.take().states == {"/gone": (None, None)}, "a published file that is gone is a DELETE"


def test_a_rescan_waits_the_quiet_window() -> None:
    b = batch()
    b.need_rescan(5.0)
    assert b.due() == 5.0 + QUIET
    assert b.take().rescan
