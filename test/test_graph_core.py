"""node_monitor's pure cores: presence/restarts, graph checks, host evaluation, parameters."""
from __future__ import annotations

import pytest
from rclpy.duration import Duration
from rclpy.qos import DurabilityPolicy, LivelinessPolicy, QoSProfile, ReliabilityPolicy

from liquid_edge_ros_monitor.core.params import ConfigError
from liquid_edge_ros_monitor.graph.checks import ERROR, OK, WARN, Endpoint, check_graph
from liquid_edge_ros_monitor.graph.host import (DiskReading, HostSample, evaluate_host, prime_cpu,
                                          sample_host)
from liquid_edge_ros_monitor.graph import host as host_mod
from liquid_edge_ros_monitor.graph.config import Band, HostConfig, parse_node_config
from liquid_edge_ros_monitor.graph.node import fqn, node_summary, qos_check
from liquid_edge_ros_monitor.graph.tracker import NodeTracker

S = 1_000_000_000


# ---- presence and restarts ---------------------------------------------------------------------

def test_tracker_counts_a_node_that_leaves_and_comes_back():
    t = NodeTracker(['/a'], now_ns=0)
    assert not t.nodes['/a'].up and not t.nodes['/a'].ever_seen
    assert t.observe({'/a': frozenset({b'1'})}, 1 * S) == []
    assert t.nodes['/a'].up and t.nodes['/a'].for_s(3 * S) == 2.0
    t.observe({}, 4 * S)
    assert not t.nodes['/a'].up and t.nodes['/a'].for_s(6 * S) == 2.0
    assert t.observe({'/a': frozenset({b'2'})}, 7 * S) == ['/a']
    assert t.nodes['/a'].restarts == 1 and t.nodes['/a'].up


def test_tracker_sees_a_restart_faster_than_one_period_by_its_new_gids():
    t = NodeTracker(['/a'], now_ns=0)
    t.observe({'/a': frozenset({b'old1', b'old2'})}, 1 * S)
    t.observe({'/a': frozenset({b'old1', b'old2', b'new'})}, 2 * S)   # one more endpoint: same
    assert t.nodes['/a'].restarts == 0
    assert t.observe({'/a': frozenset({b'new2'})}, 3 * S) == ['/a']
    assert t.nodes['/a'].restarts == 1
    t.observe({'/a': frozenset()}, 4 * S)          # no rosout publisher seen: no evidence
    assert t.nodes['/a'].restarts == 1


def test_tracker_reports_unexpected_nodes_and_forgets_them_later():
    t = NodeTracker(['/a'], now_ns=0)
    t.observe({'/b': frozenset()}, 1 * S)
    assert not t.nodes['/b'].expected and t.discovered() == 1
    t.observe({}, 2 * S)
    assert t.forget(5 * S, after_s=10.0) == []
    assert t.forget(12 * S, after_s=10.0) == ['/b']
    assert '/a' in t.nodes and '/b' not in t.nodes     # expected ones are never forgotten


def test_node_summary_levels():
    t = NodeTracker(['/a'], now_ns=0)
    s = t.nodes['/a']
    assert node_summary(s, 1 * S, 0, 2.0, 0) == (1, 'not seen yet (discovery in progress)')
    level, text = node_summary(s, 5 * S, 0, 2.0, 0)
    assert level == 2 and text.startswith('missing')
    t.observe({'/a': frozenset()}, 6 * S)
    assert node_summary(s, 8 * S, 0, 2.0, 1) == (0, 'up 2.0 s')
    assert node_summary(s, 8 * S, 0, 2.0, 2)[0] == 1        # two nodes with one name
    t.observe({}, 9 * S)
    assert node_summary(s, 10 * S, 0, 2.0, 0) == (2, 'down for 1.0 s')
    t.observe({'/a': frozenset()}, 11 * S)
    assert node_summary(s, 11 * S, 0, 2.0, 1) == (0, 'up 0.0 s, 1 restart')


