"""How figures read on /diagnostics (docs/DIAGNOSTICS.md): one convention for every node.

Units go in a KeyValue's key, in parentheses ('rate (Hz)'); values are bare numbers. A message may
say a figure with its unit ('27.6 MB/s'), human-readable, since a message is read, not parsed.
"""
from __future__ import annotations

#: Messages longer than this are cut to their leading findings (rqt's tree shows about this much).
MESSAGE_MAX = 60


def byte_rate(bps: float) -> str:
    """A byte rate for a person: '27.6 MB/s', '512 B/s' (SI prefixes, as `ros2 topic bw`)."""
    for unit, scale in (('GB/s', 1e9), ('MB/s', 1e6), ('kB/s', 1e3)):
        if bps >= scale:
            return f'{bps / scale:.1f} {unit}'
    return f'{bps:.0f} B/s'


def percent(ratio: float, digits: int = 1) -> str:
    """A ratio 0..1 as a bare percentage figure for a '(%)' key: 0.1704 -> '17.0'."""
    return f'{ratio * 100:.{digits}f}'


def join_findings(findings: list, limit: int = MESSAGE_MAX) -> str:
    """Findings (worst first) joined with '; '; when they do not fit in `limit` characters, the
    leading ones that do plus ' (+N more)' (the first is always kept, however long)."""
    whole = '; '.join(findings)
    if len(whole) <= limit:
        return whole
    out, n = findings[0], 1
    while n < len(findings):
        candidate = out + '; ' + findings[n]
        if len(candidate) + len(f' (+{len(findings) - n - 1} more)') > limit:
            break
        out, n = candidate, n + 1
    return out + f' (+{len(findings) - n} more)'
