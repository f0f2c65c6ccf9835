"""The collector's own settings: the shared ones plus INFRAWATCH_COLLECTOR_* variables."""

from __future__ import annotations

from shared.settings import Settings

MiB = 1024 * 1024


class CollectorSettings(Settings):
    """Settings of the collector service; every field is ``INFRAWATCH_<NAME>``."""

    # Prefix for commands that need privileges (smartctl), e.g. '["sudo", "-n"]'; a device's
    # own ``sudo`` field wins. Never a password: use sudoers NOPASSWD for the one command.
    collector_sudo: list[str] = []
    # The only sudo prefixes a device's own ``sudo`` field may name; another one refuses the device.
    collector_sudo_allowed: list[list[str]] = [["sudo", "-n"]]
    # Device names that may use ``transport: local`` (run on this host); default: the one `up` registers.
    collector_local_devices: list[str] = ["local"]
    collector_interval_overrides: dict[str, float] = {}  # {"containers": 10}: seconds between polls
    collector_data_types: list[str] = []  # the types to poll; empty: all of them
    collector_max_concurrent: int = 64  # collections at once over all devices
    collector_max_output_bytes: int = 16 * MiB  # per command and stream; more is cut and the collection fails
    collector_first_poll_within_s: float = 2.0  # a device's first polls are spread over this
    collector_jitter_fraction: float = 0.05  # of the interval, at most collector_max_jitter_s
    collector_max_jitter_s: float = 15.0
    # Several instances share the devices: each heartbeats every collector_heartbeat_s; an
    # instance silent for collector_member_timeout_s is dead and its devices move to others.
    collector_heartbeat_s: float = 5.0
    collector_member_timeout_s: float = 15.0


def collector_settings(settings: Settings) -> CollectorSettings:
    """The collector's settings: the given ones, plus the collector fields from the environment."""
    return CollectorSettings.of(settings)
