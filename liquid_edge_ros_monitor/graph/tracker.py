"""Which nodes are up, since when, and how often they restarted (pure bookkeeping, no ROS).

A restart is seen two ways:
- the node left the graph and came back (between two graph reads), or
- its endpoint GIDs were all replaced while it stayed listed: a process restarted faster than one
  graph period still gets a new DDS participant, so every GID of the node changes.
ROS 2 does not enforce unique node names; presence means "at least one node with this name".
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import AbstractSet, Dict, Iterable, List, Mapping, Optional


@dataclass
class NodeState:
    """One node name's history. Times are nanoseconds of the node clock."""

    name: str
    expected: bool = False
    up: bool = False
    ever_seen: bool = False
    since_ns: Optional[int] = None      # when `up` last changed (or tracking began)
    restarts: int = 0
    gids: AbstractSet[bytes] = field(default_factory=frozenset)

    def for_s(self, now_ns: int) -> Optional[float]:
        """Seconds in the current state (up or down), or None before anything is known."""
        return None if self.since_ns is None else max(0.0, (now_ns - self.since_ns) / 1e9)


class NodeTracker:
    """Feed it the graph's nodes each period; it keeps up/down times and restart counts."""

    def __init__(self, expected: Iterable[str], now_ns: int) -> None:
        self.started_ns = now_ns
        self.nodes: Dict[str, NodeState] = {
            n: NodeState(n, expected=True, since_ns=now_ns) for n in expected}

    def set_expected(self, expected: Iterable[str], now_ns: int) -> None:
        """The expected nodes are now `expected` (a run-time change): new ones are tracked from
        `now_ns`, the others keep their history as unexpected nodes."""
        want = set(expected)
        for name, s in self.nodes.items():
            s.expected = name in want
        for name in want - set(self.nodes):
            self.nodes[name] = NodeState(name, expected=True, since_ns=now_ns)

    def rebase(self, now_ns: int) -> None:
        """Start timing at `now_ns`: sim time read 0 until the first /clock message."""
        self.started_ns = now_ns
        for s in self.nodes.values():
            if s.since_ns is not None and s.since_ns < now_ns and not s.ever_seen:
                s.since_ns = now_ns

    def observe(self, present: Mapping[str, AbstractSet[bytes]], now_ns: int) -> List[str]:
        """Update from the nodes in the graph now (name -> its endpoint GIDs, possibly empty).

        Returns the names that restarted in this observation.
        """
        restarted = []
        for name, gids in present.items():
            s = self.nodes.get(name)
            if s is None:
                s = self.nodes[name] = NodeState(name)
            if not s.up:
                if s.ever_seen:
                    s.restarts += 1
                    restarted.append(name)
                s.up, s.ever_seen, s.since_ns = True, True, now_ns
            elif s.gids and gids and not (s.gids & gids):
                s.restarts += 1
                s.since_ns = now_ns
                restarted.append(name)
            if gids:
                s.gids = frozenset(gids)
        for name, s in self.nodes.items():
            if s.up and name not in present:
                s.up, s.since_ns, s.gids = False, now_ns, frozenset()
        return restarted

    def forget(self, now_ns: int, after_s: float) -> List[str]:
        """Drop unexpected nodes gone for `after_s` seconds (0 = never); return their names."""
        if after_s <= 0:
            return []
        gone = [n for n, s in self.nodes.items()
                if not s.expected and not s.up and (s.for_s(now_ns) or 0.0) >= after_s]
        for n in gone:
            del self.nodes[n]
        return gone

    def discovered(self) -> int:
        return sum(1 for s in self.nodes.values() if s.up)
