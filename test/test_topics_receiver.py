"""The raw receiver's callback group over rclpy (no other process)."""
from __future__ import annotations

from rclpy.node import Node
from rclpy.qos import QoSProfile
from std_msgs.msg import String

from liquid_edge_ros_monitor.topics.receiver import DetachedGroup


def test_the_group_forgets_destroyed_subscriptions(ros):
    """rclpy's CallbackGroup keeps a weak reference per entity forever; with topics churning for
    days ours must hold only about what is alive (each subscription brings its event handlers)."""
    node = Node('test_detached_group')
    group = DetachedGroup()
    try:
        keep = node.create_subscription(String, 'kept', lambda _m: None, QoSProfile(depth=1),
                                        callback_group=group, raw=True)
        for i in range(300):
            sub = node.create_subscription(String, f'churn_{i}', lambda _m: None,
                                           QoSProfile(depth=1), callback_group=group, raw=True)
            node.destroy_subscription(sub)
            del sub
        live = [ref for ref in group.entities if ref() is not None]
        assert group.has_entity(keep) and len(live) >= 1
        assert len(group.entities) < 64 + 2 * len(live)     # rclpy's own group: 300+ entries
    finally:
        node.destroy_node()
