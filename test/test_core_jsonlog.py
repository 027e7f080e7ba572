"""JSON log lines: fields, extras, exceptions, and the ids of the current OpenTelemetry span."""
from __future__ import annotations

import io
import json
import logging
import re
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any, Dict, List

from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.sampling import ALWAYS_OFF

from liquid_edge_ros_monitor.core.jsonlog import JsonFormatter, disable_json_logging, enable_json_logging

NAME = 'liquid_edge_ros_monitor.test_jsonlog'


def lines(stream: io.StringIO) -> List[Dict[str, Any]]:
    return [json.loads(line) for line in stream.getvalue().splitlines()]


def test_one_json_object_per_line_with_the_standard_fields() -> None:
    stream = io.StringIO()
    handler = enable_json_logging(NAME, stream, level=logging.DEBUG)
    try:
        logging.getLogger(NAME).warning('rate %.1f Hz below %s', 87.25, 'minimum\nline two')
    finally:
        disable_json_logging(handler)
    [entry] = lines(stream)
    assert entry['level'] == 'WARNING' and entry['logger'] == NAME
    assert entry['message'] == 'rate 87.2 Hz below minimum\nline two'  # newline escaped, still one line
    assert entry['module'] == 'test_core_jsonlog'
    assert entry['function'] == 'test_one_json_object_per_line_with_the_standard_fields'
    assert isinstance(entry['line'], int) and entry['line'] > 0
    assert re.fullmatch(r'\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z', entry['timestamp'])
    stamp = datetime.strptime(entry['timestamp'], '%Y-%m-%dT%H:%M:%S.%fZ').replace(tzinfo=timezone.utc)
    assert abs(datetime.now(timezone.utc) - stamp) < timedelta(minutes=1)
    assert 'trace_id' not in entry and 'exception' not in entry


def test_extra_fields_are_kept_and_made_json_safe() -> None:
    stream = io.StringIO()
    handler = enable_json_logging(NAME, stream, level=logging.INFO)
    try:
        logging.getLogger(NAME).info('loaded', extra={'model': 'cfc', 'units': 32, 'path': Path('/m/w.npz'),
                                                       'shape': (1, 3), 'obj': object()})
    finally:
        disable_json_logging(handler)
    [entry] = lines(stream)
    assert entry['model'] == 'cfc' and entry['units'] == 32
    assert entry['path'] == '/m/w.npz' and entry['shape'] == [1, 3]
    assert entry['obj'].startswith('<object object at')


def test_exception_text_is_included() -> None:
    stream = io.StringIO()
    handler = enable_json_logging(NAME, stream, level=logging.INFO)
    try:
        try:
            raise ValueError("tensor 'x': expected shape (1, 6), got (1, 5)")
        except ValueError:
            logging.getLogger(NAME).exception('inference failed')
    finally:
        disable_json_logging(handler)
    [entry] = lines(stream)
    assert entry['level'] == 'ERROR'
    assert entry['exception'].startswith('Traceback (most recent call last):')
    assert "ValueError: tensor 'x': expected shape (1, 6), got (1, 5)" in entry['exception']


def test_trace_and_span_ids_inside_a_recording_span_only() -> None:
    stream = io.StringIO()
    handler = enable_json_logging(NAME, stream, level=logging.INFO)
    log = logging.getLogger(NAME)
    provider = TracerProvider(shutdown_on_exit=False)
    unsampled = TracerProvider(sampler=ALWAYS_OFF, shutdown_on_exit=False)
    try:
        with provider.get_tracer('t').start_as_current_span('liquid_inference.callback') as parent:
            with provider.get_tracer('t').start_as_current_span('forward') as child:
                log.info('in child')
            log.info('in parent')
        with unsampled.get_tracer('t').start_as_current_span('not recorded'):
            log.info('in unsampled span')
        log.info('outside')
    finally:
        disable_json_logging(handler)
        provider.shutdown()
        unsampled.shutdown()
    in_child, in_parent, in_unsampled, outside = lines(stream)
    trace_id = format(parent.get_span_context().trace_id, '032x')
    assert in_child['trace_id'] == trace_id and in_parent['trace_id'] == trace_id
    assert re.fullmatch(r'[0-9a-f]{32}', trace_id) and trace_id != '0' * 32
    assert in_child['span_id'] == format(child.get_span_context().span_id, '016x')
    assert in_parent['span_id'] == format(parent.get_span_context().span_id, '016x')
    assert re.fullmatch(r'[0-9a-f]{16}', in_parent['span_id']) and in_child['span_id'] != in_parent['span_id']
    assert 'trace_id' not in in_unsampled and 'span_id' not in outside


def test_disable_detaches_the_handler() -> None:
    stream = io.StringIO()
    logger = logging.getLogger(NAME)
    before = list(logger.handlers)
    handler = enable_json_logging(NAME, stream, level=logging.INFO)
    assert handler in logger.handlers
    logger.info('one')
    disable_json_logging(handler)
    logger.info('two')
    assert logger.handlers == before
    assert [e['message'] for e in lines(stream)] == ['one']


def test_formatter_works_on_any_handler() -> None:
    record = logging.LogRecord('other', logging.INFO, '/x/y.py', 3, 'hello %s', ('world',), None)
    entry = json.loads(JsonFormatter().format(record))
    assert (entry['message'], entry['logger'], entry['module'], entry['line']) == ('hello world', 'other', 'y', 3)
