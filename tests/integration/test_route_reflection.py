"""Route reflection (RFC 4456) with kbgp's speaker, each test in its own
network namespaces, IPv4 unicast only.

* kbgp reflects between a BIRD client and a GoBGP client (iBGP, AS 65100);
* kbgp is a client of an FRR route reflector;
* three kbgp reflectors in one cluster plus a raw-socket client: loop
  prevention (CLUSTER_LIST / ORIGINATOR_ID) and no oscillation; and the
  same mesh with one cluster per reflector, where the reflected route is
  kept and is not passed on between non-clients.

Next hops.  A reflector leaves NEXT_HOP alone, so each client must be able
to reach the other client's address, which is on the far link of the
reflector.  The reflector's namespace forwards (``forwarding=True``) and
each client namespace gets a static route to the other link through it.
A BIRD session configured ``direct`` (daemons.py's default) uses ``gateway
direct`` and withdraws a route whose NEXT_HOP is not on a connected network ("Invalid
NEXT_HOP attribute - address 10.91.2.2 not directly reachable"), so the
BIRD client is configured with ``multihop 2`` (add_neighbor(multihop=2)),
whose default is ``gateway recursive``: the next hop is resolved through
the kernel route BIRD learns (``protocol kernel ... learn``).  GoBGP does not
check next-hop reachability (no zebra).  FRR (zebra running) needs the
client's next hop resolvable: it is on FRR's connected link.  kbgp does not
check next hops.

Needs root, iproute2, bird2 / gobgpd / frr and kbgp's compiled modules;
skips with the reason otherwise.
"""

from __future__ import annotations

import ipaddress
import json
import os
import struct
import time

import pytest

from .daemons import Daemon, leftover_processes, wait_until
from .netns import PREFIX, link, list_netns
from .rawpeer import RawPeer, attribute, update_message

pytestmark = [pytest.mark.interop, pytest.mark.netns]

ESTABLISH_TIMEOUT = 40
AS = 65100


@pytest.fixture(scope="module", autouse=True)
def _nothing_left_behind():
    """After the module: no namespace of this run, no daemon or raw peer left."""
    first = len(Daemon.instances)
    yield
    ours = Daemon.instances[first:]
    mine = f"{PREFIX}{os.getpid()}-"
    leftover_ns = [n for n in list_netns() if n.startswith(mine)]
    assert not leftover_ns, f"namespaces left behind: {leftover_ns}"
    assert not leftover_processes(ours), f"processes left behind: {leftover_processes(ours)}"
    raw = [p.proc.pid for p in RawPeer.instances if p.proc and p.proc.poll() is None]
    assert not raw, f"raw peers left behind: {raw}"


def established(*pairs, timeout: float = ESTABLISH_TIMEOUT) -> None:
    for daemon, address in pairs:
        daemon.wait_established(address, timeout=timeout)


def reflected(route: dict) -> tuple:
    """The attributes route reflection is about."""
    return (route.get("next_hop"), route.get("originator_id"),
            list(route.get("cluster_list") or []), route.get("as_path"))


# --------------------------------------------------------------------------
# 1. kbgp reflects between a BIRD client and a GoBGP client
# --------------------------------------------------------------------------

