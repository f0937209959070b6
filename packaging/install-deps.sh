#!/usr/bin/env bash
# Make sure python3, pip and a C compiler are present (Debian 12), plus any
# Debian packages named as arguments.  Used by the Quick start and by the test
# runner so both work on a fresh machine with nothing pre-installed.
set -euo pipefail
export DEBIAN_FRONTEND=noninteractive
# Debian's own python3 refuses system-wide pip installs (PEP 668); kbgp is
# installed like any other system tool there.
export PIP_BREAK_SYSTEM_PACKAGES=1

need=("$@")
python3 -m pip --version >/dev/null 2>&1 || need+=(python3-pip python3-dev)
command -v cc >/dev/null 2>&1 || need+=(gcc)
python3 -c 'import sysconfig, os, sys; sys.exit(0 if os.path.exists(os.path.join(sysconfig.get_paths()["include"], "Python.h")) else 1)' \
    || need+=(python3-dev)
if [ ${#need[@]} -gt 0 ]; then
    missing=()
    for pkg in "${need[@]}"; do
        dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
    done
    if [ ${#missing[@]} -gt 0 ]; then
        SUDO=""
        [ "$(id -u)" = 0 ] || SUDO="sudo"
        $SUDO apt-get update -q
        $SUDO apt-get install -y -q --no-install-recommends "${missing[@]}"
    fi
fi
