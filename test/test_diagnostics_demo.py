"""What a person sees of the demo on /diagnostics (issue 18): every status the real nodes publish.

The demo's processes run as in test_metric_names (test/demo_stack.py: sim_robot, topic_monitor,
node_monitor, liquid_inference, each in its own process with config/demo.yaml's settings). This
test process adds what a user's machine adds: a /diagnostics viewer (the listener), an rqt node
by its real name, and a node that subscribes to a topic nobody publishes (a graph problem). Then:

- config/analyzers.yaml puts every status into exactly one group, the one documented (what
  diagnostic_aggregator would hand rqt_robot_monitor; the aggregator's rules in aggregator_model);
- every status follows docs/DIAGNOSTICS.md: messages of at most 60 characters, units in the key in
  parentheses, bare values, percentages as %, byte rates human-readable in the message with the raw
  figure in a key, no OK status for hardware the host lacks;
- a fault leads its message with the reason for the level;
- what /diagnostics calls a graph problem is what liquid_edge_graph_issues counts;
- tool nodes and the graph's own topics get no status; an unexpected node that leaves goes soon.
"""
from __future__ import annotations

import re
import threading
from typing import Dict, Iterator, List, Set, Tuple

import pytest
from diagnostic_msgs.msg import DiagnosticStatus
from rclpy.executors import SingleThreadedExecutor
from rclpy.node import Node
from std_msgs.msg import String

from aggregator_model import Aggregation, aggregator_parameters
from conftest import wait_for
from demo_stack import EXTRA_ROBOT, DemoStack
from ros_helpers import DiagnosticsListener, ParameterClient, sample_value

from liquid_edge_ros_monitor.core.units import MESSAGE_MAX

NS = '/diagdemo'
WANTED = f'{NS}/wanted_cmd'          # subscribed in this process, published by nobody
RQT = 'rqt_gui_py_node_4242'         # what rqt calls its node (rqt_gui_py, pid 4242)


@pytest.fixture(scope='module')
def demo(ros, tmp_path_factory) -> Iterator[Tuple[DemoStack, DiagnosticsListener]]:
    stack = DemoStack(NS, tmp_path_factory.mktemp('diagnostics_demo')).start()
    listener = DiagnosticsListener()
    extra = Node('diagdemo_user')
    tool = Node(RQT)
    sub = extra.create_subscription(String, WANTED, lambda m: None, 10)
    executor = SingleThreadedExecutor()
    for n in (extra, tool):
        executor.add_node(n)
    spin = threading.Thread(target=executor.spin, daemon=True)
    spin.start()
    try:
        stack.wait_until_measured()
        wanted = [f'topic_monitor: {NS}/imu/data', f'topic_monitor: {NS}/odom',
                  f'topic_monitor: {NS}/chatter', f'topic_monitor: {NS}/cmd_vel_lnn',
                  'topic_monitor: path controller', 'topic_monitor: discovery',
                  f'node_monitor: node {NS}/sim_robot', f'node_monitor: node {NS}/{EXTRA_ROBOT}',
                  'node_monitor: node /diagdemo_user', 'node_monitor: graph',
                  f'node_monitor: topic {WANTED}', 'node_monitor: host cpu',
                  'node_monitor: host memory', 'node_monitor: host disk /',
                  'liquid_inference: model', 'liquid_inference: latency',
                  'liquid_inference: inputs', 'liquid_inference: outputs',
                  'liquid_inference: shadow']

        def complete():
            stack.check_alive()
            names = listener.names()
            missing = [w for w in wanted if w not in names]
            # Measured, not starting: the topics have a rate, the model an accuracy.
            ready = not missing and 'Hz' in listener.message(f'topic_monitor: {NS}/imu/data') \
                and listener.message('liquid_inference: outputs').startswith('accuracy') \
                and listener.message('node_monitor: host cpu').startswith('CPU')
            return ready
        wait_for(complete, 60, 'every status of the demo',
                 last=lambda: [w for w in wanted if w not in listener.names()])
        yield stack, listener
    finally:
        extra.destroy_subscription(sub)
        executor.shutdown(timeout_sec=2)
        spin.join(5)
        extra.destroy_node()
        tool.destroy_node()
        listener.close()
        codes = stack.stop()
    assert set(codes.values()) == {0}, f'{codes}, died early: {stack.died_early}\n{stack.logs()}'


def current(listener: DiagnosticsListener, arrays: int = 12) -> Dict[str, DiagnosticStatus]:
    """The statuses published now: everything seen is forgotten, then `arrays` new arrays
    (three nodes publishing every 0.25 s: each has published a few times) are collected."""
    for name in listener.names():
        listener.forget(name)
    start = listener.arrays
    wait_for(lambda: listener.arrays >= start + arrays, 10, f'{arrays} /diagnostics arrays')
    return {n: listener.status(n) for n in listener.names()}


# ---- item 1: the aggregator path ----------------------------------------------------------------

