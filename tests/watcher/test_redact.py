"""Redaction: values hidden, names and lines reported, variable references and prose left alone."""

from __future__ import annotations

import pytest

from services.watcher.redact import MASK, compile_rules, redact


@pytest.mark.parametrize("line, name", [
    ("POSTGRES_PASSWORD: hunter2", "POSTGRES_PASSWORD"),
    ("  - API_TOKEN=abc123", "API_TOKEN"),
    ("Environment=AWS_SECRET_ACCESS_KEY=zzz", "AWS_SECRET_ACCESS_KEY"),
    ('export GITHUB_TOKEN="ghp_x y"', "GITHUB_TOKEN"),
    ('proxy_set_header Authorization "Bearer abc.def";', "Authorization"),
    ("proxy_set_header X-Api-Key abc;", "X-Api-Key"),
    ('password = "two words"', "password"),
    ('"client_secret": "s3cr3t",', "client_secret"),
    ("url: postgres://app:s3cret@db:5432/app", "postgres"),
])
def test_secret_values_are_hidden(line: str, name: str) -> None:
    text = f"first line\n{line}\nlast line\n"
    out, found = redact(text)
    assert [(r.line, r.name) for r in found] == [(2, name)]
    assert MASK in out and out.startswith("first line\n") and out.endswith("\nlast line\n")
    for secret in ("hunter2", "abc123", "zzz", "ghp_x y", "abc.def", "abc;", "two words", "s3cr3t", "s3cret"):
        assert secret not in out


@pytest.mark.parametrize("line", [
    "DB_PASSWORD: ${DB_PASSWORD}",
    "ssl_certificate_key /etc/letsencrypt/live/example.org/privkey.pem;",
    "# set your password here",
    "image: nginx:1.27",
    "TOKEN_TTL_SECONDS_X: ''",
])
def test_non_secrets_are_kept(line: str) -> None:
    assert redact(line + "\n") == (line + "\n", [])


def test_private_key_blocks_keep_their_markers() -> None:
    text = "key: |\n  -----BEGIN OPENSSH PRIVATE KEY-----\n  b3BlbnNzaC1rZXk\n  -----END OPENSSH PRIVATE KEY-----\n"
    out, found = redact(text)
    assert "b3BlbnNzaC1rZXk" not in out and "-----END OPENSSH PRIVATE KEY-----" in out
    assert [(r.line, r.name, r.rule) for r in found] == [(2, "OPENSSH PRIVATE KEY", "private_key_block")]


def test_custom_patterns_need_a_value_group() -> None:
    rules = compile_rules([r"community (?P<value>\S+)"])
    assert redact("snmp community public42\n", rules)[0] == f"snmp community {MASK}\n"
    with pytest.raises(ValueError):
        compile_rules([r"community \S+"])
