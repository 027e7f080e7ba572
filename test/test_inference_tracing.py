"""Tracing: configuration from OTEL_* variables and overrides, and spans that really reach an OTLP
receiver over gRPC and HTTP; a dead collector costs the caller nothing and cannot hang shutdown."""
from __future__ import annotations

import socket
import threading
import time
from typing import Dict, List

import pytest
from opentelemetry import trace
from opentelemetry.trace import Status, StatusCode

from conftest import wait_for
from liquid_edge_ros_monitor.instrument.otel_env import TracingConfig
from liquid_edge_ros_monitor.instrument.tracing import Tracing, setup_tracing
from otlp_receiver import OtlpReceiver, ReceivedSpan

NODE_ATTRS = {'ros.node.name': 'liquid_inference', 'ros.node.namespace': '/robot1', 'ros.domain_id': '42'}


def closed_port() -> int:
    """A port on 127.0.0.1 with nothing listening (bound, then released)."""
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        return s.getsockname()[1]


def node_callback(tracing: Tracing, seq: int) -> None:
    """What the inference node does per message: a parent span and three children."""
    with tracing.tracer.start_as_current_span('liquid_inference.callback') as parent:
        parent.set_attribute('ros.topic', '/imu/data')
        parent.set_attribute('ros.seq', seq)
        for step in ('preprocess', 'forward', 'publish'):
            with tracing.tracer.start_as_current_span(step) as child:
                child.set_attribute('step', step)
        parent.set_status(Status(StatusCode.OK))


def by_trace(spans: List[ReceivedSpan]) -> Dict[str, List[ReceivedSpan]]:
    traces: Dict[str, List[ReceivedSpan]] = {}
    for s in spans:
        traces.setdefault(s.trace_id, []).append(s)
    return traces


@pytest.mark.parametrize('protocol', ['grpc', 'http/protobuf'])
def test_spans_reach_a_real_otlp_receiver(protocol: str) -> None:
    with OtlpReceiver(protocol) as rx:
        config = TracingConfig.from_env({'endpoint': rx.endpoint, 'protocol': protocol,
                                         'service_name': 'liquid_inference_test'},
                                        environ={'OTEL_RESOURCE_ATTRIBUTES': 'deployment.environment=lab,'
                                                                             'ros.node.name=from_env'})
        if protocol == 'http/protobuf':
            assert config.endpoint == rx.endpoint + '/v1/traces'
        tracing = setup_tracing(config, NODE_ATTRS)
        assert trace.get_tracer_provider() is not tracing._provider  # the global one is untouched
        for seq in range(3):
            node_callback(tracing, seq)
        assert tracing.shutdown(5.0)
        spans = rx.wait_for(lambda s: len(s) >= 12, timeout=10)

    assert len(spans) == 12
    assert tracing.exported_spans == 12 and tracing.failed_spans == 0
    traces = by_trace(spans)
    assert len(traces) == 3
    seqs = set()
    for tspans in traces.values():
        parents = [s for s in tspans if s.name == 'liquid_inference.callback']
        assert len(parents) == 1
        parent = parents[0]
        assert parent.parent_span_id == ''
        assert len(parent.trace_id) == 32 and len(parent.span_id) == 16
        assert parent.attributes['ros.topic'] == '/imu/data'
        assert parent.status_code == 1  # OK
        seqs.add(parent.attributes['ros.seq'])
        children = sorted((s for s in tspans if s is not parent), key=lambda s: s.start_ns)
        assert [c.name for c in children] == ['preprocess', 'forward', 'publish']
        for c in children:
            assert c.parent_span_id == parent.span_id
            assert c.attributes == {'step': c.name}
            assert parent.start_ns <= c.start_ns <= c.end_ns <= parent.end_ns
    assert seqs == {0, 1, 2}
    resource = spans[0].resource
    assert resource['service.name'] == 'liquid_inference_test'
    assert resource['host.name'] == socket.gethostname()
    assert resource['deployment.environment'] == 'lab'
    assert resource['ros.node.name'] == 'liquid_inference'  # the process's facts win over the env
    assert resource['ros.node.namespace'] == '/robot1' and resource['ros.domain_id'] == '42'


