"""The alert evaluator: rules evaluated on the event stream, alerts published, webhooks notified."""
