"""A real OTLP trace receiver for tests (not shipped): gRPC `TraceService/Export` or HTTP POST
`/v1/traces` with `application/x-protobuf`, built on opentelemetry-proto, bound to 127.0.0.1 on a
free port. Received spans are flattened into `ReceivedSpan` records.

    with OtlpReceiver('grpc') as rx:
        ... export to rx.endpoint ...
        rx.wait_for(lambda spans: len(spans) >= 4, timeout=10)
"""
from __future__ import annotations

import threading
import time
from concurrent import futures
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Callable, Dict, List, Optional

import grpc
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2, trace_service_pb2_grpc
from opentelemetry.proto.common.v1.common_pb2 import AnyValue


@dataclass(frozen=True)
class ReceivedSpan:
    name: str
    trace_id: str          # 32 hex digits
    span_id: str           # 16 hex digits
    parent_span_id: str    # '' for a root span
    attributes: Dict[str, Any]
    resource: Dict[str, Any]
    scope: str
    start_ns: int
    end_ns: int
    status_code: int       # opentelemetry.proto.trace.v1.Status.StatusCode: 0 unset, 1 ok, 2 error
    status_message: str


def _value(v: AnyValue) -> Any:
    kind = v.WhichOneof('value')
    if kind == 'array_value':
        return [_value(x) for x in v.array_value.values]
    if kind == 'kvlist_value':
        return {kv.key: _value(kv.value) for kv in v.kvlist_value.values}
    return getattr(v, kind) if kind else None


def _attrs(kvs: Any) -> Dict[str, Any]:
    return {kv.key: _value(kv.value) for kv in kvs}


class OtlpReceiver:
    """Context manager; `.endpoint` is the base URL (http://127.0.0.1:PORT) for either protocol."""

    def __init__(self, protocol: str = 'grpc', port: int = 0) -> None:
        """`port`: a given loopback port (a collector coming up where a node already sends);
        0 picks a free one."""
        if protocol not in ('grpc', 'http/protobuf'):
            raise ValueError(f"protocol: must be grpc or http/protobuf, got '{protocol}'")
        self.protocol = protocol
        self.port = port
        self.requests = 0
        self._spans: List[ReceivedSpan] = []
        self._lock = threading.Lock()
        self._grpc: Optional[grpc.Server] = None
        self._pool: Optional[futures.ThreadPoolExecutor] = None
        self._http: Optional[ThreadingHTTPServer] = None
        self._http_thread: Optional[threading.Thread] = None

    @property
    def endpoint(self) -> str:
        return f'http://127.0.0.1:{self.port}'

    def _store(self, request: trace_service_pb2.ExportTraceServiceRequest) -> None:
        records = []
        for rs in request.resource_spans:
            resource = _attrs(rs.resource.attributes)
            for ss in rs.scope_spans:
                for s in ss.spans:
                    records.append(ReceivedSpan(
                        name=s.name, trace_id=s.trace_id.hex(), span_id=s.span_id.hex(),
                        parent_span_id=s.parent_span_id.hex(), attributes=_attrs(s.attributes),
                        resource=resource, scope=ss.scope.name, start_ns=s.start_time_unix_nano,
                        end_ns=s.end_time_unix_nano, status_code=s.status.code,
                        status_message=s.status.message))
        with self._lock:
            self.requests += 1
            self._spans.extend(records)

    def spans(self) -> List[ReceivedSpan]:
        with self._lock:
            return list(self._spans)

    def wait_for(self, predicate: Callable[[List[ReceivedSpan]], Any], timeout: float) -> List[ReceivedSpan]:
        """Poll until `predicate(spans)` is truthy; fail naming how many spans came by the deadline."""
        deadline = time.monotonic() + timeout
        while True:
            spans = self.spans()
            if predicate(spans):
                return spans
            if time.monotonic() > deadline:
                raise AssertionError(f'OTLP receiver ({self.protocol}): condition not met after '
                                     f'{timeout:.1f} s; {len(spans)} spans received: '
                                     f'{sorted({s.name for s in spans})}')
            time.sleep(0.02)

    def __enter__(self) -> 'OtlpReceiver':
        if self.protocol == 'grpc':
            receiver = self

            class Servicer(trace_service_pb2_grpc.TraceServiceServicer):
                def Export(self, request: Any, context: Any) -> Any:  # noqa: N802 - gRPC name
                    receiver._store(request)
                    return trace_service_pb2.ExportTraceServiceResponse()

            self._pool = futures.ThreadPoolExecutor(max_workers=2, thread_name_prefix='otlp-grpc')
            self._grpc = grpc.server(self._pool)
            trace_service_pb2_grpc.add_TraceServiceServicer_to_server(Servicer(), self._grpc)
            self.port = self._grpc.add_insecure_port(f'127.0.0.1:{self.port}')
            self._grpc.start()
        else:
            self._http = ThreadingHTTPServer(('127.0.0.1', self.port), self._handler())
            self._http.daemon_threads = True
            self.port = self._http.server_address[1]
            self._http_thread = threading.Thread(target=self._http.serve_forever, name='otlp-http',
                                                 kwargs={'poll_interval': 0.05}, daemon=True)
            self._http_thread.start()
        return self

    def _handler(self) -> type:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = 'HTTP/1.1'

            def do_POST(self) -> None:  # noqa: N802 - http.server name
                body = self.rfile.read(int(self.headers.get('Content-Length', 0)))
                if self.path != '/v1/traces':
                    return self._reply(404, b'')
                if self.headers.get('Content-Type') != 'application/x-protobuf':
                    return self._reply(415, b'')
                request = trace_service_pb2.ExportTraceServiceRequest()
                try:
                    request.ParseFromString(body)
                except Exception:  # a malformed body is the client's fault
                    return self._reply(400, b'')
                receiver._store(request)
                self._reply(200, trace_service_pb2.ExportTraceServiceResponse().SerializeToString())

            def _reply(self, code: int, body: bytes) -> None:
                self.send_response(code)
                self.send_header('Content-Type', 'application/x-protobuf')
                self.send_header('Content-Length', str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: Any) -> None:  # keep test output clean
                pass

        return Handler

    def __exit__(self, *exc: Any) -> None:
        if self._grpc is not None:
            self._grpc.stop(grace=None).wait(5)
            self._grpc = None
        if self._pool is not None:
            self._pool.shutdown(wait=True)
            self._pool = None
        if self._http is not None:
            self._http.shutdown()
            self._http.server_close()
            if self._http_thread is not None:
                self._http_thread.join(5)
            self._http = None