@pytest.mark.parametrize('ratio, expected', [(0.0, 0), (1.0, 40)])
def test_sampling_ratio_bounds(ratio: float, expected: int) -> None:
    with OtlpReceiver('grpc') as rx:
        tracing = setup_tracing(TracingConfig(endpoint=rx.endpoint, sampling_ratio=ratio), NODE_ATTRS)
        for seq in range(10):
            node_callback(tracing, seq)
        # A marker exported either way proves the pipeline works, so "0 spans" is not a dead pipeline.
        marker = setup_tracing(TracingConfig(endpoint=rx.endpoint), {})
        with marker.tracer.start_as_current_span('marker'):
            pass
        assert tracing.shutdown(5.0) and marker.shutdown(5.0)
        spans = rx.wait_for(lambda s: any(x.name == 'marker' for x in s), timeout=10)
        assert len([s for s in spans if s.name != 'marker']) == expected


def test_sampling_ratio_half_samples_whole_traces() -> None:
    with OtlpReceiver('grpc') as rx:
        tracing = setup_tracing(TracingConfig(endpoint=rx.endpoint, sampling_ratio=0.5), {})
        for seq in range(200):
            node_callback(tracing, seq)
        assert tracing.shutdown(5.0)
        spans = rx.spans()
    traces = by_trace(spans)
    assert all(len(t) == 4 for t in traces.values())  # children follow their parent's decision
    assert 60 <= len(traces) <= 140  # binomial(200, 0.5): outside this is ~1e-8


def test_disabled_gives_a_noop_tracer() -> None:
    config = TracingConfig.from_env({}, environ={'OTEL_SDK_DISABLED': 'true'})
    assert not config.enabled
    tracing = setup_tracing(config, NODE_ATTRS)
    assert isinstance(tracing.tracer, trace.NoOpTracer)
    node_callback(tracing, 0)  # the node's code is the same either way
    assert not tracing.enabled and tracing.shutdown(0.1)


def test_defaults_follow_the_spec() -> None:
    c = TracingConfig.from_env({}, environ={})
    assert (c.enabled, c.protocol, c.endpoint, c.sampling_ratio, c.parent_based) == \
        (True, 'grpc', 'http://localhost:4317', 1.0, True)
    assert c.export_timeout_s == 10.0
    h = TracingConfig.from_env({}, environ={'OTEL_EXPORTER_OTLP_PROTOCOL': 'http/protobuf'})
    assert h.endpoint == 'http://localhost:4318/v1/traces'


def test_env_endpoint_rules() -> None:
    env = {'OTEL_EXPORTER_OTLP_PROTOCOL': 'http/protobuf', 'OTEL_EXPORTER_OTLP_ENDPOINT': 'http://gw:4318/otlp'}
    assert TracingConfig.from_env({}, environ=env).endpoint == 'http://gw:4318/otlp/v1/traces'
    env['OTEL_EXPORTER_OTLP_ENDPOINT'] = 'http://gw:4318/'
    assert TracingConfig.from_env({}, environ=env).endpoint == 'http://gw:4318/v1/traces'
    # The signal-specific endpoint is used as it is, and wins over the base one.
    env['OTEL_EXPORTER_OTLP_TRACES_ENDPOINT'] = 'http://tr:9999/custom'
    assert TracingConfig.from_env({}, environ=env).endpoint == 'http://tr:9999/custom'
    # gRPC uses the base endpoint as it is.
    g = {'OTEL_EXPORTER_OTLP_ENDPOINT': 'https://collector:4317'}
    assert TracingConfig.from_env({}, environ=g).endpoint == 'https://collector:4317'
    # The traces protocol wins over the general one.
    p = {'OTEL_EXPORTER_OTLP_PROTOCOL': 'grpc', 'OTEL_EXPORTER_OTLP_TRACES_PROTOCOL': 'http/protobuf'}
    assert TracingConfig.from_env({}, environ=p).protocol == 'http/protobuf'


def test_env_sampler_service_and_resource() -> None:
    env = {'OTEL_TRACES_SAMPLER': 'traceidratio', 'OTEL_TRACES_SAMPLER_ARG': '0.25',
           'OTEL_RESOURCE_ATTRIBUTES': 'service.name=from_attrs,team=edge%20ai,site=lab',
           'OTEL_EXPORTER_OTLP_TRACES_TIMEOUT': '2500'}
    c = TracingConfig.from_env({}, environ=env)
    assert (c.sampling_ratio, c.parent_based, c.service_name) == (0.25, False, 'from_attrs')
    assert c.resource_attributes['team'] == 'edge ai' and c.export_timeout_s == 2.5
    env['OTEL_SERVICE_NAME'] = 'from_service_name'  # wins over service.name in the attributes
    assert TracingConfig.from_env({}, environ=env).service_name == 'from_service_name'
    assert TracingConfig.from_env({}, environ={'OTEL_TRACES_SAMPLER': 'always_off'}).sampling_ratio == 0.0
    pb = TracingConfig.from_env({}, environ={'OTEL_TRACES_SAMPLER': 'parentbased_traceidratio',
                                             'OTEL_TRACES_SAMPLER_ARG': '0.1'})
    assert (pb.sampling_ratio, pb.parent_based) == (0.1, True)


