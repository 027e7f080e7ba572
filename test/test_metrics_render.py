"""Histogram bucketing, the collector's exposition, and the live table (no DDS)."""
import time

import numpy as np
import pytest
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.openmetrics.exposition import generate_latest as openmetrics_latest

from liquid_edge_ros_monitor.topics.config import TopicConfig
from liquid_edge_ros_monitor.topics.health import TopicState, report
from liquid_edge_ros_monitor.live_view import render
from liquid_edge_ros_monitor.core.histogram import LatencyHistogram
from liquid_edge_ros_monitor.topics.metrics import TopicMetrics
from liquid_edge_ros_monitor.topics.stats import NS, TopicWindow


def test_histogram_buckets_are_less_or_equal_and_cumulative():
    h = LatencyHistogram((0.001, 0.01))
    h.add(np.array([0.0005, 0.001, 0.002, 0.01, 5.0]))
    h.add(np.array([]))
    assert h.buckets() == [('0.001', 2), ('0.01', 4), ('+Inf', 5)]
    assert h.total == 0.0005 + 0.001 + 0.002 + 0.01 + 5.0


def test_an_exemplar_sits_in_its_values_bucket_and_only_in_openmetrics():
    from prometheus_client.openmetrics.exposition import generate_latest as openmetrics

    from liquid_edge_ros_monitor.instrument.metrics import InferenceMetrics
    m = InferenceMetrics('r1', '/li')
    m.add_latencies('callback', np.array([0.0004, 0.003]))
    m.add_exemplar('callback', 0.003, 0xabc, 0x12, 1700000000.0)
    m.add_exemplar('callback', 0.0004, 0xdef, 0x34, 1700000001.0)
    m.add_exemplar('callback', 0.0045, 0x123, 0x56, 1700000002.0)    # replaces 0xabc's: same bucket
    buckets = m.hist['callback'].buckets()
    with_ex = {b[0]: b[2] for b in buckets if len(b) == 3}
    assert set(with_ex) == {'0.0005', '0.005'}
    assert with_ex['0.005'].labels == {'trace_id': '%032x' % 0x123, 'span_id': '%016x' % 0x56}
    assert with_ex['0.005'].value == 0.0045
    registry = CollectorRegistry()
    registry.register(m)
    om = openmetrics(registry).decode()
    assert 'trace_id="%032x"' % 0x123 in om and 'trace_id="%032x"' % 0xabc not in om
    assert 'trace_id' not in generate_latest(registry).decode()


def _report(name, has_header=True, lag_ns=2_000_000, publishers=1):
    w = TopicWindow(5.0, 1000, has_header=has_header)
    for i in range(100):
        t = 10 * NS + i * 10_000_000
        w.record(t, 50, 100_000, i + 1, t - lag_ns)
    snap = w.snapshot(10 * NS + 99 * 10_000_000, single_publisher=True)
    state = TopicState(type_name='sensor_msgs/msg/Imu', publishers=publishers, silent_for_s=0.0,
                       subscribed=True, has_header=has_header)
    return report(name, TopicConfig(name=name, expected_rate=100.0, min_rate=90.0,
                                    max_rate=110.0), state, snap)


def test_collector_renders_every_series_with_robot_label():
    registry = CollectorRegistry()
    metrics = TopicMetrics('r1')
    registry.register(metrics)
    metrics.update(_report('/imu'))
    metrics.update(_report('/chatter', has_header=False))
    text = generate_latest(registry).decode()
    assert 'liquid_edge_topic_messages_total{robot="r1",topic="/imu"} 100.0' in text
    assert 'liquid_edge_topic_rate_hz{robot="r1",topic="/imu"} 100.0' in text
    assert 'liquid_edge_topic_latency_seconds_bucket{le="0.0025",robot="r1",topic="/imu"} 100.0' \
        in text
    assert 'liquid_edge_topic_latency_seconds_count{robot="r1",topic="/chatter"}' not in text
    assert 'liquid_edge_topic_transport_latency_seconds_count{robot="r1",topic="/chatter"} 100.0' \
        in text
    assert 'liquid_edge_topic_status{robot="r1",topic="/imu"} 0.0' in text
    metrics.remove('/imu')
    assert 'topic="/imu"' not in generate_latest(registry).decode()


