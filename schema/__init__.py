"""The database schema: SQLAlchemy models and the Alembic migrations that own them."""