def test_overrides_win_unless_empty() -> None:
    env = {'OTEL_SERVICE_NAME': 'env_name', 'OTEL_EXPORTER_OTLP_ENDPOINT': 'http://env:4317',
           'OTEL_EXPORTER_OTLP_PROTOCOL': 'grpc', 'OTEL_TRACES_SAMPLER': 'traceidratio',
           'OTEL_TRACES_SAMPLER_ARG': '0.5', 'OTEL_SDK_DISABLED': 'false'}
    c = TracingConfig.from_env({'service_name': 'param_name', 'endpoint': 'http://param:4318',
                                'protocol': 'http/protobuf', 'sampling_ratio': 0.0, 'enabled': True,
                                'export_timeout_s': 3.0}, environ=env)
    assert (c.service_name, c.endpoint, c.protocol, c.sampling_ratio, c.enabled, c.export_timeout_s) == \
        ('param_name', 'http://param:4318/v1/traces', 'http/protobuf', 0.0, True, 3.0)
    # A parameter that already names the traces path keeps it.
    assert TracingConfig.from_env({'endpoint': 'http://p:4318/v1/traces', 'protocol': 'http/protobuf'},
                                  environ={}).endpoint == 'http://p:4318/v1/traces'
    # Empty overrides (unset ROS parameters) leave the environment in charge.
    e = TracingConfig.from_env({'service_name': '', 'endpoint': None, 'protocol': ''}, environ=env)
    assert (e.service_name, e.endpoint, e.protocol, e.sampling_ratio, e.enabled) == \
        ('env_name', 'http://env:4317', 'grpc', 0.5, True)


@pytest.mark.parametrize('env, overrides', [
    ({'OTEL_SDK_DISABLED': 'true', 'OTEL_EXPORTER_OTLP_ENDPOINT': 'localhost:4317'}, {}),
    ({'OTEL_EXPORTER_OTLP_ENDPOINT': 'localhost:4317', 'OTEL_TRACES_SAMPLER': 'sometimes'},
     {'enabled': False}),
    ({}, {'enabled': False, 'endpoint': 'not a url', 'sampling_ratio': 7}),
])
def test_settings_of_disabled_tracing_never_stop_the_controller(env, overrides) -> None:
    """Tracing off (OTEL_SDK_DISABLED or tracing.enabled false): what would configure it is not
    used, so an invalid endpoint left in the environment must not refuse the start (issue 12)."""
    assert not TracingConfig.from_env(overrides, environ=env).enabled