def test_fully_qualified_names():
    assert fqn('talker', '/') == '/talker'
    assert fqn('talker', '/robot1') == '/robot1/talker'


# ---- graph checks (rclpy's real QoS compatibility check) ---------------------------------------

def qos(**kw) -> QoSProfile:
    """A profile as the graph reports a real endpoint's (no SYSTEM_DEFAULT policies, which the
    check can only call 'maybe' - a WARNING)."""
    kw.setdefault('reliability', ReliabilityPolicy.RELIABLE)
    kw.setdefault('durability', DurabilityPolicy.VOLATILE)
    kw.setdefault('liveliness', LivelinessPolicy.AUTOMATIC)
    return QoSProfile(depth=10, **kw)


REL = qos(reliability=ReliabilityPolicy.RELIABLE)
BE = qos(reliability=ReliabilityPolicy.BEST_EFFORT)


def test_reliable_subscription_to_best_effort_publisher_is_an_error_naming_both_nodes():
    r = check_graph({'/imu': ([Endpoint('/driver', 'sensor_msgs/msg/Imu', BE)],
                              [Endpoint('/ctrl', 'sensor_msgs/msg/Imu', REL)])}, qos_check)
    (issue,) = r.issues
    assert issue.kind == 'qos_incompatible' and issue.level == ERROR
    assert issue.nodes == ('/driver', '/ctrl')
    assert '/driver' in issue.message and '/ctrl' in issue.message
    assert 'best effort' in issue.message.lower()
    assert r.qos_incompatibilities == {'/imu': 1}


@pytest.mark.parametrize('pub,sub,what', [
    (qos(durability=DurabilityPolicy.VOLATILE), qos(durability=DurabilityPolicy.TRANSIENT_LOCAL),
     'transient local'),
    (qos(deadline=Duration(seconds=1)), qos(deadline=Duration(seconds=0, nanoseconds=500_000_000)),
     'deadline'),
    (qos(liveliness=LivelinessPolicy.AUTOMATIC),
     qos(liveliness=LivelinessPolicy.MANUAL_BY_TOPIC), 'liveliness'),
])
def test_other_qos_incompatibilities(pub, sub, what):
    r = check_graph({'/t': ([Endpoint('/p', 'std_msgs/msg/String', pub)],
                            [Endpoint('/s', 'std_msgs/msg/String', sub)])}, qos_check)
    assert [i.kind for i in r.issues] == ['qos_incompatible']
    assert what in r.issues[0].message.lower()


def test_compatible_pairs_are_not_reported():
    r = check_graph({'/t': ([Endpoint('/p', 'std_msgs/msg/String', REL)],
                            [Endpoint('/s', 'std_msgs/msg/String', BE),
                             Endpoint('/s2', 'std_msgs/msg/String', REL)])}, qos_check)
    assert r.issues == [] and r.level() == OK and r.topics == 1


