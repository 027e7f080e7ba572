"""The terminal table of the demo and `liquid-edge-monitor run --live`: one line per topic."""
from __future__ import annotations

import sys
from typing import Iterable, List, Optional, TextIO

from .core.levels import LEVEL_NAMES
from .core.units import byte_rate
from .topics.health import TopicReport

_COLOURS = ('\x1b[32m', '\x1b[33m', '\x1b[31m', '\x1b[90m')   # OK green, WARN yellow, ERROR red
_RESET = '\x1b[0m'
_COLUMNS = ('TOPIC', 'RATE Hz', 'EXPECT', 'LAT p95', 'XPORT p95', 'BANDWIDTH', 'DROPS', 'STATUS')


def _bandwidth(bps: float) -> str:
    return byte_rate(bps)       # as /diagnostics says it


def _ms(q: Optional[object]) -> str:
    return '-' if q is None else f'{q.p95 * 1e3:.2f} ms'  # type: ignore[attr-defined]


def rows(reports: Iterable[TopicReport]) -> List[List[str]]:
    out = []
    for r in reports:
        s, c = r.snapshot, r.config
        expect = f'{c.expected_rate:g}' if c.expected_rate else (
            f'{c.min_rate:g}-{c.max_rate:g}' if c.min_rate or c.max_rate else '-')
        out.append([
            r.name,
            f'{s.rate_hz:.1f}' if s and s.rate_hz is not None else '-',
            expect,
            _ms(s.header_latency) if s else '-',
            _ms(s.transport_latency) if s else '-',
            _bandwidth(s.bandwidth_bps) if s else '-',
            (str(s.dropped_total) if s.drops_measurable else 'n/a') if s else '-',
            f'{LEVEL_NAMES[r.level]} {r.message}',
        ])
    return out


def render(reports: Iterable[TopicReport], colour: bool = False, width: int = 160) -> str:
    """The table as text; the status column is cut to `width`."""
    body = rows(reports)
    widths = [max(len(h), *(len(r[i]) for r in body)) if body else len(h)
              for i, h in enumerate(_COLUMNS)]
    lines = []
    for cells, level in [(list(_COLUMNS), None)] + [(r, _level(r)) for r in body]:
        line = '  '.join(c.ljust(w) if i == 0 else c.rjust(w) if i < 7 else c
                         for i, (c, w) in enumerate(zip(cells, widths)))[:width]
        if colour and level is not None:
            line = _COLOURS[level] + line + _RESET
        lines.append(line)
    if not body:
        lines.append('(no topics yet)')
    return '\n'.join(lines)


def _level(row: List[str]) -> int:
    return LEVEL_NAMES.index(row[7].split(' ', 1)[0])


class LiveView:
    """Prints the table periodically; redraws in place on a terminal, appends otherwise."""

    def __init__(self, stream: TextIO = sys.stdout, header: str = '') -> None:
        self.stream = stream
        self.header = header
        self.tty = stream.isatty()

    def show(self, reports: Iterable[TopicReport], footer: str = '') -> None:
        text = render(reports, colour=self.tty) + ('\n' + footer if footer else '')
        if self.tty:
            self.stream.write('\x1b[H\x1b[2J')
        if self.header:
            text = self.header + '\n' + text
        self.stream.write(text + '\n\n')
        self.stream.flush()
