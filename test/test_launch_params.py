"""What the launch files' arguments give each node, checked on the real nodes (issue 17 items 11,
12): every advertised argument acts, and `metrics_port_base` / `metrics_address` move the
endpoints without copied YAML files.

The launch files pass their arguments to `launch_params.node_parameters` (test_launch.py checks
that, and through the launch API where it is installed). Here each node is started as launch_ros
starts it from that list: `--params-file` for a path, and a dict written to a temporary
`/**: ros__parameters:` file passed the same way; then the node's own parameter service and its
metrics endpoint say what it really got.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Dict, List

import pytest
import yaml

from conftest import REPO, free_ports, wait_for
from ros_helpers import ParameterClient, sample_value, scrape

from liquid_edge_ros_monitor.launch_params import (LaunchArgumentError, metrics_overrides,
                                                   node_parameters)

NS = '/launch_params'


def _ros_args(parameters: List[Any], tmp_path: Path, node: str) -> List[str]:
    """launch_ros's hand-over of a `parameters=` list: a path as it is, a dict as a temporary
    params file matching any node."""
    out = []
    for i, p in enumerate(parameters):
        if isinstance(p, dict):
            path = tmp_path / f'{node}-{i}.yaml'
            path.write_text(yaml.safe_dump({'/**': {'ros__parameters': p}}))
            p = str(path)
        out += ['--params-file', str(p)]
    return out


def _get(node: str, names: List[str]) -> Dict[str, Any]:
    """The values `node` holds for `names`, from its own parameter service."""
    client = ParameterClient(node, 'launch_params_probe')
    try:
        values = client.get_many(names)
    finally:
        client.close()
    out = {}
    for name, v in zip(names, values):
        out[name] = {1: v.bool_value, 2: v.integer_value, 3: v.double_value,
                     4: v.string_value, 9: list(v.string_array_value)}.get(v.type)
    return out


def test_metrics_overrides_follow_the_two_arguments():
    base = {'metrics_port_base': '9208', 'metrics_address': '0.0.0.0'}
    assert [metrics_overrides(n, base)['metrics_port'] for n in
            ('topic_monitor', 'node_monitor', 'liquid_inference')] == [9208, 9209, 9210]
    assert metrics_overrides('node_monitor', base)['metrics_address'] == '0.0.0.0'
    assert metrics_overrides('node_monitor', {'metrics_port_base': '0'}) == {'metrics_port': 0}
    assert metrics_overrides('liquid_inference', {'metrics_port_base': '-1'}) == \
        {'metrics_port': -1}
    assert metrics_overrides('topic_monitor', {'metrics_port_base': '', 'metrics_address': ''}) \
        == {}, 'empty: the params file decides'


@pytest.mark.parametrize('args, problem', [
    ({'metrics_port_base': 'x'}, "launch argument 'metrics_port_base': must be an integer"),
    ({'metrics_port_base': '65534'}, "launch argument 'metrics_port_base': must be -1 (off)"),
    ({'metrics_port_base': '-2'}, "launch argument 'metrics_port_base': must be -1 (off)"),
    ({'metrics_address': 'localhost:1'}, "launch argument 'metrics_address': must be an IP"),
    ({'use_sim_time': 'yes'}, "launch argument 'use_sim_time': must be 'true' or 'false'"),
])
def test_bad_launch_arguments_are_one_line_naming_them(args, problem):
    with pytest.raises(LaunchArgumentError) as info:
        node_parameters('topic_monitor', {'params_file': '/x.yaml', **args})
    assert str(info.value).startswith(problem) and '\n' not in str(info.value)


def test_each_argument_reaches_the_real_nodes(ros, ros_process, tmp_path):
    """demo.launch.py's arguments, all given: params_file (demo.yaml), node_params_file (a file
    of our own: its expected nodes must be what node_monitor holds, not demo.yaml's),
    metrics_port_base (three consecutive ports), metrics_address and use_sim_time. Each node holds
    exactly the values, and serves its metrics on its port."""
    nodes_file = tmp_path / 'my_nodes.yaml'
    nodes_file.write_text(yaml.safe_dump({'/**/node_monitor': {'ros__parameters': {
        'expected_nodes': ['lp_driver', 'lp_planner'], 'period': 0.5}}}))
    base = free_ports(3)
    args = {'params_file': str(REPO / 'config' / 'demo.yaml'),
            'node_params_file': str(nodes_file), 'use_sim_time': 'false',
            'metrics_port_base': str(base), 'metrics_address': '127.0.0.1'}
    for name in ('topic_monitor', 'node_monitor', 'liquid_inference'):
        ros_process('liquid_edge_ros_monitor.entry', name, '--ros-args', '-r', f'__ns:={NS}',
                    '-r', f'__node:={name}',
                    *_ros_args(node_parameters(name, args), tmp_path, name))
    expected = {'topic_monitor': base, 'node_monitor': base + 1, 'liquid_inference': base + 2}
    for name, port in expected.items():
        held = _get(f'{NS}/{name}', ['metrics_port', 'metrics_address', 'use_sim_time'])
        assert held == {'metrics_port': port, 'metrics_address': '127.0.0.1',
                        'use_sim_time': False}, name
    assert _get(f'{NS}/node_monitor', ['expected_nodes'])['expected_nodes'] == \
        ['lp_driver', 'lp_planner'], 'node_params_file must configure node_monitor'
    assert _get(f'{NS}/topic_monitor', ['topics'])['topics'] == \
        ['imu', 'odom', 'scan', 'camera', 'chatter'], 'params_file configures topic_monitor'

    def served(port: int, metric: str):
        try:
            return metric in scrape(port)
        except OSError:
            return False
    wait_for(lambda: served(base, 'liquid_edge_topic_'), 30, 'topic_monitor on the base port')
    wait_for(lambda: sample_value(scrape(base + 1), 'liquid_edge_node_up',
                                  node=f'{NS}/lp_driver') == 0, 30,
             "node_monitor on base + 1, expecting node_params_file's nodes")
    wait_for(lambda: served(base + 2, 'liquid_edge_inferences_total'), 60,
             'liquid_inference on base + 2')