def test_types_orphans_and_ignore_lists():
    graph = {
        '/mixed': ([Endpoint('/a', 'std_msgs/msg/String', REL)],
                   [Endpoint('/b', 'std_msgs/msg/Int32', REL)]),
        '/cmd': ([], [Endpoint('/base', 'geometry_msgs/msg/Twist', REL)]),
        '/log': ([Endpoint('/a', 'std_msgs/msg/String', REL)], []),
        '/rosout': ([Endpoint('/a', 'rcl_interfaces/msg/Log', REL)], []),
        '/seen': ([Endpoint('/a', 'std_msgs/msg/String', REL)],
                  [Endpoint('/topic_monitor', 'std_msgs/msg/String', BE)]),
    }
    r = check_graph(graph, qos_check, ignore_topics=['/rosout'], ignore_nodes=['/topic_monitor'])
    kinds = {(i.topic, i.kind): i for i in r.issues}
    assert set(kinds) == {('/mixed', 'multiple_types'), ('/cmd', 'no_publishers'),
                          ('/log', 'no_subscribers'), ('/seen', 'no_subscribers')}
    assert kinds[('/mixed', 'multiple_types')].level == ERROR
    assert 'std_msgs/msg/Int32 by /b' in kinds[('/mixed', 'multiple_types')].message
    assert kinds[('/cmd', 'no_publishers')].level == WARN
    assert kinds[('/log', 'no_subscribers')].level == OK      # informational
    # A message that counts subscribers says those ignored by configuration (issue 18 item 3):
    # the topic monitor does subscribe to /seen, on purpose left out.
    assert kinds[('/seen', 'no_subscribers')].message == \
        'no subscriber (1 subscriber ignored by graph.ignore_nodes); published by /a'
    assert kinds[('/log', 'no_subscribers')].message == 'no subscriber; published by /a'
    # What /diagnostics calls a problem is what the metric counts as an issue.
    assert {(i.topic, i.kind) for i in r.problems()} == {('/mixed', 'multiple_types'),
                                                         ('/cmd', 'no_publishers')}
    from liquid_edge_ros_monitor.graph.metrics import NodeMonitorMetrics
    m = NodeMonitorMetrics('r')
    m.graph = r
    fams = {f.name: f for f in m.collect()}
    assert {(s.labels['topic'], s.labels['kind']) for s in fams['liquid_edge_graph_issues'].samples} \
        == {(i.topic, i.kind) for i in r.problems()}
    assert fams['liquid_edge_graph_unsubscribed_topics'].samples[0].value == 2
    assert r.qos_incompatibilities == {}                       # no pair across types
    assert r.level() == ERROR and r.topics == 4


# ---- host ----------------------------------------------------------------------------------------

def sample(**kw) -> HostSample:
    base = dict(cpu_total=0.2, cpu_per_core=(0.1, 0.3), load=(0.5, 0.4, 0.3),
                memory_used=2 * 2**30, memory_total=8 * 2**30,
                disks={'/': DiskReading(50 * 2**30, 100 * 2**30)}, temperatures=None, battery=None)
    base.update(kw)
    return HostSample(**base)


def by_name(s: HostSample, c: HostConfig = HostConfig()):
    return {x.name: x for x in evaluate_host(s, c)}


def test_host_ok_and_missing_sensors_are_not_errors():
    """Hardware the host does not have gets no OK status of its own ('no battery', 'no
    temperature sensors' on every VM): `host cpu` says it once (issue 18 item 5)."""
    st = by_name(sample())
    assert {n: x.level for n, x in st.items()} == {
        'host cpu': 0, 'host memory': 0, 'host disk /': 0}
    assert dict(st['host cpu'].values)['not present'] == \
        'temperature sensors (not supported), battery'
    st = by_name(sample(temperatures={}))
    assert 'host temperature' not in st
    assert dict(st['host cpu'].values)['not present'] == 'temperature sensors, battery'
    st = by_name(sample(temperatures={'acpitz/0': 40.0}, battery=(0.5, True)))
    assert st['host temperature'].level == OK and st['host battery'].level == OK
    assert 'not present' not in dict(st['host cpu'].values)


def test_host_thresholds():
    st = by_name(sample(cpu_total=0.95, memory_used=int(7.8 * 2**30),
                        disks={'/': DiskReading(3 * 2**30, 100 * 2**30),
                               '/data': DiskReading(2**29, 100 * 2**30)},
                        temperatures={'coretemp/Package id 0': 90.0, 'acpitz/0': 40.0},
                        battery=(0.04, False)))
    assert st['host cpu'].level == WARN                  # 90 % warning, no error level by default
    assert st['host memory'].level == ERROR              # 97.5 % >= 95 %
    assert st['host disk /'].level == WARN               # 3 % free < 5 %
    assert st['host disk /data'].level == ERROR          # 0.5 % free < 1 %
    assert st['host temperature'].level == WARN and 'coretemp/Package id 0' in \
        st['host temperature'].message
    assert st['host battery'].level == ERROR
    assert by_name(sample(battery=(0.04, True)))['host battery'].level == OK   # charging


