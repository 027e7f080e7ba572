"""Live scrapes of the running nodes against the names the alert rules and the dashboard query.

sim_robot, topic_monitor, node_monitor and liquid_inference run in their own processes with the
demo's settings (test/demo_stack.py); once each has measured something, every base metric name of
config/prometheus/alerts.yml and the Grafana dashboard (`metric_names_used()`) must be declared by a
scrape and, but for the few series this host may legitimately lack, carry samples. Each scrape
must also pass `promtool check metrics` without a single remark and be documented in docs/METRICS.md.
"""
from __future__ import annotations

import re
import shutil
import subprocess
from typing import Dict, Set, Tuple

import pytest
from prometheus_client.parser import text_string_to_metric_families

from demo_stack import JOBS, DemoStack
from prom_names import REPO, base_name, metric_names_used

PROMTOOL = shutil.which('promtool')
METRICS_DOC = (REPO / 'docs' / 'METRICS.md').read_text()
# `# TYPE <name> <type>`: the name a query selects, as the exporter declares it (counters keep
# their `_total` here, whereas prometheus_client's parser strips it from the family name).
_TYPE_LINE = re.compile(r'^# TYPE (\S+) \S+$', re.M)

#: Series whose family (HELP/TYPE) is always exported but which may have no sample on this host;
#: name -> why. Anything else the alerts or the dashboard read must have a sample.
MAY_HAVE_NO_SAMPLES = {
    'liquid_edge_host_temperature_celsius': 'a VM or container usually exposes no sensor to psutil',
    'liquid_edge_host_battery_ratio': 'only hosts with a battery',
    'liquid_edge_qos_incompatibilities': 'one series per incompatible topic; the demo has none',
    'liquid_edge_graph_issues': 'one series per current graph problem; the demo has none',
    **{f'liquid_edge_shadow_{name}': 'only while a shadow model runs; the demo has none'
       for name in ('latency_seconds', 'agreement', 'output_difference', 'accuracy',
                    'errors_total', 'skipped_total')},
}


def exported(text: str) -> Tuple[Set[str], Set[str]]:
    """(declared, sampled) base names of one scrape: names with a `# TYPE` line, and names with at
    least one sample (histogram `_bucket/_sum/_count` folded into the base name). Parsing with
    prometheus_client's parser also checks the text is valid exposition format."""
    sampled = {base_name(s.name) for fam in text_string_to_metric_families(text)
               for s in fam.samples}
    return set(_TYPE_LINE.findall(text)), sampled


@pytest.fixture(scope='module')
def scrapes(tmp_path_factory) -> Dict[str, str]:
    stack = DemoStack('/metric_names', tmp_path_factory.mktemp('demo_stack')).start()
    try:
        yield stack.wait_until_measured()
    finally:
        codes = stack.stop()
    assert set(codes.values()) == {0}, f'{codes}, died before stop: {stack.died_early}\n{stack.logs()}'


def test_every_metric_of_the_alerts_and_dashboard_is_exported(scrapes):
    declared: Set[str] = set()
    sampled: Set[str] = set()
    for text in scrapes.values():
        d, s = exported(text)
        declared |= d
        sampled |= s
    used = metric_names_used()
    assert used - declared == set(), 'used by alerts/dashboard, declared by no live scrape'
    assert sampled <= declared, 'samples without a # TYPE line'
    no_samples = used - sampled - set(MAY_HAVE_NO_SAMPLES)
    assert no_samples == set(), 'used by alerts/dashboard, declared but without samples'


def test_every_exported_liquid_edge_metric_is_documented_and_labelled_with_the_robot(scrapes):
    for node, text in scrapes.items():
        declared, _ = exported(text)
        ours = {n for n in declared if n.startswith('liquid_edge_')}
        assert ours, node
        undocumented = {n for n in ours if f'`{n}`' not in METRICS_DOC and f'`{n}{{' not in METRICS_DOC}
        assert undocumented == set(), f'{node} exports names docs/METRICS.md does not list'
        unlabelled = {s.name for fam in text_string_to_metric_families(text) for s in fam.samples
                      if s.name.startswith('liquid_edge_') and not s.labels.get('robot')}
        assert unlabelled == set(), f'{node}: series without a robot label'


@pytest.mark.skipif(PROMTOOL is None, reason='promtool not installed (Debian package prometheus)')
@pytest.mark.parametrize('node', list(JOBS))
def test_promtool_check_metrics_finds_nothing(scrapes, node):
    # Whole scrape, not only liquid_edge_*: prometheus_client's process and platform collectors lint
    # clean too (process_cpu_seconds_total has its _total), so any remark is a regression of ours.
    proc = subprocess.run([PROMTOOL, 'check', 'metrics'], input=scrapes[node], capture_output=True,
                          text=True, timeout=30)
    assert (proc.returncode, proc.stdout + proc.stderr) == (0, ''), f'{node} scrape:\n{scrapes[node]}'
