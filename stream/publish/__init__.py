"""Where KPIs go: Prometheus /metrics, the Redis snapshot, the JSON endpoint."""