def test_unreadable_disk_is_a_warning_naming_the_path():
    st = by_name(sample(disks={'/mnt/usb': 'No such file or directory'}))
    assert st['host disk /mnt/usb'].level == WARN
    assert st['host disk /mnt/usb'].message == 'cannot read /mnt/usb: No such file or directory'


def test_band_direction_and_disabled_levels():
    assert Band(0.9, 0.0).level(0.99) == 1 and Band(0.9, 0.0).level(0.5) == 0
    assert Band(0.0, 0.0).level(1.0) == 0
    assert Band(0.2, 0.05, below=True).level(0.1) == 1


def test_real_host_sample(tmp_path):
    prime_cpu()
    s = sample_host(['/', str(tmp_path / 'absent')])
    assert 0.0 <= s.cpu_total <= 1.0 and len(s.cpu_per_core) >= 1
    assert 0 < s.memory_used < s.memory_total
    assert isinstance(s.disks['/'], DiskReading) and s.disks['/'].total > 0
    assert isinstance(s.disks[str(tmp_path / 'absent')], str)


def test_a_part_without_a_fresh_reading_is_stale_and_its_values_are_left_out():
    from liquid_edge_ros_monitor.graph.metrics import NodeMonitorMetrics
    readings = {'cpu': ((0.5, (0.4, 0.6), (1.0, 1.0, 1.0)), 100.0),
                'memory': ((2 * 2**30, 8 * 2**30), 95.0),            # 5 s old, limit 4 s
                'disk /': (DiskReading(50, 100), 99.5),
                'temperature': ({'acpitz/0': 40.0}, 99.9)}            # battery: never read
    s = host_mod.assemble(readings, ['/', '/nfs'], now=100.0, max_age=4.0, started=90.0)
    assert s.cpu_total == 0.5 and s.memory_used is None and set(s.disks) == {'/'}
    assert set(s.stale) == {'memory', 'disk /nfs', 'battery'}
    st = by_name(s)
    assert {n: x.level for n, x in st.items()} == {
        'host cpu': 0, 'host memory': 3, 'host disk /': 0, 'host disk /nfs': 3,
        'host temperature': 0, 'host battery': 3}
    assert st['host memory'].message.startswith('memory not sampled for 5.0 s (limit 4 s)')
    assert st['host disk /nfs'].message.startswith('disk /nfs not sampled for 10.0 s')
    # Before the limit a part never read is pending: no status yet, not a STALE one.
    early = host_mod.assemble(readings, ['/', '/nfs'], now=100.0, max_age=20.0, started=90.0)
    assert early.pending == {'disk /nfs', 'battery'} and not early.stale
    assert 'host disk /nfs' not in by_name(early)
    m = NodeMonitorMetrics('r')
    m.host_source = lambda: s
    from prometheus_client.core import CollectorRegistry
    from prometheus_client.exposition import generate_latest
    reg = CollectorRegistry()
    reg.register(m)
    text = generate_latest(reg).decode()
    assert 'liquid_edge_host_memory_used_bytes{' not in text         # absent, not frozen
    assert 'liquid_edge_host_cpu_usage_ratio{cpu="total",robot="r"} 0.5' in text
    assert 'liquid_edge_host_sample_age_seconds{part="memory",robot="r"} 5.0' in text
    assert 'sensor="battery"' not in text


