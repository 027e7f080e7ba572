#!/usr/bin/env bash
# The whole test suite: sets up the venv and the test tools on first use, then runs pytest.
# Extra arguments go to pytest (e.g. ./run_tests.sh -k cdr). ROS_DISTRO=jazzy runs it on ROS 2
# Jazzy (.venv-jazzy) instead of Kilted (.venv, the default).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")"
venv="$(tools/bootstrap.sh --test-tools)"

# Network rule: DDS discovery stays on this host, and each run gets its own domain.
export ROS_AUTOMATIC_DISCOVERY_RANGE=LOCALHOST
export ROS_DOMAIN_ID="${ROS_DOMAIN_ID:-$(( ($$ % 100) + 1 ))}"
export RMW_IMPLEMENTATION=rmw_fastrtps_cpp
export PYTHONUNBUFFERED=1

# Shared-memory segments left by killed DDS processes make Fast DDS print transport errors;
# clear the abandoned ones (segments of live processes stay).
"$venv/bin/python" "$venv/tools/fastdds/fastdds.py" shm clean >/dev/null 2>&1 || true

echo "run_tests: ROS 2 ${ROS_DISTRO:-kilted} ($venv)" >&2
set +e
"$venv/bin/python" -m pytest "$@"
rc=$?
set -e
if [ "$rc" = 5 ]; then
    echo "run_tests: pytest collected no tests; that is a failure" >&2
    exit 1
fi
exit "$rc"
