"""Writer: projects the event streams into PostgreSQL/TimescaleDB."""