def test_a_blocked_disk_freezes_only_itself_and_the_first_cpu_sample_is_real(hung_disk):
    """Fault injection: disk_usage on one path blocks (`hung_disk`, in conftest)."""
    import threading
    import time

    from conftest import wait_for
    sampler = host_mod.HostSampler(['/', '/hung'], period=0.1)
    busy = threading.Event()

    def spin():               # keep a core busy so that a real CPU sample cannot read 0 %
        while not busy.is_set():
            pass
    burner = threading.Thread(target=spin, daemon=True)
    burner.start()
    try:
        sampler.start()
        first = wait_for(lambda: sampler.snapshot().cpu_total, 5, 'a first CPU sample')
        assert first > 0.0
        wait_for(lambda: 'disk /hung' in sampler.snapshot().stale, 5, 'the hung disk stale')
        cpu_ages = []
        for _ in range(3):
            t0 = time.monotonic()
            wait_for(lambda: time.monotonic() > t0 + 0.15, 2, 'a period')
            s = sampler.snapshot()
            cpu_ages.append(s.ages['cpu'])
            assert s.fresh('cpu') and s.fresh('memory') and '/' in s.disks and '/hung' not in s.disks
        assert max(cpu_ages) <= sampler.max_age
    finally:
        busy.set()
        hung_disk.set()
        sampler.stop(2.0)


# ---- parameters ----------------------------------------------------------------------------------

def test_expected_nodes_are_optional():
    """Like topic_monitor, node_monitor is useful with no configuration (issue 12)."""
    assert parse_node_config({}).expected_nodes == ()
    assert parse_node_config({'expected_nodes': []}).expected_nodes == ()


def test_relative_expected_nodes_resolve_in_the_monitor_namespace():
    c = parse_node_config({'expected_nodes': ['driver', '/base/imu', 'a/b']}, namespace='/robot1')
    assert c.expected_nodes == ('/robot1/driver', '/base/imu', '/robot1/a/b')
    assert parse_node_config({'expected_nodes': ['driver']}).expected_nodes == ('/driver',)


def test_parameters_defaults_and_thresholds():
    c = parse_node_config({'expected_nodes': ['/sim_robot']}, hostname='r1')
    assert c.expected_nodes == ('/sim_robot',) and c.robot == 'r1' and c.metrics_port == 9109
    assert c.host.cpu == Band(0.9, 0.0) and c.host.disk_free == Band(0.05, 0.01, True)


@pytest.mark.parametrize('values,name,fragment', [
    ({'expected_nodes': ['sim robot']}, 'expected_nodes', 'fully qualified'),
    ({'expected_nodes': ['/a/']}, 'expected_nodes', 'not a node name'),
    ({'expected_nodes': ['/a', '/a']}, 'expected_nodes', 'twice'),
    ({'host.cpu_warn': -0.1}, 'host.cpu_warn', 'must be in [0, 1]'),
    ({'host.memory_warn': 0.9, 'host.memory_error': 0.8}, 'host.memory_error', 'below'),
    ({'host.disk_free_warn': 0.05, 'host.disk_free_error': 0.1}, 'host.disk_free_error', 'above'),
    ({'host.disk_paths': ['data']}, 'host.disk_paths', 'absolute'),
    ({'host.temperature_warn': -5.0}, 'host.temperature_warn', '>= 0'),
    ({'period': 0.0}, 'period', '> 0'),
    ({'host.hysteresis': 0.5}, 'host.hysteresis', '[0, 0.5)'),
    ({'tool_nodes': ['(']}, 'tool_nodes', 'regular expression'),
])
def test_bad_parameters_name_themselves(values, name, fragment):
    values = {'expected_nodes': ['/x'], **values}
    with pytest.raises(ConfigError) as e:
        parse_node_config(values)
    msg = str(e.value)
    assert e.value.parameter == name and fragment in msg and '\n' not in msg


def test_unknown_parameter_is_an_error():
    with pytest.raises(ConfigError, match="parameter 'host.cpu_warning': unknown"):
        parse_node_config({'expected_nodes': ['/x']}, given=['expected_nodes', 'host.cpu_warning',
                                                             'use_sim_time'])


