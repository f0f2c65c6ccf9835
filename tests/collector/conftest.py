"""Fixtures for the collector: it needs NATS and SSH, never a database."""

from __future__ import annotations

import shutil
import uuid
from pathlib import Path

import pytest

from shared.events import DeviceSpec
from shared.settings import Settings


@pytest.fixture
def settings(nats_url, tmp_path) -> Settings:
    """Like the top-level fixture (own subject prefix, so own streams) but without a database."""
    return Settings(nats_url=nats_url, subject_prefix=f"t{uuid.uuid4().hex[:10]}", data_dir=tmp_path, instance="test")


@pytest.fixture
def known_hosts(ssh_server, tmp_path) -> Path:
    """A copy of the test server's known_hosts that a test may change."""
    path = tmp_path / "known_hosts"
    shutil.copy(ssh_server.known_hosts, path)
    return path


@pytest.fixture
def ssh_settings(settings, ssh_server, known_hosts) -> Settings:
    return settings.model_copy(update={"ssh_client_keys": [ssh_server.client_key], "ssh_known_hosts": known_hosts})


def ssh_spec(server, name: str = "sshd", **fields) -> DeviceSpec:
    """A device pointing at the test SSH server."""
    fields.setdefault("port", server.port)
    return DeviceSpec(id=uuid.uuid4(), name=name, address=server.host, username=server.username, **fields)
