"""Redaction by format: YAML, nginx, systemd units, and line patterns for the rest (``redact.py``)."""
