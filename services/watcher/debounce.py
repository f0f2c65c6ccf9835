"""Which changed paths to publish, and when (pure: the caller passes the clock).

A file's change is final on ``CLOSE_WRITE`` or ``MOVED_TO``: once the watch program has sent
the file's state read after that event, the path waits only ``final_quiet`` for more events.
After any other event (create, delete, attribute change, rename away) it waits ``quiet``: the
file may be in the middle of being replaced. A batch is released when every path in it has
waited long enough, and never later than ``max_delay`` after its first event, so a burst is one
change per file and a rename is seen with both of its paths (``MOVE``).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from services.watcher.remote import FileStat

FINAL = frozenset({"CLOSE_WRITE", "MOVED_TO"})


@dataclass
class Released:
    """A batch to publish: each path with the wall time of its first event, the states read
    right after the last event of a path (when the watch program sent one), and whether a full
    rescan is needed."""

    pending: dict[str, float]
    states: dict[str, tuple[FileStat | None, bytes | None]]
    rescan: bool


@dataclass
class Batch:
    quiet: float
    final_quiet: float
    max_delay: float
    pending: dict[str, float] = field(default_factory=dict)  # path -> wall time of its first event
    last: dict[str, float] = field(default_factory=dict)  # path -> clock time of its last event
    final: set[str] = field(default_factory=set)  # paths whose last event was final
    states: dict[str, tuple[FileStat | None, bytes | None]] = field(default_factory=dict)
    rescan: bool = False
    first: float = 0.0  # clock time of the batch's first event
    rescan_at: float = 0.0

    def _touch(self, now: float) -> None:
        if not self.first:
            self.first = now

    def event(self, path: str, flags: frozenset[str] | set[str], now: float, at: float) -> None:
        """An event naming ``path`` (read at wall time ``at``): a state read before it is stale."""
        self._touch(now)
        self.pending.setdefault(path, at)
        self.last[path] = now
        self.states.pop(path, None)
        if flags & FINAL:
            self.final.add(path)
        else:
            self.final.discard(path)

    def state(self, path: str, stat: FileStat | None, content: bytes | None, known: bool) -> None:
        """The file's state as read after its latest event. A file never published and gone
        again (an editor's or installer's temporary file) leaves the batch."""
        if path not in self.pending:
            return
        if stat is None and not known:
            del self.pending[path]
            self.last.pop(path, None)
            self.final.discard(path)
            self.states.pop(path, None)
            if not self.pending and not self.rescan:
                self.first = 0.0
            return
        self.states[path] = (stat, content)

    def need_rescan(self, now: float) -> None:
        self._touch(now)
        self.rescan = True
        self.rescan_at = now

    def due(self) -> float | None:
        """Clock time at which the batch is released (None: nothing pending)."""
        if not self.pending and not self.rescan:
            return None
        waits = [self.last[p] + (self.final_quiet if p in self.final and p in self.states else self.quiet)
                 for p in self.pending]
        if self.rescan:
            waits.append(self.rescan_at + self.quiet)
        return min(max(waits), self.first + self.max_delay)

    def take(self) -> Released:
        out = Released(self.pending, {p: s for p, s in self.states.items() if p in self.pending}, self.rescan)
        self.pending, self.last, self.final, self.states = {}, {}, set(), {}
        self.rescan, self.first, self.rescan_at = False, 0.0, 0.0
        return out
