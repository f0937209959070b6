"""``kbgp agent`` end to end: kube-router's peering modes with real agents.

Four nodes (each a kbgp agent in its own namespace) and BIRD as the external
router share one LAN (10.80.0.0/24, a bridge).  The cluster comes from a
cluster file, or from the fake Kubernetes API server (tests/k8s) through the
real kubernetes client.  Each test checks what an operator would: sessions,
the routes each node learned (kbgp rib, and the kernel table with protocol
17), and what BIRD received.

Needs root, iproute2 and bird2 (installed by .ci/run).
"""
from __future__ import annotations

import base64
import ctypes
import os
import subprocess
import threading
import time

import pytest

from .daemons import wait_until

pytestmark = [pytest.mark.netns, pytest.mark.interop]

ROUTER = "10.80.0.100"
ROUTER_AS = 65000
CLUSTER_AS = 64512
NODES = {"a": ("10.80.0.1", "10.244.1.0/24"), "b": ("10.80.0.2", "10.244.2.0/24"),
         "c": ("10.80.0.3", "10.244.3.0/24"), "d": ("10.80.0.4", "10.244.4.0/24")}
ALL_PODS = sorted(p for _, p in NODES.values())


def make_nodes(cluster, names="abcd", **per_node):
    return {n: cluster.node(n, NODES[n][0], NODES[n][1], **per_node.get(n, {})) for n in names}


def router(cluster, daemon_factory, peers, *, originate=(), **kw):
    ns = cluster.host("router", ROUTER)
    bird = daemon_factory("bird", ns, ROUTER, ROUTER_AS)
    for address, asn, extra in peers:
        bird.add_neighbor(address, asn, families=["ipv4"], **extra)
    for prefix in originate:
        bird.originate(prefix)
    return bird


def pods_learned(agent) -> dict[str, str]:
    """Pod CIDRs in the agent's Loc-RIB that it learned: prefix -> neighbour."""
    return {p: r["neighbor"] for p, r in agent.best().items()
            if p.startswith("10.244.") and r["neighbor"] is not None}


def wait_pods(agent, expected: dict[str, str], timeout: float = 30) -> None:
    wait_until(lambda: pods_learned(agent) == expected, timeout,
               f"agent {agent.name} to learn {expected}",
               on_timeout=lambda: f"has {pods_learned(agent)}\n{agent.log()[-3000:]}")


def test_full_mesh_external_router_communities_prepend_and_import_reject(cluster, daemon_factory):
    nodes = make_nodes(cluster, a={"kube-router.io/node.bgp.communities": "65000:77,no-advertise",
                                   "kube-router.io/path-prepend.as": "64999",
                                   "kube-router.io/path-prepend.repeat-n": "2"},
                       b={"kube-router.io/node.bgp.customimportreject": "172.16.0.0/12"})
    bird = router(cluster, daemon_factory, [(NODES[n][0], CLUSTER_AS, {}) for n in "abcd"],
                  originate=["172.16.5.0/24", "0.0.0.0/0", "192.0.2.0/24"])
    cluster.write()
    bird.start()
    for n in nodes.values():
        n.start(f"--peer-router-ips={ROUTER}", f"--peer-router-asns={ROUTER_AS}")
    for name, n in nodes.items():
        others = [NODES[o][0] for o in "abcd" if o != name]
        n.wait_established(ROUTER, *others)

    # Full mesh: every node has every other node's pod CIDR, learned from that node,
    # and in the kernel via that node's address.
    for name, n in nodes.items():
        want = {NODES[o][1]: NODES[o][0] for o in "abcd" if o != name}
        wait_pods(n, want)
        wait_until(lambda: all(n.kernel_routes().get(p, "").startswith(f"via {nh} ")
                               for p, nh in want.items()), 15,
                   f"kernel routes of {name}", on_timeout=lambda: str(n.kernel_routes()))

    # BIRD sees each node's pod CIDR; node a's with its communities and prepend
    # (the prepended ASNs before the node's own AS, as kube-router does).
    at_bird = bird.wait_routes(4, None)
    assert sorted(at_bird) == ALL_PODS, at_bird
    a_route = at_bird[NODES["a"][1]]
    assert a_route["as_path"] == [64999, 64999, CLUSTER_AS], a_route
    assert sorted(a_route["communities"]) == ["65000:77", "no-advertise"], a_route
    assert at_bird[NODES["b"][1]]["as_path"] == [CLUSTER_AS]
    assert at_bird[NODES["b"][1]].get("communities", []) == []
    assert at_bird[NODES["a"][1]]["next_hop"] == NODES["a"][0]

    # Import: default routes never; customimportreject on b only.
    def learned_from_router(n):
        return {p for p, r in n.best().items() if r["neighbor"] == ROUTER}
    wait_until(lambda: learned_from_router(nodes["c"]) == {"172.16.5.0/24", "192.0.2.0/24"}, 20,
               "node c to learn BIRD's routes but the default")
    wait_until(lambda: learned_from_router(nodes["b"]) == {"192.0.2.0/24"}, 20,
               "node b to learn only 192.0.2.0/24")
    assert "172.16.5.0/24" in nodes["c"].kernel_routes()
    assert "172.16.5.0/24" not in nodes["b"].kernel_routes()
    assert "default" not in nodes["c"].kernel_routes()
    # Node peers never got service or external routes from each other.
    assert all(r["neighbor"] in (None, ROUTER) or p.startswith("10.244.")
               for n in nodes.values() for p, r in n.best().items())


