"""Exemplars end to end: the inference node's latency histograms carry the trace ids of kept
callbacks, a real Prometheus with exemplar storage stores them, and they are the ids of traces a
real OTLP receiver got, so a dashboard's latency panel leads to the trace.

The node runs in its own process, fed by sim_robot's IMU, tracing to the receiver at a small head
ratio (and its start-up traces); Prometheus scrapes it every second.
"""
from __future__ import annotations

import shutil
import subprocess
import time

import pytest
import yaml
from prometheus_client.openmetrics.parser import text_string_to_metric_families as openmetrics_families

from conftest import free_port, wait_for
from otlp_receiver import OtlpReceiver
from ros_helpers import scrape
from test_inference_node import SIM, start_inference
from test_prometheus_e2e import PrometheusServer

PROMETHEUS = shutil.which('prometheus')
PROMTOOL = shutil.which('promtool')
pytestmark = pytest.mark.skipif(PROMETHEUS is None or PROMTOOL is None,
                                reason='prometheus not installed (Debian package prometheus)')
HISTOGRAM = 'liquid_edge_inference_latency_seconds_bucket'


def test_latency_exemplars_are_trace_ids_the_collector_received(ros, ros_process, tmp_path):
    ns = '/exemplars'
    port = free_port()
    with OtlpReceiver('grpc') as rx:
        start_inference(ros_process, ns, '-p', f'tracing.endpoint:={rx.endpoint}',
                        '-p', 'tracing.sampling_ratio:=0.02', '-p', f'metrics_port:={port}')
        ros_process('liquid_edge_ros_monitor.sim_robot', '--ros-args', '-r', f'__ns:={ns}', *SIM)
        config = tmp_path / 'prometheus.yml'
        config.write_text(yaml.safe_dump({
            'global': {'scrape_interval': '1s', 'scrape_timeout': '1s'},
            'scrape_configs': [{'job_name': 'liquid_edge_inference',
                                'static_configs': [{'targets': [f'127.0.0.1:{port}']}]}]}))
        server = PrometheusServer(config, tmp_path, '--enable-feature=exemplar-storage')
        try:
            wait_for(server.ready, 30, 'prometheus to be ready')

            def exemplars():
                now = time.time()
                data = server.api('query_exemplars', query=HISTOGRAM, start=str(now - 300),
                                  end=str(now + 60))
                return [e for series in data for e in series['exemplars']]
            found = wait_for(exemplars, 60, 'exemplars stored by prometheus')
            ids = {e['labels']['trace_id'] for e in found}
            assert all(len(i) == 32 for i in ids), ids
            received = lambda spans: {s.trace_id for s in spans  # noqa: E731
                                      if s.name == 'liquid_inference.callback'}
            rx.wait_for(lambda spans: ids & received(spans), timeout=30)
            # An exemplar's value lies in its bucket.
            for series in server.api('query_exemplars', query=HISTOGRAM,
                                     start=str(time.time() - 300), end=str(time.time() + 60)):
                le = float(series['seriesLabels']['le'])
                assert all(float(e['value']) <= le for e in series['exemplars']), series

            # Prometheus scraped the OpenMetrics exposition without complaint.
            target, = server.api('targets')['activeTargets']
            assert (target['health'], target['lastError']) == ('up', ''), target
            # Both formats are valid. promtool 2.42 lints the text format only (in OpenMetrics an
            # exemplar is a parse error to it, and a counter's `_total` sample has no HELP of its
            # own), so the text scrape is linted by promtool and the OpenMetrics one is parsed by
            # the strict OpenMetrics parser, exemplars included (and scraped by Prometheus above).
            text = scrape(port)
            om = scrape(port, openmetrics=True)
            assert 'trace_id="' not in text and 'trace_id="' in om
            parsed = [s.exemplar for fam in openmetrics_families(om) for s in fam.samples
                      if s.exemplar is not None]
            assert parsed and all(len(e.labels['trace_id']) == 32 for e in parsed)
            proc = subprocess.run([PROMTOOL, 'check', 'metrics'], input=text,
                                  capture_output=True, text=True, timeout=30)
            assert (proc.returncode, proc.stdout + proc.stderr) == (0, ''), text
        finally:
            server.stop()
