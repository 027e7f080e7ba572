"""The launch files: checked statically everywhere, and through the launch API where it is installed.

`launch` and `launch_ros` come with a ROS 2 install, not from PyPI, so the tests that build the
LaunchDescription skip without them. The static tests parse the files with `ast` and check what a
typo would break at `ros2 launch` time: executables that setup.py does not install, another
package's name, launch configurations that are never declared, config files that do not exist.
"""
from __future__ import annotations

import ast
from pathlib import Path
from typing import Any, Dict, List, Set

import pytest

from conftest import node_params

REPO = Path(__file__).resolve().parents[1]
PACKAGE = 'liquid_edge_ros_monitor'
LAUNCH_DIR = REPO / 'launch'
CONFIG_DIR = REPO / 'config'

# What each launch file must start and read.
EXPECTED: Dict[str, Dict[str, Set[str]]] = {
    'monitor.launch.py': {
        'executables': {'topic_monitor', 'node_monitor'},
        'configs': {'topic_monitor.yaml', 'node_monitor.yaml', 'analyzers.yaml'},
        'includes': set(),
        'arguments': {'params_file', 'node_params_file', 'node_monitor', 'namespace',
                      'use_sim_time', 'metrics_port_base', 'metrics_address', 'agent',
                      'aggregator', 'analyzers_file',
                      'agent_remote_write_url', 'agent_robot', 'agent_ca_file', 'agent_username',
                      'agent_password_file', 'agent_storage_path'},
    },
    'inference.launch.py': {
        'executables': {'liquid_inference'},
        'configs': {'liquid_inference.yaml'},
        'includes': set(),
        'arguments': {'params_file', 'namespace', 'use_sim_time', 'metrics_port_base',
                      'metrics_address'},
    },
    'demo.launch.py': {
        'executables': {'sim_robot'},
        'configs': {'demo.yaml', 'sim_robot.yaml', 'analyzers.yaml'},
        'includes': {'monitor.launch.py', 'inference.launch.py'},
        'arguments': {'params_file', 'node_params_file', 'sim_params_file', 'namespace',
                      'use_sim_time', 'metrics_port_base', 'metrics_address', 'aggregator',
                      'analyzers_file'},
    },
}
LAUNCH_FILES = sorted(EXPECTED)


# ---- static checks (no launch import) -------------------------------------------------------------

def _tree(name: str) -> ast.Module:
    path = LAUNCH_DIR / name
    assert path.is_file(), f'{path} is missing'
    return ast.parse(path.read_text(), filename=str(path))


def _callee(call: ast.Call) -> str:
    f = call.func
    return f.id if isinstance(f, ast.Name) else f.attr if isinstance(f, ast.Attribute) else ''


def _calls(tree: ast.Module, name: str) -> List[ast.Call]:
    return [n for n in ast.walk(tree) if isinstance(n, ast.Call) and _callee(n) == name]


def _keyword_values(tree: ast.Module, keyword: str) -> List[ast.expr]:
    return [kw.value for n in ast.walk(tree) if isinstance(n, ast.Call)
            for kw in n.keywords if kw.arg == keyword]


def _first_arg_strings(calls: List[ast.Call]) -> List[Any]:
    """The first argument of each call: its string, or None where it is not a string literal."""
    out = []
    for c in calls:
        arg = c.args[0] if c.args else None
        out.append(arg.value if isinstance(arg, ast.Constant) and isinstance(arg.value, str)
                   else None)
    return out


def _strings(tree: ast.Module) -> Set[str]:
    return {n.value for n in ast.walk(tree) if isinstance(n, ast.Constant) and isinstance(n.value, str)}


def _console_scripts() -> Set[str]:
    """The console_scripts names in setup.py's entry_points (what colcon installs in lib/<pkg>)."""
    tree = ast.parse((REPO / 'setup.py').read_text())
    for call in _calls(tree, 'setup'):
        for kw in call.keywords:
            if kw.arg == 'entry_points':
                entry_points = ast.literal_eval(kw.value)
                return {spec.split('=', 1)[0].strip() for spec in entry_points['console_scripts']}
    raise AssertionError('setup.py: no literal entry_points in the setup() call')


