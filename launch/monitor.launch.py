"""Start the liquid_edge monitors: `topic_monitor` and `node_monitor`, each with a parameters file.

Run it on its own:

    ros2 launch liquid_edge_ros_monitor monitor.launch.py
    ros2 launch liquid_edge_ros_monitor monitor.launch.py params_file:=/path/to/my_robot_monitor.yaml

Or include it from your robot's launch file, with your own parameters file:

    from launch.actions import IncludeLaunchDescription
    from launch.launch_description_sources import PythonLaunchDescriptionSource
    from launch.substitutions import PathJoinSubstitution
    from launch_ros.substitutions import FindPackageShare

    IncludeLaunchDescription(
        PythonLaunchDescriptionSource(PathJoinSubstitution(
            [FindPackageShare('liquid_edge_ros_monitor'), 'launch', 'monitor.launch.py'])),
        launch_arguments={
            'params_file': PathJoinSubstitution(
                [FindPackageShare('my_robot_bringup'), 'config', 'monitor.yaml']),
            'namespace': 'robot1',
            'use_sim_time': 'false',
        }.items(),
    )

Launch arguments:
- `node_params_file`: the node monitor's parameters (default: config/node_monitor.yaml; list your
  robot's nodes in `expected_nodes`).
- `node_monitor`: 'false' to start the topic monitor alone.
- `params_file`: the topic monitor's parameters (default: this package's config/topic_monitor.yaml,
  which discovers every topic and lists none; config/topic_monitor.example.yaml lists topics with
  rates and latency limits, copy it as a starting point). Its root key is `/**:` (matches the node in any namespace) or the node's
  full name (`/robot1/topic_monitor:`), then `ros__parameters:`.
- `namespace`: namespace of the node; relative topic names in the parameters resolve inside it.
- `use_sim_time`: 'true' to measure against /clock (simulation, bag replay).
- `metrics_port_base`: the topic monitor's metrics port, the node monitor's is the next one (0:
  free ports, -1: none; empty, the default: as the parameters files say, 9108 and 9109).
  Two robots' stacks on one host: `metrics_port_base:=9208` for the second.
- `metrics_address`: the address both metrics endpoints bind to (empty: as the files say,
  127.0.0.1; 0.0.0.0 to be scraped from another host).
- `aggregator`: 'true' to also start diagnostic_aggregator (`aggregator_node`, node `analyzers`)
  with `analyzers_file` (default config/analyzers.yaml): it publishes /diagnostics_agg, grouped
  under Liquid Edge/Topics, Paths, Nodes, Host, Inference, which is what rqt_robot_monitor shows.
  rqt_runtime_monitor reads /diagnostics and needs no aggregator. Where the package is not
  installed (`ros-<distro>-diagnostic-aggregator`), one line says so and the monitors start.
- `agent`: 'true' to also start the robot's Prometheus agent (`liquid-edge-monitor agent`: scrapes
  the three exporters, keeps samples in its WAL while the link is down, remote-writes them to the
  central server; config/prometheus/robot-agent.yml). With it: `agent_remote_write_url` (required),
  `agent_robot` (the robot label, equal to the nodes' `robot` parameter; default the host name),
  `agent_ca_file`, `agent_username`, `agent_password_file` (TLS and basic auth towards the center),
  `agent_storage_path` (the WAL; about 1 GB per day offline at the shipped 5 s interval is ample).

    ros2 launch liquid_edge_ros_monitor monitor.launch.py agent:=true \\
        agent_remote_write_url:=https://central:9090/api/v1/write agent_ca_file:=/etc/le/ca.pem \\
        agent_username:=robot agent_password_file:=/etc/le/remote-write.password
"""
from launch import LaunchContext, LaunchDescription
from launch.actions import DeclareLaunchArgument, ExecuteProcess, LogInfo, OpaqueFunction
from launch.conditions import IfCondition
from launch.substitutions import LaunchConfiguration, PathJoinSubstitution
from launch_ros.actions import Node
from launch_ros.substitutions import FindPackagePrefix, FindPackageShare

from liquid_edge_ros_monitor.launch_params import (AGGREGATOR_HELP, ANALYZERS_FILE_HELP,
                                                   METRICS_ADDRESS_HELP, METRICS_PORT_BASE_HELP,
                                                   aggregator_installed, aggregator_plan,
                                                   node_parameters)


def aggregator_actions(context: LaunchContext) -> list:
    """`aggregator:=true`: diagnostic_aggregator with the analyzers file, or, where it is not
    installed, one line saying so (the monitors start either way)."""
    plan = aggregator_plan(LaunchConfiguration('aggregator').perform(context),
                           aggregator_installed())
    if plan is None:
        return []
    if isinstance(plan, str):
        return [LogInfo(msg=plan)]
    return [Node(**plan, namespace=LaunchConfiguration('namespace'),
                 parameters=[LaunchConfiguration('analyzers_file').perform(context),
                             {'use_sim_time': LaunchConfiguration('use_sim_time').perform(
                                 context).lower() == 'true'}],
                 output='screen')]


