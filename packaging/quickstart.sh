#!/usr/bin/env bash
# Quick start: install kbgp with everything it needs, then run it on its
# embedded default: decode the bundled capture of a real BGP session.
set -euo pipefail
cd "$(dirname "$0")/.."
bash packaging/install-deps.sh
export PIP_BREAK_SYSTEM_PACKAGES=1
python3 -m pip install -q .
cd /  # use the installed package, not the source tree
kbgp version
kbgp decode --summary "$OLDPWD/kbgp/data/sample.bgp"
