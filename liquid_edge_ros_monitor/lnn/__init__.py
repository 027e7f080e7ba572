"""Liquid neural networks (CfC, LTC) in pure JAX, matching the ncps torch cells; no ROS imports.

    from liquid_edge_ros_monitor.lnn import load_model
    m = load_model('models/imu_velocity.npz')
    h = m.init_state()
    h, y = m.step(m.params, h, x, dt)
"""
from .model import Model, build_model, load_model, save_model
from .weights import ModelError, read_model_files

__all__ = ['Model', 'ModelError', 'build_model', 'load_model', 'read_model_files', 'save_model']