@pytest.mark.parametrize('name', LAUNCH_FILES)
def test_defines_generate_launch_description(name: str) -> None:
    fns = [n for n in _tree(name).body
           if isinstance(n, ast.FunctionDef) and n.name == 'generate_launch_description']
    assert len(fns) == 1, f'{name}: no module-level generate_launch_description()'
    args = fns[0].args
    assert len(args.args) == len(args.defaults) and not args.posonlyargs, \
        f'{name}: generate_launch_description() must be callable without arguments'


@pytest.mark.parametrize('name', LAUNCH_FILES)
def test_executables_are_installed_console_scripts(name: str) -> None:
    values = _keyword_values(_tree(name), 'executable')
    literal = [v.value for v in values if isinstance(v, ast.Constant) and isinstance(v.value, str)]
    assert len(literal) == len(values), f"{name}: every executable= should be a string literal"
    assert EXPECTED[name]['executables'] <= set(literal), f'{name} starts {literal}'
    unknown = set(literal) - _console_scripts()
    assert not unknown, f'{name}: {sorted(unknown)} are not console_scripts in setup.py'


@pytest.mark.parametrize('name', LAUNCH_FILES)
def test_package_is_this_package(name: str) -> None:
    tree = _tree(name)
    packages = [v.value if isinstance(v, ast.Constant) else None
                for v in _keyword_values(tree, 'package')]
    assert packages, f'{name}: no package= in any Node'
    assert set(packages) == {PACKAGE}, f'{name}: package= values {packages}'
    shares = _first_arg_strings(_calls(tree, 'FindPackageShare'))
    assert set(shares) <= {PACKAGE}, f'{name}: FindPackageShare of {shares}'


@pytest.mark.parametrize('name', LAUNCH_FILES)
def test_launch_arguments_declared_and_used(name: str) -> None:
    tree = _tree(name)
    declared = _first_arg_strings(_calls(tree, 'DeclareLaunchArgument'))
    assert None not in declared, f'{name}: a DeclareLaunchArgument name is not a string literal'
    assert len(declared) == len(set(declared)), f'{name}: declared twice: {declared}'
    assert EXPECTED[name]['arguments'] <= set(declared), f'{name} declares {declared}'
    used = _first_arg_strings(_calls(tree, 'LaunchConfiguration'))
    undeclared = set(used) - set(declared)
    assert not undeclared, f'{name}: LaunchConfiguration of undeclared {sorted(map(str, undeclared))}'
    unused = set(declared) - set(used)
    assert not unused, f'{name}: declared but never used: {sorted(unused)}'


@pytest.mark.parametrize('name', LAUNCH_FILES)
def test_included_launch_files_exist(name: str) -> None:
    includes = {s for s in _strings(_tree(name)) if s.endswith('.launch.py')}
    assert includes == EXPECTED[name]['includes']
    missing = sorted(i for i in includes if not (LAUNCH_DIR / i).is_file())
    assert not missing, f'{name} includes missing launch files {missing}'


@pytest.mark.parametrize('name', LAUNCH_FILES)
def test_referenced_config_files_exist(name: str) -> None:
    configs = {s for s in _strings(_tree(name)) if s.endswith(('.yaml', '.yml'))}
    assert EXPECTED[name]['configs'] <= configs, f'{name} references {sorted(configs)}'
    missing = sorted(c for c in configs if not (CONFIG_DIR / c).is_file())
    assert not missing, f'{name} references config files not in config/: {missing}'


