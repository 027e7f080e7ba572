"""Parameter validation: every invalid value gives one line naming the parameter."""
import pytest

from liquid_edge_ros_monitor.topics.config import (GLOBAL_PARAMS, ConfigError, parse_config,
                                            unknown_parameters)


def topics(**per_key):
    values = {'topics': list(per_key)}
    for key, fields in per_key.items():
        for f, v in fields.items():
            values[f'topic.{key}.{f}'] = v
    return values


def test_defaults_monitor_everything_with_no_configuration():
    c = parse_config({}, hostname='robot7')
    assert c.topics == () and c.discovery.enabled
    assert c.discovery.matches('/anything/at/all')
    assert c.robot == 'robot7' and c.metrics_address == '127.0.0.1'
    assert c.for_discovered('/x').stale_timeout == 0.0


def test_expected_rate_and_tolerance_give_min_and_max():
    c = parse_config(topics(imu={'name': 'imu/data', 'expected_rate': 200, 'tolerance': 0.05}))
    t = c.topics[0]
    assert (t.name, t.key, t.listed) == ('imu/data', 'imu', True)
    assert t.min_rate == pytest.approx(190.0) and t.max_rate == pytest.approx(210.0)
    assert t.stale_timeout == 3.0   # from defaults.stale_timeout


def test_topic_fields_inherit_changed_defaults():
    values = topics(a={'name': '/a'})
    values.update({'defaults.tolerance': 0.2, 'defaults.max_latency': 0.05,
                   'defaults.stale_timeout': 1.5})
    t = parse_config(values).topics[0]
    assert (t.tolerance, t.max_latency, t.stale_timeout) == (0.2, 0.05, 1.5)


def test_discovery_patterns():
    c = parse_config({'discovery.include': ['/camera/.*', '/imu.*'],
                      'discovery.exclude': ['/camera/debug.*']})
    assert c.discovery.matches('/camera/image_raw')
    assert not c.discovery.matches('/camera/debug/image')
    assert not c.discovery.matches('/odom')
    assert not parse_config({'discovery.enabled': False}).discovery.matches('/odom')


BAD = [
    ({'window': 0.0}, 'window', 'must be > 0'),
    ({'window': -2}, 'window', 'must be > 0'),
    ({'window': 'long'}, 'window', 'must be a number'),
    ({'window': float('nan')}, 'window', 'must be finite'),
    ({'window': True}, 'window', 'must be a number'),
    ({'window_capacity': 1}, 'window_capacity', 'must be in [2, 10000000]'),
    ({'window_capacity': 2.5}, 'window_capacity', 'must be an integer'),
    ({'update_period': 0}, 'update_period', 'must be > 0'),
    ({'qos_depth': 0}, 'qos_depth', 'must be in [1, 100000]'),
    ({'future_stamp_tolerance': -0.001}, 'future_stamp_tolerance', 'must be >= 0'),
    ({'metrics_port': 70000}, 'metrics_port', 'must be in [-1, 65535]'),
    ({'metrics_port': -2}, 'metrics_port', 'must be in [-1, 65535]'),
    ({'metrics_address': 'localhost:9'}, 'metrics_address', 'must be an IP address'),
    ({'robot': 5}, 'robot', 'must be a string'),
    ({'discovery.enabled': 'yes'}, 'discovery.enabled', 'must be true or false'),
    ({'discovery.include': ['(']}, 'discovery.include', "invalid regular expression '('"),
    ({'discovery.exclude': 'x'}, 'discovery.exclude', 'must be a list of strings'),
    ({'discovery.period': -1.0}, 'discovery.period', 'must be > 0'),
    ({'discovery.stale_timeout': -1.0}, 'discovery.stale_timeout', 'must be >= 0'),
    ({'discovery.forget_after': -1.0}, 'discovery.forget_after', 'must be >= 0'),
    ({'discovery.diagnostics': 'few'}, 'discovery.diagnostics', "must be 'each' or 'summary'"),
    ({'discovery.max_topics': 0}, 'discovery.max_topics', 'must be in [1, 1000000]'),
    ({'discovery.max_topics': 1.5}, 'discovery.max_topics', 'must be an integer'),
    ({'discovery.histograms': 'no'}, 'discovery.histograms', 'must be true or false'),
    ({'defaults.tolerance': 1.0}, 'defaults.tolerance', 'must be in [0, 1)'),
    ({'defaults.max_latency': -0.1}, 'defaults.max_latency', 'must be >= 0'),
    ({'defaults.stale_timeout': -3}, 'defaults.stale_timeout', 'must be >= 0'),
    ({'topics': ['imu', 'imu']}, 'topics', "key 'imu' is listed twice"),
    ({'topics': ['2fast']}, 'topics', "key '2fast' must be letters"),
    ({'topics': 'imu'}, 'topics', 'must be a list of strings'),
    ({'paths': ['p', 'p']}, 'paths', "key 'p' is listed twice"),
    (topics(imu={}), 'topic.imu.name', 'must name a topic'),
    (topics(imu={'name': 'bad name'}), 'topic.imu.name', 'not a valid ROS topic name'),
    (topics(imu={'name': '/a//b'}), 'topic.imu.name', 'not a valid ROS topic name'),
    (topics(imu={'name': '/a/'}), 'topic.imu.name', 'not a valid ROS topic name'),
    (topics(imu={'name': '1abc'}), 'topic.imu.name', 'not a valid ROS topic name'),
    (topics(imu={'name': '/imu', 'expected_rate': -1.0}), 'topic.imu.expected_rate', '>= 0'),
    (topics(imu={'name': '/imu', 'tolerance': 1.5}), 'topic.imu.tolerance', 'must be in [0, 1)'),
    (topics(imu={'name': '/imu', 'min_rate': -1}), 'topic.imu.min_rate', 'must be >= 0'),
    (topics(imu={'name': '/imu', 'max_rate': 'x'}), 'topic.imu.max_rate', 'must be a number'),
    (topics(imu={'name': '/imu', 'min_rate': 100.0, 'max_rate': 50.0}), 'topic.imu.min_rate',
     'above max_rate'),
    (topics(imu={'name': '/imu', 'expected_rate': 100.0, 'min_rate': 90.0}),
     'topic.imu.expected_rate', 'not both'),
    (topics(imu={'name': '/imu', 'max_latency': -1.0}), 'topic.imu.max_latency', '>= 0'),
    (topics(imu={'name': '/imu', 'stale_timeout': -1.0}), 'topic.imu.stale_timeout', '>= 0'),
    (topics(a={'name': '/x'}, b={'name': '/x'}), 'topic.b.name', 'also the name of topic.a'),
    ({'defaults.drop_warn_ratio': 1.0}, 'defaults.drop_warn_ratio', 'must be in [0, 1)'),
    ({'defaults.hysteresis': 0.5}, 'defaults.hysteresis', 'must be in [0, 0.5)'),
    (topics(imu={'name': '/imu', 'drop_warn_ratio': -0.1}), 'topic.imu.drop_warn_ratio',
     'must be in [0, 1)'),
    (topics(imu={'name': '/imu', 'hysteresis': 0.7}), 'topic.imu.hysteresis', '[0, 0.5)'),
]


