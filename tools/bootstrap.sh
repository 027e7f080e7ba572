#!/usr/bin/env bash
# Sets up what the two quick-start commands need, on first use and again whenever the pins change:
# a local virtual environment for the ROS 2 distribution in ROS_DISTRO (kilted, the default:
# .venv from requirements.txt; jazzy, the LTS: .venv-jazzy from requirements-jazzy.txt) with this
# package installed into it, and, with --test-tools, the example node's torch and ncps, Debian's
# `prometheus` package (promtool and the server the tests run) and `prometheus-alertmanager`
# (the Alertmanager server and amtool). Prints the venv's path on stdout (everything else goes
# to stderr).
# Idempotent: a second run with unchanged pins does nothing.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
distro="${ROS_DISTRO:-kilted}"
case "$distro" in
    kilted) venv="$root/.venv"; requirements="$root/requirements.txt" ;;
    jazzy) venv="$root/.venv-jazzy"; requirements="$root/requirements-jazzy.txt" ;;
    *) echo "bootstrap: ROS_DISTRO=$distro: the pip path supports kilted (default) and jazzy" \
            "(PyPI has no wheels of other distributions); unset ROS_DISTRO or pick one of them" >&2
       exit 2 ;;
esac
stamp="$venv/.bootstrap-stamp"

as_root() {
    if [ "$(id -u)" = 0 ]; then "$@"; elif command -v sudo >/dev/null; then sudo "$@"; else
        echo "bootstrap: need root to run: $*" >&2; return 1; fi
}

apt_install() {
    as_root env DEBIAN_FRONTEND=noninteractive apt-get update -qq >&2
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$@" >&2
}

if ! python3 -c 'import venv, ensurepip' 2>/dev/null; then
    echo "bootstrap: installing python3-venv (Debian ships venv separately)" >&2
    apt_install python3-venv
fi

want="$(cat "$requirements" "$root/setup.py" | sha256sum | cut -d' ' -f1)"
if [ ! -x "$venv/bin/python" ] || [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
    echo "bootstrap: creating $venv (ROS 2 $distro) from $(basename "$requirements")" \
         "(first use takes a few minutes)" >&2
    python3 -m venv "$venv" >&2
    "$venv/bin/python" -m pip install -q --disable-pip-version-check -r "$requirements" >&2
    # PEP 660 editable install: console scripts land in the venv's bin (setup.cfg's lib/ layout
    # is for colcon).
    "$venv/bin/python" -m pip install -q --disable-pip-version-check --no-deps --no-build-isolation \
        --use-pep517 -e "$root" >&2
    # colcon must not crawl the ROS wheels' package.xml files inside the venv.
    touch "$venv/COLCON_IGNORE"
    echo "$want" > "$stamp"
fi

# The example node's torch and ncps (CPU wheels), for its end-to-end test: --no-deps, every
# dependency pinned in the file; --retries 0 so an unreachable PyTorch index costs no back-off
# (pip then takes the wheel from the other indexes). About 20 s on first use.
example_stamp="$venv/.example-stamp"
example_want="$(sha256sum "$root/requirements-example.txt" | cut -d' ' -f1)"
if [ "${1:-}" = "--test-tools" ] && [ "$(cat "$example_stamp" 2>/dev/null)" != "$example_want" ]; then
    echo "bootstrap: installing the example's torch (CPU) and ncps from requirements-example.txt" >&2
    "$venv/bin/python" -m pip install -q --disable-pip-version-check --retries 0 --no-deps \
        -r "$root/requirements-example.txt" >&2
    echo "$example_want" > "$example_stamp"
fi

if [ "${1:-}" = "--test-tools" ] && ! command -v promtool >/dev/null; then
    echo "bootstrap: installing Debian's prometheus package (promtool, prometheus server)" >&2
    apt_install prometheus
fi

if [ "${1:-}" = "--test-tools" ] && ! command -v amtool >/dev/null; then
    echo "bootstrap: installing Debian's prometheus-alertmanager package (alertmanager server, amtool)" >&2
    apt_install prometheus-alertmanager
fi
echo "$venv"
