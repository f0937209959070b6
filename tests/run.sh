#!/usr/bin/env bash
# Install everything the test suite needs on a fresh Debian 12 machine, build
# kbgp's compiled modules, and run the whole suite.  Extra arguments go to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
# Real BGP daemons (interop and golden vectors: BIRD, GoBGP, FRR, ExaBGP), iproute2 (network namespaces),
# tcpdump, ping (pod-to-pod traffic between agents).
bash packaging/install-deps.sh bird2 gobgpd frr exabgp iproute2 tcpdump iputils-ping
export PIP_BREAK_SYSTEM_PACKAGES=1
python3 -m pip install -q -e '.[test]'
python3 -m kbgp version
python3 -m pytest -p no:cacheprovider "$@"
