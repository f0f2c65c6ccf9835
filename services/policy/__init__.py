"""The configuration policy evaluator: policies on parsed configuration files, their violations."""
