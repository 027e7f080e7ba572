"""What diagnostic_aggregator (ROS 2, C++) does with config/analyzers.yaml, in Python for the tests.

The aggregator cannot be installed from PyPI, so the tests check our file against its contract as
its source states it (ros/diagnostics, ros2 branch, diagnostic_aggregator/src and include):
- the node `analyzers` declares its parameters from the file (rcl's parser; here the same parser,
  through an rclpy node with `automatically_declare_parameters_from_overrides`);
- AnalyzerGroup::init creates an analyzer for each parameter prefix that has both `.type` and
  `.path` (under `analyzers.` inside a nested group);
- GenericAnalyzer::match on the raw status name: `regex` (std::regex_match, whole name),
  `startswith`, `contains` (`expected` and `name` match nothing in ROS 2);
- the item is shown at `<group path>/<analyzer path>/<name with each '/' as ' '>`, then each
  `remove_prefix` entry (its '/' as ' ' too) is removed from the start of the leaf with a ':' and
  the spaces after it (removeLeadingNameChaff);
- a status goes to every analyzer that matches it; one that none matches goes to "Other".
"""
from __future__ import annotations

import re
from typing import Any, Callable, Dict, List

from rclpy.parameter import Parameter

from conftest import REPO

ANALYZERS_YAML = REPO / 'config' / 'analyzers.yaml'
#: The GenericAnalyzer keys ROS 2's aggregator reads; anything else in the file would be ignored.
GENERIC_KEYS = {'type', 'path', 'startswith', 'contains', 'regex', 'remove_prefix',
                'find_and_remove_prefix', 'expected', 'timeout', 'num_items', 'discard_stale'}


def aggregator_parameters(make_node: Callable[..., Any]) -> Dict[str, Parameter]:
    """analyzers.yaml as the aggregator node sees it: rcl's YAML parser, parameters auto-declared
    (`make_node(name, **kwargs)` makes an rclpy node)."""
    node = make_node('analyzers', cli_args=['--ros-args', '--params-file', str(ANALYZERS_YAML)],
                     use_global_arguments=False, start_parameter_services=False,
                     automatically_declare_parameters_from_overrides=True)
    return node.get_parameters_by_prefix('')


def _children(params: Dict[str, Parameter], breadcrumb: str) -> Dict[str, Dict[str, str]]:
    """Analyzers an AnalyzerGroup at `breadcrumb` creates: entries with both `.type` and `.path`."""
    prefix = f'{breadcrumb}.' if breadcrumb else ''
    found: Dict[str, Dict[str, str]] = {}
    for full, p in params.items():
        if not full.startswith(prefix):
            continue
        rel = full[len(prefix):]
        dot = rel.find('.', 10 if rel.startswith('analyzers.') else 0)
        if dot > 0 and rel[dot + 1:] in ('type', 'path'):
            found.setdefault(rel[:dot], {})[rel[dot + 1:]] = p.value
    return {ns: d for ns, d in found.items() if {'type', 'path'} <= set(d)}


def _output_name(name: str) -> str:
    return name.replace('/', ' ')


def _remove_chaff(full: str, chaff: str) -> str:
    """diagnostic_aggregator's leading-name-chaff removal on the last path element."""
    if not chaff:
        return full
    last = full.rfind('/')
    head = full[:last + 1]
    if full.find(chaff) == last + 1:
        full = full[:last + 1] + full[last + 1 + len(chaff):]
    if full.find(':', last) == last + 1:
        full = head + full[last + 2:]
    while full.find(' ', last) == last + 1:
        full = head + full[last + 2:]
    return full


class Aggregation:
    """Where the aggregator configured by analyzers.yaml puts a status name (no place: "Other")."""

    def __init__(self, params: Dict[str, Parameter]) -> None:
        self.analyzers: List[Dict[str, Any]] = []
        for ns, d in _children(params, '').items():
            assert d['type'] == 'diagnostic_aggregator/AnalyzerGroup', ns
            group_path = '/' + d['path']
            for sub_ns, sd in _children(params, ns).items():
                assert sd['type'] == 'diagnostic_aggregator/GenericAnalyzer', sub_ns
                crumb = f'{ns}.{sub_ns}'
                keys = {k[len(crumb) + 1:] for k in params if k.startswith(crumb + '.')}
                assert keys <= GENERIC_KEYS, (crumb, keys - GENERIC_KEYS)

                def get(key, default, crumb=crumb):
                    p = params.get(f'{crumb}.{key}')
                    return default if p is None else p.value
                for key in ('startswith', 'contains', 'remove_prefix', 'regex'):
                    p = params.get(f'{crumb}.{key}')
                    assert p is None or p.type_ == Parameter.Type.STRING_ARRAY, (crumb, key)
                assert params[f'{crumb}.timeout'].type_ == Parameter.Type.DOUBLE, crumb
                self.analyzers.append({
                    'path': f'{group_path}/{sd["path"]}',
                    'startswith': list(get('startswith', [])), 'contains': list(get('contains', [])),
                    'regex': [re.compile(r) for r in get('regex', [])],
                    'chaff': [_output_name(c) for c in get('remove_prefix', [])],
                })

    def place(self, status_name: str) -> List[str]:
        """Every item the status becomes (one per matching analyzer; none: "Other")."""
        out = []
        for a in self.analyzers:
            if any(r.fullmatch(status_name) for r in a['regex']) or \
                    any(status_name.startswith(s) for s in a['startswith']) or \
                    any(c in status_name for c in a['contains']):
                full = f'{a["path"]}/{_output_name(status_name)}'
                for chaff in a['chaff']:
                    full = _remove_chaff(full, chaff)
                out.append(full)
        return out
