"""The demo: a simulated robot (`sim_robot`), the liquid-network controller and both monitors.

    ros2 launch liquid_edge_ros_monitor demo.launch.py
    ros2 launch liquid_edge_ros_monitor demo.launch.py namespace:=robot1

`sim_robot` publishes imu/data, odom, scan, camera/image_raw and chatter at known rates (see
config/sim_robot.yaml); `liquid_inference` turns the IMU into a velocity command (cmd_vel_lnn);
topic_monitor and node_monitor (monitor.launch.py) and liquid_inference (inference.launch.py), all
with config/demo.yaml, publish /diagnostics and Prometheus metrics on ports 9108, 9109 and 9110
(`metrics_port_base:=9208` moves all three). Inject a fault while it runs, e.g.
`ros2 param set /sim_robot imu.rate 120.0`, and watch /diagnostics turn WARN.

Launch arguments:
- `params_file`: parameters of the three nodes, one section each (default: config/demo.yaml).
- `node_params_file`: the node monitor's parameters (default: `params_file`).
- `sim_params_file`: the simulated robot's parameters (default: config/sim_robot.yaml).
- `namespace`: namespace of all four nodes (the demo's topic names are relative).
- `use_sim_time`: 'true' to use /clock for all four nodes.
- `metrics_port_base`: topic_monitor's metrics port; node_monitor and liquid_inference take the
  next two (0: free ports, -1: none; empty, the default: as the files say, 9108-9110).
- `metrics_address`: the address the three metrics endpoints bind to (empty: as the files say).
- `aggregator`: 'true' to also start diagnostic_aggregator (for rqt_robot_monitor), with
  `analyzers_file` (default config/analyzers.yaml); see monitor.launch.py.
"""
import os

from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument, IncludeLaunchDescription
from launch.launch_description_sources import PythonLaunchDescriptionSource
from launch.substitutions import LaunchConfiguration, PathJoinSubstitution
from launch_ros.actions import Node
from launch_ros.parameter_descriptions import ParameterValue
from launch_ros.substitutions import FindPackageShare

from liquid_edge_ros_monitor.launch_params import (AGGREGATOR_HELP, ANALYZERS_FILE_HELP,
                                                   METRICS_ADDRESS_HELP, METRICS_PORT_BASE_HELP)

# monitor.launch.py is installed next to this file (share/liquid_edge_ros_monitor/launch).
MONITOR_LAUNCH = os.path.join(os.path.dirname(os.path.abspath(__file__)), 'monitor.launch.py')
INFERENCE_LAUNCH = os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                'inference.launch.py')


def generate_launch_description() -> LaunchDescription:
    share = FindPackageShare('liquid_edge_ros_monitor')
    use_sim_time = LaunchConfiguration('use_sim_time')
    namespace = LaunchConfiguration('namespace')
    return LaunchDescription([
        DeclareLaunchArgument(
            'params_file', default_value=PathJoinSubstitution([share, 'config', 'demo.yaml']),
            description='Parameters file of topic_monitor, node_monitor and liquid_inference '
                        '(a section for each).'),
        DeclareLaunchArgument(
            'node_params_file', default_value=LaunchConfiguration('params_file'),
            description="Parameters file of node_monitor (default: params_file)."),
        DeclareLaunchArgument(
            'sim_params_file',
            default_value=PathJoinSubstitution([share, 'config', 'sim_robot.yaml']),
            description='Parameters file of the simulated robot.'),
        DeclareLaunchArgument(
            'namespace', default_value='', description='Namespace of all four nodes.'),
        DeclareLaunchArgument(
            'use_sim_time', default_value='false',
            description="'true' to use /clock as the nodes' time source."),
        DeclareLaunchArgument('metrics_port_base', default_value='',
                              description=METRICS_PORT_BASE_HELP),
        DeclareLaunchArgument('metrics_address', default_value='',
                              description=METRICS_ADDRESS_HELP),
        DeclareLaunchArgument('aggregator', default_value='false', description=AGGREGATOR_HELP),
        DeclareLaunchArgument(
            'analyzers_file', default_value=PathJoinSubstitution([share, 'config',
                                                                  'analyzers.yaml']),
            description=ANALYZERS_FILE_HELP),
        Node(
            package='liquid_edge_ros_monitor',
            executable='sim_robot',
            name='sim_robot',
            namespace=namespace,
            parameters=[
                LaunchConfiguration('sim_params_file'),
                {'use_sim_time': ParameterValue(use_sim_time, value_type=bool)},
            ],
            output='screen',
            emulate_tty=True,
        ),
        IncludeLaunchDescription(
            PythonLaunchDescriptionSource(MONITOR_LAUNCH),
            launch_arguments={
                'params_file': LaunchConfiguration('params_file'),
                'node_params_file': LaunchConfiguration('node_params_file'),
                'namespace': namespace,
                'use_sim_time': use_sim_time,
                'metrics_port_base': LaunchConfiguration('metrics_port_base'),
                'metrics_address': LaunchConfiguration('metrics_address'),
                'aggregator': LaunchConfiguration('aggregator'),
                'analyzers_file': LaunchConfiguration('analyzers_file'),
            }.items(),
        ),
        IncludeLaunchDescription(
            PythonLaunchDescriptionSource(INFERENCE_LAUNCH),
            launch_arguments={
                'params_file': LaunchConfiguration('params_file'),
                'namespace': namespace,
                'use_sim_time': use_sim_time,
                'metrics_port_base': LaunchConfiguration('metrics_port_base'),
                'metrics_address': LaunchConfiguration('metrics_address'),
            }.items(),
        ),
    ])
