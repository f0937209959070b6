"""RouteSocket against a real kernel, inside private network namespaces.

Namespace A (tests/integration/netns.py route_namespace) holds the near end
of a veth pair with 10.80.0.1/24 and fd00:80::1/64; the far end sits in
namespace B so that the link is up.  The routes are written by a helper
process run with ``ip netns exec``.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import textwrap

import pytest

from .netns import require_netns, route_namespace

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

pytestmark = [
    pytest.mark.netns,
    pytest.mark.skipif(os.geteuid() != 0, reason="needs root to create network namespaces"),
    pytest.mark.skipif(shutil.which("ip") is None, reason="iproute2 'ip' is missing"),
]


def ip(*args, check=True):
    return subprocess.run(["ip", *args], capture_output=True, text=True, check=check, timeout=60)


@pytest.fixture
def ns():
    """Name of namespace A (veth kv0 10.80.0.1/24, fd00:80::1/64; the far
    end in B); both are deleted at teardown, also on failure."""
    require_netns()
    with route_namespace("kroutes") as near:
        yield near.name


def in_ns(ns, code):
    """Run python code in the namespace; its last stdout line is JSON."""
    env = dict(os.environ, PYTHONPATH=ROOT)
    p = subprocess.run(["ip", "netns", "exec", ns, sys.executable, "-c", textwrap.dedent(code)],
                       capture_output=True, text=True, env=env, timeout=300)
    assert p.returncode == 0, p.stderr
    return json.loads(p.stdout.strip().splitlines()[-1])


def routes(ns, *sel, family="-4"):
    out = ip("-n", ns, family, "-j", "route", "show", *sel).stdout
    return json.loads(out or "[]")


PRELUDE = """
import json
from kbgp.kernel.netlink import RouteSocket, RTM_NEWROUTE, RTM_DELROUTE
from kbgp._fast.wire import PrefixArray
s = RouteSocket()
"""


def test_install_10000_and_delete_leaves_foreign_route(ns):
    ip("-n", ns, "route", "add", "10.99.0.0/24", "via", "10.80.0.2", "proto", "static")
    res = in_ns(ns, PRELUDE + """
arr = PrefixArray.sequence("10.100.0.0/32", 10000)
errors = s.apply(RTM_NEWROUTE, arr, "10.80.0.2")
again = s.apply(RTM_NEWROUTE, arr, "10.80.0.2")   # replace: idempotent
dumped = s.dump()
print(json.dumps({"errors": len(errors), "again": len(again), "dump": sorted(dumped)}))
""")
    assert res["errors"] == 0 and res["again"] == 0
    expected = {f"10.100.{i >> 8}.{i & 255}" for i in range(10000)}
    listed = routes(ns, "proto", "17")
    assert len(listed) == 10000
    assert {r["dst"] for r in listed} == expected
    assert all(r["gateway"] == "10.80.0.2" and r["dev"] == "kv0" for r in listed)
    assert set(res["dump"]) == {d + "/32" for d in expected}

    res = in_ns(ns, PRELUDE + """
arr = PrefixArray.sequence("10.100.0.0/32", 10000)
print(json.dumps({"errors": len(s.apply(RTM_DELROUTE, arr)), "left": len(s.dump())}))
""")
    assert res == {"errors": 0, "left": 0}
    assert routes(ns, "proto", "17") == []
    foreign = routes(ns, "10.99.0.0/24")
    assert len(foreign) == 1 and foreign[0]["protocol"] == "static"


def test_delete_does_not_touch_foreign_route_with_same_prefix(ns):
    ip("-n", ns, "route", "add", "10.99.0.0/24", "via", "10.80.0.2", "proto", "static")
    res = in_ns(ns, PRELUDE + """
arr = PrefixArray.from_strings(["10.99.0.0/24"])
print(json.dumps(s.errors_by_prefix(arr, s.apply(RTM_DELROUTE, arr))))
""")
    assert res == {"10.99.0.0/24": 3}            # ESRCH: no such route of protocol 17
    assert len(routes(ns, "10.99.0.0/24")) == 1


def test_per_route_errors_do_not_block_the_batch(ns):
    res = in_ns(ns, PRELUDE + """
import errno
arr = PrefixArray.sequence("10.101.0.0/32", 100)
gws = ["10.80.0.2"] * 100
gws[10] = "10.81.0.2"        # not on any link
gws[77] = "10.81.0.3"
first = s.apply(RTM_NEWROUTE, arr, gws)
named = s.errors_by_prefix(arr, first)
dup = s.apply(RTM_NEWROUTE, PrefixArray.sequence("10.101.0.0/32", 3), "10.80.0.2", replace=False)
print(json.dumps({"errors": named, "dup": sorted(dup.values()),
                  "unreach": [errno.ENETUNREACH, errno.EHOSTUNREACH, errno.EINVAL]}))
""")
    assert set(res["errors"]) == {"10.101.0.10/32", "10.101.0.77/32"}
    assert all(e in res["unreach"] for e in res["errors"].values()), res
    assert res["dup"] == [17, 17, 17]            # EEXIST for each existing route
    listed = {r["dst"] for r in routes(ns, "proto", "17")}
    assert len(listed) == 98 and "10.101.0.10" not in listed and "10.101.0.77" not in listed


def test_ipv6_routes(ns):
    res = in_ns(ns, PRELUDE + """
import socket
arr = PrefixArray.from_strings([f"fd00:99::{i:x}/128" for i in range(1, 6)])
errors = s.apply(RTM_NEWROUTE, arr, "fd00:80::2")
dumped = s.dump(family=socket.AF_INET6)
print(json.dumps({"errors": len(errors), "dump": sorted(dumped)}))
""")
    assert res["errors"] == 0
    assert res["dump"] == sorted(f"fd00:99::{i:x}/128" for i in range(1, 6))
    listed = routes(ns, "proto", "17", family="-6")
    assert {r["dst"] for r in listed} == {f"fd00:99::{i:x}" for i in range(1, 6)}
    assert all(r["gateway"] == "fd00:80::2" for r in listed)
    res = in_ns(ns, PRELUDE + """
import socket
arr = PrefixArray.from_strings([f"fd00:99::{i:x}/128" for i in range(1, 6)])
print(json.dumps({"errors": len(s.apply(RTM_DELROUTE, arr)),
                  "left": len(s.dump(family=socket.AF_INET6))}))
""")
    assert res == {"errors": 0, "left": 0}
    assert routes(ns, "proto", "17", family="-6") == []


def test_table_above_255(ns):
    res = in_ns(ns, PRELUDE + """
arr = PrefixArray.sequence("10.102.0.0/32", 10)
e = s.apply(RTM_NEWROUTE, arr, "10.80.0.2", table=1000)
print(json.dumps({"errors": len(e), "t1000": len(s.dump(table=1000)), "main": len(s.dump())}))
""")
    assert res == {"errors": 0, "t1000": 10, "main": 0}
    assert len(routes(ns, "table", "1000", "proto", "17")) == 10
