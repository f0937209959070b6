"""Routing policy as data, against real peers.

kbgp (AS 65090) is eBGP transit between BIRD (AS 65091) and FRR (AS 65092)
with import and export rules: prefix sets with or-longer ranges, a neighbour
set, peer classes; actions reject, add communities, AS-path prepend, set
local preference.  Then the policy is changed live (SIGHUP) and the routes at
FRR change without any session being reset.

Needs root, iproute2, bird2 and frr (installed by .ci/run).
"""
from __future__ import annotations

import json
import time

import pytest

from .daemons import wait_until
from .netns import link
from .test_interop import established

pytestmark = [pytest.mark.netns, pytest.mark.interop]


POLICY = {
    "prefix-sets": {
        "bird-nets": ["192.0.2.0/24 or-longer"],
        "bogons": ["203.0.113.0/24 or-longer", "0.0.0.0/0"],
        "own": ["10.90.0.0/24"],
    },
    "neighbor-sets": {"frr": ["10.66.0.2"]},
    "policy": {
        "import": [
            {"match": {"prefix-set": "bogons"}, "action": "reject"},
            {"match": {"prefix-set": "bird-nets", "peer-class": "external"},
             "local-pref": 200, "add-communities": ["65090:100"], "action": "next"},
        ],
        "export": [
            {"match": {"neighbor-set": "frr", "prefix-set": "bird-nets"},
             "prepend": 2, "add-communities": ["65090:7"], "action": "accept"},
            {"match": {"neighbor-set": "frr", "source": "local"}, "add-large-communities": ["65090:1:2"]},
            {"match": {"neighbor-set": "frr"}, "action": "reject"},
        ],
    },
}


def test_ebgp_transit_with_policy_and_live_change(netns_factory, daemon_factory, kbgp_factory):
    k, b, f = netns_factory("kbgp"), netns_factory("bird"), netns_factory("frr")
    link(k, b, "10.65.0.1", "10.65.0.2")
    link(k, f, "10.66.0.1", "10.66.0.2")
    kb = kbgp_factory(k, "10.65.0.1", 65090)
    kb.add_neighbor("10.65.0.2", 65091, families=["ipv4"])
    kb.add_neighbor("10.66.0.2", 65092, families=["ipv4"])
    kb.originate("10.90.0.0/24")
    kb.set_policy(POLICY)
    bird = daemon_factory("bird", b, "10.65.0.2", 65091)
    bird.add_neighbor("10.65.0.1", 65090, families=["ipv4"], passive=True)
    bird.originate("192.0.2.0/24", communities=["65091:1"])
    bird.originate("192.0.2.128/25")
    bird.originate("203.0.113.0/24")        # a bogon: refused on import
    bird.originate("198.51.100.0/24")       # neither set: accepted, but FRR's export rejects it
    frr = daemon_factory("frr", f, "10.66.0.2", 65092)
    frr.add_neighbor("10.66.0.1", 65090, families=["ipv4"], passive=True)
    frr.originate("172.16.5.0/24")
    for d in (bird, frr):
        d.start()
    kb.start()
    established((kb, "10.65.0.2"), (kb, "10.66.0.2"))

    # Import: the bogon is refused (received, not accepted), the others carry the import actions.
    wait_until(lambda: kb.neighbor_status("10.65.0.2")["received"] == 4, 20, "kbgp to receive BIRD's 4 routes")
    st = kb.neighbor_status("10.65.0.2")
    assert st["accepted"] == 3, st
    rib = {r["prefix"]: r for r in kb.rib() if r["neighbor"] == "10.65.0.2"}
    assert sorted(rib) == ["192.0.2.0/24", "192.0.2.128/25", "198.51.100.0/24"]
    assert rib["192.0.2.0/24"]["local_pref"] == 200
    assert rib["192.0.2.0/24"]["communities"] == ["65091:1", "65090:100"]
    assert rib["198.51.100.0/24"]["local_pref"] is None and rib["198.51.100.0/24"]["communities"] == []

    # Export to FRR: BIRD's nets prepended twice on top of kbgp's own AS, with a community;
    # the local route with a large community; 198.51.100.0/24 rejected.
    at_frr = frr.wait_routes(3, "10.66.0.1")
    assert sorted(at_frr) == ["10.90.0.0/24", "192.0.2.0/24", "192.0.2.128/25"], at_frr
    assert at_frr["192.0.2.0/24"]["as_path"] == [65090, 65090, 65090, 65091]
    assert sorted(at_frr["192.0.2.0/24"]["communities"]) == ["65090:100", "65090:7", "65091:1"]
    assert at_frr["10.90.0.0/24"]["as_path"] == [65090]
    assert at_frr["10.90.0.0/24"].get("large_communities") == ["65090:1:2"], at_frr["10.90.0.0/24"]
    # Export to BIRD: no rule for it, the neighbour's own "accept" applies: FRR's route as usual.
    at_bird = bird.wait_routes(2, "10.65.0.1")
    assert sorted(at_bird) == ["10.90.0.0/24", "172.16.5.0/24"]
    assert at_bird["172.16.5.0/24"]["as_path"] == [65090, 65092]
    # kbgp's own view of what FRR was sent (derived from the Loc-RIB and the policy).
    out = {r["prefix"]: r for r in json.loads(kb.cli("rib", "--json", "--neighbor", "10.66.0.2", "--out").stdout)}
    assert sorted(out) == sorted(at_frr)
    assert out["192.0.2.0/24"]["as_path"] == [65090, 65090, 65090, 65091]
    assert out["192.0.2.0/24"]["next_hop"] == "10.66.0.1"

    before = {row["address"]: row for row in kb.neighbors_json()}

    # Live change: FRR no longer gets 192.0.2.128/25 (exact entry first), and BIRD's import stops
    # refusing 203.0.113.0/24 (route refresh, no reset).
    new = {**POLICY, "prefix-sets": {**POLICY["prefix-sets"], "bogons": ["0.0.0.0/0"],
                                     "hidden": ["192.0.2.128/25"]}}
    new["policy"] = {"import": POLICY["policy"]["import"],
                     "export": [{"match": {"neighbor-set": "frr", "prefix-set": "hidden"}, "action": "reject"}]
                     + POLICY["policy"]["export"]}
    kb.set_policy(new)
    kb.reload()
    wait_until(lambda: sorted(frr.received_routes("10.66.0.1")) == ["10.90.0.0/24", "192.0.2.0/24"], 20,
               "FRR to lose 192.0.2.128/25")
    wait_until(lambda: kb.neighbor_status("10.65.0.2")["accepted"] == 4, 20,
               "kbgp to accept 203.0.113.0/24 after the refresh")
    # 203.0.113.0/24 is in no set FRR's rules accept: rejected towards FRR.
    time.sleep(1)
    assert sorted(frr.received_routes("10.66.0.1")) == ["10.90.0.0/24", "192.0.2.0/24"]
    after = {row["address"]: row for row in kb.neighbors_json()}
    for address in before:
        assert after[address]["state"] == "established", after[address]
        assert after[address]["uptime"] >= before[address]["uptime"], (before[address], after[address])
    assert frr.session_state("10.66.0.1").lower() == "established"
