"""What every node of the package shares: parameters, diagnostics, Prometheus exposition, the runner.

Nothing here imports a node's folder (`topics`, `graph`, `inference`) or anything above it.
"""
