"""The evaluator's own settings: the shared ones plus INFRAWATCH_ALERTS_* variables."""

from __future__ import annotations

from pydantic import Field

from shared.settings import Settings


class AlertSettings(Settings):
    """Settings of the alert evaluator; every field is ``INFRAWATCH_ALERTS_<NAME>``."""

    alerts_durable: str = "alerts"  # one durable pull consumer per stream, shared by every instance
    alerts_notify_durable: str = "alerts-notify"
    alerts_batch_size: int = Field(default=100, ge=1)
    alerts_batch_wait_s: float = Field(default=0.5, gt=0)
    alerts_webhook_timeout_s: float = Field(default=10.0, gt=0)
    alerts_webhook_attempts: int = Field(default=5, ge=1)
    alerts_webhook_backoff_s: float = Field(default=1.0, ge=0)  # doubled after each failed attempt
    alerts_webhook_backoff_max_s: float = Field(default=60.0, ge=0)
    alerts_webhook_concurrency: int = Field(default=8, ge=1)
    alerts_webhook_allow_private: bool = False  # loopback, link-local and private targets (tests, a LAN receiver)
    # the API's public URL (e.g. https://infrawatch.example): ntfy and slack messages link to the device's page
    alerts_dashboard_url: str | None = None
    alerts_tick_s: float = Field(default=0.0, ge=0)  # no_data checks; 0: a quarter of the shortest interval, <= 30 s
    # The collector's intervals (INFRAWATCH_COLLECTOR_INTERVAL_OVERRIDES): no_data counts in them.
    collector_interval_overrides: dict[str, float] = {}


def alert_settings(settings: Settings) -> AlertSettings:
    """The evaluator's settings: the given ones, plus the alerts fields read from the environment."""
    if isinstance(settings, AlertSettings):
        return settings
    return AlertSettings(**settings.model_dump())
