"""The operations side: health, metrics, stats, self-monitoring, doctor, logs, tracing, retention."""
