"""API: reads from the database and the cache, publishes refresh requests and device changes."""