@pytest.mark.parametrize('env, overrides, message', [
    ({'OTEL_EXPORTER_OTLP_PROTOCOL': 'udp'}, {},
     "OTEL_EXPORTER_OTLP_PROTOCOL: must be grpc or http/protobuf, got 'udp'"),
    ({'OTEL_EXPORTER_OTLP_TRACES_PROTOCOL': 'http/json'}, {},
     "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL: must be grpc or http/protobuf, got 'http/json'"),
    ({'OTEL_TRACES_SAMPLER': 'sometimes'}, {}, 'OTEL_TRACES_SAMPLER: must be one of'),
    ({'OTEL_TRACES_SAMPLER': 'traceidratio', 'OTEL_TRACES_SAMPLER_ARG': '1.5'}, {},
     'OTEL_TRACES_SAMPLER_ARG: must be in [0, 1], got 1.5'),
    ({'OTEL_TRACES_SAMPLER': 'traceidratio', 'OTEL_TRACES_SAMPLER_ARG': 'half'}, {},
     "OTEL_TRACES_SAMPLER_ARG: must be a number in [0, 1], got 'half'"),
    ({'OTEL_EXPORTER_OTLP_ENDPOINT': 'localhost:4317'}, {},
     "OTEL_EXPORTER_OTLP_ENDPOINT: must be an http:// or https:// URL with a host, got 'localhost:4317'"),
    ({'OTEL_EXPORTER_OTLP_TRACES_ENDPOINT': 'http://h:99999'}, {},
     "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT: must be a URL"),
    ({'OTEL_SDK_DISABLED': 'maybe'}, {}, "OTEL_SDK_DISABLED: must be true or false, got 'maybe'"),
    ({'OTEL_RESOURCE_ATTRIBUTES': 'a=1,broken'}, {},
     "OTEL_RESOURCE_ATTRIBUTES: entries must be key=value separated by commas, got 'broken'"),
    ({'OTEL_EXPORTER_OTLP_TIMEOUT': '-5'}, {}, 'OTEL_EXPORTER_OTLP_TIMEOUT: must be a number of milliseconds'),
    ({}, {'protocol': 'udp'}, "parameter 'tracing.protocol': must be grpc or http/protobuf, got 'udp'"),
    ({}, {'sampling_ratio': 2}, "parameter 'tracing.sampling_ratio': must be in [0, 1], got 2"),
    ({}, {'endpoint': 'ftp://x'}, "parameter 'tracing.endpoint': must be an http:// or https:// URL"),
    ({}, {'export_timeout_s': 0}, "parameter 'tracing.export_timeout_s': must be a number of seconds > 0"),
    ({}, {'max_export_batch_size': 4096}, "parameter 'tracing.max_export_batch_size': must be in [1, "),
    ({}, {'colour': 'blue'}, "parameter 'tracing.colour': unknown tracing setting"),
])
def test_bad_values_give_one_line_errors(env: Dict[str, str], overrides: Dict[str, object], message: str) -> None:
    with pytest.raises(ValueError) as info:
        TracingConfig.from_env(overrides, environ=env, parameter_prefix='tracing.')
    text = str(info.value)
    assert text.startswith(message) and '\n' not in text


@pytest.mark.parametrize('protocol', ['grpc', 'http/protobuf'])
def test_dead_collector_costs_nothing_and_shutdown_is_bounded(protocol: str,
                                                              caplog: pytest.LogCaptureFixture) -> None:
    port = closed_port()
    config = TracingConfig.from_env({'endpoint': f'http://127.0.0.1:{port}', 'protocol': protocol,
                                     'export_timeout_s': 3.0, 'schedule_delay_s': 0.05,
                                     'max_queue_size': 256, 'max_export_batch_size': 64}, environ={})
    tracing = setup_tracing(config, NODE_ATTRS)
    for seq in range(250):  # 1000 spans, well past the queue: drops, never raises or blocks
        node_callback(tracing, seq)
    wait_for(lambda: tracing.failed_spans > 0, timeout=15, what='a failed export to the closed port')
    start = time.monotonic()
    tracing.shutdown(config.export_timeout_s)
    elapsed = time.monotonic() - start
    assert elapsed < config.export_timeout_s + 2.0
    assert tracing.exported_spans == 0
    # The full queue drops spans quietly and counts them (no log record built per span).
    assert tracing.dropped_spans > 0
    assert tracing.dropped_spans + tracing.failed_spans <= 1000
    assert not [r for r in caplog.records if 'Queue full' in r.getMessage()]
    # Any thread the exporter's retries could still hold is a daemon: it cannot keep the process alive.
    ours = [t for t in threading.enumerate() if t.name.startswith(('OtelBatch', 'tracing-shutdown'))]
    assert all(t.daemon for t in ours)


@pytest.mark.parametrize('protocol', ['grpc', 'http/protobuf'])
def test_shutdown_gives_up_on_a_batch_stuck_in_its_retries(protocol: str) -> None:
    """The first batch to a dead collector has not failed yet while its exporter waits out the
    backoff (up to the export timeout): a stop must not wait for it (seen: 2.5 s demo stops)."""
    config = TracingConfig.from_env({'endpoint': f'http://127.0.0.1:{closed_port()}',
                                     'protocol': protocol, 'export_timeout_s': 30.0,
                                     'schedule_delay_s': 0.05}, environ={})
    tracing = setup_tracing(config, NODE_ATTRS)
    node_callback(tracing, 1)
    exporter = tracing._exporter
    wait_for(lambda: exporter.in_flight_s() > 0.3, timeout=15, what='an export retrying')
    assert tracing.failed_spans == 0 and not exporter.last_failed     # it has not failed yet
    start = time.monotonic()
    assert not tracing.shutdown(30.0)           # not clean: the batch is given up, not waited for
    assert time.monotonic() - start < 10.0      # the old code waited the whole 30 s


