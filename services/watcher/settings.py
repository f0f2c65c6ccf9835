"""The watcher's own settings: the shared ones plus INFRAWATCH_WATCHER_* variables."""

from __future__ import annotations

from typing import Literal

from shared.settings import Settings

MiB = 1024 * 1024


class WatcherSettings(Settings):
    """Settings of the watcher service; every field is ``INFRAWATCH_WATCHER_<NAME>``."""

    watcher_root_prefix: str = ""  # prepended to the default globs (not to a device's own globs)
    # Device names that may use ``transport: local`` (read files of this host); default: the one `up` registers.
    watcher_local_devices: list[str] = ["local"]
    watcher_mode: Literal["auto", "inotifywait", "python", "poll"] = "auto"
    watcher_inotifywait: str = "inotifywait"  # command on the device
    watcher_python: str = "python3"  # command on the device, for the inotify loop and the scanner
    watcher_quiet_ms: int = 200  # a file's events are merged until it has been quiet this long
    watcher_max_delay_ms: int = 2000  # ... but a change is never held back longer than this
    watcher_final_quiet_ms: int = 15  # after a close-after-write or rename-into-place, the window is this short
    # Several instances share the devices: each heartbeats every watcher_heartbeat_s into the
    # watch-state bucket; an instance silent for watcher_member_timeout_s is dead.
    watcher_heartbeat_s: float = 5.0
    watcher_member_timeout_s: float = 7.5
    watcher_poll_interval_s: float = 10.0
    watcher_verify_interval_s: float = 1800.0
    watcher_content_limit: int = MiB
    watcher_redact: bool = True
    watcher_redact_patterns: list[str] = []  # extra regexes, each with a group named "value"
    watcher_ignore_regex: str = r"(^|/)(\.[^/]*\.sw[a-p]x?|[^/]*~|4913|\.#[^/]*|sed[A-Za-z0-9]{6})$"
    watcher_command_timeout_s: float = 120.0
    watcher_established_timeout_s: float = 60.0


def watcher_settings(settings: Settings) -> WatcherSettings:
    """The watcher's settings: the given ones, plus the watcher fields read from the environment."""
    return WatcherSettings.of(settings)