def test_kbgp_reflects_between_bird_and_gobgp(netns_factory, daemon_factory, kbgp_factory):
    """BIRD (10.91.1.2) and GoBGP (10.91.2.2) are both route-reflector clients
    of kbgp (cluster-id 10.99.0.1), all in AS 65100.  Each one's route
    reaches the other with ORIGINATOR_ID = the originator's router id,
    CLUSTER_LIST = [10.99.0.1], NEXT_HOP and (empty) AS_PATH unchanged."""
    k = netns_factory("kbgp-rr", forwarding=True)
    b, g = netns_factory("bird"), netns_factory("gobgp")
    link(k, b, "10.91.1.1", "10.91.1.2")
    link(k, g, "10.91.2.1", "10.91.2.2")
    b.add_route("10.91.2.0/24", "10.91.1.1")       # GoBGP's next hop, through kbgp
    g.add_route("10.91.1.0/24", "10.91.2.1")       # BIRD's next hop, through kbgp
    bird_id, gobgp_id, kbgp_id, cluster = "10.99.1.1", "10.99.2.2", "10.99.0.9", "10.99.0.1"

    kb = kbgp_factory(k, kbgp_id, AS, cluster_id=cluster)
    kb.add_neighbor("10.91.1.2", AS, families=["ipv4"], route_reflector_client=True,
                    import_all=None, export_all=None)
    kb.add_neighbor("10.91.2.2", AS, families=["ipv4"], route_reflector_client=True,
                    import_all=None, export_all=None)

    bird = daemon_factory("bird", b, bird_id, AS)
    # multihop: gateway recursive (see the module docstring)
    bird.add_neighbor("10.91.1.1", AS, families=["ipv4"], passive=True, multihop=2)
    bird.originate("203.0.113.0/24")
    gobgp = daemon_factory("gobgp", g, gobgp_id, AS)
    gobgp.add_neighbor("10.91.2.1", AS, families=["ipv4"], passive=True)
    gobgp.originate("198.51.100.0/24")

    bird.start()
    gobgp.start()
    kb.start()
    established((kb, "10.91.1.2"), (kb, "10.91.2.2"), (bird, "10.91.1.1"), (gobgp, "10.91.2.1"))

    # kbgp itself holds each route once, as received (nothing added on receipt).
    at_kbgp = kb.wait_routes(2)
    assert reflected(at_kbgp["203.0.113.0/24"]) == ("10.91.1.2", None, [], [])
    assert reflected(at_kbgp["198.51.100.0/24"]) == ("10.91.2.2", None, [], [])

    # BIRD -> kbgp -> GoBGP
    at_gobgp = gobgp.wait_routes(1, "10.91.2.1")
    assert set(at_gobgp) == {"203.0.113.0/24"}, at_gobgp
    assert reflected(at_gobgp["203.0.113.0/24"]) == ("10.91.1.2", bird_id, [cluster], []), \
        at_gobgp
    # GoBGP -> kbgp -> BIRD
    at_bird = bird.wait_routes(1, "10.91.1.1")
    assert set(at_bird) == {"198.51.100.0/24"}, at_bird
    assert reflected(at_bird["198.51.100.0/24"]) == ("10.91.2.2", gobgp_id, [cluster], []), \
        at_bird
    # LOCAL_PREF survives reflection (both daemons send 100).
    assert at_gobgp["203.0.113.0/24"].get("local_pref") == 100
    assert at_bird["198.51.100.0/24"].get("local_pref") == 100

    # No route goes back to its originator, nothing else turns up.
    time.sleep(2)
    assert set(gobgp.received_routes("10.91.2.1")) == {"203.0.113.0/24"}
    assert set(bird.received_routes("10.91.1.1")) == {"198.51.100.0/24"}
    assert {n["address"]: n["advertised"] for n in kb.neighbors_json()} == \
        {"10.91.1.2": 1, "10.91.2.2": 1}


# --------------------------------------------------------------------------
# 2. kbgp as a client of an FRR route reflector
# --------------------------------------------------------------------------

