"""Problems in the ROS graph, topic by topic (pure: the QoS check is passed in, no ROS imports).

Checked on every topic the node monitor sees:
- a publisher and a subscription whose QoS cannot match (reliability, durability, deadline,
  liveliness): nothing flows between them, and neither side says so;
- a topic published with more than one type;
- a topic that is subscribed but has no publisher;
- a topic that is published but has no subscription (informational: a level-0 finding, not a
  problem; on a robot most sensor topics are published for whoever comes to listen).

Endpoints of nodes ignored by configuration (`graph.ignore_nodes`) are left out of the checks,
and counted, so a message that says "no subscriber" also says how many were ignored.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, List, Mapping, Sequence, Tuple

from ..core.levels import ERROR, OK, WARN


#: (publisher QoS, subscription QoS) -> (0 ok / 1 warning / 2 error, reason); rclpy's
#: `qos_check_compatible` wrapped by the node.
QosCheck = Callable[[Any, Any], Tuple[int, str]]


@dataclass(frozen=True)
class Endpoint:
    """One publisher or subscription: its node's fully qualified name, type, and QoS profile."""

    node: str
    type: str
    qos: Any = None


@dataclass(frozen=True)
class GraphIssue:
    topic: str
    kind: str           # qos_incompatible | multiple_types | no_publishers | no_subscribers
    level: int
    message: str
    nodes: Tuple[str, ...] = ()


@dataclass
class GraphReport:
    topics: int = 0
    issues: List[GraphIssue] = field(default_factory=list)
    qos_incompatibilities: Dict[str, int] = field(default_factory=dict)

    def problems(self) -> List[GraphIssue]:
        """The issues above OK: what /diagnostics reports as a problem and the
        `liquid_edge_graph_issues` metric counts (one set, so an alert and rqt agree)."""
        return [i for i in self.issues if i.level > OK]

    def unsubscribed(self) -> List[GraphIssue]:
        """Published topics without a subscriber (informational)."""
        return [i for i in self.issues if i.kind == 'no_subscribers']

    def by_topic(self) -> Dict[str, List[GraphIssue]]:
        out: Dict[str, List[GraphIssue]] = {}
        for i in self.issues:
            out.setdefault(i.topic, []).append(i)
        return out

    def level(self) -> int:
        return max((i.level for i in self.issues), default=OK)


def _reason(text: str) -> str:
    """rclpy says 'ERROR: Best effort publisher and reliable subscription;' - keep the middle."""
    text = re.sub(r'^(ERROR|WARNING):\s*', '', text.strip())
    return text.rstrip(';').strip() or 'incompatible QoS'


def _qos_key(qos: Any) -> Any:
    """A hashable stand-in for a QoS profile (rclpy's is unhashable; its fields are in slots)."""
    try:
        hash(qos)
        return qos
    except TypeError:
        pass
    slots = getattr(type(qos), '__slots__', None)
    if not slots:
        return id(qos)          # not comparable: checked on its own
    return tuple(_hashable(getattr(qos, s, None)) for s in slots)


def _hashable(v: Any) -> Any:
    try:
        hash(v)
        return v
    except TypeError:       # rclpy's Duration: compare by its nanoseconds
        ns = getattr(v, 'nanoseconds', None)
        return ('ns', ns) if ns is not None else ('id', id(v))


def _groups(endpoints: Sequence[Endpoint]) -> Dict[Any, List[Endpoint]]:
    out: Dict[Any, List[Endpoint]] = {}
    for e in endpoints:
        out.setdefault((e.type, _qos_key(e.qos)), []).append(e)
    return out


def _ignored(n: int, what: str) -> str:
    return f" ({n} {what}{'' if n == 1 else 's'} ignored by graph.ignore_nodes)" if n else ''


def check_topic(topic: str, pubs: Sequence[Endpoint], subs: Sequence[Endpoint],
                qos_check: QosCheck, ignored_pubs: int = 0,
                ignored_subs: int = 0) -> Tuple[List[GraphIssue], int]:
    """The issues of one topic, and its number of incompatible publisher/subscription pairs.
    `ignored_pubs`, `ignored_subs`: endpoints left out by configuration, said in the messages
    that count publishers or subscribers."""
    issues: List[GraphIssue] = []
    types = sorted({e.type for e in (*pubs, *subs)})
    if len(types) > 1:
        by_type = {t: sorted({e.node for e in (*pubs, *subs) if e.type == t}) for t in types}
        issues.append(GraphIssue(
            topic, 'multiple_types', ERROR,
            'used with {} types: {}'.format(len(types), '; '.join(
                f"{t} by {', '.join(n)}" for t, n in by_type.items())),
            tuple(sorted({e.node for e in (*pubs, *subs)}))))
    if subs and not pubs:
        nodes = tuple(sorted({e.node for e in subs}))
        issues.append(GraphIssue(topic, 'no_publishers', WARN,
                                 f"no publisher{_ignored(ignored_pubs, 'publisher')}; "
                                 f"subscribed by {', '.join(nodes)}", nodes))
    if pubs and not subs:
        nodes = tuple(sorted({e.node for e in pubs}))
        issues.append(GraphIssue(topic, 'no_subscribers', OK,
                                 f"no subscriber{_ignored(ignored_subs, 'subscriber')}; "
                                 f"published by {', '.join(nodes)}", nodes))
    # One check per distinct (publisher profile, subscription profile): a big graph has few
    # profiles, so this is not publishers x subscriptions checks per topic every period; only
    # the pairs of an incompatible combination are listed.
    bad = 0
    sub_groups = _groups(subs)
    for (ptype, _), pgroup in _groups(pubs).items():
        for (stype, _), sgroup in sub_groups.items():
            if ptype != stype:
                continue      # reported as multiple_types; such endpoints never match anyway
            level, reason = qos_check(pgroup[0].qos, sgroup[0].qos)
            if level == OK:
                continue
            for p in pgroup:
                for s in sgroup:
                    bad += 1
                    issues.append(GraphIssue(
                        topic, 'qos_incompatible', level,
                        f'QoS incompatible: publisher {p.node} -> subscription {s.node}: '
                        f'{_reason(reason)}', (p.node, s.node)))
    return issues, bad


def check_graph(topics: Mapping[str, Tuple[Sequence[Endpoint], Sequence[Endpoint]]],
                qos_check: QosCheck, ignore_topics: Sequence[str] = (),
                ignore_nodes: Sequence[str] = ()) -> GraphReport:
    """Check every topic (name -> (publishers, subscriptions)), skipping ignored topics and nodes."""
    skip_topic = [re.compile(p) for p in ignore_topics]
    skip_node = [re.compile(p) for p in ignore_nodes]
    report = GraphReport()
    for topic in sorted(topics):
        if any(r.fullmatch(topic) for r in skip_topic):
            continue
        all_pubs, all_subs = topics[topic]
        pubs = [e for e in all_pubs if not any(r.fullmatch(e.node) for r in skip_node)]
        subs = [e for e in all_subs if not any(r.fullmatch(e.node) for r in skip_node)]
        if not pubs and not subs:
            continue
        report.topics += 1
        issues, bad = check_topic(topic, pubs, subs, qos_check, len(all_pubs) - len(pubs),
                                  len(all_subs) - len(subs))
        report.issues.extend(issues)
        if bad:
            report.qos_incompatibilities[topic] = bad
    return report
