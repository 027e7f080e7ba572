"""Where the package's shipped files (config/, launch/) are, however it was installed."""
from __future__ import annotations

import os
import sys
from pathlib import Path

PACKAGE = 'liquid_edge_ros_monitor'


def share_dir() -> Path:
    """The package's share directory: the ament index (colcon / ROS install), the pip prefix,
    or the source checkout (editable install), in that order."""
    if os.environ.get('AMENT_PREFIX_PATH'):
        try:
            from ament_index_python.packages import get_package_share_directory
            return Path(get_package_share_directory(PACKAGE))
        except Exception:   # not in this prefix: fall through to the other layouts
            pass
    prefix = Path(sys.prefix) / 'share' / PACKAGE
    if (prefix / 'config').is_dir():
        return prefix
    return Path(__file__).resolve().parents[2]   # core/ -> package -> checkout


def config_file(name: str) -> Path:
    """A shipped config file by name, e.g. ``config_file('demo.yaml')``."""
    path = share_dir() / 'config' / name
    if not path.is_file():
        raise FileNotFoundError(f'{path}: shipped config file not found (broken install?)')
    return path
