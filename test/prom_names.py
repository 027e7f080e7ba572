"""The metric names the alert and fleet rules and the Grafana dashboards query, read from their PromQL.

Shared by test_prometheus_config.py (names against the docs/METRICS.md contract) and the live-scrape
test (names against what the running nodes export), so a renamed metric cannot leave a rule or a
panel silently empty. No PromQL parser is installed (promtool validates syntax, but does not list
names), so this is a small lexer: it removes what cannot be a metric name (strings, label matchers,
range and subquery brackets, `by (...)`-style label lists, numbers) and keeps the identifiers that
are neither functions, aggregations nor keywords.
"""
from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Dict, Iterator, List, Set, Tuple

import yaml

REPO = Path(__file__).resolve().parents[1]
ALERTS_FILE = REPO / 'config' / 'prometheus' / 'alerts.yml'
DASHBOARD_FILE = REPO / 'config' / 'grafana' / 'liquid_edge_dashboard.json'
#: The central server's per-robot recording rules and fleet alerts, and the fleet dashboard on them.
FLEET_RULES_FILE = REPO / 'config' / 'prometheus' / 'fleet.yml'
FLEET_DASHBOARD_FILE = REPO / 'config' / 'grafana' / 'liquid_edge_fleet_dashboard.json'

#: Series that Prometheus itself writes, never in an exporter's scrape.
PROMETHEUS_SERIES = frozenset({'up', 'ALERTS', 'ALERTS_FOR_STATE', 'scrape_duration_seconds',
                               'scrape_samples_scraped', 'scrape_samples_post_metric_relabeling',
                               'scrape_series_added'})

_AGGREGATIONS = frozenset({'sum', 'min', 'max', 'avg', 'group', 'stddev', 'stdvar', 'count',
                           'count_values', 'bottomk', 'topk', 'quantile'})
_KEYWORDS = frozenset({'by', 'without', 'on', 'ignoring', 'group_left', 'group_right', 'and', 'or',
                       'unless', 'bool', 'offset', 'atan2', 'inf', 'nan'})
_HISTOGRAM_SUFFIXES = ('_bucket', '_sum', '_count')

_STRINGS = re.compile(r'"(?:[^"\\]|\\.)*"|\'(?:[^\'\\]|\\.)*\'|`[^`]*`')
_BRACES = re.compile(r'\{[^{}]*\}')
_BRACKETS = re.compile(r'\[[^\[\]]*\]')
_LABEL_LISTS = re.compile(r'\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^()]*\)')
_IDENTIFIER = re.compile(r'(?<![\w.:$])([A-Za-z_:][\w:]*)(\s*\()?')
_LABEL_VALUES = re.compile(r'^\s*label_values\((.*),\s*\w+\s*\)\s*$', re.S)
# `{{ with printf "metric{...}" ... | query }}` in an alert annotation: a query run when it fires.
_TEMPLATE_QUERY = re.compile(r'printf\s+"((?:[^"\\]|\\.)*)"[^|}]*\|\s*query')


def base_name(name: str) -> str:
    """`x_bucket`, `x_sum`, `x_count` -> `x`: the name a histogram is declared (and documented) under."""
    for suffix in _HISTOGRAM_SUFFIXES:
        if name.endswith(suffix):
            return name[:-len(suffix)]
    return name


def metric_names_in(expr: str) -> Set[str]:
    """The base metric names one PromQL expression reads (functions, keywords, labels left out)."""
    text = _STRINGS.sub(' ', expr)
    text = _BRACES.sub(' ', text)
    text = _BRACKETS.sub(' ', text)
    text = _LABEL_LISTS.sub(' ', text)
    names = set()
    for match in _IDENTIFIER.finditer(text):
        name, call = match.group(1), match.group(2)
        if call or name in _AGGREGATIONS or name.lower() in _KEYWORDS:
            continue
        names.add(base_name(name))
    return names


def alert_rules(path: Path = ALERTS_FILE) -> List[Dict]:
    """Every alerting rule of a Prometheus rule file, across its groups."""
    doc = yaml.safe_load(path.read_text())
    return [rule for group in doc['groups'] for rule in group['rules'] if 'alert' in rule]


def recording_rules(path: Path = FLEET_RULES_FILE) -> List[Dict]:
    """Every recording rule of a Prometheus rule file, across its groups."""
    doc = yaml.safe_load(path.read_text())
    return [rule for group in doc['groups'] for rule in group['rules'] if 'record' in rule]


def recorded_names() -> Set[str]:
    """The series fleet.yml's recording rules write (`robot:...`): Prometheus makes them, no exporter."""
    return {rule['record'] for rule in recording_rules()}


def variable_selector(query: str) -> str:
    """The series selector inside a Grafana `label_values(<selector>, <label>)` variable query."""
    match = _LABEL_VALUES.match(query)
    if not match:
        raise ValueError(f'dashboard variable query is not label_values(selector, label): {query!r}')
    return match.group(1)


def dashboard_exprs(path: Path = DASHBOARD_FILE) -> Iterator[Tuple[str, str]]:
    """(where, PromQL) for every query of the dashboard: panel targets (rows' nested panels too),
    annotation queries and the selectors of the label_values variables."""
    doc = json.loads(path.read_text())
    panels = list(doc.get('panels', []))
    for row in doc.get('panels', []):
        panels.extend(row.get('panels', []))
    for panel in panels:
        for target in panel.get('targets', []):
            yield f'panel {panel.get("id")} "{panel.get("title")}" {target.get("refId")}', target['expr']
    for annotation in doc.get('annotations', {}).get('list', []):
        if 'expr' in annotation:
            yield f'annotation "{annotation["name"]}"', annotation['expr']
    for variable in doc.get('templating', {}).get('list', []):
        if variable.get('type') == 'query':
            query = variable['query']
            query = query['query'] if isinstance(query, dict) else query
            yield f'variable "{variable["name"]}"', variable_selector(query)


def annotation_queries(rule: Dict) -> List[str]:
    """The PromQL that an alert rule's annotation templates run through `query` (Go-quoted)."""
    return [match.encode().decode('unicode_escape')
            for text in rule.get('annotations', {}).values() for match in _TEMPLATE_QUERY.findall(text)]


def metric_names_used() -> Set[str]:
    """Base names of the exporter metrics that alerts.yml (expressions and annotation queries),
    fleet.yml (recording and alert rules) and both dashboards query (Prometheus's own series such as
    `up` and `ALERTS`, and the series fleet.yml records, left out): each must appear in a live
    scrape of the nodes."""
    names: Set[str] = set()
    for rule in alert_rules() + alert_rules(FLEET_RULES_FILE) + recording_rules():
        for expr in [rule['expr']] + annotation_queries(rule):
            names |= metric_names_in(expr)
    for path in (DASHBOARD_FILE, FLEET_DASHBOARD_FILE):
        for _where, expr in dashboard_exprs(path):
            names |= metric_names_in(expr)
    return names - PROMETHEUS_SERIES - recorded_names()