GROUPS = [(re.compile(r'topic_monitor: (/|discovery$)'), '/Liquid Edge/Topics'),
          (re.compile(r'topic_monitor: path '), '/Liquid Edge/Paths'),
          (re.compile(r'node_monitor: (node |graph$|topic )'), '/Liquid Edge/Nodes'),
          (re.compile(r'node_monitor: host '), '/Liquid Edge/Host'),
          (re.compile(r'liquid_inference: '), '/Liquid Edge/Inference')]


def test_every_status_falls_into_exactly_one_group(demo, ros):
    """The statuses the nodes really publish, through analyzers.yaml as diagnostic_aggregator reads
    it (rcl's parser, the GenericAnalyzer rules of its source): each lands in exactly one group,
    the documented one, with a leaf of its own and without its node's prefix; the same with
    `diagnostic_updater.use_fqn` names ('/<ns>/<node>: ...')."""
    _stack, listener = demo
    nodes: List[Node] = []

    def make_node(name, **kwargs):
        import rclpy
        nodes.append(rclpy.create_node(name, **kwargs))
        return nodes[-1]
    try:
        agg = Aggregation(aggregator_parameters(make_node))
    finally:
        for n in nodes:
            n.destroy_node()
    statuses = current(listener)
    assert len(statuses) >= 19, sorted(statuses)
    leaves: Set[str] = set()
    for name in statuses:
        placed = agg.place(name)
        assert len(placed) == 1, f'{name!r} -> {placed or "Other"}'
        group = next(g for r, g in GROUPS if r.match(name))
        assert placed[0].startswith(group + '/'), (name, placed[0])
        leaf = placed[0][len(group) + 1:]
        assert leaf and '/' not in leaf and ':' not in leaf, (name, leaf)
        assert leaf not in leaves, f'{name}: leaf {leaf!r} taken twice'
        leaves.add(leaf)
        fqn = agg.place(f'{NS}/{name}')
        assert len(fqn) == 1 and fqn[0].startswith(group + '/'), (name, fqn)


# ---- item 5: one convention for units and words --------------------------------------------------

_UNITS = r'(us|ms|s|min|h|Hz|B|kB|MB|GB|KiB|MiB|GiB|B/s|kB/s|MB/s|GB/s|%|C)'
#: A value that carries its unit: the unit belongs in the key ('for (s)': '23.0', not '23.0 s').
VALUE_WITH_UNIT = re.compile(rf'-?\d+(\.\d+)?\s*{_UNITS}')
#: A key that ends in a bare unit ('sample age s'): units go in parentheses.
BARE_UNIT_KEY = re.compile(rf'\s{_UNITS}$')
#: Keys naming a share: their value is a percentage, said so by '(%)'.
SHARE_WORDS = re.compile(r'\b(usage|ratio|share|charge|accuracy|free|missed)\b')
NUMBER = re.compile(r'-?\d+(\.\d+)?')
BYTE_RATE = re.compile(r'\b\d+(\.\d)? (B|kB|MB|GB)/s\b')


def convention_problems(name: str, st: DiagnosticStatus) -> List[str]:
    out = []
    # rqt_runtime_monitor writes message, keys and values into HTML unescaped: a '<' eats the
    # rest of the line ('rate 150.0 Hz < 190 Hz min' showed as 'rate 150.0 Hz').
    for text in (st.message, *(kv.key for kv in st.values), *(kv.value for kv in st.values)):
        if '<' in text or '&' in text:
            out.append(f'HTML markup in {text!r}')
    if len(st.message) > MESSAGE_MAX:
        out.append(f'message of {len(st.message)} characters: {st.message!r}')
    if st.level == DiagnosticStatus.OK and re.match(r'no (battery|temperature)', st.message):
        out.append(f'an OK status for absent hardware: {st.message!r}')
    values = {kv.key: kv.value for kv in st.values}
    for key, value in values.items():
        if VALUE_WITH_UNIT.fullmatch(value.strip()):
            out.append(f'unit in the value: {key!r} = {value!r}')
        if BARE_UNIT_KEY.search(key):
            out.append(f'bare unit in the key: {key!r}')
        bare = re.sub(r'\(.*?\)', '', key)
        if SHARE_WORDS.search(bare) and NUMBER.fullmatch(value) and '(%)' not in key \
                and '(' not in key:
            out.append(f'a share without (%): {key!r} = {value!r}')
    bw = values.get('bandwidth (B/s)')
    if st.level == DiagnosticStatus.OK and bw is not None and float(bw) > 0 \
            and not BYTE_RATE.search(st.message):
        out.append(f'bandwidth {bw} B/s not in the message: {st.message!r}')
    return out


def test_every_status_of_the_demo_follows_the_convention(demo):
    """docs/DIAGNOSTICS.md, checked on every status the demo publishes (with a graph problem and
    a viewer, as on a user's machine)."""
    _stack, listener = demo
    statuses = current(listener)
    problems = {name: p for name, st in statuses.items() for p in [convention_problems(name, st)]
                if p}
    assert not problems, '\n'.join(f'{n}: {p}' for n, ps in problems.items() for p in ps)
    host = {kv.key: kv.value for kv in statuses['node_monitor: host cpu'].values}
    assert 0 <= float(host['usage (%)']) <= 100
    # Hardware the host lacks is said once, on host cpu, never as an OK status of its own.
    for part, word in (('host battery', 'battery'), ('host temperature', 'temperature')):
        assert f'node_monitor: {part}' in statuses or word in host.get('not present', ''), part