def test_shutdown_waits_for_a_slow_collector_that_answers() -> None:
    """Giving up on a stuck batch must not give up on a slow link (TLS over cellular): a collector
    answering each export after 0.6 s still gets the final batch."""
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    bodies: List[bytes] = []

    class Slow(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802 - http.server's name
            bodies.append(self.rfile.read(int(self.headers['Content-Length'])))
            time.sleep(0.6)
            self.send_response(200)
            self.send_header('Content-Type', 'application/x-protobuf')
            self.send_header('Content-Length', '0')
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(('127.0.0.1', 0), Slow)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        config = TracingConfig.from_env({'endpoint': f'http://127.0.0.1:{server.server_port}',
                                         'protocol': 'http/protobuf', 'export_timeout_s': 10.0,
                                         'schedule_delay_s': 60.0}, environ={})
        tracing = setup_tracing(config, NODE_ATTRS)
        node_callback(tracing, 1)                 # queued: nothing exported before the stop
        assert tracing.shutdown(5.0)              # the final flush waited for the answer
        assert len(bodies) == 1 and tracing.exported_spans == 4
    finally:
        server.shutdown()
        server.server_close()


def test_shutdown_is_idempotent_and_flushes() -> None:
    with OtlpReceiver('http/protobuf') as rx:
        tracing = setup_tracing(TracingConfig.from_env({'endpoint': rx.endpoint, 'protocol': 'http/protobuf'},
                                                       environ={}), {})
        node_callback(tracing, 7)
        assert tracing.force_flush(5.0)
        rx.wait_for(lambda s: len(s) == 4, timeout=5)
        assert tracing.shutdown(5.0) and tracing.shutdown(5.0)
        node_callback(tracing, 8)  # after shutdown: still never raises
        assert len(rx.spans()) == 4


def test_an_outage_is_logged_once_and_its_end_once() -> None:
    """A dead collector: the first export error passes, the rest are held back (counted) until
    an export succeeds, which one line says (issue 18: one log line, then the status)."""
    import logging

    from liquid_edge_ros_monitor.instrument import export_logs
    export_logs._throttle_exporter_logs()
    export_logs.recovered()                    # no outage left over from another test
    f = export_logs._OnePerOutage()
    records = [logging.LogRecord('x', logging.WARNING, __file__, 1, f'export failed {i}', None,
                                 None) for i in range(100)]
    assert [f.filter(r) for r in records].count(True) == 1
    assert 'held back until it works again' in records[0].getMessage()
    assert export_logs.last_error() == 'export failed 99'
    info = logging.LogRecord('x', logging.INFO, __file__, 1, 'connected', None, None)
    assert f.filter(info)                       # not an error: never held back
    seen = []
    handler = logging.Handler()
    handler.emit = seen.append
    logging.getLogger('liquid_edge_ros_monitor.tracing').addHandler(handler)
    try:
        export_logs.recovered()
        export_logs.recovered()                 # no outage: nothing more
    finally:
        logging.getLogger('liquid_edge_ros_monitor.tracing').removeHandler(handler)
    assert [r.getMessage() for r in seen] == [
        'trace export works again (99 export error lines were held back)']
    assert f.filter(records[0])                 # a new outage: its first line passes again
    export_logs.recovered()
    setup_tracing(TracingConfig(endpoint=f'http://127.0.0.1:{closed_port()}'), NODE_ATTRS).shutdown(1.0)
    for name in export_logs._EXPORTER_LOGGERS:
        assert any(isinstance(x, export_logs._OnePerOutage)
                   for x in logging.getLogger(name).filters), name


def test_no_endpoint_no_exporter() -> None:
    """Neither the parameter nor OTEL_EXPORTER_OTLP_(TRACES_)ENDPOINT: nothing is exported (a robot
    without a collector does not retry towards localhost:4317 for ever); tracing is still on."""
    c = TracingConfig.from_env({}, environ={})
    assert c.enabled and not c.export
    tracing = setup_tracing(c, NODE_ATTRS)
    assert tracing.enabled and not tracing.exporting and tracing.kept is None
    assert TracingConfig.from_env({}, environ={'OTEL_EXPORTER_OTLP_ENDPOINT': 'http://c:4317'}).export
    assert TracingConfig.from_env({'endpoint': 'http://c:4317'}, environ={}).export