def test_qos_is_checked_once_per_distinct_pair_of_profiles_not_per_endpoint_pair():
    """151 publishers and 150 subscriptions of one topic (22,650 pairs), one subscription with
    an incompatible profile: two checks, and the 151 incompatible pairs still listed."""
    calls = []

    def counting(pub, sub):
        calls.append(1)
        return qos_check(pub, sub)
    pubs = [Endpoint(f'/p{i}', 'std_msgs/msg/String', qos()) for i in range(151)]
    subs = [Endpoint(f'/s{i}', 'std_msgs/msg/String', qos()) for i in range(149)]
    subs.append(Endpoint('/picky', 'std_msgs/msg/String',
                         qos(durability=DurabilityPolicy.TRANSIENT_LOCAL)))
    r = check_graph({'/t': (pubs, subs)}, counting)
    assert len(calls) == 2
    assert r.qos_incompatibilities == {'/t': 151}
    assert {i.nodes[1] for i in r.issues if i.kind == 'qos_incompatible'} == {'/picky'}


def _entry(label: str, current: float) -> object:
    """One psutil temperature entry (label, current)."""
    e = type('Entry', (), {})()
    e.label, e.current = label, current
    return e


def _fake_sensors(monkeypatch) -> list:
    """Fault injection: psutil.sensors_temperatures reports the last of the returned list's
    readings (two coretemp sensors at first; append to change them)."""
    import psutil
    reports = [{'coretemp': [_entry('Core 0', 50.0), _entry('Core 1', 52.0)]}]
    monkeypatch.setattr(psutil, 'sensors_temperatures', lambda: reports[-1], raising=False)
    return reports


def test_a_temperature_sensor_that_vanishes_is_lost_not_absent(monkeypatch):
    """Fault injection: psutil reports two sensors, then one, then none (a driver went away)."""
    from conftest import wait_for
    reports = _fake_sensors(monkeypatch)
    sampler = host_mod.HostSampler([], period=0.05)
    sampler.start()
    try:
        def temp_status():
            s = sampler.snapshot()
            return by_name(s).get('host temperature') if s.fresh('temperature') else None
        wait_for(lambda: (temp_status() or host_mod.HostStatus('', 9, '')).level == OK, 5,
                 'two sensors')
        reports.append({'coretemp': [_entry('Core 0', 51.0)]})
        st = wait_for(lambda: (lambda t: t if t and t.level == WARN else None)(temp_status()), 5,
                      'one sensor lost')
        assert st.message == 'sensor lost: coretemp/Core 1; hottest coretemp/Core 0 51.0 C'
        reports.append({})
        st = wait_for(lambda: (lambda t: t if t and 'hottest' not in t.message else None)(
            temp_status()), 5, 'both lost')
        assert st.level == WARN and st.message == 'sensor lost: coretemp/Core 0, coretemp/Core 1'
    finally:
        sampler.stop(1.0)
    # A host that never had a sensor says so once, on host cpu.
    st = by_name(sample(temperatures={}))
    assert 'host temperature' not in st and 'temperature sensors' in \
        dict(st['host cpu'].values)['not present']


def test_a_lost_sensor_never_masks_an_over_temperature_error():
    """Issue 17 item 8: with one sensor lost, the status was WARN 'sensor lost' whatever the
    others read. The worst level wins: the hottest remaining sensor's ERROR, with the loss beside
    it; below the limits the loss alone is WARN."""
    hot = sample(temperatures={'coretemp/Core 0': 97.0}, lost_sensors=frozenset({'acpitz/0'}))
    st = by_name(hot)['host temperature']
    assert st.level == 2, st.message
    assert st.message == ('hottest coretemp/Core 0 97.0 C at or above 95 C limit; '
                          'sensor lost: acpitz/0')
    assert ('lost sensors', 'acpitz/0') in st.values and ('coretemp/Core 0 (C)', '97.0') in \
        st.values
    warm = sample(temperatures={'coretemp/Core 0': 88.0}, lost_sensors=frozenset({'acpitz/0'}))
    assert by_name(warm)['host temperature'].level == WARN
    cool = sample(temperatures={'coretemp/Core 0': 40.0}, lost_sensors=frozenset({'acpitz/0'}))
    assert (by_name(cool)['host temperature'].level, by_name(cool)['host temperature'].message) \
        == (WARN, 'sensor lost: acpitz/0; hottest coretemp/Core 0 40.0 C')   # worst first


