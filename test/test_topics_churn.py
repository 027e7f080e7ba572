"""Churn (issue 12 §3): topics that come and go leave /diagnostics and the scrape; listed ones stay.

A real topic_monitor process with `discovery.forget_after: 2`; this test process creates and
destroys publishers and a subscriber. What is checked is what a user sees: the /diagnostics array
and the Prometheus scrape, including `liquid_edge_topic_last_message_age_seconds`.
"""
from __future__ import annotations

import pytest
from rclpy.node import Node
from std_msgs.msg import String

from conftest import free_port, wait_for
from ros_helpers import DiagnosticsListener, sample_value, scrape

NS = '/churn_test'
GONE = f'{NS}/comes_and_goes'
SUB_ONLY = f'{NS}/only_subscribed'
LISTED = f'{NS}/listed'
FORGET_S = 2.0


def _series(port: int, topic: str) -> int:
    """How many samples of the scrape carry topic=`topic`."""
    return sum(1 for line in scrape(port).splitlines()
               if not line.startswith('#') and f'topic="{topic}"' in line)


def _newer_array(listener: DiagnosticsListener, probe: str) -> None:
    """Wait until topic_monitor has published two arrays since now (the listed topic's status is
    in each), so a status still missing afterwards is really gone from the array."""
    for _ in range(2):
        listener.forget(f'topic_monitor: {probe}')
        wait_for(lambda: listener.status(f'topic_monitor: {probe}'), 10, 'a newer array')


@pytest.fixture
def monitor(ros, ros_process):
    port = free_port()
    proc = ros_process('liquid_edge_ros_monitor.entry', 'topic_monitor', '--ros-args',
                       '-r', f'__ns:={NS}', '-p', f'metrics_port:={port}',
                       '-p', f"discovery.include:=['{NS}/.*']",
                       '-p', 'discovery.period:=0.2', '-p', 'update_period:=0.2',
                       '-p', f'discovery.forget_after:={FORGET_S}',
                       '-p', 'diagnostic_updater.period:=0.2',
                       '-p', 'topics:=[listed]', '-p', 'topic.listed.name:=listed',
                       '-p', 'topic.listed.stale_timeout:=0.5')
    listener = DiagnosticsListener('test_churn_listener')
    node = Node('test_churn_node', namespace=NS)
    try:
        wait_for(lambda: listener.status(f'topic_monitor: {LISTED}'), 30,
                 f'topic_monitor diagnostics:\n{proc.output()}')
        yield proc, port, listener, node
    finally:
        node.destroy_node()
        listener.close()
        assert proc.stop() == 0, proc.output()


def test_vanished_discovered_topics_are_forgotten_and_listed_ones_stay(monitor):
    proc, port, listener, node = monitor
    name = f'topic_monitor: {GONE}'
    pub = node.create_publisher(String, GONE, 10)
    listed_pub = node.create_publisher(String, LISTED, 10)
    msg = String(data='x')

    def published_and_seen():
        pub.publish(msg)
        listed_pub.publish(msg)
        return (sample_value(scrape(port), 'liquid_edge_topic_messages_total', topic=GONE) or 0) >= 3
    wait_for(published_and_seen, 30, f'{GONE} measured')
    age = sample_value(scrape(port), 'liquid_edge_topic_last_message_age_seconds', topic=GONE)
    assert age is not None and 0 <= age < 5
    assert listener.status(name) is not None

    # Silent (publisher still there): the age grows at scrape time, the topic is not forgotten.
    wait_for(lambda: (sample_value(scrape(port), 'liquid_edge_topic_last_message_age_seconds',
                                   topic=GONE) or 0) > FORGET_S + 0.5, 20, 'the age to grow')
    assert _series(port, GONE) > 0

    node.destroy_publisher(pub)
    node.destroy_publisher(listed_pub)
    wait_for(lambda: _series(port, GONE) == 0, 20, f'the series of {GONE} to go')
    _newer_array(listener, LISTED)
    listener.forget(name)
    _newer_array(listener, LISTED)
    assert listener.status(name) is None, 'forgotten topic still on /diagnostics'
    # The listed topic stays, STALE, with its series.
    assert listener.level(f'topic_monitor: {LISTED}') == 3
    assert sample_value(scrape(port), 'liquid_edge_topic_status', topic=LISTED) == 3

    # A publisher again: the topic is back, measured from scratch.
    pub = node.create_publisher(String, GONE, 10)

    def back():
        pub.publish(msg)
        return sample_value(scrape(port), 'liquid_edge_topic_messages_total', topic=GONE)
    wait_for(back, 30, f'{GONE} back')
    assert listener.status(name) is not None or wait_for(lambda: listener.status(name), 10, 'back')


def test_a_topic_with_only_a_subscriber_is_never_tracked(monitor):
    """Only a subscriber keeps the topic in the graph: it carries nothing to measure, so it gets no
    series and no status (it used to be tracked, about 50 series, until forget_after), and it is
    tracked as soon as a publisher comes (issue 17 item 7)."""
    proc, port, listener, node = monitor
    node.create_subscription(String, SUB_ONLY, lambda _m: None, 10)
    for _ in range(3):
        _newer_array(listener, LISTED)
        assert _series(port, SUB_ONLY) == 0
        assert listener.status(f'topic_monitor: {SUB_ONLY}') is None
    pub = node.create_publisher(String, SUB_ONLY, 10)

    def back():
        pub.publish(String(data='y'))
        return sample_value(scrape(port), 'liquid_edge_topic_messages_total', topic=SUB_ONLY)
    wait_for(back, 30, f'{SUB_ONLY} tracked with a publisher')


def test_discovered_topics_summarised_in_one_status(ros, ros_process):
    """`discovery.diagnostics: summary`: one `discovered topics` status instead of one per topic
    (a thousand statuses a second is too much for rqt_robot_monitor); metrics unchanged."""
    port = free_port()
    proc = ros_process('liquid_edge_ros_monitor.entry', 'topic_monitor', '--ros-args',
                       '-r', f'__ns:={NS}_sum', '-p', f'metrics_port:={port}',
                       '-p', f"discovery.include:=['{NS}_sum/.*']",
                       '-p', 'discovery.diagnostics:=summary', '-p', 'discovery.period:=0.2',
                       '-p', 'update_period:=0.2', '-p', 'diagnostic_updater.period:=0.2',
                       '-p', 'topics:=[listed]', '-p', 'topic.listed.name:=listed')
    listener = DiagnosticsListener('test_summary_listener')
    node = Node('test_summary_node', namespace=f'{NS}_sum')
    try:
        pubs = [node.create_publisher(String, f'{NS}_sum/t{i}', 10) for i in range(3)]

        def three():
            for p in pubs:
                p.publish(String(data='s'))
            return listener.message('topic_monitor: discovered topics').startswith('3 topics')
        wait_for(three, 30, f'the summary status:\n{proc.output()}')
        assert listener.status(f'topic_monitor: {NS}_sum/listed') is not None   # listed: its own
        assert not [n for n in listener.names() if n.startswith(f'topic_monitor: {NS}_sum/t')]
        # The summary counts tracks from discovery on; their series come with the next
        # statistics tick.
        wait_for(lambda: sample_value(scrape(port), 'liquid_edge_topic_messages_total',
                                      topic=f'{NS}_sum/t0') is not None, 10,
                 'the summarised topic keeps its metrics')
    finally:
        node.destroy_node()
        listener.close()
    assert proc.stop() == 0, proc.output()
