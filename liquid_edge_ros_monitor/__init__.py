"""liquid_edge_ros_monitor: ROS 2 observability for robots running a liquid-network controller."""

__version__ = '0.1.0'