def test_per_asn_meshes(cluster):
    nodes = make_nodes(cluster, a={"kube-router.io/node.asn": "65001"},
                       b={"kube-router.io/node.asn": "65001"},
                       c={"kube-router.io/node.asn": "65002"},
                       d={"kube-router.io/node.asn": "65002"})
    cluster.write()
    for n in nodes.values():
        n.start("--nodes-full-mesh=false")
    nodes["a"].wait_established(NODES["b"][0])
    nodes["c"].wait_established(NODES["d"][0])
    assert set(nodes["a"].neighbors()) == {NODES["b"][0]}
    assert set(nodes["c"].neighbors()) == {NODES["d"][0]}
    wait_pods(nodes["a"], {NODES["b"][1]: NODES["b"][0]})
    wait_pods(nodes["d"], {NODES["c"][1]: NODES["c"][0]})
    asn = nodes["a"].neighbors()[NODES["b"][0]]["asn"]
    assert asn == 65001


def test_route_reflectors_with_two_cluster_ids(cluster):
    nodes = make_nodes(cluster, a={"kube-router.io/rr.server": "1"},
                       b={"kube-router.io/rr.server": "10.0.0.2"},
                       c={"kube-router.io/rr.client": "1"},
                       d={"kube-router.io/rr.client": "10.0.0.2"})
    cluster.write()
    for n in nodes.values():
        n.start()
    a, b, c, d = (NODES[x][0] for x in "abcd")
    nodes["a"].wait_established(b, c)
    nodes["b"].wait_established(a, d)
    # Clients peer only with the server of their cluster id.
    assert set(nodes["c"].neighbors()) == {a}
    assert set(nodes["d"].neighbors()) == {b}
    # Every node learns every other pod CIDR across the two cluster ids.
    wait_pods(nodes["c"], {NODES["a"][1]: a, NODES["b"][1]: a, NODES["d"][1]: a})
    wait_pods(nodes["d"], {NODES["a"][1]: b, NODES["b"][1]: b, NODES["c"][1]: b})
    wait_pods(nodes["a"], {NODES["b"][1]: b, NODES["c"][1]: c, NODES["d"][1]: b})
    row = next(r for r in nodes["c"].rib() if r["prefix"] == NODES["d"][1])
    # d's route reached c through b (cluster 0.0.0.2... here 10.0.0.2) then a (0.0.0.1).
    assert row["originator_id"] == d and row["cluster_list"] == ["0.0.0.1", "10.0.0.2"], row
    # Next hop unchanged by reflection: the kernel route goes straight to d.
    wait_until(lambda: nodes["c"].kernel_routes().get(NODES["d"][1], "").startswith(f"via {d} "), 15,
               "c's kernel route to d's pods via d")


