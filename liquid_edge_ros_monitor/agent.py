"""`liquid-edge-monitor agent`: the robot's Prometheus agent (remote write to a central server).

Why a command and not only a launch argument: Prometheus is not a ROS node, and robots run the
monitors both under `ros2 launch` and under `liquid-edge-monitor run` (or systemd). One command
that turns the shipped `config/prometheus/robot-agent.yml` into a ready configuration (robot name,
central URL, CA, user, scrape ports) and then *becomes* `prometheus --enable-feature=agent` (exec:
signals reach Prometheus itself, which shuts down cleanly on SIGINT and SIGTERM) serves all three;
`monitor.launch.py agent:=true` runs it beside the nodes. Bad input: one line, exit 2, before
Prometheus starts; that includes a template with an inline credential (only the `*_file` forms
are accepted). The configuration is written readable by its owner only.
"""
from __future__ import annotations

import argparse
import copy
import os
import re
import shutil
import socket
from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple

import yaml

#: The scrape jobs of robot-agent.yml -> the metrics port each exporter defaults to.
JOB_PORTS = {'liquid_edge_topic_monitor': 9108, 'liquid_edge_node_monitor': 9109,
             'liquid_edge_inference': 9110}
DEFAULT_STORAGE = '/var/lib/liquid_edge/agent'
DEFAULT_RETENTION = '26h'        # a day offline plus head-room (robot-agent.yml says why)
DEFAULT_LISTEN = '127.0.0.1:9095'
FLUSH_DEADLINE = '4s'
_DURATION = re.compile(r'^(\d+(ms|s|m|h|d|w|y))+$')
#: Prometheus configuration keys that hold a secret inline -> what to use instead. The written
#: configuration is readable by its owner only, but a secret has no business in it at all: it
#: ends up in backups, support bundles and `--print-config` output. Every one of them has a
#: `*_file` form, except AWS sigv4's keys (the AWS credential chain reads them).
INLINE_SECRETS = {
    'password': 'password_file',                    # basic_auth
    'credentials': 'credentials_file',              # authorization
    'bearer_token': 'bearer_token_file',            # the older bearer token form
    'client_secret': 'client_secret_file',          # oauth2, azuread's oauth
    'access_key': 'the AWS credential chain (environment, profile, instance role)',   # sigv4
    'secret_key': 'the AWS credential chain (environment, profile, instance role)',   # sigv4
}
#: Written with these permissions: the agent's configuration names credential files and
#: endpoints, and is nobody else's business on a shared robot (it used to be 0644).
CONFIG_MODE = 0o600


class AgentError(Exception):
    """A one-line problem with the agent's arguments."""


def add_arguments(ap: argparse.ArgumentParser) -> None:
    ap.add_argument('--remote-write-url', required=True,
                    help='the central server\'s receiver, e.g. https://central:9090/api/v1/write')
    ap.add_argument('--robot', default=socket.gethostname(),
                    help='robot label; must equal the nodes\' robot parameter (default: host name)')
    ap.add_argument('--ca-file', help='CA certificate of the central server (https)')
    ap.add_argument('--username', help='basic auth user of the central server')
    ap.add_argument('--password-file', help='file holding the basic auth password')
    ap.add_argument('--storage-path', default=DEFAULT_STORAGE,
                    help=f'WAL directory (default {DEFAULT_STORAGE}; about 1 GB per day offline)')
    ap.add_argument('--retention', default=DEFAULT_RETENTION,
                    help=f'longest outage the WAL rides out (default {DEFAULT_RETENTION})')
    ap.add_argument('--listen-address', default=DEFAULT_LISTEN,
                    help=f'the agent\'s own /metrics and health endpoints (default {DEFAULT_LISTEN})')
    ap.add_argument('--targets', default='localhost',
                    help='host of the three exporters (default localhost)')
    ap.add_argument('--ports', default=','.join(str(p) for p in JOB_PORTS.values()),
                    help='metrics ports of topic_monitor,node_monitor,liquid_inference '
                         '(default 9108,9109,9110)')
    ap.add_argument('--scrape-interval', default=None,
                    help='override robot-agent.yml\'s scrape interval (e.g. 5s)')
    ap.add_argument('--config-template', default=None,
                    help='agent config to start from (default: the shipped robot-agent.yml)')
    ap.add_argument('--print-config', action='store_true',
                    help='print the configuration and the prometheus command, start nothing')


def _duration(name: str, text: str) -> str:
    if not _DURATION.match(text):
        raise AgentError(f"{name}: must be a Prometheus duration such as 5s or 26h, got '{text}'")
    return text


def _readable(name: str, path: Optional[str]) -> Optional[str]:
    if path is None:
        return None
    if not os.path.isfile(path) or not os.access(path, os.R_OK):
        raise AgentError(f'{name}: {path}: not a readable file')
    return os.path.abspath(path)


def _blank_is_unset(args: argparse.Namespace) -> None:
    """An empty option is an option not given (launch arguments left at their '' default)."""
    for name in ('ca_file', 'username', 'password_file', 'scrape_interval', 'config_template'):
        if getattr(args, name) == '':
            setattr(args, name, None)
    if not args.robot:
        args.robot = socket.gethostname()


