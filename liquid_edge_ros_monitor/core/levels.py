"""Diagnostic levels as ints (no ROS imports), for the pure cores and the metrics.

The values are diagnostic_msgs' (OK 0, WARN 1, ERROR 2, STALE 3) and are also the value of every
`liquid_edge_*_status` metric. ROS-side code uses the `bytes` levels of `core.diagnostics`.
"""
OK, WARN, ERROR, STALE = 0, 1, 2, 3
LEVEL_NAMES = ('OK', 'WARN', 'ERROR', 'STALE')