def test_node_specific_peers_local_ip_port_password(cluster, daemon_factory):
    b64 = lambda s: base64.b64encode(s.encode()).decode()  # noqa: E731
    nodes = make_nodes(cluster, "ab",
                       a={"kube-router.io/peer.ips": ROUTER, "kube-router.io/peer.asns": str(ROUTER_AS),
                          "kube-router.io/peer.passwords": b64("s3cret-key"),
                          "kube-router.io/peer.ports": "1179",
                          "kube-router.io/peer.localips": "10.80.0.11"},
                       b={"kube-router.io/peer.ips": ROUTER, "kube-router.io/peer.asns": str(ROUTER_AS),
                          "kube-router.io/peer.passwords": b64("wrong-key"),
                          "kube-router.io/peer.ports": "1179"})
    nodes["a"].ns.ip("addr", "add", "10.80.0.11/24", "dev", nodes["a"].ifname)
    bird = router(cluster, daemon_factory, [("10.80.0.11", CLUSTER_AS, {"password": "s3cret-key"}),
                                            (NODES["b"][0], CLUSTER_AS, {"password": "s3cret-key"})])
    bird.local_port = 1179
    cluster.write()
    bird.start()
    for n in nodes.values():
        n.start()
    nodes["a"].wait_established(ROUTER, NODES["b"][0])
    row = nodes["a"].neighbors()[ROUTER]
    assert row["description"].startswith("external")
    at_bird = bird.wait_routes(1, "10.80.0.11")
    assert sorted(at_bird) == [NODES["a"][1]]
    # b's key is wrong: never established, and the status says why without the key.
    time.sleep(8)
    row = nodes["b"].neighbors()[ROUTER]
    assert row["state"] != "established", row
    assert "wrong-key" not in nodes["b"].log() and b64("wrong-key") not in nodes["b"].log()
    assert "s3cret-key" not in nodes["a"].log()
    assert bird.session_state(NODES["b"][0]) != "established"


# ------------------------------------------------------------ API server

_CLONE_NEWNET = 0x40000000


def _enter_netns(name: str) -> None:
    libc = ctypes.CDLL(None, use_errno=True)
    fd = os.open(f"/run/netns/{name}", os.O_RDONLY)
    try:
        if libc.setns(fd, _CLONE_NEWNET) != 0:
            err = ctypes.get_errno()
            raise OSError(err, os.strerror(err))
    finally:
        os.close(fd)


def start_apiserver_in(ns, address: str, kubeconfig_path):
    """The fake API server (tests/k8s), listening on ADDRESS inside NS: its
    thread is started from a thread that entered NS, and inherits it."""
    from tests.k8s.apiserver import FakeApiServer

    server = FakeApiServer(bookmark_interval=0.5)
    server.host = address
    failure = []

    def start():
        try:
            _enter_netns(ns.name)
            server.start()
        except Exception as exc:  # noqa: BLE001  (reported below)
            failure.append(exc)
    t = threading.Thread(target=start)
    t.start()
    t.join(30)
    if failure:
        raise failure[0]
    server.write_kubeconfig(kubeconfig_path)
    os.chmod(kubeconfig_path, 0o644)
    return server


def test_live_annotation_change_through_the_api_server(cluster, daemon_factory, tmp_path):
    nodes = make_nodes(cluster, "abc")
    api_ns = cluster.host("api", "10.80.0.250")
    server = start_apiserver_in(api_ns, "10.80.0.250", tmp_path / "kubeconfig")
    try:
        for n in nodes.values():
            server.create(n.object())
        bird = router(cluster, daemon_factory, [(NODES["a"][0], CLUSTER_AS, {})])
        bird.start()
        for n in nodes.values():
            n.args = [f"--kubeconfig={tmp_path / 'kubeconfig'}"]
            # The agent reads the API, not the file: no cluster file exists.
            n.start(*n.args)
        a, b, c = (NODES[x][0] for x in "abc")
        nodes["a"].wait_established(b, c)
        assert ROUTER not in nodes["a"].neighbors()
        before = nodes["a"].neighbors()

        # A node-specific peer added live: a session to BIRD comes up, the mesh is untouched.
        server.patch("Node", "a", {"metadata": {"annotations": {
            "kube-router.io/peer.ips": ROUTER, "kube-router.io/peer.asns": str(ROUTER_AS),
            "kube-router.io/node.bgp.communities": "65000:5"}}})
        nodes["a"].wait_established(ROUTER, timeout=30)
        at_bird = bird.wait_routes(1, a)
        assert at_bird[NODES["a"][1]]["communities"] == ["65000:5"]
        after = nodes["a"].neighbors()
        for peer in (b, c):
            assert after[peer]["uptime"] >= before[peer]["uptime"], (before[peer], after[peer])

        # The community changed live: BIRD sees the new one, the session stays.
        up = nodes["a"].neighbors()[ROUTER]["uptime"]
        server.patch("Node", "a", {"metadata": {"annotations": {"kube-router.io/node.bgp.communities": "65000:6"}}})
        wait_until(lambda: bird.received_routes(a).get(NODES["a"][1], {}).get("communities") == ["65000:6"],
                   20, "BIRD to see community 65000:6")
        assert nodes["a"].neighbors()[ROUTER]["uptime"] >= up

        # A node leaves the cluster: its session goes at once (Cease, peer de-configured).
        server.delete("Node", "c")
        wait_until(lambda: c not in nodes["a"].neighbors(), 10, "node c's session to be removed")
        wait_pods(nodes["a"], {NODES["b"][1]: b})
        wait_until(lambda: NODES["c"][1] not in nodes["a"].kernel_routes(), 10,
                   "c's pod CIDR to leave a's kernel table")
    finally:
        server.stop()