def test_kbgp_client_of_frr_reflector(netns_factory, daemon_factory, kbgp_factory):
    """FRR (router id 10.99.3.3, so cluster id 10.99.3.3) reflects between
    its clients kbgp and GoBGP.  kbgp's rib shows GoBGP's route with
    ORIGINATOR_ID = GoBGP's router id and CLUSTER_LIST = [FRR's]; GoBGP gets
    kbgp's route with ORIGINATOR_ID = kbgp's router id."""
    f = netns_factory("frr-rr", forwarding=True)
    k, g = netns_factory("kbgp"), netns_factory("gobgp")
    link(f, k, "10.92.1.1", "10.92.1.2")
    link(f, g, "10.92.2.1", "10.92.2.2")
    k.add_route("10.92.2.0/24", "10.92.1.1")
    g.add_route("10.92.1.0/24", "10.92.2.1")
    frr_id, kbgp_id, gobgp_id = "10.99.3.3", "10.99.3.4", "10.99.3.5"

    frr = daemon_factory("frr", f, frr_id, AS)
    frr.add_neighbor("10.92.1.2", AS, families=["ipv4"], route_reflector_client=True)
    frr.add_neighbor("10.92.2.2", AS, families=["ipv4"], route_reflector_client=True)

    kb = kbgp_factory(k, kbgp_id, AS)
    kb.add_neighbor("10.92.1.1", AS, families=["ipv4"], import_all=None, export_all=None)
    kb.originate("192.0.2.0/24")
    gobgp = daemon_factory("gobgp", g, gobgp_id, AS)
    gobgp.add_neighbor("10.92.2.1", AS, families=["ipv4"])
    gobgp.originate("198.51.100.0/24")

    frr.start()
    gobgp.start()
    kb.start()
    established((kb, "10.92.1.1"), (gobgp, "10.92.2.1"), (frr, "10.92.1.2"), (frr, "10.92.2.2"))

    at_kbgp = kb.wait_routes(1, "10.92.1.1")
    assert set(at_kbgp) == {"198.51.100.0/24"}, at_kbgp
    assert reflected(at_kbgp["198.51.100.0/24"]) == ("10.92.2.2", gobgp_id, [frr_id], []), \
        at_kbgp
    rows = [r for r in kb.rib() if r["prefix"] == "198.51.100.0/24"]
    assert len(rows) == 1, rows
    assert rows[0]["originator_id"] == gobgp_id and rows[0]["cluster_list"] == [frr_id], rows
    assert rows[0]["best"], rows

    at_gobgp = gobgp.wait_routes(1, "10.92.2.1")
    assert set(at_gobgp) == {"192.0.2.0/24"}, at_gobgp
    assert reflected(at_gobgp["192.0.2.0/24"]) == ("10.92.1.2", kbgp_id, [frr_id], []), \
        at_gobgp

    # kbgp does not get its own route back from the reflector (FRR would not
    # send it to its originator; kbgp would drop it: ORIGINATOR_ID = itself).
    time.sleep(2)
    assert set(kb.received_routes("10.92.1.1")) == {"198.51.100.0/24"}
    assert set(frr.received_routes()) == {"198.51.100.0/24", "192.0.2.0/24"}


# --------------------------------------------------------------------------
# 3. Three kbgp reflectors, a raw client: loop prevention, no oscillation
# --------------------------------------------------------------------------

def ibgp_update(prefix: str, next_hop: str, *, originator_id: str | None = None,
                cluster_list: list[str] = ()) -> bytes:
    """An iBGP UPDATE: ORIGIN IGP, empty AS_PATH, NEXT_HOP, LOCAL_PREF 100
    and, if given, ORIGINATOR_ID (9) and CLUSTER_LIST (10), both optional
    non-transitive."""
    attrs = (attribute(0x40, 1, b"\x00") + attribute(0x40, 2, b"")
             + attribute(0x40, 3, ipaddress.IPv4Address(next_hop).packed)
             + attribute(0x40, 5, struct.pack("!I", 100)))
    if originator_id is not None:
        attrs += attribute(0x80, 9, ipaddress.IPv4Address(originator_id).packed)
    if cluster_list:
        attrs += attribute(0x80, 10, b"".join(ipaddress.IPv4Address(c).packed
                                              for c in cluster_list))
    return update_message(attrs=attrs, nlri=[prefix])


RR_IDS = {"A": "10.99.0.11", "B": "10.99.0.12", "C": "10.99.0.13"}
# addresses of the full mesh: (x, y) -> (x's address, y's address)
MESH = {("A", "B"): ("10.93.12.1", "10.93.12.2"),
        ("A", "C"): ("10.93.13.1", "10.93.13.3"),
        ("B", "C"): ("10.93.23.2", "10.93.23.3")}
RAW_A, RAW = "10.93.0.1", "10.93.0.10"