def inline_secret(config: Any, path: str = '') -> Optional[Tuple[str, str]]:
    """The first inline credential in a Prometheus configuration, as (where, what to use
    instead), or None. Looks everywhere (remote_write, scrape_configs, ...): a key of
    `INLINE_SECRETS` with a value, a tls_config's inline `key`, an `Authorization` header."""
    if isinstance(config, list):
        for i, item in enumerate(config):
            found = inline_secret(item, f'{path}[{i}]')
            if found:
                return found
        return None
    if not isinstance(config, dict):
        return None
    for key, value in config.items():
        where = f'{path}.{key}' if path else str(key)
        if value not in (None, '') and key in INLINE_SECRETS:
            return where, INLINE_SECRETS[key]
        if value not in (None, '') and key == 'key' and path.endswith('tls_config'):
            return where, 'key_file'
        if key == 'headers' and isinstance(value, dict) and any(
                str(h).lower() in ('authorization', 'proxy-authorization') for h in value):
            return where, 'authorization.credentials_file'
        found = inline_secret(value, where)
        if found:
            return found
    return None


def agent_config(args: argparse.Namespace, template: Dict[str, Any]) -> Dict[str, Any]:
    """robot-agent.yml with the command line's values written in (pure: no files written)."""
    _blank_is_unset(args)
    url = args.remote_write_url
    if not re.match(r'^https?://[^/\s:]+(:\d+)?(/\S*)?$', url):
        raise AgentError(f"--remote-write-url: must be an http(s) URL, got '{url}'")
    if not args.robot or not re.match(r'^[\w.:/-]+$', args.robot):
        raise AgentError(f"--robot: must be a non-empty name, got '{args.robot}'")
    if (args.username is None) != (args.password_file is None):
        raise AgentError('--username and --password-file go together')
    try:
        ports = [int(p) for p in args.ports.split(',')]
    except ValueError:
        ports = []
    if len(ports) != len(JOB_PORTS) or not all(0 < p < 65536 for p in ports):
        raise AgentError(f"--ports: must be three ports (topic_monitor,node_monitor,"
                         f"liquid_inference), got '{args.ports}'")
    ca = _readable('--ca-file', args.ca_file)
    password = _readable('--password-file', args.password_file)
    found = inline_secret(template)
    if found:
        raise AgentError(f'--config-template: {found[0]}: inline credentials are refused (the '
                         f'configuration is written to disk); use {found[1]}')

    config = copy.deepcopy(template)
    config.setdefault('global', {}).setdefault('external_labels', {})['robot'] = args.robot
    if args.scrape_interval:
        interval = _duration('--scrape-interval', args.scrape_interval)
        config['global']['scrape_interval'] = interval
        config['global']['scrape_timeout'] = interval
    by_job = dict(zip(JOB_PORTS, ports))
    for scrape in config.get('scrape_configs', []):
        if scrape['job_name'] in by_job:
            scrape['static_configs'] = [{'targets': [f'{args.targets}:{by_job[scrape["job_name"]]}']}]
    (remote,) = config['remote_write']
    remote['url'] = url
    remote.pop('tls_config', None)
    remote.pop('basic_auth', None)
    if ca is not None:
        remote['tls_config'] = {'ca_file': ca}
    if password is not None:
        remote['basic_auth'] = {'username': args.username, 'password_file': password}
    return config


def write_private(path: Path, text: str) -> None:
    """Write `path` readable and writable by its owner only (`CONFIG_MODE`), whatever the umask
    and whatever the mode of a file already there: written to a new file of that mode beside it,
    then renamed over it (so no moment shows a wider mode or half a file)."""
    tmp = path.with_name(f'.{path.name}.{os.getpid()}.tmp')
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, CONFIG_MODE)
    try:
        os.fchmod(fd, CONFIG_MODE)         # O_CREAT's mode is masked by the umask; this is not
        with os.fdopen(fd, 'w') as f:
            fd = -1
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if fd >= 0:
            os.close(fd)
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise


def prometheus_command(prometheus: str, config_path: Path, args: argparse.Namespace) -> List[str]:
    return [prometheus, '--enable-feature=agent', f'--config.file={config_path}',
            f'--storage.agent.path={args.storage_path}',
            f'--storage.agent.retention.max-time={_duration("--retention", args.retention)}',
            '--storage.agent.wal-compression', f'--web.listen-address={args.listen_address}',
            # A stop waits this long for unsent samples (default 1 min, which a dead link always
            # uses up): under 5 s, so that ros2 launch's SIGINT-then-SIGTERM stops it cleanly.
            f'--storage.remote.flush-deadline={FLUSH_DEADLINE}', '--log.level=warn']


def cmd_agent(args: argparse.Namespace) -> int:
    """Write the configuration next to the WAL, then exec prometheus (never returns on success)."""
    from .core.share import config_file
    _blank_is_unset(args)
    template_path = Path(args.config_template) if args.config_template else \
        config_file('prometheus/robot-agent.yml')
    try:
        template = yaml.safe_load(template_path.read_text())
    except (OSError, yaml.YAMLError) as exc:
        raise AgentError(f'{template_path}: cannot read the agent configuration: {exc}') from None
    config = agent_config(args, template)
    prometheus = shutil.which('prometheus')
    storage = Path(args.storage_path)
    config_path = storage / 'robot-agent.yml'
    command = prometheus_command(prometheus or 'prometheus', config_path, args)
    text = yaml.safe_dump(config, sort_keys=False)
    if args.print_config:
        print(text + '# ' + ' '.join(command))
        return 0
    if prometheus is None:
        raise AgentError('prometheus: not found on PATH (Debian package prometheus, 2.39 or later)')
    try:
        storage.mkdir(parents=True, exist_ok=True)
        write_private(config_path, text)
    except OSError as exc:
        raise AgentError(f'--storage-path: {storage}: {exc.strerror}') from None
    os.execv(prometheus, command)
    return 0   # not reached
