"""Installing 100,000 routes: kbgp's RouteSocket against ``ip -batch``.

Runs only as root: the shared route namespace of tests/integration/netns.py
(a private namespace pair with a veth link, 10.80.0.1/24 on the near end) is
created for the module and deleted at the end.  Each round starts from a
table without protocol-17 routes (cleared in the untimed setup); both sides
install the same 100,000 /32 routes via 10.80.0.2 with protocol 17.  Figures: routes/s of each and the ratio, in
``benchmark.extra_info`` and in the session summary.

    python3 -m pytest bench/test_netlink_bench.py --benchmark-only -q
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from kbgp._fast.wire import PrefixArray  # noqa: E402
from kbgp.kernel.netlink import RTM_DELROUTE, RTM_NEWROUTE, RouteSocket, in_netns  # noqa: E402
from tests.integration.netns import netns_available, route_namespace  # noqa: E402

COUNT = 100_000
FIRST = "10.100.0.0/32"
GATEWAY = "10.80.0.2"

pytestmark = [
    pytest.mark.skipif(os.geteuid() != 0, reason="needs root to create network namespaces"),
    pytest.mark.skipif(shutil.which("ip") is None, reason="iproute2 'ip' is missing"),
]

FIGURES: dict = {}


def ip(*args, check=True):
    return subprocess.run(["ip", *args], capture_output=True, text=True, check=check, timeout=300)


@pytest.fixture(scope="module")
def bench_ns():
    """The shared route namespace (tests/integration/netns.py) and a
    RouteSocket inside it."""
    ok, reason = netns_available()
    if not ok:
        pytest.skip(reason)
    with route_namespace("bench") as ns:
        sock = in_netns(ns.name, RouteSocket)
        try:
            yield ns.name, sock
        finally:
            sock.close()


@pytest.fixture(scope="module")
def prefixes():
    return PrefixArray.sequence(FIRST, COUNT)


def _clear(sock, arr):
    """Remove kbgp's routes (untimed); ESRCH for the absent ones is fine."""
    sock.apply(RTM_DELROUTE, arr)
    assert len(sock.dump_array()) == 0


def _record(benchmark, rates, key, seconds):
    rate = COUNT / seconds
    FIGURES[key] = rate
    rates[f"netlink_{key}"] = rate
    benchmark.extra_info["routes"] = COUNT
    benchmark.extra_info["seconds"] = round(seconds, 4)
    benchmark.extra_info["routes_per_s"] = round(rate)
    if "kbgp" in FIGURES and "ip_batch" in FIGURES:
        ratio = FIGURES["kbgp"] / FIGURES["ip_batch"]
        benchmark.extra_info["ratio_kbgp_over_ip_batch"] = round(ratio, 2)
        rates["netlink_ratio"] = ratio


def test_install_routesocket(benchmark, bench_ns, prefixes, rates):
    _, sock = bench_ns
    result = {}

    def install():
        result["errors"] = sock.apply(RTM_NEWROUTE, prefixes, GATEWAY)

    benchmark.pedantic(install, setup=lambda: _clear(sock, prefixes), rounds=3, iterations=1)
    assert result["errors"] == {}
    assert len(sock.dump_array()) == COUNT
    _record(benchmark, rates, "kbgp", benchmark.stats.stats.median)


def test_install_ip_batch(benchmark, bench_ns, prefixes, rates, tmp_path):
    near, sock = bench_ns
    batch = tmp_path / "routes.batch"
    batch.write_text("".join(f"route add {p} via {GATEWAY} proto 17\n"
                             for p in prefixes.to_strings()))

    def install():
        subprocess.run(["ip", "-n", near, "-batch", str(batch)], check=True,
                       capture_output=True, timeout=600)

    benchmark.pedantic(install, setup=lambda: _clear(sock, prefixes), rounds=3, iterations=1)
    assert len(sock.dump_array()) == COUNT
    _record(benchmark, rates, "ip_batch", benchmark.stats.stats.median)
    _clear(sock, prefixes)
