"""The demo's processes for the end-to-end metric tests: sim_robot and the three exporting nodes.

Shared by test_metric_names.py (live scrapes against the names the alerts and dashboard use) and
test_prometheus_e2e.py (a real Prometheus server scraping them). Every node runs in its own process
in one namespace, with config/demo.yaml's settings (parsed, then shortened periods and free metrics
ports written over them), so the tests exercise the configuration users start from.

An extra, silent sim_robot (`extra_robot`, every stream disabled) is listed in node_monitor's
`expected_nodes`: stopping it is an expected node going down without touching the topics.
sim_robot's scan and camera streams are off (the machine has 2 cores), so the topic monitor watches
imu, odom and chatter only. liquid_inference runs demo.yaml's `model_path: ""`: the shipped model
(models/imu_velocity.npz), on odom's twist as ground truth.
"""
from __future__ import annotations

import copy
from pathlib import Path
from typing import Dict, List, Optional

import yaml

from conftest import REPO, RosProcess, free_port, wait_for
from ros_helpers import sample_value, scrape

DEMO_CONFIG = REPO / 'config' / 'demo.yaml'
#: Exporting node -> the scrape job it has in config/prometheus/prometheus.yml.
JOBS = {'topic_monitor': 'liquid_edge_topic_monitor',
        'node_monitor': 'liquid_edge_node_monitor',
        'liquid_inference': 'liquid_edge_inference'}
EXTRA_ROBOT = 'extra_robot'
SIM_STREAMS_OFF = ['scan', 'camera']
ALL_STREAMS = ['imu', 'odom', 'scan', 'camera', 'chatter']
UPDATE_PERIOD = 0.25


class _NoAliases(yaml.SafeDumper):
    """rcl's parameter-file parser rejects YAML aliases (`&id001`): write shared values twice."""

    def ignore_aliases(self, data) -> bool:
        return True


def _section(demo: Dict, node: str) -> Dict:
    return copy.deepcopy(demo[f'/**/{node}']['ros__parameters'])


def stack_parameters(ports: Dict[str, int], robot: Optional[str] = None) -> Dict:
    """config/demo.yaml with short periods, the given metrics ports and the test's expectations;
    `robot`: the robot label of every node (default: the host name)."""
    demo = yaml.safe_load(DEMO_CONFIG.read_text())
    periods = {'update_period': UPDATE_PERIOD, 'diagnostic_updater': {'period': UPDATE_PERIOD}}

    topic = _section(demo, 'topic_monitor')
    topic.update(periods, metrics_port=ports['topic_monitor'], window=2.0,
                 topics=[t for t in topic['topics'] if t not in SIM_STREAMS_OFF])
    topic['topic'] = {k: v for k, v in topic['topic'].items() if k in topic['topics']}
    topic['defaults']['stale_timeout'] = 1.0

    node = _section(demo, 'node_monitor')
    node.update(metrics_port=ports['node_monitor'], period=0.2, startup_grace=1.0,
                diagnostic_updater={'period': UPDATE_PERIOD},
                expected_nodes=node['expected_nodes'] + [EXTRA_ROBOT])
    node['host']['period'] = 0.3

    inference = _section(demo, 'liquid_inference')
    inference.update(periods, metrics_port=ports['liquid_inference'])
    inference['tracing']['enabled'] = False
    if robot is not None:
        for section in (topic, node, inference):
            section['robot'] = robot
    return {f'/**/{n}': {'ros__parameters': p} for n, p in
            (('topic_monitor', topic), ('node_monitor', node), ('liquid_inference', inference))}


#: Each executable's module (what `python -m` runs; setup.py's console scripts point at the same).
MODULES = {'sim_robot': 'liquid_edge_ros_monitor.sim_robot',
           'topic_monitor': 'liquid_edge_ros_monitor.topics.node',
           'node_monitor': 'liquid_edge_ros_monitor.graph.node',
           'liquid_inference': 'liquid_edge_ros_monitor.inference.node'}