def test_monitor_launch_starts_the_agent_through_the_installed_cli_with_options_it_knows() -> None:
    """agent:=true runs `<prefix>/lib/<pkg>/liquid-edge-monitor agent` with one option per
    agent_* argument: each option must be one the agent command accepts."""
    import argparse
    from liquid_edge_ros_monitor.agent import add_arguments
    tree = _tree('monitor.launch.py')
    assert 'liquid-edge-monitor' in _console_scripts()
    assert {'liquid-edge-monitor', 'agent', 'lib'} <= _strings(tree)
    assert _calls(tree, 'ExecuteProcess') and _first_arg_strings(_calls(tree, 'FindPackagePrefix')) \
        == [PACKAGE]
    # The command's options, read from the list literal that follows 'agent'.
    (command,) = [n for n in ast.walk(tree) if isinstance(n, ast.List) and any(
        isinstance(e, ast.Constant) and e.value == 'agent' for e in n.elts)]
    options = [e.value for e in command.elts
               if isinstance(e, ast.Constant) and str(e.value).startswith('--')]
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    known = {o for a in parser._actions for o in a.option_strings}
    assert set(options) <= known and '--remote-write-url' in options, options
    assert len(options) == 6


# ---- through the launch API (ROS 2 install only) -----------------------------------------------------

@pytest.fixture
def api() -> Any:
    launch = pytest.importorskip('launch')
    if not hasattr(launch, 'LaunchDescription'):  # only this repository's launch/ directory
        pytest.skip('the launch package (ROS 2) is not installed')
    pytest.importorskip('launch_ros')
    import launch
    import launch.actions
    import launch.launch_description_sources
    import launch_ros.actions
    return launch


def _load(api: Any, name: str) -> Any:
    loader = api.launch_description_sources.get_launch_description_from_python_launch_file
    ld = loader(str(LAUNCH_DIR / name))
    assert isinstance(ld, api.LaunchDescription)
    return ld


def _text(api: Any, value: Any) -> str:
    """A package/executable/argument given as a string or as text substitutions, as a string."""
    if isinstance(value, str):
        return value
    from launch.utilities import normalize_to_list_of_substitutions, perform_substitutions
    return perform_substitutions(api.LaunchContext(), normalize_to_list_of_substitutions(value))


def _arguments(api: Any, ld: Any) -> Dict[str, Any]:
    return {a.name: a for a in ld.entities if isinstance(a, api.actions.DeclareLaunchArgument)}


def _nodes(api: Any, ld: Any) -> List[tuple]:
    from launch_ros.actions import Node
    return [(_text(api, n.node_package), _text(api, n.node_executable),
             getattr(n, '_Node__node_name', None))  # the name as given (no public getter before launch)
            for n in ld.entities if isinstance(n, Node)]


def _texts(value: Any) -> List[str]:
    """The literal texts inside (nested) substitutions, e.g. the parts of a PathJoinSubstitution."""
    if isinstance(value, str):
        return [value]
    if isinstance(value, (list, tuple)):
        return [t for v in value for t in _texts(v)]
    text = getattr(value, 'text', None)
    if isinstance(text, str):
        return [text]
    return _texts(list(getattr(value, 'substitutions', None) or []))


def _started(api: Any, ld: Any, context: Any) -> List[Any]:
    """The launch_ros Nodes of `ld`, those made by its OpaqueFunctions included, for `context`."""
    from launch_ros.actions import Node
    out = []
    for e in ld.entities:
        if isinstance(e, Node):
            out.append(e)
        elif isinstance(e, api.actions.OpaqueFunction):
            out += [n for n in (e.execute(context) or []) if isinstance(n, Node)]
    return out


def _uses_share(value: Any) -> bool:
    """Whether a default reads the package's share directory (FindPackageShare, also inside a
    PathJoinSubstitution): it needs an ament install to resolve."""
    for d in value or []:
        if type(d).__name__ == 'FindPackageShare':
            return True
        inner = getattr(d, 'substitutions', None)
        if inner and _uses_share([x for part in inner
                                  for x in (part if isinstance(part, (list, tuple)) else [part])]):
            return True
    return False


def _context(api: Any, ld: Any, **given: str) -> Any:
    """A LaunchContext with every declared argument at its default, then `given`."""
    context = api.LaunchContext()
    for a in _arguments(api, ld).values():
        if a.default_value is not None and a.name not in given:
            context.launch_configurations[a.name] = _text(api, a.default_value) \
                if not _uses_share(a.default_value) else f'/share/{a.name}'
    context.launch_configurations.update(given)
    return context


