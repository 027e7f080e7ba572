#!/usr/bin/env bash
# The demo: a simulated robot, the topic monitor with a live table, /diagnostics and a Prometheus
# endpoint on 127.0.0.1. Sets up the venv on first use (ROS_DISTRO=jazzy: ROS 2 Jazzy in
# .venv-jazzy; default Kilted in .venv). Ctrl-C stops it; extra arguments go to
# `liquid-edge-monitor demo` (e.g. ./demo.sh --duration 30 --metrics-port 9100).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")"
venv="$(tools/bootstrap.sh)"
export ROS_AUTOMATIC_DISCOVERY_RANGE=LOCALHOST
export RMW_IMPLEMENTATION=rmw_fastrtps_cpp
exec "$venv/bin/liquid-edge-monitor" demo "$@"
