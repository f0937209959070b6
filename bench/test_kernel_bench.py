"""KernelSyncer against ``ip -batch`` and BIRD 2's kernel protocol, under
pytest (the measurement itself is bench/kernel.py; see its docstring).

    python3 -m pytest bench/test_kernel_bench.py -p no:cacheprovider -q -s
    KBGP_KERNEL_BENCH_N=1000000 python3 -m pytest bench/test_kernel_bench.py ...

Each target is measured once per run (a route install is not repeatable in
a loop without its removal, which is measured too); the figures go to
``rates`` (the session summary).  ``python3 bench/kernel.py --n N`` is the
same measurement with a table and bench/results/kernel-<N>.json.
"""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

import kernel as kbench

N = int(os.environ.get("KBGP_KERNEL_BENCH_N", "100000"))
RESULTS: dict[str, dict] = {}

pytestmark = [
    pytest.mark.skipif(os.geteuid() != 0, reason="needs root to create network namespaces"),
    pytest.mark.skipif(shutil.which("ip") is None, reason="iproute2 'ip' is missing"),
]


@pytest.mark.parametrize("target", ["kbgp", "ip", "bird"])
def test_kernel_writer(target, rates):
    ok, reason = kbench.netns_available()
    if not ok:
        pytest.skip(reason)
    if target == "bird" and not shutil.which("bird"):
        pytest.skip("bird is not installed")
    poll = 0.05 if N <= 200_000 else 0.2
    rec = kbench.measure(target, N, poll, timeout=1200)
    RESULTS[target] = rec
    rates[f"kernel_{target}_install_routes_per_s"] = N / rec["install_s"]
    rates[f"kernel_{target}_remove_routes_per_s"] = N / rec["remove_s"]
    print(f"\n{target}: install {rec['install_s']:.3f} s, remove {rec['remove_s']:.3f} s "
          f"({N:,} routes)")
    if target != "kbgp" and "kbgp" in RESULTS:
        k = RESULTS["kbgp"]
        print(f"kbgp / {target}: install {k['install_s'] / rec['install_s']:.2f}, "
              f"remove {k['remove_s'] / rec['remove_s']:.2f}")
    assert rec["install_s"] > 0 and rec["remove_s"] > 0