def agent_actions() -> list:
    """`agent:=true`: the Prometheus agent beside the nodes, through the installed CLI (which
    checks its arguments, writes the configuration and becomes `prometheus`; empty options count
    as not given)."""
    cli = PathJoinSubstitution([FindPackagePrefix('liquid_edge_ros_monitor'), 'lib',
                                'liquid_edge_ros_monitor', 'liquid-edge-monitor'])
    command = [cli, 'agent',
               '--remote-write-url', LaunchConfiguration('agent_remote_write_url'),
               '--robot', LaunchConfiguration('agent_robot'),
               '--ca-file', LaunchConfiguration('agent_ca_file'),
               '--username', LaunchConfiguration('agent_username'),
               '--password-file', LaunchConfiguration('agent_password_file'),
               '--storage-path', LaunchConfiguration('agent_storage_path')]
    return [
        DeclareLaunchArgument('agent', default_value='false',
                              description="'true' to start the robot's Prometheus agent too."),
        DeclareLaunchArgument('agent_remote_write_url', default_value='',
                              description="The central server's remote-write URL "
                                          '(https://host:9090/api/v1/write).'),
        DeclareLaunchArgument('agent_robot', default_value='',
                              description="Robot label: the nodes' robot parameter "
                                          '(empty: the host name).'),
        DeclareLaunchArgument('agent_ca_file', default_value='',
                              description="CA certificate of the central server's TLS "
                                          '(empty: the system CAs).'),
        DeclareLaunchArgument('agent_username', default_value='',
                              description='Basic auth user towards the central server (empty: none).'),
        DeclareLaunchArgument('agent_password_file', default_value='',
                              description='File with the basic auth password.'),
        DeclareLaunchArgument('agent_storage_path', default_value='/var/lib/liquid_edge/agent',
                              description="The agent's write-ahead log (kept through link outages)."),
        ExecuteProcess(cmd=command, name='liquid_edge_agent', output='screen',
                       condition=IfCondition(LaunchConfiguration('agent'))),
    ]


def monitor_nodes(context: LaunchContext) -> list:
    """The two nodes, with the parameters `launch_params.node_parameters` gives for the launch
    arguments as resolved (a params file, then use_sim_time and the metrics overrides)."""
    args = {
        'params_file': LaunchConfiguration('params_file').perform(context),
        'node_params_file': LaunchConfiguration('node_params_file').perform(context),
        'use_sim_time': LaunchConfiguration('use_sim_time').perform(context),
        'metrics_port_base': LaunchConfiguration('metrics_port_base').perform(context),
        'metrics_address': LaunchConfiguration('metrics_address').perform(context),
    }
    return [
        Node(
            package='liquid_edge_ros_monitor',
            executable='topic_monitor',
            name='topic_monitor',
            namespace=LaunchConfiguration('namespace'),
            parameters=node_parameters('topic_monitor', args),
            output='screen',
            emulate_tty=True,
        ),
        Node(
            package='liquid_edge_ros_monitor',
            executable='node_monitor',
            name='node_monitor',
            namespace=LaunchConfiguration('namespace'),
            parameters=node_parameters('node_monitor', args),
            condition=IfCondition(LaunchConfiguration('node_monitor')),
            output='screen',
            emulate_tty=True,
        ),
    ]


def generate_launch_description() -> LaunchDescription:
    default_params = PathJoinSubstitution(
        [FindPackageShare('liquid_edge_ros_monitor'), 'config', 'topic_monitor.yaml'])
    return LaunchDescription([
        DeclareLaunchArgument(
            'params_file', default_value=default_params,
            description='Parameters file of the topic monitor (topics, rates, metrics port).'),
        DeclareLaunchArgument(
            'node_params_file', default_value=PathJoinSubstitution(
                [FindPackageShare('liquid_edge_ros_monitor'), 'config', 'node_monitor.yaml']),
            description='Parameters file of the node monitor (expected nodes, host thresholds).'),
        DeclareLaunchArgument(
            'node_monitor', default_value='true',
            description="'false' to start the topic monitor alone."),
        DeclareLaunchArgument(
            'namespace', default_value='',
            description='Namespace of the monitor nodes.'),
        DeclareLaunchArgument(
            'use_sim_time', default_value='false',
            description="'true' to use /clock as the node's time source."),
        DeclareLaunchArgument('metrics_port_base', default_value='',
                              description=METRICS_PORT_BASE_HELP),
        DeclareLaunchArgument('metrics_address', default_value='',
                              description=METRICS_ADDRESS_HELP),
        DeclareLaunchArgument('aggregator', default_value='false', description=AGGREGATOR_HELP),
        DeclareLaunchArgument(
            'analyzers_file', default_value=PathJoinSubstitution(
                [FindPackageShare('liquid_edge_ros_monitor'), 'config', 'analyzers.yaml']),
            description=ANALYZERS_FILE_HELP),
        OpaqueFunction(function=monitor_nodes),
        OpaqueFunction(function=aggregator_actions),
        *agent_actions(),
    ])
