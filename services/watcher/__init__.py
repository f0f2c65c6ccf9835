"""Watcher: follows configuration files on devices and publishes config events."""
