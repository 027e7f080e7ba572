"""Prometheus exposition: one HTTP endpoint per (address, port) in a process, with the process and
platform collectors; each node attaches its own collector to it.
"""
from __future__ import annotations

import threading
from typing import Dict, Optional, Tuple

from prometheus_client import CollectorRegistry, start_http_server
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
        ProcessCollector(registry=self.registry)
        PlatformCollector(registry=self.registry)
        try:
            self._server, _thread = start_http_server(port, addr=address, registry=self.registry)
        except OSError as exc:
            raise OSError(f'metrics_port {port} on {address}: {exc.strerror}') from exc
        self.address, self.port = address, self._server.server_port
        self.users = 0

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
        ep.users -= 1
        if ep.users == 0:
            for key in [k for k, v in _endpoints.items() if v is ep]:
                del _endpoints[key]
            ep.shutdown()
