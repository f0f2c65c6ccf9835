"""Code shared by every infrawatch service: settings, event contract, NATS names and helpers."""
