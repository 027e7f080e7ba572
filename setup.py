"""ament_python build for liquid_edge_ros_monitor (colcon, or pip for the venv path)."""
from glob import glob

from setuptools import find_packages, setup

PACKAGE = 'liquid_edge_ros_monitor'

setup(
    name=PACKAGE,
    version='0.1.0',
    packages=find_packages(exclude=['test', 'test.*']),
    # PEP 561: the package's annotations are for its users' type checkers too.
    package_data={PACKAGE: ['py.typed']},
    data_files=[
        ('share/ament_index/resource_index/packages', ['resource/' + PACKAGE]),
        ('share/' + PACKAGE, ['package.xml']),
        ('share/' + PACKAGE + '/launch', glob('launch/*.launch.py')),
        ('share/' + PACKAGE + '/config', glob('config/*.yaml') + glob('config/*.xml')),
        ('share/' + PACKAGE + '/config/prometheus', glob('config/prometheus/*.yml')),
        ('share/' + PACKAGE + '/config/grafana', glob('config/grafana/*.json')),
        ('share/' + PACKAGE + '/config/alertmanager', glob('config/alertmanager/*.yml')),
        ('share/' + PACKAGE + '/config/alertmanager/templates',
         glob('config/alertmanager/templates/*.tmpl')),
        ('share/' + PACKAGE + '/models', glob('models/*.npz') + glob('models/*.json')),
    ],
    install_requires=['setuptools'],
    # colcon runs its pytest step only for packages that declare pytest as a test dependency.
    extras_require={'test': ['pytest']},
    zip_safe=True,
    maintainer='liquid_edge maintainers',
    maintainer_email='maintainers@liquid-edge.invalid',
    description='Observability for ROS 2 robots running a liquid neural network controller: '
                'topic, node and host health and a traced LNN inference node, published on '
                '/diagnostics, as Prometheus metrics and as OpenTelemetry spans.',
    license='Apache-2.0',
    entry_points={
        'console_scripts': [
            'topic_monitor = liquid_edge_ros_monitor.entry:topic_monitor',
            'sim_robot = liquid_edge_ros_monitor.entry:sim_robot',
            'node_monitor = liquid_edge_ros_monitor.entry:node_monitor',
            'liquid_inference = liquid_edge_ros_monitor.entry:liquid_inference',
            'liquid-edge-monitor = liquid_edge_ros_monitor.cli:main',
        ],
    },
)