class DemoStack:
    """sim_robot, extra_robot, topic_monitor, node_monitor and liquid_inference in namespace `ns`,
    each its own process; `ports[node]` is each exporter's metrics port. `robot` labels every
    series (default: the host name); `env` is set over the test's environment in every process
    (a second robot in another ROS_DOMAIN_ID)."""

    def __init__(self, ns: str, tmp: Path, robot: Optional[str] = None,
                 env: Optional[Dict[str, str]] = None) -> None:
        self.ns, self.tmp, self.env = ns, tmp, env
        self.ports = {n: free_port() for n in JOBS}
        self.params_file = tmp / 'params.yaml'
        self.params_file.write_text(yaml.dump(stack_parameters(self.ports, robot),
                                              Dumper=_NoAliases))
        self.procs: List[RosProcess] = []
        self.extra: Optional[RosProcess] = None
        self.stopped: List[RosProcess] = []     # stopped on purpose by the test
        self.died_early: List[str] = []

    def _start(self, executable: str, *args: str) -> RosProcess:
        log = self.tmp / f'{executable}-{len(self.procs)}.log'
        proc = RosProcess(MODULES[executable],
                          ['--ros-args', '-r', f'__ns:={self.ns}', *args], log, self.env)
        self.procs.append(proc)
        return proc

    def start(self) -> 'DemoStack':
        off = [a for s in SIM_STREAMS_OFF for a in ('-p', f'{s}.enabled:=false')]
        self._start('sim_robot', *off)
        self.start_extra_robot()
        for node in JOBS:
            self._start(node, '--params-file', str(self.params_file))
        return self

    def start_extra_robot(self) -> RosProcess:
        """The silent expected node: a sim_robot renamed, publishing nothing."""
        off = [a for s in ALL_STREAMS for a in ('-p', f'{s}.enabled:=false')]
        self.extra = self._start('sim_robot', '-r', f'__node:={EXTRA_ROBOT}', *off)
        return self.extra

    def stop_extra_robot(self) -> None:
        assert self.extra is not None and self.extra.stop() == 0, self.extra.output()
        self.stopped.append(self.extra)

    def check_alive(self) -> None:
        """Fail at once, with the logs, when a process has died (instead of at a wait's deadline)."""
        dead = [p.log_path.name for p in self.procs
                if p not in self.stopped and p.proc.poll() is not None]
        assert not dead, f'{dead} exited; logs:\n{self.logs()}'

    def scrape(self, node: str) -> str:
        return scrape(self.ports[node])

    def wait_until_measured(self, timeout: float = 60.0) -> Dict[str, str]:
        """Scrapes of the three exporters once each has measured something: the imu, odom and
        chatter rates known; host metrics, extra_robot up, a graph issue; inference steps,
        accuracy, power, drift."""
        def ready(node: str, *checks) -> Optional[str]:
            self.check_alive()
            try:
                text = self.scrape(node)
            except OSError:
                return None
            return text if all(check(text) for check in checks) else None

        topic = f'{self.ns}/'
        checks = {
            'topic_monitor': [lambda t, n=n: sample_value(t, 'liquid_edge_topic_rate_hz',
                                                          topic=topic + n) for n in
                              ('imu/data', 'odom', 'chatter')],
            # Each host part has its own sampling thread: wait for those the alerts read.
            'node_monitor': [lambda t: sample_value(t, 'liquid_edge_host_cpu_usage_ratio',
                                                    cpu='total') is not None,
                             lambda t: sample_value(t, 'liquid_edge_host_memory_usage_ratio')
                             is not None,
                             lambda t: sample_value(t, 'liquid_edge_host_disk_free_ratio')
                             is not None,
                             lambda t: sample_value(t, 'liquid_edge_node_up',
                                                    node=f'{self.ns}/{EXTRA_ROBOT}') == 1,
                             # A node is discovered before its endpoints: wait for a graph check
                             # that saw them (sim_robot's chatter has no subscriber but the
                             # ignored topic monitor).
                             lambda t: (sample_value(t, 'liquid_edge_graph_unsubscribed_topics')
                                        or 0) >= 1],
            # Power needs two update periods (an energy difference); accuracy a ground-truth message.
            'liquid_inference': [lambda t: (sample_value(t, 'liquid_edge_inferences_total') or 0) > 0,
                                 lambda t: sample_value(t, 'liquid_edge_model_accuracy') is not None,
                                 lambda t: sample_value(t, 'liquid_edge_inference_power_watts')
                                 is not None,
                                 lambda t: sample_value(t, 'liquid_edge_inference_input_drift')
                                 is not None],
        }
        return {node: wait_for(lambda node=node: ready(node, *checks[node]), timeout,
                               f'{node} metrics; logs:\n{self.logs()}')
                for node in JOBS}

    def logs(self) -> str:
        return '\n'.join(f'--- {p.log_path.name}\n{p.output()[-3000:]}' for p in self.procs)

    def stop(self) -> Dict[str, int]:
        """Stop every process (last started first); {log name: exit code}. `died_early` names
        those that had already exited on their own (a crash, not a bad Ctrl-C shutdown)."""
        self.died_early = [p.log_path.name for p in self.procs
                           if p not in self.stopped and p.proc.poll() is not None]
        return {p.log_path.name: p.stop() for p in reversed(self.procs)}
