"""Typed payloads carried by events, one module per data type."""
