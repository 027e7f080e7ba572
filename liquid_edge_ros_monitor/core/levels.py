"""Diagnostic levels as ints (no ROS imports), for the pure cores and the metrics.

The values are diagnostic_msgs' (OK 0, WARN 1, ERROR 2, STALE 3) and are also the value of every
`liquid_edge_*_status` metric. ROS-side code uses the `bytes` levels of `core.diagnostics`.
"""
OK, WARN, ERROR, STALE = 0, 1, 2, 3
LEVEL_NAMES = ('OK', 'WARN', 'ERROR', 'STALE')


def held_level(value: float, warn: float, error: float, above: bool, prev: int, margin: float,
               at_limit: bool = False) -> int:
    """The level (OK, WARN, ERROR) of `value` against a WARN and an ERROR limit (0: no such
    limit), with hysteresis: a level is entered as soon as the value is past its limit, and left
    only once the value is back inside the limit by `margin` (a fraction of the limit). `prev`
    is the level the same check gave last time, so a value that hovers at a limit does not flip
    the status at every crossing. `above`: higher is worse (latency, CPU), else lower is (rate,
    free disk). A lower limit is passed below it; `at_limit`: an upper limit is passed at it
    (host readings: CPU at exactly 90 % is WARN), else beyond it (topic thresholds)."""
    def past(limit: float, slack: float) -> bool:
        if limit <= 0:
            return False
        if above:
            edge = limit * (1 - slack)
            return value >= edge if at_limit else value > edge
        return value < limit * (1 + slack)
    level = ERROR if past(error, 0.0) else WARN if past(warn, 0.0) else OK
    for held, limit in ((ERROR, error), (WARN, warn)):
        if prev >= held > level and past(limit, margin):
            return held
    return level
