"""Self-tests of the integration harness: real daemons peer with each other
(no kbgp involved) inside private network namespaces.

Needs root, iproute2 and the Debian packages bird2, gobgpd, frr and exabgp;
skips with the reason otherwise.
"""

from __future__ import annotations

import os
import time

import pytest

from .daemons import Daemon, leftover_processes, wait_until
from .netns import PREFIX, link, list_netns

pytestmark = [pytest.mark.interop, pytest.mark.netns]


@pytest.fixture(scope="module", autouse=True)
def _nothing_left_behind():
    """After the module: no kbgpi- namespace and no daemon process remain."""
    started = time.monotonic()
    first = len(Daemon.instances)
    yield
    ours = Daemon.instances[first:]
    # Only this process's namespaces: another test run may be using its own.
    mine = f"{PREFIX}{os.getpid()}-"
    leftover_ns = [n for n in list_netns() if n.startswith(mine)]
    leftover_procs = leftover_processes(ours)
    print(f"\nintegration harness self-test: {time.monotonic() - started:.1f} s, "
          f"{len(ours)} daemons")
    assert not leftover_ns, f"namespaces left behind: {leftover_ns}"
    assert not leftover_procs, f"processes left behind: {leftover_procs}"


def wait_all_established(*pairs) -> None:
    for daemon, address in pairs:
        daemon.wait_established(address, timeout=30)


# --------------------------------------------------------------------------
# BIRD <-> GoBGP, eBGP, IPv4 and IPv6
# --------------------------------------------------------------------------

def test_bird_gobgp_ebgp_dual_stack(netns_factory, daemon_factory):
    a, b = netns_factory("bird"), netns_factory("gobgp")
    link(a, b, "10.1.0.1", "10.1.0.2", "fd00:1::1", "fd00:1::2")
    bird = daemon_factory("bird", a, "10.1.0.1", 65001)
    gobgp = daemon_factory("gobgp", b, "10.1.0.2", 65002)
    # One session per address family (IPv4 over IPv4, IPv6 over IPv6): GoBGP
    # sends IPv6 routes over an IPv4 session with an IPv4-mapped next hop,
    # which BIRD rejects ("mismatched address family").
    bird.add_neighbor("10.1.0.2", 65002, families=["ipv4"])
    bird.add_neighbor("fd00:1::2", 65002, families=["ipv6"])
    gobgp.add_neighbor("10.1.0.1", 65001, families=["ipv4"])
    gobgp.add_neighbor("fd00:1::1", 65001, families=["ipv6"])

    bird.originate("198.51.100.0/24", med=10, communities=["65000:1", "no-export"],
                   large_communities=["65001:1:2"])
    # Third-party next hop on the shared link is passed on unchanged.
    bird.originate("198.51.100.128/25", next_hop="10.1.0.9", origin="incomplete")
    bird.originate("2001:db8:1::/48", med=20, communities=["65000:2"])
    gobgp.originate("203.0.113.0/24", med=30, communities=["65000:3"],
                    large_communities=["65002:3:4"])
    gobgp.originate("2001:db8:2::/48", large_communities=["65002:5:6"], origin="egp")
    bird.start()
    gobgp.start()
    wait_all_established((bird, "10.1.0.2"), (bird, "fd00:1::2"),
                         (gobgp, "10.1.0.1"), (gobgp, "fd00:1::1"))

    assert gobgp.wait_routes(2, "10.1.0.1") == {
        "198.51.100.0/24": {"as_path": [65001], "next_hop": "10.1.0.1", "origin": "igp",
                            "med": 10, "communities": ["65000:1", "no-export"],
                            "large_communities": ["65001:1:2"]},
        "198.51.100.128/25": {"as_path": [65001], "next_hop": "10.1.0.9",
                              "origin": "incomplete"},
    }
    assert gobgp.wait_routes(1, "fd00:1::1") == {
        "2001:db8:1::/48": {"as_path": [65001], "next_hop": "fd00:1::1", "origin": "igp",
                            "med": 20, "communities": ["65000:2"]},
    }
    assert bird.wait_routes(1, "10.1.0.2") == {
        "203.0.113.0/24": {"as_path": [65002], "next_hop": "10.1.0.2", "origin": "igp",
                           "med": 30, "communities": ["65000:3"],
                           "large_communities": ["65002:3:4"]},
    }
    assert bird.wait_routes(1, "fd00:1::2") == {
        "2001:db8:2::/48": {"as_path": [65002], "next_hop": "fd00:1::2", "origin": "egp",
                            "large_communities": ["65002:5:6"]},
    }
    assert len(bird.received_routes()) == 2 and len(gobgp.received_routes()) == 3

    # Live changes while the sessions stay up.
    bird.withdraw("198.51.100.128/25")
    bird.originate("198.51.100.0/24", med=11)              # replaced: new attributes
    gobgp.originate("203.0.113.128/25", med=5)
    gobgp.withdraw("2001:db8:2::/48")
    expected = {"198.51.100.0/24": {"as_path": [65001], "next_hop": "10.1.0.1",
                                    "origin": "igp", "med": 11}}
    wait_until(lambda: gobgp.received_routes("10.1.0.1") == expected, 15,
               "GoBGP to see BIRD's live changes",
               on_timeout=lambda: repr(gobgp.received_routes("10.1.0.1")))
    assert bird.wait_routes(2, "10.1.0.2")["203.0.113.128/25"] == {
        "as_path": [65002], "next_hop": "10.1.0.2", "origin": "igp", "med": 5}
    assert bird.wait_routes(0, "fd00:1::2") == {}
    for d, peer in ((bird, "10.1.0.2"), (bird, "fd00:1::2"), (gobgp, "10.1.0.1")):
        assert d.session_state(peer) == "established"


