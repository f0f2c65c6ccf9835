"""Collector: logs in to devices, runs each data type's commands, publishes collected events."""