def _parameters(api: Any, node: Any, context: Any) -> list:
    """A Node's parameters as launch_ros will hand them over (paths and dicts)."""
    from launch_ros.utilities import evaluate_parameters
    out = []
    for p in evaluate_parameters(context, node._Node__parameters):
        out.append(str(p) if not isinstance(p, dict) else
                   {k: (v.value if hasattr(v, 'value') else v) for k, v in p.items()})
    return out


def test_monitor_launch_description(api: Any) -> None:
    from liquid_edge_ros_monitor.launch_params import node_parameters
    ld = _load(api, 'monitor.launch.py')
    args = _arguments(api, ld)
    assert EXPECTED['monitor.launch.py']['arguments'] <= set(args)
    assert 'topic_monitor.yaml' in _texts(args['params_file'].default_value)
    assert _text(api, args['use_sim_time'].default_value) == 'false'
    assert _text(api, args['namespace'].default_value) == ''
    assert 'node_monitor.yaml' in _texts(args['node_params_file'].default_value)
    given = {'params_file': '/t.yaml', 'node_params_file': '/n.yaml', 'use_sim_time': 'true',
             'metrics_port_base': '9208', 'metrics_address': '0.0.0.0'}
    context = _context(api, ld, **given)
    nodes = _started(api, ld, context)
    assert [(_text(api, n.node_package), _text(api, n.node_executable)) for n in nodes] == \
        [(PACKAGE, 'topic_monitor'), (PACKAGE, 'node_monitor')]
    for n, name in zip(nodes, ('topic_monitor', 'node_monitor')):
        assert _parameters(api, n, context) == node_parameters(name, given)
    agents = [e for e in ld.entities if type(e) is api.actions.ExecuteProcess]
    assert len(agents) == 1 and agents[0].condition is not None   # agent:=true only
    assert _text(api, args['agent'].default_value) == 'false'


def test_monitor_launch_aggregator(api: Any, tmp_path: Path, monkeypatch) -> None:
    """aggregator:=true through the launch API: the aggregator node with the analyzers file where
    the ament index has diagnostic_aggregator, one LogInfo line where it has not."""
    ld = _load(api, 'monitor.launch.py')
    (aggregator,) = [e for e in ld.entities if isinstance(e, api.actions.OpaqueFunction)
                     and getattr(e, '_OpaqueFunction__function', None).__name__ ==
                     'aggregator_actions']
    off = _context(api, ld)
    assert aggregator.execute(off) == []
    on = _context(api, ld, aggregator='true', analyzers_file='/a/analyzers.yaml')
    monkeypatch.setenv('AMENT_PREFIX_PATH', _ament_prefix(tmp_path / 'a', 'rclpy'))
    (line,) = aggregator.execute(on)
    assert isinstance(line, api.actions.LogInfo)
    monkeypatch.setenv('AMENT_PREFIX_PATH',
                       _ament_prefix(tmp_path / 'b', 'rclpy', 'diagnostic_aggregator'))
    (node,) = aggregator.execute(on)
    assert (_text(api, node.node_package), _text(api, node.node_executable)) == \
        ('diagnostic_aggregator', 'aggregator_node')
    assert _parameters(api, node, on) == ['/a/analyzers.yaml', {'use_sim_time': False}]


def test_inference_launch_description(api: Any) -> None:
    from liquid_edge_ros_monitor.launch_params import node_parameters
    ld = _load(api, 'inference.launch.py')
    args = _arguments(api, ld)
    assert EXPECTED['inference.launch.py']['arguments'] <= set(args)
    assert 'liquid_inference.yaml' in _texts(args['params_file'].default_value)
    given = {'params_file': '/i.yaml', 'metrics_port_base': '0', 'metrics_address': '127.0.0.2'}
    context = _context(api, ld, **given)
    (node,) = _started(api, ld, context)
    assert _text(api, node.node_executable) == 'liquid_inference'
    assert _parameters(api, node, context) == node_parameters(
        'liquid_inference', {**given, 'use_sim_time': 'false'})