def three_reflectors(netns_factory, kbgp_factory, clusters: dict[str, str]):
    """Reflectors A, B, C (full iBGP mesh, none a client of another) and a
    raw peer, client of A.  Returns ({name: Kbgp}, RawPeer, {name: {peer
    name: peer address}})."""
    ns = {n: netns_factory(f"kbgp-{n}") for n in "ABC"}
    r = netns_factory("rawpeer")
    peers: dict[str, dict[str, str]] = {n: {} for n in "ABC"}
    for (x, y), (ax, ay) in MESH.items():
        link(ns[x], ns[y], ax, ay)
        peers[x][y] = ay
        peers[y][x] = ax
    link(ns["A"], r, RAW_A, RAW)
    kbs = {}
    for n in "ABC":
        kb = kbgp_factory(ns[n], RR_IDS[n], AS, cluster_id=clusters[n], listen=["0.0.0.0:179"])
        for other, addr in peers[n].items():
            # The alphabetically first one connects, the other listens.
            kb.add_neighbor(addr, AS, families=["ipv4"], passive=other < n,
                            import_all=None, export_all=None)
        kbs[n] = kb
    kbs["A"].add_neighbor(RAW, AS, families=["ipv4"], passive=True,
                          route_reflector_client=True, import_all=None, export_all=None)
    for kb in kbs.values():
        kb.start()
    established(*((kbs[n], addr) for n in "ABC" for addr in peers[n].values()))
    raw = RawPeer(r, kbs["A"].dir, peer=RAW_A, local=RAW, asn=AS, router_id=RAW,
                  families=((1, 1),))
    raw.start()
    ev = raw.connect(timeout=30)
    assert ev["open"]["my_as"] == AS
    kbs["A"].wait_established(RAW)
    return kbs, raw, peers


def snapshot(kbs) -> dict:
    """Counters per neighbour and the whole rib of every reflector."""
    out = {}
    for n, kb in kbs.items():
        out[n] = {
            "counters": {row["address"]: (row["state"], row["received"], row["accepted"],
                                          row["advertised"], row["messages"]["in"] > 0)
                         for row in kb.neighbors_json()},
            "rib": sorted(json.dumps(row, sort_keys=True) for row in kb.rib()),
        }
    return out


def rows_for(kb, prefix: str) -> list[dict]:
    return [r for r in kb.rib() if r["prefix"] == prefix]


def test_three_reflectors_one_cluster_loop_prevention(netns_factory, kbgp_factory):
    """A, B and C share cluster id 10.99.9.9.  The raw client of A sends
    (c) 192.0.2.0/24 with ORIGINATOR_ID = A's router id, (b) 198.51.100.0/24
    with CLUSTER_LIST [10.99.9.9], then (a) 203.0.113.0/24 plain.

    (a) is installed once at A.  A reflects it to its non-clients B and C
    with CLUSTER_LIST [10.99.9.9], which is their own cluster id: RFC 4456
    section 8 says they ignore it (this is the redundant-reflectors-in-one-
    cluster design: clients are expected to peer with each reflector).  So
    B and C do not install it, and have nothing to pass on.  (b) and (c) are
    installed nowhere.  Nothing changes afterwards (two snapshots 5 s apart)."""
    cluster = "10.99.9.9"
    kbs, raw, peers = three_reflectors(netns_factory, kbgp_factory,
                                       {n: cluster for n in "ABC"})
    A, B, C = kbs["A"], kbs["B"], kbs["C"]
    raw.send(ibgp_update("192.0.2.0/24", RAW, originator_id=RR_IDS["A"])
             + ibgp_update("198.51.100.0/24", RAW, cluster_list=[cluster])
             + ibgp_update("203.0.113.0/24", RAW))

    # One TCP stream: once (a) is in, (b) and (c) were handled before it.
    wait_until(lambda: rows_for(A, "203.0.113.0/24"), 15, "203.0.113.0/24 at A")
    a_rows = rows_for(A, "203.0.113.0/24")
    assert len(a_rows) == 1, a_rows
    assert a_rows[0]["neighbor"] == RAW and a_rows[0]["best"], a_rows
    assert a_rows[0]["originator_id"] is None and a_rows[0]["cluster_list"] == [], a_rows
    assert rows_for(A, "198.51.100.0/24") == []
    assert rows_for(A, "192.0.2.0/24") == []

    # A advertises (a) to B and C (client route -> non-clients) ...
    wait_until(lambda: all(row["advertised"] == 1 for row in A.neighbors_json()
                           if row["address"] != RAW), 15, "A advertising (a) to B and C")
    time.sleep(5)           # settle: anything B or C would do has been done
    first = snapshot(kbs)
    # ... B and C drop it on receipt (own cluster id in CLUSTER_LIST).
    for n in "BC":
        assert rows_for(kbs[n], "203.0.113.0/24") == [], n
        assert kbs[n].rib() == [], (n, kbs[n].rib())
        assert all(row["advertised"] == 0 for row in kbs[n].neighbors_json()), \
            (n, kbs[n].neighbors_json())
    # (b) and (c) never anywhere; only (a), once, at A.
    assert [r["prefix"] for r in A.rib()] == ["203.0.113.0/24"], A.rib()
    # A sends the raw client nothing (its own route is not sent back).
    assert A.neighbor_status(RAW)["advertised"] == 0

    time.sleep(5)
    second = snapshot(kbs)
    assert first == second, json.dumps({"first": first, "second": second}, indent=1)
    raw.close()


