"""topic_monitor: per-topic rate, jitter, latency, bandwidth and drops from raw subscriptions."""