def test_a_sensor_gone_for_sensor_forget_after_is_no_longer_lost(monkeypatch):
    """Issue 17 item 8: the set of sensors seen only grew, so a board removed for good held the
    status at WARN for ever. Fault injection: psutil reports two sensors, then one; the lost one
    is WARN, then after `host.sensor_forget_after` the status is OK again on the other."""
    from conftest import wait_for
    reports = _fake_sensors(monkeypatch)
    sampler = host_mod.HostSampler([], period=0.05, sensor_forget_after=0.5)
    sampler.start()
    config = HostConfig(sensor_forget_after=0.5)
    try:
        def temp_status():
            s = sampler.snapshot()
            return by_name(s, config).get('host temperature') if s.fresh('temperature') else None
        wait_for(lambda: (temp_status() or host_mod.HostStatus('', 9, '')).level == OK, 5,
                 'two sensors')
        reports.append({'coretemp': [_entry('Core 0', 51.0)]})
        wait_for(lambda: (temp_status() or host_mod.HostStatus('', 9, '')).level == WARN, 5,
                 'one sensor lost')
        st = wait_for(lambda: (lambda t: t if t and t.level == OK else None)(temp_status()), 5,
                      'the loss forgotten', last=lambda: temp_status())
        assert st.message == 'hottest coretemp/Core 0 51.0 C'
        # Pruned (bounded) at the next temperature reading, which may come after the snapshot
        # that already left the sensor out.
        wait_for(lambda: set(sampler._sensors_seen) == {'coretemp/Core 0'}, 5,
                 'the lost sensor pruned', last=lambda: set(sampler._sensors_seen))
    finally:
        sampler.stop(1.0)
    with pytest.raises(ConfigError, match="parameter 'host.sensor_forget_after': must be >= 0"):
        parse_node_config({'host.sensor_forget_after': -1.0})


# ---- no noise, calm statuses (issue 18 items 2, 3) ------------------------------------------------

def test_node_defaults_leave_tools_out_and_forget_unexpected_nodes_soon():
    c = parse_node_config({})
    assert c.forget_after <= 30.0              # was 5 minutes of 'gone for 3.0 min (not expected)'
    tool = [__import__('re').compile(p) for p in c.tool_nodes]
    for name in ('/rqt_gui_py_node_12345', '/rqt_gui_cpp_node_7', '/_ros2cli_4242',
                 '/liquid_edge_live_view', '/robot1/liquid_edge_live_view', '/launch_ros_991'):
        assert any(r.fullmatch(name) for r in tool), name
    for name in ('/sim_robot', '/rqt_gui_py_node_x', '/my_rqt_gui_py_node_1', '/topic_monitor'):
        assert not any(r.fullmatch(name) for r in tool), name


def test_a_cpu_reading_hovering_at_its_limit_changes_level_once():
    """The demo's host cpu went OK<->WARN 8 times in 5 minutes with one core busy (82-95 %)."""
    c = parse_node_config({}).host
    held = {}
    readings = [0.85] + [0.91, 0.89, 0.90, 0.88, 0.92, 0.895, 0.905] * 4
    levels = [by_name_held(sample(cpu_total=v), c, held)['host cpu'].level for v in readings]
    assert sum(1 for a, b in zip(levels, levels[1:]) if a != b) == 1, levels
    st = by_name_held(sample(cpu_total=0.88), c, held)['host cpu']
    assert (st.level, st.message) == (WARN, 'CPU 88% (clears under 87.3%)')
    assert by_name_held(sample(cpu_total=0.80), c, held)['host cpu'].level == OK
    # Without memory (the old evaluation) every crossing is a change.
    plain = [by_name(sample(cpu_total=v), c)['host cpu'].level for v in readings]
    assert sum(1 for a, b in zip(plain, plain[1:]) if a != b) > 20


def by_name_held(s, c, held):
    return {x.name: x for x in evaluate_host(s, c, held)}
