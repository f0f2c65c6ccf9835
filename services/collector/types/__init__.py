"""One module per data type: ARGV, TIMEOUT_S, RETRIES, INTERVAL_S, FRESHNESS_S, EVENT and a
pure ``parse(text) -> ParseResult``. Each is listed once in services.collector.registry."""