def add_pod_address(node, cidr: str) -> str:
    """A 'pod' address: the first address of the pod CIDR on a bridge in the node
    (what the CNI's kube-bridge holds)."""
    import ipaddress
    addr = str(next(ipaddress.ip_network(cidr).hosts()))
    node.ns.ip("link", "add", "kube-bridge", "type", "bridge")
    node.ns.ip("addr", "add", f"{addr}/{cidr.split('/')[1]}", "dev", "kube-bridge")
    node.ns.ip("link", "set", "kube-bridge", "up")
    return addr


def test_two_agents_ping_between_pod_addresses(cluster):
    nodes = make_nodes(cluster, "ab")
    pod = {n: add_pod_address(nodes[n], NODES[n][1]) for n in "ab"}
    cluster.write()
    for n in nodes.values():
        n.start()
    wait_pods(nodes["a"], {NODES["b"][1]: NODES["b"][0]})
    wait_pods(nodes["b"], {NODES["a"][1]: NODES["a"][0]})
    for n, other in (("a", "b"), ("b", "a")):
        wait_until(lambda: NODES[other][1] in nodes[n].kernel_routes(), 15, f"{n}'s kernel route")
    p = nodes["a"].ns.run(["ping", "-c", "2", "-W", "2", "-I", pod["a"], pod["b"]], check=False)
    assert p.returncode == 0, p.stdout + p.stderr
    # Without graceful restart, SIGTERM withdraws from the peers and removes
    # kbgp's kernel routes: a's table holds none of protocol 17, and b drops
    # a's pod CIDR from its RIB and its kernel table.
    assert nodes["a"].stop() == 0
    assert nodes["a"].kernel_routes() == {}
    wait_pods(nodes["b"], {})
    wait_until(lambda: NODES["a"][1] not in nodes["b"].kernel_routes(), 10, "b to remove a's pod route")


def test_graceful_restart_keeps_kernel_routes_across_sigkill(cluster):
    """With --bgp-graceful-restart, node a's agent killed with SIGKILL and
    started again: its kernel routes are never deleted (an `ip monitor route`
    running the whole time sees no deletion), it re-learns, and a route that
    is really gone afterwards is removed."""
    nodes = make_nodes(cluster, "abc")
    cluster.write()
    args = ("--bgp-graceful-restart", "--bgp-graceful-restart-time=60s",
            "--bgp-graceful-restart-deferral-time=30s")
    for n in nodes.values():
        n.start(*args)
    want = {NODES["b"][1]: NODES["b"][0], NODES["c"][1]: NODES["c"][0]}
    wait_pods(nodes["a"], want)
    wait_until(lambda: set(want) <= set(nodes["a"].kernel_routes()), 15, "a's kernel routes")
    monitor = nodes["a"].ns.popen(["ip", "-4", "monitor", "route"], stdout=subprocess.PIPE, text=True)
    try:
        time.sleep(0.5)
        # A marker route added before the kill: seen in the output, it proves the
        # monitor was listening before anything could be deleted.
        nodes["a"].ns.ip("route", "add", "10.254.254.254/32", "dev", nodes["a"].ifname, "proto", "static")
        time.sleep(0.2)
        nodes["a"].kill()
        time.sleep(2)
        assert set(want) <= set(nodes["a"].kernel_routes()), "routes gone while kbgp was down"
        nodes["a"].start(*args)
        wait_pods(nodes["a"], want)
        # b and c kept a's route as stale and got it again: still there.
        wait_pods(nodes["b"], {NODES["a"][1]: NODES["a"][0], NODES["c"][1]: NODES["c"][0]})
        time.sleep(2)
        # Node c leaves the cluster for good: its route goes from a's kernel.
        nodes["c"].kill()
        del cluster.nodes["c"]
        cluster.write()
        wait_until(lambda: NODES["c"][1] not in nodes["a"].kernel_routes(), 20,
                   "c's pod CIDR to leave a's kernel table")
    finally:
        monitor.terminate()
        out, _ = monitor.communicate(timeout=10)
    assert "10.254.254.254" in out, "ip monitor was not listening before the kill"
    deleted = [line for line in out.splitlines() if line.startswith("Deleted") and "proto 17" in line]
    # The only deletion ever seen is c's route, after c left the cluster.
    assert all(NODES["c"][1] in line for line in deleted), deleted
    assert NODES["b"][1] in nodes["a"].kernel_routes()
