"""Which MessageInfo fields are known (issue 17 item 4): one rule for the topic monitor and the
instrumentation, checked with each rmw's sentinels, and through liquid_inference's spans to a real
OTLP receiver (Cyclone DDS's UINT64_MAX used to fail the OTLP encoder on every kept span)."""
from __future__ import annotations

import logging

import pytest
from rclpy.parameter import Parameter
from sensor_msgs.msg import Imu

from otlp_receiver import OtlpReceiver
from liquid_edge_ros_monitor.core.msg_info import SEQUENCE_LIMIT, field, known, sequence_number
from liquid_edge_ros_monitor.instrument.recorder import message_attributes

UINT64_MAX = (1 << 64) - 1


class FakeMessageInfo(dict):
    """What rclpy hands a two-argument callback: a dict of the rmw's values."""


@pytest.mark.parametrize('value, expected', [
    (0, None),                       # not provided (several rmws)
    (UINT64_MAX, None),              # rmw_cyclonedds_cpp: unsupported
    (SEQUENCE_LIMIT, None), (-5, None), (None, None), ('12', None), (True, None), (3.0, None),
    (1, 1), (123456789, 123456789), (SEQUENCE_LIMIT - 1, SEQUENCE_LIMIT - 1),
])
def test_known_values(value, expected):
    assert known(value) == expected
    assert sequence_number(FakeMessageInfo(publication_sequence_number=value)) == expected


def test_fields_of_anything():
    info = FakeMessageInfo(source_timestamp=0, received_timestamp=1_700_000_000_000_000_000)
    assert field(info, 'source_timestamp') is None
    assert field(info, 'received_timestamp') == 1_700_000_000_000_000_000
    assert field(info, 'publication_sequence_number') is None          # missing
    assert sequence_number(None) is None and sequence_number(42) is None  # not a MessageInfo


def test_span_attributes_leave_unknown_sequence_numbers_out():
    msg = Imu()
    msg.header.stamp.sec, msg.header.frame_id = 7, 'imu_link'
    for seq, present in ((UINT64_MAX, False), (0, False), (99, True)):
        attrs = message_attributes((msg, FakeMessageInfo(publication_sequence_number=seq)))
        assert ('dds.publication_sequence_number' in attrs) == present
        assert attrs['ros.header.stamp_ns'] == 7_000_000_000
    assert message_attributes(()) == {} and message_attributes((object(), object())) == {}


def test_liquid_inference_traces_every_rmws_sequence_numbers_without_an_encoder_error(ros, caplog):
    from test_inference_node import FEATURES_LIST, GOLDEN
    from liquid_edge_ros_monitor.inference.node import LiquidInference
    with OtlpReceiver('grpc') as rx:
        node = LiquidInference(namespace='/seq_sentinels', parameter_overrides=[
            Parameter('model_path', value=str(GOLDEN)), Parameter('features', value=FEATURES_LIST),
            Parameter('metrics_port', value=-1), Parameter('tracing.endpoint', value=rx.endpoint),
            Parameter('tracing.sampling_ratio', value=1.0)])
        try:
            msg = Imu()
            with caplog.at_level(logging.WARNING):
                for i, seq in enumerate((UINT64_MAX, 0, 42)):
                    msg.header.stamp.sec, msg.header.stamp.nanosec = 100, i * 5_000_000
                    node._on_input(msg, FakeMessageInfo(publication_sequence_number=seq))
                assert node.monitor.tracing.force_flush(10.0)
                rx.wait_for(lambda spans: sum(s.name == 'liquid_inference.callback'
                                              for s in spans) == 3, timeout=10)
            roots = sorted((s for s in rx.spans() if s.name == 'liquid_inference.callback'),
                           key=lambda s: s.attributes['ros.header.stamp_ns'])
            assert [r.attributes.get('dds.publication_sequence_number') for r in roots] == \
                [None, None, 42]
            assert not [r for r in caplog.records if r.name.startswith('opentelemetry')], \
                [r.getMessage() for r in caplog.records]
        finally:
            node.destroy_node()
