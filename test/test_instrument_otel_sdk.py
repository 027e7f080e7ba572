"""The one place that reads an OpenTelemetry SDK private attribute (`instrument/otel_sdk.py`):
this fails loudly when an SDK upgrade moves it, instead of the drop counter silently staying 0
while the SDK logs one line per dropped span again."""
from __future__ import annotations

from collections import deque

from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult

from liquid_edge_ros_monitor.instrument.otel_sdk import (QUEUE_ATTRIBUTE,
                                                        _DroppingBatchSpanProcessor, sdk_queue)


class _Blocked(SpanExporter):
    def export(self, spans):
        return SpanExportResult.SUCCESS

    def shutdown(self):
        pass


def test_the_sdk_still_keeps_its_span_queue_where_the_adapter_reads_it():
    processor = _DroppingBatchSpanProcessor(_Blocked(), max_queue_size=8,
                                            max_export_batch_size=8,
                                            schedule_delay_millis=60_000)
    try:
        queue = sdk_queue(processor)
        assert isinstance(queue, deque), (
            f'OpenTelemetry SDK moved BatchSpanProcessor.{".".join(QUEUE_ATTRIBUTE)}: update '
            'instrument/otel_sdk.py (QUEUE_ATTRIBUTE) for this SDK')
        assert processor.room() == 8
    finally:
        processor.shutdown()