def test_a_fault_leads_with_its_reason(demo):
    """The IMU at 150 Hz against 190 Hz min is WARN 'rate 150.0 Hz below 190 Hz min'; at 50 Hz,
    under half the minimum, ERROR 'rate 50.0 Hz below half of 190 Hz min': the message says why
    that level, in its first words (they read the same at both levels before)."""
    stack, listener = demo
    client = ParameterClient(f'{NS}/sim_robot', 'diagdemo_params')
    name = f'topic_monitor: {NS}/imu/data'

    def set_rate(hz: float) -> None:
        assert client.set('imu.rate', hz).successful

    def reaches(level: bytes, pattern: str):
        def ok():
            st = listener.status(name)
            return st is not None and st.level == level and re.fullmatch(pattern, st.message)
        wait_for(ok, 20, f'{name} {level[0]} /{pattern}/',
                 last=lambda: (listener.level(name), listener.message(name)))
    try:
        set_rate(150.0)
        reaches(DiagnosticStatus.WARN, r'rate 1[5-8]\d\.\d Hz below 190 Hz min')
        set_rate(50.0)
        reaches(DiagnosticStatus.ERROR, r'rate (49|50)\.\d Hz below half of 190 Hz min')
    finally:
        set_rate(200.0)
        client.close()
    # Back: ERROR clears above 97.9 Hz, WARN above 195.7 Hz (hysteresis), then OK.
    reaches(DiagnosticStatus.OK, r'\d+\.\d Hz, .*')
    stack.check_alive()


# ---- item 3: no noise, one set of problems -------------------------------------------------------

def test_problems_on_diagnostics_are_the_issues_the_metric_counts(demo):
    """The demo plus a subscription nobody serves: /diagnostics shows one problem (WARN, no
    publisher) and liquid_edge_graph_issues counts that one, not the topics nobody subscribes to
    (informational on both sides)."""
    stack, listener = demo
    statuses = current(listener)
    shown = {(name.split(' ', 2)[2], key.rsplit(' ', 1)[0])
             for name, st in statuses.items() if name.startswith('node_monitor: topic ')
             and st.level != DiagnosticStatus.OK for key in (kv.key for kv in st.values)}
    text = stack.scrape('node_monitor')
    from prometheus_client.parser import text_string_to_metric_families
    counted = {(s.labels['topic'], s.labels['kind'])
               for fam in text_string_to_metric_families(text)
               if fam.name == 'liquid_edge_graph_issues' for s in fam.samples if s.value == 1}
    assert shown == counted == {(WANTED, 'no_publishers')}
    graph = statuses['node_monitor: graph']
    values = {kv.key: kv.value for kv in graph.values}
    assert graph.level == DiagnosticStatus.WARN and values['problems'] == '1', graph
    assert int(values['topics without subscriber']) == \
        sample_value(text, 'liquid_edge_graph_unsubscribed_topics') >= 1
    # The topic monitor subscribes to chatter, ignored on purpose: the line says so.
    assert values[f'{NS}/chatter'] == \
        f'no subscriber (1 subscriber ignored by graph.ignore_nodes); published by {NS}/sim_robot'
    assert listener.message(f'node_monitor: topic {WANTED}').startswith('no publisher')


def test_tools_and_the_graphs_own_topics_get_no_status(demo):
    """rqt's node is no node entry; /diagnostics and /rosout are not monitored topics (a rate of
    /diagnostics, published in bursts by three nodes, means nothing)."""
    stack, listener = demo
    names = set(current(listener))
    assert f'node_monitor: node /{RQT}' not in names
    assert 'node_monitor: node /diagdemo_user' in names          # a user's node is one
    assert 'topic_monitor: /diagnostics' not in names and 'topic_monitor: /rosout' not in names
    text = stack.scrape('node_monitor')
    assert sample_value(text, 'liquid_edge_node_up', node=f'/{RQT}') is None
    assert sample_value(stack.scrape('topic_monitor'), 'liquid_edge_topic_rate_hz',
                        topic='/diagnostics') is None


def test_an_unexpected_node_that_leaves_is_dropped_soon(demo):
    """'gone for 3.0 min (not expected)' lingered for five minutes; the default is now 10 s."""
    _stack, listener = demo
    visitor = Node('diagdemo_visitor')
    name = 'node_monitor: node /diagdemo_visitor'
    try:
        wait_for(lambda: listener.level(name) == 0, 20, f'{name} up')
    finally:
        visitor.destroy_node()
    wait_for(lambda: listener.message(name).startswith('gone for'), 10, f'{name} gone')

    def dropped() -> bool:
        if listener.status(name) is not None:
            listener.forget(name)
            dropped.since = listener.arrays
            return False
        return listener.arrays >= dropped.since + 12     # a few of node_monitor's own arrays
    dropped.since = listener.arrays
    wait_for(dropped, 25, f'{name} dropped from /diagnostics',
             last=lambda: listener.message(name))