def test_demo_launch_description(api: Any) -> None:
    ld = _load(api, 'demo.launch.py')
    args = _arguments(api, ld)
    assert EXPECTED['demo.launch.py']['arguments'] <= set(args)
    assert 'demo.yaml' in _texts(args['params_file'].default_value)
    assert _text(api, args['use_sim_time'].default_value) == 'false'
    assert _nodes(api, ld) == [(PACKAGE, 'sim_robot', 'sim_robot')]
    includes = [e for e in ld.entities if isinstance(e, api.actions.IncludeLaunchDescription)]
    assert len(includes) == 2
    for inc in includes:
        sub = inc.launch_description_source.try_get_launch_description_without_context()
        assert sub is not None, 'an included launch file could not be loaded from demo.launch.py'


# ---- every advertised argument acts (issue 17 items 11, 12) --------------------------------------

def _include_arguments(tree: ast.Module) -> Dict[str, Dict[str, ast.expr]]:
    """For each IncludeLaunchDescription of a launch file: the included file's name -> the
    `launch_arguments={...}` it passes (argument name -> the expression given)."""
    out: Dict[str, Dict[str, ast.expr]] = {}
    for call in _calls(tree, 'IncludeLaunchDescription'):
        target = next(s for s in {n.id for n in ast.walk(call) if isinstance(n, ast.Name)}
                      if s.endswith('_LAUNCH'))
        (dict_node,) = [n for n in ast.walk(call) if isinstance(n, ast.Dict)]
        out[target] = {k.value: v for k, v in zip(dict_node.keys, dict_node.values)}
    return out


def _configuration_name(tree: ast.Module, value: ast.expr) -> Any:
    """The argument a forwarded value reads: LaunchConfiguration('x') directly, or a local
    variable assigned one."""
    if isinstance(value, ast.Call) and _callee(value) == 'LaunchConfiguration':
        return _first_arg_strings([value])[0]
    if isinstance(value, ast.Name):
        for n in ast.walk(tree):
            if isinstance(n, ast.Assign) and any(isinstance(t, ast.Name) and t.id == value.id
                                                 for t in n.targets):
                return _configuration_name(tree, n.value)
    return None


def test_demo_forwards_every_argument_of_what_it_includes_under_its_own_name():
    """Issue 17 item 11: `ros2 launch ... demo.launch.py --show-args` lists the included files'
    arguments too, and the demo passed `params_file` as `node_params_file`, so
    `node_params_file:=my_nodes.yaml` changed nothing. Each argument the demo passes on must be
    the demo's own argument of the same name (else the command line's value is overridden)."""
    tree = _tree('demo.launch.py')
    declared = set(_first_arg_strings(_calls(tree, 'DeclareLaunchArgument')))
    includes = _include_arguments(tree)
    assert set(includes) == {'MONITOR_LAUNCH', 'INFERENCE_LAUNCH'}
    for target, forwarded in includes.items():
        for name, value in forwarded.items():
            source = _configuration_name(tree, value)
            assert source == name, f'{target}: {name} is given the value of {source}'
            assert name in declared, f'{name} forwarded but not declared by the demo'
    assert {'metrics_port_base', 'metrics_address', 'node_params_file'} <= \
        set(includes['MONITOR_LAUNCH'])
    assert {'metrics_port_base', 'metrics_address'} <= set(includes['INFERENCE_LAUNCH'])


def test_launch_files_build_node_parameters_from_every_argument_they_read():
    """The launch files hand their arguments to launch_params.node_parameters: each node's
    parameters come from there (no Node gives `parameters=` of its own but sim_robot), and the
    arguments it reads are those the file declares."""
    for name, nodes in (('monitor.launch.py', {'topic_monitor', 'node_monitor'}),
                        ('inference.launch.py', {'liquid_inference'})):
        tree = _tree(name)
        calls = _calls(tree, 'node_parameters')
        assert set(_first_arg_strings(calls)) == nodes, name
        (args,) = [n.value for n in ast.walk(tree) if isinstance(n, ast.Assign)
                   and any(isinstance(t, ast.Name) and t.id == 'args' for t in n.targets)]
        keys = {k.value for k in args.keys}
        read = {_configuration_name(tree, v.func.value) for v in args.values}
        assert keys == read, f'{name}: an argument is read under another name'
        declared = set(_first_arg_strings(_calls(tree, 'DeclareLaunchArgument')))
        assert {'metrics_port_base', 'metrics_address', 'use_sim_time', 'params_file'} <= keys
        assert keys <= declared


