"""The policy evaluator's settings: the alert evaluator's (its webhook settings apply to policy
webhooks too) plus INFRAWATCH_POLICY_* variables."""

from __future__ import annotations

from pydantic import Field

from services.alerts.settings import AlertSettings
from shared.settings import Settings


class PolicySettings(AlertSettings):
    """Settings of the policy evaluator; every new field is ``INFRAWATCH_POLICY_<NAME>``."""

    policy_durable: str = "policy"  # the durable pull consumer on the config stream, shared by every instance
    policy_batch_size: int = Field(default=50, ge=1)
    policy_batch_wait_s: float = Field(default=0.5, gt=0)
    policy_statement_timeout_ms: int = Field(default=5000, ge=100)  # per change: every policy's JSONPath together
    policy_poll_s: float = Field(default=5.0, gt=0)  # how often policy changes and the outbox are checked
    policy_reevaluate_s: float = Field(default=3600.0, gt=0)  # the whole fleet again, policies changed or not


def policy_settings(settings: Settings) -> PolicySettings:
    if isinstance(settings, PolicySettings):
        return settings
    return PolicySettings(**settings.model_dump())
