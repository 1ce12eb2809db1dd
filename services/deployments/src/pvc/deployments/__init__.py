"""The deployments service: weighted sticky A/B deployments, metric points, aggregates, guardrails."""
