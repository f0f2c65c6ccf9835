"""Redaction by format: YAML, nginx and systemd unit readers (each config type names its own in
``services/watcher/configtypes/``) and line patterns for the rest; ``redact.py`` runs them."""