def test_fast_text_rendering_is_the_generic_exposition_byte_for_byte():
    """The endpoint renders the topic collector with `render_text()` (eight times faster at 1,000
    topics); it must say exactly what prometheus_client would say for `collect()`."""
    metrics = TopicMetrics('r "1"\\', now_ns=lambda: 11 * NS)
    metrics.update(_report('/imu'))
    metrics.update(_report('/chatter', has_header=False))
    metrics.update(_report('/none', publishers=0))
    silent = TopicState(type_name='', publishers=0, silent_for_s=None, subscribed=False,
                        has_header=False)
    metrics.update(report('/never', TopicConfig(name='/never'), silent, None))
    one = TopicWindow(5.0, 10, has_header=True)
    one.record(10 * NS, 5, 1, 1, -NS)
    metrics.update(report('/one', TopicConfig(name='/one'), silent, one.snapshot(10 * NS, True)))
    # Counts from seven digits on are written with an exponent, as Go does.
    metrics._series['/imu'].hist[1].add(np.full(1_234_567, 0.003))
    registry = CollectorRegistry()
    registry.register(metrics)
    text = metrics.render_text()
    assert text == generate_latest(registry).decode()
    assert ('liquid_edge_topic_transport_latency_seconds_count{robot="r \\"1\\"\\\\",'
            'topic="/imu"} 1.234667e+06') in text
    om = openmetrics_latest(registry).decode()
    assert metrics.render_text(openmetrics=True) + '# EOF\n' == om
    metrics.down_reason = lambda: 'statistics thread stopped'     # a dead thread: gauges go
    assert metrics.render_text() == generate_latest(registry).decode()
    assert metrics.render_text(True) + '# EOF\n' == openmetrics_latest(registry).decode()
    metrics.down_reason = None
    assert 'liquid_edge_topic_last_message_age_seconds{robot="r \\"1\\"\\\\",topic="/imu"}' in text
    metrics.remove('/imu')
    assert 'topic="/imu"' not in metrics.render_text()


@pytest.mark.parametrize('value', [0, 1, 999_999, 1_000_000, 1_234_567, 10 ** 16, 2 ** 63, -1,
                                   -10 ** 7, 0.5, 1e-7, 123456.5, float('inf'), float('nan'),
                                   True, np.int64(5)])
def test_the_renderers_number_format_is_prometheus_clients(value):
    from prometheus_client.utils import floatToGoString

    from liquid_edge_ros_monitor.topics.metrics import _go
    assert _go(value) == floatToGoString(value)


def test_live_table_has_one_row_per_topic_with_status():
    text = render([_report('/imu'), _report('/chatter', has_header=False, publishers=0)])
    lines = text.splitlines()
    assert lines[0].split()[:3] == ['TOPIC', 'RATE', 'Hz']
    assert lines[1].startswith('/imu ') and lines[1].endswith('OK 100.0 Hz, 5.0 kB/s, latency p95 2.0 ms')
    assert lines[2].startswith('/chatter ') and lines[2].endswith('STALE no publishers')
    assert '5.0 kB/s' in lines[1]
    assert render([]) .endswith('(no topics yet)')
    coloured = render([_report('/imu')], colour=True)
    assert '\x1b[32m' in coloured


def test_nodes_asking_for_one_port_share_an_endpoint_and_the_last_one_closes_it():
    import urllib.error
    import urllib.request

    from conftest import free_port
    from liquid_edge_ros_monitor.core.exposition import attach, detach
    from liquid_edge_ros_monitor.graph.metrics import NodeMonitorMetrics

    port = free_port()
    a, b, c = TopicMetrics('r'), NodeMonitorMetrics('r'), NodeMonitorMetrics('r2')
    ep_a = attach(a, '127.0.0.1', port)
    ep_b = attach(b, '127.0.0.1', port)
    ep_c = attach(c, '127.0.0.1', 0)
    assert ep_a is ep_b and ep_a.port == port
    assert ep_c is not ep_a and ep_c.port not in (0, port)
    assert attach(TopicMetrics('x'), '127.0.0.1', -1) is None
    body = urllib.request.urlopen(f'http://127.0.0.1:{port}/metrics', timeout=5).read().decode()
    assert 'liquid_edge_nodes_discovered{robot="r"}' in body and 'r2' not in body
    detach(a, ep_a)
    urllib.request.urlopen(f'http://127.0.0.1:{port}/metrics', timeout=5).read()   # b still there
    detach(b, ep_b)
    detach(c, ep_c)
    with pytest.raises(urllib.error.URLError):
        urllib.request.urlopen(f'http://127.0.0.1:{port}/metrics', timeout=5)


