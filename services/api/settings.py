"""Settings of the API service: the shared settings plus the API's own knobs."""

from __future__ import annotations

from pydantic import Field

from shared.settings import Settings

# Freshness thresholds (seconds) used when neither an override nor the cached event names one.
SEED_FRESHNESS_S = {"containers": 30, "system_metrics": 300, "drive_health": 3600}
DEFAULT_FRESHNESS_S = 300


class ApiSettings(Settings):
    """INFRAWATCH_API_* variables on top of the shared ones."""

    api_refresh_timeout_s: float = Field(default=10.0, gt=0, description="wait for a refreshed collection")
    api_sse_heartbeat_s: float = Field(default=15.0, gt=0, description="comment line sent on idle event streams")
    api_key_cache_s: float = Field(default=5.0, ge=0, description="remember an authenticated key this long (0: off)")
    api_audit_drain_s: float = Field(default=5.0, ge=0, description="wait for pending audit publishes at shutdown")
    api_max_body_bytes: int = Field(default=64 * 1024, ge=1024, description="larger request bodies are refused (413)")
    api_sse_max_clients: int = Field(default=100, ge=1, description="event streams open at once (more: 503)")
    api_sse_buffer_bytes: int = Field(default=4 << 20, ge=1 << 16, description="unsent events per stream client")
    api_failed_refresh_cache_s: float = Field(default=5.0, ge=0, description="a failed refresh answers reads this "
                                              "long, doubling while it keeps failing (at most 60 s)")
    alerts_webhook_allow_private: bool = Field(default=False, description="rules may name private webhook targets")
    api_db_pool_size: int = Field(default=20, ge=1, le=500, description="database connections kept per worker")
    api_workers: int = Field(default=1, ge=1, le=64, description="uvicorn worker processes, each with its own mirrors")

    @classmethod
    def of(cls, settings: Settings) -> ApiSettings:
        """The API settings for ``settings`` (API fields from the environment unless already set)."""
        if isinstance(settings, cls):
            return settings
        return cls(**settings.model_dump())

    def freshness_s(self, data_type: str, event_threshold: int | None) -> int:
        """Override, else the event's own threshold, else the seed default."""
        if data_type in self.freshness_overrides:
            return self.freshness_overrides[data_type]
        if event_threshold is not None:
            return event_threshold
        return SEED_FRESHNESS_S.get(data_type, DEFAULT_FRESHNESS_S)
