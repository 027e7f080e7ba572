"""The path from a firing rule to a person, for the tests: the real Alertmanager, real amtool, and a
webhook sink written here.

- `WebhookSink`: an HTTP server on 127.0.0.1 that keeps every notification Alertmanager POSTs to
  it (its webhook body, version 4, and the time it arrived) and answers 200. It closes itself after
  `lifetime_s`, so it never outlives a test run.
- `Alertmanager`: Debian's `prometheus-alertmanager` on a free loopback port, clustering off (its
  default gossip listener would bind 0.0.0.0:9094), storage in the test's tmp; `amtool()` runs the
  real amtool against it.
- `local_config()`: the shipped config/alertmanager/alertmanager.yml with test timings, and every
  destination on this host: each webhook URL becomes the sink (path: the receiver's name), the Slack
  URL files hold the sink's `/unexpected-slack`, the SMTP smarthost is a loopback port where
  nothing listens. The routes send nothing to Slack or email as shipped (test_alertmanager_config
  checks it); this makes sure that even a routing mistake cannot send anything off the machine.
- `render()`: a notification received by the sink, rendered with the shipped templates by
  `amtool template render` (its --template.data takes the webhook body as it is).

Run as a script, the sink listens where the shipped alertmanager.yml sends (127.0.0.1:5001) and
prints each notification as the templates render it, until Ctrl-C: the receiving end of the demo's
alerting (config/alertmanager/README.md).

    .venv/bin/python test/alerting.py [--port 5001]
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional

import yaml

from conftest import REPO, free_port
from test_prometheus_e2e import PrometheusServer

AM_DIR = REPO / 'config' / 'alertmanager'
AM_FILE = AM_DIR / 'alertmanager.yml'
TEMPLATES = AM_DIR / 'templates'
#: Debian names the server prometheus-alertmanager; upstream's tarball names it alertmanager.
ALERTMANAGER = shutil.which('prometheus-alertmanager') or shutil.which('alertmanager')
AMTOOL = shutil.which('amtool')
#: The receivers the shipped routes use (all webhooks); the others are the Slack/email examples.
ROUTED_RECEIVERS = ('pager', 'chat', 'heartbeat')


# ---- the webhook sink ---------------------------------------------------------------------------

@dataclass
class Notification:
    """One POST from Alertmanager: arrival (unix s), the URL path, and the webhook body."""
    at: float
    path: str
    body: Dict[str, Any] = field(repr=False)

    @property
    def receiver(self) -> str:
        return self.body['receiver']

    @property
    def status(self) -> str:
        return self.body['status']

    @property
    def group_labels(self) -> Dict[str, str]:
        return self.body['groupLabels']

    @property
    def alerts(self) -> List[Dict[str, Any]]:
        return self.body['alerts']

    def firing(self) -> List[Dict[str, Any]]:
        return [a for a in self.alerts if a['status'] == 'firing']

    def resolved(self) -> List[Dict[str, Any]]:
        return [a for a in self.alerts if a['status'] == 'resolved']

    def about(self, **labels: str) -> bool:
        """Whether one of its alerts has all these labels."""
        return any(all(a['labels'].get(k) == v for k, v in labels.items()) for a in self.alerts)

    def brief(self) -> str:
        labels = ','.join(f'{k}={v}' for k, v in sorted(self.group_labels.items()))
        subjects = sorted({a['labels'].get('topic') or a['labels'].get('node') or
                           a['labels'].get('path') or a['labels'].get('sensor') or
                           a['labels'].get('job') or '-' for a in self.alerts})
        summary = next((a['annotations'].get('summary', '') for a in self.alerts), '')
        first_line = (summary.splitlines() or [''])[0]
        return (f'{self.receiver} {self.status} {{{labels}}} {len(self.alerts)} alert(s) '
                f'{subjects}: "{first_line}"')


class WebhookSink:
    """Alertmanager's webhook receiver on 127.0.0.1: keeps what it is sent, answers 200."""

    def __init__(self, lifetime_s: float = 900.0, port: int = 0,
                 on_receive: Optional[Callable[[Notification], None]] = None) -> None:
        self.received: List[Notification] = []
        self._lock = threading.Lock()
        sink = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 (http.server's name)
                length = int(self.headers.get('Content-Length', 0))
                note = Notification(time.time(), self.path, json.loads(self.rfile.read(length) or b'{}'))
                with sink._lock:
                    sink.received.append(note)
                if on_receive is not None:
                    on_receive(note)
                self.send_response(200)
                self.send_header('Content-Length', '0')
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(('127.0.0.1', port), Handler)
        self.server.daemon_threads = True
        self.url = f'http://127.0.0.1:{self.server.server_address[1]}'
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self._timer = threading.Timer(lifetime_s, self.close)
        self._timer.daemon = True
        self._timer.start()

    def notifications(self, receiver: Optional[str] = None, since: float = 0.0,
                      **group_labels: str) -> List[Notification]:
        """Those received at or after `since`, to `receiver`, whose group labels include these."""
        with self._lock:
            got = list(self.received)
        return [n for n in got if n.at >= since and (receiver is None or n.receiver == receiver)
                and all(n.group_labels.get(k) == v for k, v in group_labels.items())]

    def close(self) -> None:
        self._timer.cancel()
        self.server.shutdown()
        self.server.server_close()


# ---- Alertmanager -------------------------------------------------------------------------------

def local_config(tmp: Path, sink: WebhookSink, group_wait: str = '1s', group_interval: str = '2s',
                repeat_interval: str = '1h', heartbeat_interval: str = '1s',
                heartbeat_repeat: str = '2s') -> Path:
    """The shipped alertmanager.yml with these timings and every destination on this host."""
    config = yaml.safe_load(AM_FILE.read_text())
    route = config['route']
    route.update(group_wait=group_wait, group_interval=group_interval,
                 repeat_interval=repeat_interval)
    for child in route['routes']:
        if child['receiver'] == 'heartbeat':
            child.update(group_wait='0s', group_interval=heartbeat_interval,
                         repeat_interval=heartbeat_repeat)
        else:
            for key in ('group_wait', 'group_interval', 'repeat_interval'):
                child.pop(key, None)      # inherit the test's root timings
    slack_url = tmp / 'slack.url'
    slack_url.write_text(f'{sink.url}/unexpected-slack')
    config['global']['smtp_smarthost'] = f'127.0.0.1:{free_port()}'
    for receiver in config['receivers']:
        for hook in receiver.get('webhook_configs', []):
            hook['url'] = f'{sink.url}/{receiver["name"]}'
            hook.pop('http_config', None)
        for slack in receiver.get('slack_configs', []):
            slack['api_url_file'] = str(slack_url)
    config['templates'] = [str(TEMPLATES / '*.tmpl')]
    path = tmp / 'alertmanager.yml'
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path


class Alertmanager(PrometheusServer):
    """`prometheus-alertmanager` on a free loopback port, handled as PrometheusServer handles
    prometheus (get, ready, output, stop); `alerts()` reads its v2 API, `amtool()` runs amtool."""

    def __init__(self, config: Path, tmp: Path) -> None:  # noqa: the base starts prometheus
        self.port = free_port()
        self.url = f'http://127.0.0.1:{self.port}'
        self.log_path = tmp / 'alertmanager.log'
        self._log = open(self.log_path, 'ab')
        self.proc = subprocess.Popen(
            [ALERTMANAGER, f'--config.file={config}', f'--storage.path={tmp / "am-data"}',
             f'--web.listen-address=127.0.0.1:{self.port}', '--cluster.listen-address=',
             '--log.level=info'],
            stdout=self._log, stderr=subprocess.STDOUT, cwd=tmp)

    def alerts(self, **labels: str) -> List[Dict[str, Any]]:
        """Every alert Alertmanager holds (active, silenced, inhibited) whose labels include these."""
        body = self.get('/api/v2/alerts', active='true', silenced='true', inhibited='true',
                        unprocessed='true')
        assert body is not None, 'alertmanager /api/v2/alerts did not answer'
        return [a for a in json.loads(body)
                if all(a['labels'].get(k) == v for k, v in labels.items())]

    def amtool(self, *args: str) -> str:
        proc = subprocess.run([AMTOOL, f'--alertmanager.url={self.url}', *args],
                              capture_output=True, text=True, timeout=30)
        assert proc.returncode == 0, f'amtool {" ".join(args)}: {proc.stdout}{proc.stderr}'
        return proc.stdout


def alerting_section(am: Alertmanager) -> Dict[str, Any]:
    """A Prometheus `alerting:` section that sends to this Alertmanager only."""
    return {'alertmanagers': [{'static_configs': [{'targets': [f'127.0.0.1:{am.port}']}]}]}


# ---- the templates ------------------------------------------------------------------------------

def render(name: str, body: Dict[str, Any], tmp: Path, html: bool = False) -> str:
    """Template `name` of the shipped templates, rendered by amtool on a webhook body."""
    data = tmp / f'notification-{os.getpid()}-{time.monotonic_ns()}.json'
    data.write_text(json.dumps(body))
    args = [AMTOOL, 'template', 'render', f'--template.glob={TEMPLATES / "*.tmpl"}',
            f'--template.text={{{{ template "{name}" . }}}}', f'--template.data={data}']
    if html:
        args.append('--template.type=html')
    proc = subprocess.run(args, capture_output=True, text=True, timeout=30)
    assert proc.returncode == 0, f'amtool template render {name}: {proc.stderr}'
    return proc.stdout


def main() -> None:
    import argparse
    import tempfile
    parser = argparse.ArgumentParser(description='print what Alertmanager sends to its webhooks')
    parser.add_argument('--port', type=int, default=5001)
    args = parser.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix='webhook-sink-'))

    def show(note: Notification) -> None:
        text = render('liquid_edge.text', note.body, tmp) if AMTOOL else note.brief()
        print(f'--- {time.strftime("%H:%M:%S")} to {note.receiver}\n{text.strip()}\n', flush=True)
    sink = WebhookSink(lifetime_s=10 * 365 * 86400, port=args.port, on_receive=show)
    print(f'webhook sink on {sink.url}, Ctrl-C stops it', flush=True)
    try:
        threading.Event().wait()
    except KeyboardInterrupt:
        sink.close()
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == '__main__':
    main()
