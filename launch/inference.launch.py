"""Start the liquid-network controller (node `liquid_inference`) with a parameters file.

    ros2 launch liquid_edge_ros_monitor inference.launch.py
    ros2 launch liquid_edge_ros_monitor inference.launch.py params_file:=/path/to/my_controller.yaml

Tracing goes wherever the standard OpenTelemetry variables say (e.g. set
`OTEL_EXPORTER_OTLP_ENDPOINT=http://collector:4317` in the environment of `ros2 launch`); the
`tracing.*` parameters override them.

Launch arguments:
- `params_file`: the node's parameters (default: config/liquid_inference.yaml; copy it as a start).
- `namespace`: namespace of the node; relative topic names resolve inside it.
- `use_sim_time`: 'true' to use /clock.
- `metrics_port_base`: as in monitor.launch.py: the node's metrics port is this plus 2 (9110 for
  the default 9108; 0: a free port, -1: none; empty, the default: as the parameters file says).
- `metrics_address`: the address its metrics endpoint binds to (empty: as the file says).
"""
from launch import LaunchContext, LaunchDescription
from launch.actions import DeclareLaunchArgument, OpaqueFunction
from launch.substitutions import LaunchConfiguration, PathJoinSubstitution
from launch_ros.actions import Node
from launch_ros.substitutions import FindPackageShare

from liquid_edge_ros_monitor.launch_params import (METRICS_ADDRESS_HELP, METRICS_PORT_BASE_HELP,
                                                   node_parameters)


def inference_node(context: LaunchContext) -> list:
    """The node, with the parameters `launch_params.node_parameters` gives for the arguments."""
    args = {
        'params_file': LaunchConfiguration('params_file').perform(context),
        'use_sim_time': LaunchConfiguration('use_sim_time').perform(context),
        'metrics_port_base': LaunchConfiguration('metrics_port_base').perform(context),
        'metrics_address': LaunchConfiguration('metrics_address').perform(context),
    }
    return [Node(
        package='liquid_edge_ros_monitor',
        executable='liquid_inference',
        name='liquid_inference',
        namespace=LaunchConfiguration('namespace'),
        parameters=node_parameters('liquid_inference', args),
        output='screen',
        emulate_tty=True,
    )]


def generate_launch_description() -> LaunchDescription:
    default_params = PathJoinSubstitution(
        [FindPackageShare('liquid_edge_ros_monitor'), 'config', 'liquid_inference.yaml'])
    return LaunchDescription([
        DeclareLaunchArgument(
            'params_file', default_value=default_params,
            description='Parameters file of liquid_inference (model, topics, tracing).'),
        DeclareLaunchArgument(
            'namespace', default_value='', description='Namespace of the node.'),
        DeclareLaunchArgument(
            'use_sim_time', default_value='false',
            description="'true' to use /clock as the node's time source."),
        DeclareLaunchArgument('metrics_port_base', default_value='',
                              description=METRICS_PORT_BASE_HELP),
        DeclareLaunchArgument('metrics_address', default_value='',
                              description=METRICS_ADDRESS_HELP),
        OpaqueFunction(function=inference_node),
    ])
