"""Watching one device: a long-running inotify stream over its connection (or polling), debounced
batches of changed paths, full rescans, and publishing what ``changes.decide`` returns.

Modes, in order of preference: ``inotifywait`` on the device; a python3 inotify loop sent as
``python3 -c`` (nothing installed); polling by stat and hash. A mode that cannot start is
dropped for the next. Rescans run after a queue overflow, a lost stream or connection, a new or
removed directory, and every ``watcher_verify_interval_s``.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Mapping
from typing import Any

from nats.js import JetStreamContext

from services.watcher import remote, streams as watch_streams
from services.watcher.changes import Context, Item, Known, Seen, decide, known_after
from services.watcher.debounce import Batch
from services.watcher.paths import WatchPlan, watch_spec
from services.watcher.redact import compile_rules
from services.watcher.settings import WatcherSettings
from services.watcher.state import WatchState
from services.watcher.streams import StreamEnded, WatchUnavailable
from shared import events
from shared.config_events import ConfigChanged, WatchMode
from shared.envelope import Trigger
from shared.events import DeviceSpec
from shared.names import Names
from shared.runtime.perf import Perf
from shared.runtime.publish import publish_event
from shared.runtime.transport import TransportError, transport_pool

log = logging.getLogger(__name__)

MODES: tuple[WatchMode, ...] = ("inotifywait", "python", "poll")
PROBE_CHUNK = 100
PUBLISH_CHUNK = 64
NEVER = "(/[.]never[.]/)"
RESCAN_FLAGS = {"CREATE", "MOVED_TO", "MOVED_FROM", "DELETE", "DELETE_SELF", "MOVE_SELF"}


def _sendable(path: str) -> bool:
    """Paths that are not valid UTF-8 cannot be passed in a command; they are skipped."""
    try:
        path.encode("utf-8")
    except UnicodeEncodeError:
        if path not in _SKIPPED:
            _SKIPPED.add(path)
            log.warning("skipping a path that is not valid UTF-8: %r", path)
        return False
    return True


_SKIPPED: set[str] = set()


class RemoteError(Exception):
    """A scan or probe on the device failed."""


class DeviceWatcher:
    """Watches one device's files until cancelled."""

    def __init__(self, spec: DeviceSpec, settings: WatcherSettings, js: JetStreamContext, state: WatchState,
                 perf: Perf | None = None) -> None:
        self.spec = spec
        self.perf = perf
        self.settings = settings
        self.js = js
        self.names = Names(settings.subject_prefix)
        self.state = state
        self.transport: Any = None  # from the process's pool (shared with a collector) while running
        self.wspec = watch_spec(spec.watch_paths, settings.watcher_root_prefix, settings.watcher_ignore_regex)
        self.rules = compile_rules(settings.watcher_redact_patterns)
        self.known: dict[str, Known] = {}
        self.mode: WatchMode | None = None
        self.python: str | None = None
        self._floor = 2 if settings.watcher_mode == "poll" else 1 if settings.watcher_mode == "python" else 0
        self.published = 0
        self.scans = 0
        self.overflows = 0  # inotify queue overflows, each followed by a rescan
        self.watched_dirs = 0
        self.last_error: str | None = None

    # ------------------------------------------------------------ main loop

    async def run(self) -> None:
        backoff = 1.0
        loaded = False
        self.transport = transport_pool().acquire(self.spec, self.settings)
        try:
            while True:
                try:
                    if not loaded:
                        self.known = await self.state.load(self.spec.id)
                        loaded = True
                        log.info("%s: %d files known from the watch state", self.spec.name, len(self.known))
                    await self._detect()
                    if self.mode == "poll":
                        await self._poll()
                    else:
                        while await self._watch():
                            backoff = 1.0
                except WatchUnavailable as exc:
                    log.warning("%s: %s cannot watch (%s); falling back", self.spec.name, self.mode, exc)
                    self._floor = MODES.index(self.mode or "poll") + 1
                    continue
                except (TransportError, StreamEnded, RemoteError) as exc:
                    self.last_error = str(exc)
                    log.warning("%s: %s; retrying in %.0fs", self.spec.name, exc, backoff)
                    await self._status()
                except Exception as exc:
                    self.last_error = f"{type(exc).__name__}: {exc}"
                    log.exception("%s: watching failed; retrying in %.0fs", self.spec.name, backoff)
                    await self._status()
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 60.0)
        finally:
            await transport_pool().release(self.transport)

    async def _detect(self) -> None:
        """Pick the first mode, from the current floor, that the device supports."""
        s = self.settings
        has_python = await self._succeeds([s.watcher_python, "-c", "import ctypes, ctypes.util, hashlib, json, pwd"])
        self.python = s.watcher_python if has_python else None
        mode: WatchMode = "poll"
        for candidate in MODES[min(self._floor, 2):]:
            if candidate == "inotifywait" and await self._succeeds(["sh", "-c", 'command -v "$1"', "sh",
                                                                     s.watcher_inotifywait]):
                mode = candidate
                break
            if candidate == "python" and has_python:
                mode = candidate
                break
        if mode != self.mode:
            log.info("%s: watch mode %s (scanner: %s)", self.spec.name, mode, "python3" if self.python else "find")
        self.mode = mode

    async def _succeeds(self, argv: list[str]) -> bool:
        r = await self.transport.run(argv, timeout=self.settings.watcher_command_timeout_s, max_output=64 * 1024)
        return r.exit_status == 0

    # ------------------------------------------------------------ polling

    async def _poll(self) -> None:
        while True:
            await self._rescan("poll")
            self.last_error = None
            await self._status()
            await asyncio.sleep(self.settings.watcher_poll_interval_s)

    # ------------------------------------------------------------ inotify

    async def _watch(self) -> bool:
        """Watch until something needs a new plan (returns True) or fails (raises)."""
        listing = await self._scan(files=False)
        plan = self.wspec.plan(listing.dirs)
        streams: list[Any] = []
        tasks: list[asyncio.Task] = []
        queue: asyncio.Queue = asyncio.Queue()
        try:
            for recursive, dirs in ((True, plan.recursive), (False, plan.flat)):
                if dirs:
                    streams.append(await self._start_stream(recursive, sorted(dirs)))
            self.watched_dirs = len(plan.recursive) + len(plan.flat)
            log.info("%s: %s watching %d directories (%d recursively)", self.spec.name, self.mode,
                     self.watched_dirs, len(plan.recursive))
            for s in streams:
                tasks.append(asyncio.create_task(watch_streams.read(s, queue, self.spec.name)))
                tasks.append(asyncio.create_task(watch_streams.drain_stderr(s, self.spec.name)))
            # watches are in place: whatever changed before (or while we were away) is found now
            listing = await self._rescan("scan")
            if self.wspec.plan(listing.dirs) != plan:
                return True
            self.last_error = None
            await self._status()
            return await self._loop(queue, plan)
        finally:
            for t in tasks:
                t.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            for s in streams:
                await s.terminate()

    async def _start_stream(self, recursive: bool, dirs: list[str]):
        s = self.settings
        program = s.watcher_inotifywait if self.mode == "inotifywait" else s.watcher_python
        argv = remote.watch_argv(self.mode or "", program, recursive, dirs, python=self.python,
                                 file_regex=self.wspec.file_regex, ignore=s.watcher_ignore_regex or None,
                                 limit=s.watcher_content_limit)
        return await watch_streams.start(self.transport, argv, program, s.watcher_established_timeout_s)

    async def _loop(self, queue: asyncio.Queue, plan: WatchPlan) -> bool:
        loop = asyncio.get_running_loop()
        st = self.settings
        batch = Batch(st.watcher_quiet_ms / 1000, st.watcher_final_quiet_ms / 1000, st.watcher_max_delay_ms / 1000)
        next_verify = loop.time() + st.watcher_verify_interval_s
        while True:
            due = batch.due()
            deadline = next_verify if due is None else due
            try:
                kind, items, at = await asyncio.wait_for(queue.get(), timeout=max(0.0, deadline - loop.time()))
            except TimeoutError:
                kind, items, at = None, [], 0.0
            if kind == "ended":
                self.last_error = items[0] if items else self.last_error
                raise StreamEnded("the watch stream ended")
            now = loop.time()
            for item in items:
                if isinstance(item, remote.Probed):
                    batch.state(item.path, item.stat, item.content, item.path in self.known)
                    continue
                path, flags = item.path, item.flags
                if "Q_OVERFLOW" in flags:
                    self.overflows += 1
                    if self.perf is not None:
                        self.perf.error("inotify_overflow")
                    log.warning("%s: inotify queue overflow; rescanning", self.spec.name)
                    batch.need_rescan(now)
                elif "ISDIR" in flags or "DELETE_SELF" in flags or "MOVE_SELF" in flags:
                    if flags & RESCAN_FLAGS:
                        batch.need_rescan(now)
                elif (self.wspec.config_type(path) or path in self.known) and _sendable(path):
                    batch.event(path, flags, now, at)
            due = batch.due()
            if due is not None and now >= due:
                released = batch.take()
                if released.rescan:
                    listing = await self._rescan("scan", noticed=released.pending)
                    if self.wspec.plan(listing.dirs) != plan:
                        log.info("%s: directories changed; watching anew", self.spec.name)
                        return True
                    await self._status()
                else:
                    await self._changed(released.pending, states=released.states)
            if now >= next_verify:
                await self._rescan("scan")
                next_verify = now + st.watcher_verify_interval_s

    # ------------------------------------------------------------ scans and probes

    async def _run(self, argv: list[str], max_output: int) -> bytes:
        r = await self.transport.run(argv, timeout=self.settings.watcher_command_timeout_s, max_output=max_output)
        if r.exit_status != 0 or r.truncated:
            raise RemoteError(f"{argv[0]} failed (status {r.exit_status}, truncated {r.truncated}): "
                              f"{r.stderr.decode(errors='replace').strip()[-300:]}")
        return r.stdout

    async def _scan(self, files: bool = True) -> remote.Listing:
        argv = remote.scan_argv(self.python, self.wspec.file_regex if files else NEVER, self.wspec.dir_regex,
                                self.wspec.ancestors(), self.wspec.bases())
        self.scans += 1 if files else 0
        return remote.parse_records(await self._run(argv, 256 * 1024 * 1024))

    async def _probe(self, paths: list[str]) -> remote.Listing:
        out = remote.Listing()
        limit = self.settings.watcher_content_limit
        for i in range(0, len(paths), PROBE_CHUNK):
            chunk = paths[i:i + PROBE_CHUNK]
            room = len(chunk) * (limit * 4 // 3 + 8192) + 65536
            got = remote.parse_records(await self._run(remote.probe_argv(self.python, chunk, limit), room))
            out.files.update(got.files)
            out.contents.update(got.contents)
            out.gone |= got.gone
        return out

    async def _rescan(self, trigger: Trigger, noticed: dict[str, float] | None = None) -> remote.Listing:
        """List every matching file with its hash and publish what differs from what is known."""
        listing = await self._scan()
        noticed = noticed or {}
        files = {p: st for p, st in listing.files.items() if self.wspec.config_type(p) and _sendable(p)}
        candidates = [
            p for p in sorted(set(files) | set(self.known))
            if p not in files or p not in self.known
            or (files[p].sha256, files[p].mode, files[p].owner) != (self.known[p].sha256, self.known[p].mode,
                                                                    self.known[p].owner)
        ]
        if candidates:
            await self._changed({p: noticed.get(p) for p in candidates}, trigger, probe_only=[p for p in candidates
                                                                                            if p in files])
        return listing

    async def _changed(self, paths: Mapping[str, float | None], trigger: Trigger = "watch",
                       probe_only: list[str] | None = None,
                       states: dict[str, tuple[remote.FileStat | None, bytes | None]] | None = None) -> None:
        """Probe the paths (content and hash) whose state the watch stream did not bring, decide
        and publish."""
        states = states or {}
        wanted = sorted(paths) if probe_only is None else probe_only
        probed = await self._probe([p for p in wanted if p not in states])
        for p, (stat, content) in states.items():
            if stat is None:
                probed.gone.add(p)
                continue
            probed.files[p] = stat
            if content is not None:
                probed.contents[p] = content
        items: list[Item] = []
        for p in sorted(paths):
            config_type = self.wspec.config_type(p)
            old = self.known.get(p)
            st = probed.files.get(p) if config_type else None
            seen = Seen(st, probed.contents.get(p)) if st else None
            if old is None and seen is None:
                continue
            items.append(Item(config_type or old.config_type, p, old, seen, paths[p]))  # type: ignore[union-attr]
        if items:
            await self._publish(items, trigger)

    # ------------------------------------------------------------ publishing

    async def _previous(self, old: Known) -> None:
        """Load the text and parsed data of the last published version (after a restart)."""
        if old.text is not None or not old.seq:
            return
        try:
            msg = await self.js.get_msg(self.names.stream_config, old.seq)
            ev = events.decode(msg.data or b"")
        except Exception as exc:
            log.debug("%s: previous version of %s unavailable: %s", self.spec.name, old.path, exc)
            return
        if isinstance(ev, ConfigChanged) and ev.path == old.path and ev.sha256 == old.sha256:
            old.text, old.parsed, old.parse_error = ev.content, ev.parsed, ev.parse_error

    async def _publish(self, items: list[Item], trigger: Trigger) -> None:
        for it in items:
            if it.old is not None:
                await self._previous(it.old)
        s = self.settings
        ctx = Context(device=self.spec, instance=s.instance, watch_mode=self.mode or "poll", trigger=trigger,
                      now=time.time(), content_limit=s.watcher_content_limit, redact=s.watcher_redact,
                      rules=self.rules)
        evs = await asyncio.to_thread(decide, items, ctx)  # redaction and parsing of large files: off the loop
        for i in range(0, len(evs), PUBLISH_CHUNK):
            await asyncio.gather(*(self._publish_one(ev, ctx.now) for ev in evs[i:i + PUBLISH_CHUNK]))

    async def _publish_one(self, ev: ConfigChanged, decided_at: float) -> None:
        if ev.detection_latency_ms is not None:  # add the time spent since the decision
            ev.detection_latency_ms = round(ev.detection_latency_ms + (time.time() - decided_at) * 1000, 1)
        ack = await publish_event(self.js, self.names.config(self.spec.name, ev.config_type), ev)
        self.published += 1
        if self.perf is not None:
            self.perf.operation(ev.status, (time.time() - decided_at) * 1000)  # the watcher's own work
            self.perf.add("data_collected_bytes", ev.size or 0)
        log.info("%s: %s %s%s (%s, risk %s)", self.spec.name, ev.change_type, ev.path,
                 f" (from {ev.old_path})" if ev.old_path else "", ev.config_type,
                 ev.impact.risk_level if ev.impact else "-")
        if ev.old_path:
            self.known.pop(ev.old_path, None)
            await self.state.delete(ev.old_path)
        k = known_after(ev, ack.seq)
        if k is None:
            self.known.pop(ev.path, None)
            await self.state.delete(ev.path)
        else:
            self.known[ev.path] = k
            await self.state.put(k)

    async def _status(self) -> None:
        await self.state.status({
            "device_id": str(self.spec.id), "device": self.spec.name, "watch_mode": self.mode,
            "scanner": "python3" if self.python else "find", "instance": self.settings.instance,
            "watched_directories": self.watched_dirs, "files": len(self.known), "scans": self.scans,
            "overflows": self.overflows, "published": self.published, "error": self.last_error,
            "updated_at": events.utcnow().isoformat(),
        })


