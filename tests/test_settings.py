"""Settings read INFRAWATCH_* variables and validate without any network."""

import pytest
from pydantic import ValidationError

from shared.settings import Settings, redact_url


def test_env_prefix_is_read(monkeypatch):
    monkeypatch.setenv("INFRAWATCH_NATS_URL", "nats://10.0.0.1:4222")
    monkeypatch.setenv("INFRAWATCH_DATABASE_URL", "postgresql://u:p@db:5432/x")
    monkeypatch.setenv("INFRAWATCH_WRITER_BATCH_SIZE", "50")
    s = Settings()
    assert s.nats_url == "nats://10.0.0.1:4222"
    assert s.writer_batch_size == 50
    assert s.sqlalchemy_url == "postgresql+asyncpg://u:p@db:5432/x"
    assert s.asyncpg_dsn == "postgresql://u:p@db:5432/x"


@pytest.mark.parametrize("field, value", [
    ("subject_prefix", "a.b"), ("subject_prefix", ""), ("database_url", "mysql://x"),
    ("writer_batch_size", "many"),
])
def test_bad_values_are_refused(field, value):
    with pytest.raises(ValidationError):
        Settings(**{field: value})


def test_passwords_are_redacted_for_logs():
    assert redact_url("postgresql://u:secret@h/db") == "postgresql://u:***@h/db"
    assert "secret" not in repr(Settings(nats_password="secret"))
