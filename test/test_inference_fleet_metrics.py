"""The inference node's fleet metrics, rendered by its collector (no DDS): the model deployment
(`liquid_edge_model_info` with the weights file's sha256) and the span export queue's drops."""
from __future__ import annotations

import hashlib

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from conftest import REPO, wait_for
from liquid_edge_ros_monitor.inference.loading import load_for_controller
from liquid_edge_ros_monitor.instrument.metrics import InferenceMetrics
from liquid_edge_ros_monitor.instrument.otel_env import TracingConfig
from liquid_edge_ros_monitor.instrument.tracing import setup_tracing
from test_inference_tracing import NODE_ATTRS, closed_port, node_callback

MODEL = REPO / 'models' / 'imu_velocity.npz'


def samples(metrics: InferenceMetrics) -> dict:
    registry = CollectorRegistry()
    registry.register(metrics)
    text = generate_latest(registry).decode()
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for fam in text_string_to_metric_families(text) for s in fam.samples}


def test_model_info_names_the_weights_file_by_its_sha256():
    loaded = load_for_controller(str(MODEL), 3, 2, False, lambda m: 0.005)
    model = loaded.model
    labels = loaded.info.labels()
    assert labels == {'model': 'imu_velocity', 'sha256': hashlib.sha256(MODEL.read_bytes()).hexdigest(),
                      'cell': model.cell, 'mode': model.mode or '', 'units': str(model.units),
                      'version': '', 'framework': 'jax'}
    metrics = InferenceMetrics('r1', '/liquid_inference')
    assert not [k for k in samples(metrics) if k[0] == 'liquid_edge_model_info'], 'absent until loaded'
    metrics.model_info = labels
    key = ('liquid_edge_model_info', tuple(sorted({**labels, 'robot': 'r1',
                                                   'node': '/liquid_inference'}.items())))
    assert samples(metrics)[key] == 1.0


def test_span_queue_drops_are_a_metric():
    config = TracingConfig.from_env({'endpoint': f'http://127.0.0.1:{closed_port()}',
                                     'export_timeout_s': 2.0, 'schedule_delay_s': 0.05,
                                     'max_queue_size': 64, 'max_export_batch_size': 16}, environ={})
    tracing = setup_tracing(config, NODE_ATTRS)
    metrics = InferenceMetrics('r1', '/liquid_inference')
    lab = (('node', '/liquid_inference'), ('robot', 'r1'))
    assert samples(metrics)[('liquid_edge_inference_spans_dropped_total', lab)] == 0
    metrics.tracing = tracing
    try:
        for seq in range(100):      # 400 spans into a queue of 64 with a dead collector
            node_callback(tracing, seq)
        wait_for(lambda: tracing.failed_spans > 0, 15, 'a failed export')
        scraped = samples(metrics)
        assert tracing.dropped_spans > 0
        assert scraped[('liquid_edge_inference_spans_dropped_total', lab)] == tracing.dropped_spans
        assert scraped[('liquid_edge_inference_spans_export_failed_total', lab)] > 0
    finally:
        tracing.shutdown(2.0)
