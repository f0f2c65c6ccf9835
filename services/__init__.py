"""infrawatch services."""