@pytest.mark.parametrize('name', ['topic_monitor.yaml', 'topic_monitor.example.yaml'])
def test_topic_monitor_files_are_valid(name: str) -> None:
    from liquid_edge_ros_monitor.topics.config import parse_config
    flat = node_params(CONFIG_DIR / name, 'topic_monitor')
    parse_config(flat, given=list(flat))


def test_default_launch_lists_no_topics() -> None:
    """monitor.launch.py's default file discovers every topic and lists none: on a robot without
    the demo's topics, four listed ones read STALE at once and fired the critical alert (issue 12).
    The listed example stays, as an example file the README points to."""
    import yaml
    params = yaml.safe_load((CONFIG_DIR / 'topic_monitor.yaml').read_text())
    p = params['/**/topic_monitor']['ros__parameters']
    assert p['topics'] == [] and 'topic' not in p and p['discovery']['enabled'] is True
    assert 'topic_monitor.example.yaml' in (REPO / 'README.md').read_text()
    example = yaml.safe_load((CONFIG_DIR / 'topic_monitor.example.yaml').read_text())
    assert example['/**/topic_monitor']['ros__parameters']['topics']


# ---- aggregator:=true (issue 18 item 1) -------------------------------------------------------

def _ament_prefix(tmp_path: Path, *packages: str) -> str:
    """An ament prefix whose index lists `packages` (what a ROS install has for each)."""
    index = tmp_path / 'share' / 'ament_index' / 'resource_index' / 'packages'
    index.mkdir(parents=True)
    for p in packages:
        (index / p).write_text('')
    return str(tmp_path)


def test_aggregator_starts_where_installed_and_says_so_in_one_line_where_not(tmp_path,
                                                                             monkeypatch):
    """rqt_robot_monitor, the viewer most users open first, reads /diagnostics_agg, which only
    diagnostic_aggregator publishes: aggregator:=true starts it with config/analyzers.yaml where
    the ament index has it, and where it has not, one line says so and the monitors start."""
    from liquid_edge_ros_monitor.launch_params import aggregator_installed, aggregator_plan
    monkeypatch.setenv('AMENT_PREFIX_PATH', _ament_prefix(tmp_path / 'a', 'rclpy'))
    assert not aggregator_installed()
    line = aggregator_plan('true', aggregator_installed())
    assert isinstance(line, str) and '\n' not in line
    assert 'diagnostic_aggregator is not installed' in line and 'rqt_runtime_monitor' in line
    monkeypatch.setenv('AMENT_PREFIX_PATH',
                       _ament_prefix(tmp_path / 'b', 'rclpy', 'diagnostic_aggregator'))
    assert aggregator_installed()
    assert aggregator_plan('true', True) == {'package': 'diagnostic_aggregator',
                                             'executable': 'aggregator_node',
                                             'name': 'analyzers'}
    assert aggregator_plan('false', True) is None and aggregator_plan('', False) is None
    monkeypatch.delenv('AMENT_PREFIX_PATH')
    assert not aggregator_installed()


def test_monitor_launch_hands_the_aggregator_the_analyzers_file():
    tree = _tree('monitor.launch.py')
    assert {'aggregator_plan', 'aggregator_installed'} <= {
        n.id for n in ast.walk(tree) if isinstance(n, ast.Name)}
    assert 'analyzers.yaml' in _strings(tree) and 'LogInfo' in {
        _callee(c) for c in ast.walk(tree) if isinstance(c, ast.Call)}
    # The node name is the root key the file's parameters are under.
    import yaml
    from liquid_edge_ros_monitor.launch_params import AGGREGATOR_NODE
    root = next(iter(yaml.safe_load((CONFIG_DIR / 'analyzers.yaml').read_text())))
    assert root.rsplit('/', 1)[-1] == AGGREGATOR_NODE
