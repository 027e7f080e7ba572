"""Prometheus exposition: one HTTP endpoint per (address, port) in a process, with the process and
platform collectors; each node attaches its own collector to it.

A collector with a `render_text(openmetrics)` method (the topic monitor's: 51,000 samples at
1,000 topics) writes its own lines, which prometheus_client's generic formatter takes about eight
times longer to produce; the others go through prometheus_client as usual. The format follows the
scraper's Accept header as prometheus_client's own server does (OpenMetrics for Prometheus, which
carries the exemplars; the text format 0.0.4 otherwise).
"""
from __future__ import annotations

import gzip
import threading
from typing import Any, Callable, Dict, Iterable, List, Optional, Tuple
from wsgiref.simple_server import make_server

from prometheus_client import CollectorRegistry
from prometheus_client.exposition import (ThreadingWSGIServer, _get_best_family, _SilentHandler,
                                          choose_encoder)
from prometheus_client.platform_collector import PlatformCollector
from prometheus_client.process_collector import ProcessCollector
from prometheus_client.registry import Collector


class MetricsEndpoint:
    """One HTTP endpoint (address, port) and its registry, with the process and platform metrics.

    Nodes attach their collectors with `attach`: nodes of one process that ask for the same port
    share one endpoint, nodes on different ports get one each (so a scrape config with one target
    per node works whether the nodes run in one process or several).
    """

    def __init__(self, address: str, port: int) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        #: the registry without the collectors that render their own text (`text_collectors`)
        self._generic = CollectorRegistry(auto_describe=True)
        for c in (ProcessCollector(registry=None), PlatformCollector(registry=None)):
            self.registry.register(c)
            self._generic.register(c)
        self.text_collectors: List[Any] = []

        class Server(ThreadingWSGIServer):
            pass
        Server.address_family, addr = _get_best_family(address, port)
        try:
            self._server = make_server(addr, port, self._app, Server, handler_class=_SilentHandler)
        except OSError as exc:
            raise OSError(f'metrics_port {port} on {address}: {exc.strerror}') from exc
        # A short poll: shutdown() waits for it, and a node's stop should not (0.5 s by default).
        threading.Thread(target=self._server.serve_forever, kwargs={'poll_interval': 0.05},
                         name='metrics_http', daemon=True).start()
        self.address, self.port = address, self._server.server_port
        self.users = 0

    def render(self, accept: str = '') -> Tuple[bytes, str]:
        """The whole scrape in the format `accept` asks for, and its content type."""
        encoder, content_type = choose_encoder(accept)
        openmetrics = content_type.startswith('application/openmetrics-text')
        body = encoder(self._generic)
        extra = ''.join(c.render_text(openmetrics) for c in list(self.text_collectors)).encode()
        if openmetrics and body.endswith(b'# EOF\n'):
            return body[:-len(b'# EOF\n')] + extra + b'# EOF\n', content_type
        return body + extra, content_type

    def _app(self, environ: Dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        if environ.get('PATH_INFO') == '/favicon.ico':
            start_response('200 OK', [])
            return [b'']
        body, content_type = self.render(environ.get('HTTP_ACCEPT', ''))
        headers = [('Content-Type', content_type)]
        if 'gzip' in environ.get('HTTP_ACCEPT_ENCODING', ''):
            body = gzip.compress(body, compresslevel=1)
            headers.append(('Content-Encoding', 'gzip'))
        start_response('200 OK', headers + [('Content-Length', str(len(body)))])
        return [body]

    def shutdown(self) -> None:
        self._server.shutdown()
        self._server.server_close()


_endpoints: Dict[Tuple[str, int], MetricsEndpoint] = {}
_endpoints_lock = threading.Lock()


def attach(collector: Collector, address: str, port: int) -> Optional[MetricsEndpoint]:
    """Serve `collector` on address:port (started on first use; port 0 = a new endpoint on a free
    port, -1 = not served). Returns the endpoint, whose `port` is the real one."""
    if port < 0:
        return None
    with _endpoints_lock:
        ep = _endpoints.get((address, port)) if port else None
        if ep is None:
            ep = MetricsEndpoint(address, port)
            _endpoints[(address, ep.port)] = ep
            if port:
                _endpoints[(address, port)] = ep
        ep.registry.register(collector)
        if hasattr(collector, 'render_text'):
            ep.text_collectors.append(collector)
        else:
            ep._generic.register(collector)
        ep.users += 1
        return ep


def detach(collector: Collector, ep: Optional[MetricsEndpoint]) -> None:
    """Stop serving `collector`; the endpoint closes (freeing its port) with its last user."""
    if ep is None:
        return
    with _endpoints_lock:
        try:
            ep.registry.unregister(collector)
        except KeyError:
            return
        if collector in ep.text_collectors:
            ep.text_collectors.remove(collector)
        else:
            ep._generic.unregister(collector)
        ep.users -= 1
        if ep.users == 0:
            for key in [k for k, v in _endpoints.items() if v is ep]:
                del _endpoints[key]
            ep.shutdown()