# --------------------------------------------------------------------------
# FRR <-> ExaBGP
# --------------------------------------------------------------------------

def test_frr_exabgp_routes_both_ways(netns_factory, daemon_factory):
    a, b = netns_factory("frr"), netns_factory("exabgp")
    link(a, b, "10.2.0.1", "10.2.0.2", "fd00:2::1", "fd00:2::2")
    frr = daemon_factory("frr", a, "10.2.0.1", 65011)
    exa = daemon_factory("exabgp", b, "10.2.0.2", 65012)
    # Both families on one IPv4 session: both pick their global IPv6 address
    # of the link as IPv6 next hop.
    frr.add_neighbor("10.2.0.2", 65012)
    exa.add_neighbor("10.2.0.1", 65011)
    exa.originate("203.0.113.0/24", med=40, communities=["65000:4"],
                  large_communities=["65012:1:1"])
    exa.originate("2001:db8:12::/48", med=41)
    frr.originate("198.51.100.0/24", med=50, communities=["65000:5", "no-export"],
                  large_communities=["65011:1:1"])
    frr.originate("2001:db8:11::/48", med=51)
    frr.start()
    exa.start()
    wait_all_established((frr, "10.2.0.2"), (exa, "10.2.0.1"))

    assert frr.wait_routes(2, "10.2.0.2") == {
        "203.0.113.0/24": {"as_path": [65012], "next_hop": "10.2.0.2", "origin": "igp",
                           "med": 40, "communities": ["65000:4"],
                           "large_communities": ["65012:1:1"]},
        "2001:db8:12::/48": {"as_path": [65012], "next_hop": "fd00:2::2", "origin": "igp",
                             "med": 41},
    }
    # ExaBGP's JSON dump (FRR also sends ExaBGP's own routes back; those
    # fail the AS-path loop check and are left out).
    assert exa.wait_routes(2, "10.2.0.1") == {
        "198.51.100.0/24": {"as_path": [65011], "next_hop": "10.2.0.1", "origin": "igp",
                            "med": 50, "communities": ["65000:5", "no-export"],
                            "large_communities": ["65011:1:1"]},
        "2001:db8:11::/48": {"as_path": [65011], "next_hop": "fd00:2::1", "origin": "igp",
                             "med": 51},
    }
    assert any(m.get("type") == "update" for m in exa.messages())

    # A graceful stop sends Cease, which ExaBGP reports.
    frr.stop()
    exa.wait_state("10.2.0.1", "idle", timeout=10)
    assert any(n["code"] == 6 for n in exa.notifications("10.2.0.1")), \
        f"no Cease from FRR's graceful stop in ExaBGP's dump: {exa.notifications()}"
    assert exa.wait_routes(0, "10.2.0.1", timeout=5) == {}