def test_three_reflectors_distinct_clusters(netns_factory, kbgp_factory):
    """The same mesh with one cluster id per reflector: B and C keep the
    route A reflects (exactly one path each, learnt from A, ORIGINATOR_ID =
    the raw client's router id, CLUSTER_LIST = [A's cluster]) and do not
    pass it on to each other (non-client to non-client).  The route with
    ORIGINATOR_ID = A's router id is dropped by A; one whose CLUSTER_LIST
    holds B's cluster id is installed by A, reflected, and dropped by B only.
    Stable across two snapshots 5 s apart."""
    clusters = {"A": "10.99.9.1", "B": "10.99.9.2", "C": "10.99.9.3"}
    kbs, raw, peers = three_reflectors(netns_factory, kbgp_factory, clusters)
    A, B, C = kbs["A"], kbs["B"], kbs["C"]
    raw.send(ibgp_update("192.0.2.0/24", RAW, originator_id=RR_IDS["A"])
             + ibgp_update("198.51.100.0/24", RAW, cluster_list=[clusters["B"]])
             + ibgp_update("203.0.113.0/24", RAW))

    for n in "BC":
        wait_until(lambda: rows_for(kbs[n], "203.0.113.0/24"), 15, f"203.0.113.0/24 at {n}")
    time.sleep(3)
    first = snapshot(kbs)
    assert rows_for(A, "192.0.2.0/24") == []
    a_rows = rows_for(A, "203.0.113.0/24")
    assert len(a_rows) == 1 and a_rows[0]["neighbor"] == RAW, a_rows
    for n in "BC":
        got = rows_for(kbs[n], "203.0.113.0/24")
        assert len(got) == 1, (n, got)
        assert got[0]["neighbor"] == peers[n]["A"], (n, got)
        assert got[0]["originator_id"] == RAW, (n, got)
        assert got[0]["cluster_list"] == [clusters["A"]], (n, got)
        assert got[0]["next_hop"] == RAW, (n, got)
    # 198.51.100.0/24: at A (from the client) and C (CLUSTER_LIST [A's, B's]),
    # not at B.
    assert len(rows_for(A, "198.51.100.0/24")) == 1
    assert rows_for(B, "198.51.100.0/24") == []
    c_rows = rows_for(C, "198.51.100.0/24")
    assert len(c_rows) == 1 and c_rows[0]["cluster_list"] == [clusters["A"], clusters["B"]], \
        c_rows
    # B and C advertise nothing to each other (nor back to A).
    for n in "BC":
        assert all(row["advertised"] == 0 for row in kbs[n].neighbors_json()), \
            (n, kbs[n].neighbors_json())

    time.sleep(5)
    second = snapshot(kbs)
    assert first == second, json.dumps({"first": first, "second": second}, indent=1)
    raw.close()