def test_endpoint_serves_what_the_scraper_asks_for_with_the_fast_topic_lines():
    """Prometheus asks for OpenMetrics (exemplars travel only there), curl gets the text format;
    either way the topic collector's own lines sit among the others, once, before `# EOF`."""
    import urllib.request

    from conftest import free_port
    from liquid_edge_ros_monitor.core.exposition import attach, detach
    from liquid_edge_ros_monitor.graph.metrics import NodeMonitorMetrics

    port = free_port()
    topics, nodes = TopicMetrics('r'), NodeMonitorMetrics('r')
    ep = attach(topics, '127.0.0.1', port)
    attach(nodes, '127.0.0.1', port)
    topics.update(_report('/imu'))
    try:
        accept = ('application/openmetrics-text;version=1.0.0,text/plain;version=0.0.4;q=0.5,'
                  '*/*;q=0.1')
        req = urllib.request.Request(f'http://127.0.0.1:{port}/metrics', headers={'Accept': accept})
        with urllib.request.urlopen(req, timeout=5) as r:
            om, om_type = r.read().decode(), r.headers['Content-Type']
        with urllib.request.urlopen(f'http://127.0.0.1:{port}/metrics', timeout=5) as r:
            text, text_type = r.read().decode(), r.headers['Content-Type']
    finally:
        detach(topics, ep)
        detach(nodes, ep)
    assert om_type.startswith('application/openmetrics-text') and om.endswith('# EOF\n')
    assert om.count('# EOF') == 1 and '# TYPE liquid_edge_topic_messages counter' in om
    assert 'liquid_edge_nodes_discovered{robot="r"}' in om
    assert text_type.startswith('text/plain; version=0.0.4') and '# EOF' not in text
    assert '# TYPE liquid_edge_topic_messages_total counter' in text
    for body in (om, text):
        assert body.count('liquid_edge_topic_messages_total{robot="r",topic="/imu"} 100.0') == 1


def _strings_reachable(root, needle: str) -> list:
    """Every string containing `needle` reachable from `root` through containers and object
    attributes (__dict__ and __slots__): what an object still holds, whatever its layout."""
    seen, found, stack = set(), [], [root]
    while stack:
        obj = stack.pop()
        if id(obj) in seen:
            continue
        seen.add(id(obj))
        if isinstance(obj, str):
            if needle in obj:
                found.append(obj)
        elif isinstance(obj, dict):
            stack.extend(obj.keys())
            stack.extend(obj.values())
        elif isinstance(obj, (list, tuple, set, frozenset)):
            stack.extend(obj)
        elif not isinstance(obj, (int, float, bytes, np.ndarray)) and not callable(obj):
            stack.extend(getattr(obj, '__dict__', {}).values())
            for slot in getattr(type(obj), '__slots__', ()):
                if hasattr(obj, slot):
                    stack.append(getattr(obj, slot))
    return found


def test_removed_topics_leave_nothing_behind_while_scrapes_render():
    """Issue 17 item 6: `remove` runs on the statistics thread while a scrape renders on the HTTP
    thread from the rows it took before. The render must not bring a removed topic's cached label
    string or bucket prefixes back: under churning topic names that grew without a bound."""
    import sys
    import threading

    metrics = TopicMetrics('r1')
    names = [f'/churn/run_{i:04d}' for i in range(600)]
    base = _report('/template')
    for name in names:
        metrics.update(type(base)(name, base.config, base.state, base.snapshot, base.level,
                                  base.message))
    metrics.render_text()
    stop = threading.Event()
    renders = [0]

    def scrape_loop() -> None:
        while not stop.is_set():
            metrics.render_text()
            renders[0] += 1
    old = sys.getswitchinterval()
    sys.setswitchinterval(1e-5)
    thread = threading.Thread(target=scrape_loop, daemon=True)
    thread.start()
    try:
        for name in names:
            metrics.remove(name)
            if renders[0] == 0:
                time.sleep(0.001)
    finally:
        stop.set()
        thread.join(10)
        sys.setswitchinterval(old)
    assert renders[0] > 0
    assert metrics.render_text().count('/churn/') == 0
    left = _strings_reachable(metrics, '/churn/')
    assert not left, f'{len(left)} strings of removed topics still held, e.g. {left[:2]}'


def test_series_per_topic_are_what_docs_metrics_says():
    """docs/METRICS.md gives the series per topic for each setting (what a fleet pays per robot
    and scrape): count them in a rendering, for a topic with and without a Header, with and
    without histograms (`discovery.histograms`)."""
    import re

    from conftest import REPO
    doc = (REPO / 'docs' / 'METRICS.md').read_text()
    table = dict(re.findall(r'^\| (with a `std_msgs/Header`|without a Header|any) \|.*\| (\d+) \|$',
                            doc, re.M))
    assert set(table) == {'with a `std_msgs/Header`', 'without a Header', 'any'}, table

    def series(report_, histograms: bool) -> int:
        m = TopicMetrics('r1', discovered_histograms=histograms)
        m.update(report_)
        return sum(1 for line in m.render_text().splitlines()
                   if not line.startswith('#') and f'topic="{report_.name}"' in line)
    discovered = _report('/d')        # TopicConfig(listed=False): a discovered topic
    assert series(discovered, True) == int(table['with a `std_msgs/Header`'])
    assert series(_report('/d', has_header=False), True) == int(table['without a Header'])
    assert series(discovered, False) == series(_report('/d', has_header=False), False) \
        == int(table['any'])
    # A listed topic keeps its histograms whatever discovery.histograms says.
    base = _report('/listed')
    listed = type(base)(base.name, TopicConfig(name='/listed', listed=True), base.state,
                        base.snapshot, base.level, base.message)
    assert series(listed, False) == int(table['with a `std_msgs/Header`'])
