#!/usr/bin/env bash
# Quick start: install kbgp with everything it needs, then run it on its
# embedded default: three nodes and a BIRD router in network namespaces, from
# a cluster file (packaging/demo.py), then the decode of a real BGP capture.
set -euo pipefail
cd "$(dirname "$0")/.."
bash packaging/install-deps.sh bird2 iproute2
export PIP_BREAK_SYSTEM_PACKAGES=1
python3 -m pip install -q .
cd /  # use the installed package, not the source tree
kbgp version
python3 "$OLDPWD/packaging/demo.py"
kbgp decode --summary "$OLDPWD/kbgp/data/sample.bgp"
