"""node_monitor: node presence and restarts, graph checks (QoS, types, publishers), host resources."""
