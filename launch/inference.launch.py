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
"""
from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument
from launch.substitutions import LaunchConfiguration, PathJoinSubstitution
from launch_ros.actions import Node
from launch_ros.parameter_descriptions import ParameterValue
from launch_ros.substitutions import FindPackageShare


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
        Node(
            package='liquid_edge_ros_monitor',
            executable='liquid_inference',
            name='liquid_inference',
            namespace=LaunchConfiguration('namespace'),
            parameters=[
                LaunchConfiguration('params_file'),
                {'use_sim_time': ParameterValue(LaunchConfiguration('use_sim_time'),
                                                value_type=bool)},
            ],
            output='screen',
            emulate_tty=True,
        ),
    ])