@pytest.mark.parametrize('values, name, problem', BAD)
def test_invalid_values_give_one_line_naming_the_parameter(values, name, problem):
    with pytest.raises(ConfigError) as info:
        parse_config(values)
    msg = str(info.value)
    assert msg.startswith(f"parameter '{name}': ")
    assert problem in msg
    assert '\n' not in msg
    assert info.value.parameter == name


def test_every_global_parameter_has_an_invalid_value_case():
    tested = {name for _, name, _ in BAD}
    assert {s.name for s in GLOBAL_PARAMS} - tested == set()


def test_unknown_parameters_are_reported():
    values = topics(imu={'name': '/imu'})
    given = ['window', 'topic.imu.name', 'topic.imu.expected_rat', 'use_sim_time',
             'diagnostic_updater.period', 'windw']
    assert unknown_parameters(given, values) == ['topic.imu.expected_rat', 'windw']
    with pytest.raises(ConfigError, match="parameter 'topic.imu.expected_rat': unknown"):
        parse_config(values, given=given)


def test_the_demo_thresholds_fit_sim_robot_defaults_so_every_topic_starts_ok():
    """config/demo.yaml lists sim_robot's streams at their default rates, with latency limits
    (0 = unchecked) far above their default stamp lag of 0 plus loopback delivery (well under
    1 ms idle): on an idle machine each starts OK. The demo test checks that live, where a loaded
    CI machine may legitimately show a degraded topic."""
    from conftest import REPO, node_params
    from liquid_edge_ros_monitor.sim_robot import SPECS
    values = node_params(REPO / 'config' / 'demo.yaml', 'topic_monitor')
    c = parse_config(values, given=values)
    listed = {t.name: t for t in c.topics}
    assert set(listed) == {s.topic for s in SPECS}
    for s in SPECS:
        t = listed[s.topic]
        assert t.min_rate < s.rate < t.max_rate, (s.topic, s.rate, t.min_rate, t.max_rate)
        assert t.max_latency == 0.0 or t.max_latency >= 0.005, (s.topic, t.max_latency)
        assert t.stale_timeout > 1.0 / s.rate, s.topic


def test_drop_ratio_and_hysteresis_are_inherited_and_reach_discovered_topics():
    c = parse_config({**topics(imu={'name': '/imu'}, odom={'name': '/odom', 'hysteresis': 0.1}),
                      'defaults.drop_warn_ratio': 0.02, 'defaults.hysteresis': 0.05})
    imu, odom = c.topics
    assert (imu.drop_warn_ratio, imu.hysteresis) == (0.02, 0.05)
    assert (odom.drop_warn_ratio, odom.hysteresis) == (0.02, 0.1)
    found = c.for_discovered('/scan')
    assert (found.drop_warn_ratio, found.hysteresis) == (0.02, 0.05)
    d = parse_config({}).for_discovered('/scan')
    assert (d.drop_warn_ratio, d.hysteresis) == (0.01, 0.03)


def test_discovery_leaves_out_the_graphs_own_traffic_by_default_and_takes_it_on_request():
    """/diagnostics (bursts from every reporting node, 'jitter std 371 ms') and /rosout are not
    discovered unless a user asks (issue 18 item 3)."""
    d = parse_config({}).discovery
    for noise in ('/diagnostics', '/rosout', '/parameter_events', '/diagnostics_agg'):
        assert not d.matches(noise), noise
    assert d.matches('/imu/data') and d.matches('/robot1/diagnostics')
    assert parse_config({'discovery.exclude': ['/rosout']}).discovery.matches('/diagnostics')
