"""cxkpi: live customer-experience KPIs from Kafka events, published for Prometheus and Grafana."""

__version__ = "0.1.0"