# --------------------------------------------------------------------------
# TCP MD5 between BIRD and FRR
# --------------------------------------------------------------------------

def _md5_pair(netns_factory, daemon_factory, bird_key, frr_key, net):
    a, b = netns_factory("bird"), netns_factory("frr")
    link(a, b, f"10.{net}.0.1", f"10.{net}.0.2")
    bird = daemon_factory("bird", a, f"10.{net}.0.1", 65021)
    frr = daemon_factory("frr", b, f"10.{net}.0.2", 65022)
    bird.add_neighbor(f"10.{net}.0.2", 65022, password=bird_key, families=["ipv4"])
    frr.add_neighbor(f"10.{net}.0.1", 65021, password=frr_key, families=["ipv4"])
    bird.originate("198.51.100.0/24")
    bird.start()
    frr.start()
    return bird, frr


def test_md5_same_key_establishes(netns_factory, daemon_factory):
    bird, frr = _md5_pair(netns_factory, daemon_factory, "kbgp-md5-key", "kbgp-md5-key", 3)
    wait_all_established((bird, "10.3.0.2"), (frr, "10.3.0.1"))
    assert list(frr.wait_routes(1, "10.3.0.1")) == ["198.51.100.0/24"]


def test_md5_different_keys_never_establish(netns_factory, daemon_factory):
    bird, frr = _md5_pair(netns_factory, daemon_factory, "kbgp-md5-key", "another-key", 4)
    end = time.monotonic() + 10
    states = set()
    while time.monotonic() < end:
        states.add(bird.session_state("10.4.0.2"))
        states.add(frr.session_state("10.4.0.1"))
        assert "established" not in states, bird.log() + frr.log()
        time.sleep(0.5)
    assert bird.alive() and frr.alive()


# --------------------------------------------------------------------------
# Hold timer: freeze one side
# --------------------------------------------------------------------------

@pytest.mark.parametrize("observer_kind,frozen_kind", [("bird", "gobgp"), ("gobgp", "frr")])
def test_freeze_expires_hold_timer(netns_factory, daemon_factory, observer_kind, frozen_kind):
    hold = 3
    a, b = netns_factory(observer_kind), netns_factory(frozen_kind)
    link(a, b, "10.5.0.1", "10.5.0.2")
    observer = daemon_factory(observer_kind, a, "10.5.0.1", 65031)
    frozen = daemon_factory(frozen_kind, b, "10.5.0.2", 65032)
    observer.add_neighbor("10.5.0.2", 65032, hold_time=hold, families=["ipv4"])
    frozen.add_neighbor("10.5.0.1", 65031, hold_time=hold, families=["ipv4"])
    observer.start()
    frozen.start()
    wait_all_established((observer, "10.5.0.2"), (frozen, "10.5.0.1"))

    t0 = time.monotonic()
    frozen.freeze()
    state = observer.wait_not_established("10.5.0.2", timeout=hold + 5)
    elapsed = time.monotonic() - t0
    # The last keepalive came at most one keepalive interval (hold/3) before
    # the freeze, so the hold timer fires between 2/3 hold and hold after it.
    assert hold * 2 / 3 - 0.5 <= elapsed <= hold + 2, (elapsed, state)
    assert state in ("idle", "connect", "active", "opensent", "openconfirm")

    frozen.thaw()
    wait_all_established((observer, "10.5.0.2"), (frozen, "10.5.0.1"))
