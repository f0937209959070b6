"""Cluster snapshot + flags -> this node's BGP plan (kbgp.cluster.translate).

The JSON fixtures under fixtures/translate/ hold whole clusters (API objects
as kubectl prints them), the flags, and per node the parts of
``NodePlan.describe()`` that must come out; the tests below them cover one
rule each with small inline clusters."""
from __future__ import annotations

import dataclasses
import itertools
import json
import random
from pathlib import Path
from typing import Any

import pytest

from kbgp.cluster.flags import AgentFlags, parse_agent_args
from kbgp.cluster.model import snapshot_from_objects
from kbgp.cluster.translate import (
    IPV4_UNICAST,
    IPV6_UNICAST,
    NodePlan,
    generate_router_id,
    translate,
)

FIXTURES = Path(__file__).parent / "fixtures" / "translate"
FIXTURE_FILES = sorted(FIXTURES.glob("*.json"))


def assert_matches(actual: Any, expected: Any, path: str = "plan") -> None:
    """``expected`` is a part of ``actual``: dicts by their keys, lists whole
    (same length, each element matched), anything else equal."""
    if isinstance(expected, dict):
        assert isinstance(actual, dict), f"{path}: expected a mapping, got {actual!r}"
        for key, value in expected.items():
            assert key in actual, f"{path}: no key {key!r}"
            assert_matches(actual[key], value, f"{path}.{key}")
    elif isinstance(expected, list):
        assert isinstance(actual, list), f"{path}: expected a list, got {actual!r}"
        assert len(actual) == len(expected), (
            f"{path}: {len(actual)} items, expected {len(expected)}:\n"
            f"{json.dumps(actual, indent=1)}")
        for i, (a, e) in enumerate(zip(actual, expected)):
            assert_matches(a, e, f"{path}[{i}]")
    else:
        assert actual == expected, f"{path}: {actual!r} != {expected!r}"


def plan_for(objects: list[dict], node: str, *argv: str) -> NodePlan:
    flags, _ = parse_agent_args(list(argv), {})
    snapshot = snapshot_from_objects(objects)
    assert snapshot.errors == ()
    return translate(snapshot, flags, node)


@pytest.mark.parametrize("path", FIXTURE_FILES, ids=[p.stem for p in FIXTURE_FILES])
def test_fixture(path):
    fixture = json.loads(path.read_text())
    for node, expected in fixture["expect"].items():
        plan = plan_for(fixture["objects"], node, *fixture["args"])
        assert plan.node == node
        assert_matches(plan.describe(), expected, f"{path.stem}:{node}")


def test_fixtures_exist():
    assert {p.stem for p in FIXTURE_FILES} >= {"full-mesh", "per-asn-mesh", "route-reflectors",
                                               "dual-stack", "services"}


# ------------------------------------------------------------------ builders


def node(name: str, *ips: str, cidrs: tuple[str, ...] = (), ann: dict | None = None,
         external: tuple[str, ...] = ()) -> dict:
    addresses = ([{"type": "InternalIP", "address": ip} for ip in ips]
                 + [{"type": "ExternalIP", "address": ip} for ip in external])
    return {"kind": "Node", "metadata": {"name": name, "annotations": ann or {}},
            "spec": {"podCIDRs": list(cidrs)}, "status": {"addresses": addresses}}


def service(name: str, cluster: str = "10.96.0.10", *, type: str = "ClusterIP",
            external: tuple[str, ...] = (), etp: str | None = None, itp: str | None = None,
            ann: dict | None = None, lb: tuple[str, ...] = ()) -> dict:
    spec: dict[str, Any] = {"type": type, "clusterIP": cluster, "externalIPs": list(external)}
    if etp:
        spec["externalTrafficPolicy"] = etp
    if itp:
        spec["internalTrafficPolicy"] = itp
    obj = {"kind": "Service", "metadata": {"name": name, "namespace": "ns", "annotations": ann or {}},
           "spec": spec}
    if lb:
        obj["status"] = {"loadBalancer": {"ingress": [{"ip": ip} for ip in lb]}}
    return obj


def endpoints(service_name: str, node_name: str | None, address: str = "10.244.9.9",
              slice_name: str | None = None) -> dict:
    ep: dict[str, Any] = {"addresses": [address]}
    if node_name is not None:
        ep["nodeName"] = node_name
    return {"kind": "EndpointSlice",
            "metadata": {"name": slice_name or f"{service_name}-x", "namespace": "ns",
                         "labels": {"kubernetes.io/service-name": service_name}},
            "endpoints": [ep]}


THREE = [node("a", "10.0.0.1", cidrs=("10.244.0.0/24",)), node("b", "10.0.0.2"), node("c", "10.0.0.3")]


def addresses(plan: NodePlan, kind: str | None = None) -> list[str]:
    return [p.address for p in plan.peers if kind is None or p.kind == kind]


def prefixes(plan: NodePlan) -> list[str]:
    return [a.prefix for a in plan.advertisements]


# ------------------------------------------------------------------ waiting


def test_node_not_in_the_snapshot_waits():
    plan = plan_for(THREE, "z")
    assert plan.waiting == "node z is not in the cluster state"
    assert plan.peers == () and plan.advertisements == () and plan.node == "z"
    json.dumps(plan.describe())  # JSON-able


def test_node_without_addresses_waits():
    plan = plan_for([node("a")], "a")
    assert plan.waiting == "node a has no InternalIP or ExternalIP address yet"
    assert plan.peers == ()


def test_external_ip_is_the_primary_when_there_is_no_internal_ip():
    plan = plan_for([node("a", external=("203.0.113.1",)), node("b", "10.0.0.2")], "a")
    assert plan.router_id == "203.0.113.1" and plan.listen_addresses == ("203.0.113.1",)


def test_ipv6_only_node_needs_a_router_id():
    objs = [node("a", "2001:db8::1", cidrs=("fd00::/64",)), node("b", "2001:db8::2")]
    assert plan_for(objs, "a").waiting.startswith("node a has only IPv6 addresses and no --router-id")
    plan = plan_for(objs, "a", "--router-id=generate")
    assert plan.waiting is None and plan.router_id == "110.91.4.244"
    assert addresses(plan) == ["2001:db8::2"]
    assert plan.peers[0].families == (IPV6_UNICAST,)
    plan = plan_for(objs, "a", "--router-id=192.0.2.7")
    assert plan.router_id == "192.0.2.7"


# ------------------------------------------------------------------ router id, listen addresses


@pytest.mark.parametrize("address,router_id", [("10.0.0.1", "0.15.248.254"),
                                               ("2001:db8::1", "110.91.4.244")])
def test_generated_router_id_vectors(address, router_id):
    assert generate_router_id(address) == router_id


def test_router_id_defaults_to_the_ipv4_address_even_when_the_primary_is_ipv6():
    plan = plan_for([node("a", "2001:db8::1", "10.0.0.1")], "a")
    assert plan.router_id == "10.0.0.1"


def test_router_id_generate_hashes_the_primary_address():
    assert plan_for(THREE, "a", "--router-id=generate").router_id == "0.15.248.254"


def test_listen_addresses_from_the_annotation_and_the_port():
    objs = [node("a", "10.0.0.1", "2001:db8::1",
                 ann={"kube-router.io/bgp-local-addresses": "172.20.56.25,192.168.1.99"})]
    plan = plan_for(objs, "a", "--bgp-port=1179")
    assert plan.listen_addresses == ("172.20.56.25", "192.168.1.99") and plan.port == 1179


def test_listen_address_of_a_family_the_node_lacks_is_dropped():
    objs = [node("a", "10.0.0.1", ann={"kube-router.io/bgp-local-addresses": "10.0.0.1,2001:db8::1,x"})]
    plan = plan_for(objs, "a")
    assert plan.listen_addresses == ("10.0.0.1",)
    assert any("2001:db8::1 is IPv6 but the node has no IPv6 address" in w for w in plan.warnings)
    assert plan.errors == (('node a: annotation kube-router.io/bgp-local-addresses: element 3 "x" is '
                           'not an IP address'),)


def test_listen_annotation_with_nothing_usable_falls_back_to_the_node_address():
    objs = [node("a", "10.0.0.1", ann={"kube-router.io/bgp-local-addresses": "bogus"})]
    assert plan_for(objs, "a").listen_addresses == ("10.0.0.1",)


# ------------------------------------------------------------------ node peers


def test_mesh_peers_use_bgp_port_and_the_cluster_asn():
    plan = plan_for(THREE, "a", "--bgp-port=1179", "--cluster-asn=4200000000", "--bgp-holdtime=30s")
    assert plan.asn == 4200000000
    for p in plan.peers:
        assert (p.asn, p.port, p.kind, p.local_address) == (4200000000, 1179, "mesh", "10.0.0.1")
        assert p.hold_time == 90  # the mesh keeps 90 s; --bgp-holdtime is for external peers
        assert p.password is None and p.multihop_ttl is None
    assert plan.hold_time == 30


def test_enable_ibgp_false_has_no_mesh_peers():
    plan = plan_for(THREE, "a", "--enable-ibgp=false", "--peer-router-ips=10.0.0.254",
                    "--peer-router-asns=65000")
    assert addresses(plan) == ["10.0.0.254"]


def test_self_is_skipped_by_name_and_by_address():
    objs = THREE + [node("a-again", "10.0.0.1")]
    plan = plan_for(objs, "a")
    assert addresses(plan) == ["10.0.0.2", "10.0.0.3"]
    assert "node a-again has this node's address 10.0.0.1; it is not peered with" in plan.warnings


def test_two_nodes_with_one_address_peer_once():
    objs = THREE + [node("b-clone", "10.0.0.2")]
    plan = plan_for(objs, "a")
    assert [(p.address, p.node) for p in plan.peers] == [("10.0.0.2", "b"), ("10.0.0.3", "c")]


def test_node_without_address_is_not_peered_with():
    plan = plan_for(THREE + [node("d")], "a")
    assert addresses(plan) == ["10.0.0.2", "10.0.0.3"]
    assert "node d has no InternalIP or ExternalIP address; it is not peered with" in plan.warnings


def _rr_cluster() -> list[dict]:
    roles = [("s42", "rr.server", "42"), ("s42b", "rr.server", "0.0.0.42"),
             ("s7", "rr.server", "7"), ("sip", "rr.server", "192.0.2.1"),
             ("c42", "rr.client", "42"), ("c42b", "rr.client", "0x2a"),
             ("c7", "rr.client", "7"), ("cip", "rr.client", "192.0.2.1"),
             ("both", "rr.server", "7"), ("p1", None, None), ("p2", None, None)]
    objs = []
    for i, (name, key, value) in enumerate(roles, 1):
        ann = {f"kube-router.io/{key}": value} if key else {}
        if name == "both":
            ann["kube-router.io/rr.client"] = "42"
        objs.append(node(name, f"10.0.1.{i}", ann=ann))
    return objs


def test_rr_sessions_are_symmetric_for_every_pair():
    objs = _rr_cluster()
    names = [o["metadata"]["name"] for o in objs]
    plans = {n: plan_for(objs, n) for n in names}
    peered = {n: {p.node for p in plans[n].peers} for n in names}
    for x, y in itertools.combinations(names, 2):
        assert (y in peered[x]) == (x in peered[y]), (x, y)


def test_rr_rules_with_integer_hex_and_ipv4_ids():
    objs = _rr_cluster()

    def peers(n: str) -> dict[str, bool]:
        return {p.node: p.route_reflector_client for p in plan_for(objs, n).peers}

    servers = {"s42": False, "s42b": False, "s7": False, "sip": False, "both": False}
    plain = {"p1": False, "p2": False}
    assert peers("s42") == {**{k: v for k, v in servers.items() if k != "s42"}, **plain,
                            "c42": True, "c42b": True}
    assert peers("s7") == {**{k: v for k, v in servers.items() if k != "s7"}, **plain, "c7": True}
    assert peers("sip") == {**{k: v for k, v in servers.items() if k != "sip"}, **plain, "cip": True}
    assert peers("c42") == {"s42": False, "s42b": False}
    assert peers("c42b") == {"s42": False, "s42b": False}
    assert peers("cip") == {"sip": False}
    assert peers("p1") == {**servers, "p2": False}
    # A node with both annotations is a server (of id 7).
    both = plan_for(objs, "both")
    assert both.rr_server and both.cluster_id == "0.0.0.7"
    assert set(peers("both")) == {"s42", "s42b", "s7", "sip", "c7", "p1", "p2"}
    assert plan_for(objs, "s42").cluster_id == "0.0.0.42"
    assert plan_for(objs, "sip").cluster_id == "192.0.2.1"


def test_rr_with_per_asn_mesh_keeps_the_asn_rule():
    objs = [node("s", "10.0.0.1", ann={"kube-router.io/rr.server": "1", "kube-router.io/node.asn": "65001"}),
            node("c1", "10.0.0.2", ann={"kube-router.io/rr.client": "1", "kube-router.io/node.asn": "65001"}),
            node("c2", "10.0.0.3", ann={"kube-router.io/rr.client": "1", "kube-router.io/node.asn": "65002"})]
    plan = plan_for(objs, "s", "--nodes-full-mesh=false")
    assert [(p.node, p.asn, p.route_reflector_client) for p in plan.peers] == [("c1", 65001, True)]


def test_other_family_primary_is_not_peered_with():
    objs = [node("a", "10.0.0.1"), node("b", "2001:db8::2", "10.0.0.2")]
    plan = plan_for(objs, "a")
    assert plan.peers == ()
    assert any("node b's primary address 2001:db8::2 is IPv6" in w for w in plan.warnings)


# ------------------------------------------------------------------ external peers

SEED_PASSWORD = "U2VjdXJlUGFzc3dvcmQK"


def test_global_peers_from_flags_with_every_setting():
    plan = plan_for(THREE, "a", "--peer-router-ips=192.168.1.99,192.168.1.100",
                    "--peer-router-asns=65000,65001", "--peer-router-ports=1179,179",
                    f"--peer-router-passwords={SEED_PASSWORD},", "--peer-router-multihop-ttl=4",
                    "--bgp-holdtime=30s")
    ext = [p for p in plan.peers if p.kind == "external"]
    assert [(p.address, p.asn, p.port, p.password, p.multihop_ttl, p.hold_time, p.local_address,
             p.source) for p in ext] == [
        ("192.168.1.99", 65000, 1179, b"SecurePassword\n", 4, 30, "10.0.0.1", "flag"),
        ("192.168.1.100", 65001, 179, None, 4, 30, "10.0.0.1", "flag"),
    ]
    assert ext[0].families == (IPV4_UNICAST,)


def test_node_peers_from_the_seeds_annotations():
    ann = {"kube-router.io/peer.ips": "192.168.1.99,192.168.1.100",
           "kube-router.io/peer.asns": "65000,65000",
           "kube-router.io/peer.passwords": f"{SEED_PASSWORD},",
           "kube-router.io/peer.localips": "10.1.1.1,10.1.1.2",
           "kube-router.io/peer.ports": "179,1179"}
    plan = plan_for([node("a", "10.0.0.1", ann=ann)], "a", "--peer-router-multihop-ttl=3")
    assert [(p.address, p.local_address, p.port, p.password is not None, p.multihop_ttl, p.source)
            for p in plan.peers] == [
        ("192.168.1.99", "10.1.1.1", 179, True, 3, "annotation kube-router.io/peer.ips"),
        ("192.168.1.100", "10.1.1.2", 1179, False, 3, "annotation kube-router.io/peer.ips"),
    ]
    assert any("ends in a newline" in w for w in plan.warnings)


def test_yaml_peers_take_precedence_over_peer_annotations():
    ann = {"kube-router.io/peers": "- {remoteip: 192.168.1.5, remoteasn: 65005, localip: 10.0.0.1}",
           "kube-router.io/peer.ips": "192.168.1.99", "kube-router.io/peer.asns": "65000"}
    plan = plan_for([node("a", "10.0.0.1", ann=ann)], "a")
    assert [(p.address, p.asn, p.source) for p in plan.peers] == [
        ("192.168.1.5", 65005, "annotation kube-router.io/peers")]
    assert any("are ignored: kube-router.io/peers is set" in w for w in plan.warnings)


def test_global_and_node_peers_both_apply_and_a_duplicate_takes_the_node_entry():
    ann = {"kube-router.io/peers": "- {remoteip: 192.168.1.99, remoteasn: 65099, port: 1179}\n"
                                   "- {remoteip: 192.168.1.50, remoteasn: 65050}"}
    plan = plan_for([node("a", "10.0.0.1", ann=ann)], "a",
                    "--peer-router-ips=192.168.1.99,192.168.1.100", "--peer-router-asns=65000,65000",
                    f"--peer-router-passwords={SEED_PASSWORD},")
    assert [(p.address, p.asn, p.port, p.password, p.source) for p in plan.peers] == [
        ("192.168.1.50", 65050, 179, None, "annotation kube-router.io/peers"),
        ("192.168.1.99", 65099, 1179, None, "annotation kube-router.io/peers"),
        ("192.168.1.100", 65000, 179, None, "flag"),
    ]
    assert ("node a: peer 192.168.1.99 is in --peer-router-ips and in kube-router.io/peers; the "
            "annotation's entry is used") in plan.warnings


def test_bad_peer_annotations_drop_only_the_node_peers():
    ann = {"kube-router.io/peer.ips": "192.168.1.99", "kube-router.io/peer.asns": "65x"}
    plan = plan_for([node("a", "10.0.0.1", ann=ann), node("b", "10.0.0.2")], "a",
                    "--peer-router-ips=192.168.1.100", "--peer-router-asns=65000")
    assert addresses(plan) == ["10.0.0.2", "192.168.1.100"]
    assert plan.errors == (('node a: annotation kube-router.io/peer.asns: element 1 "65x" is not an '
                           'AS number'),)


def test_external_peer_on_a_node_address_is_external():
    plan = plan_for(THREE, "a", "--peer-router-ips=10.0.0.2", "--peer-router-asns=65000")
    assert [(p.address, p.kind, p.asn) for p in plan.peers] == [
        ("10.0.0.2", "external", 65000), ("10.0.0.3", "mesh", 64512)]


def test_external_peer_on_this_nodes_address_is_skipped():
    plan = plan_for(THREE, "a", "--peer-router-ips=10.0.0.1", "--peer-router-asns=65000")
    assert addresses(plan, "external") == []
    assert any("is this node's own address" in w for w in plan.warnings)


def test_passwords_stay_out_of_repr_and_describe():
    plan = plan_for(THREE, "a", "--peer-router-ips=192.168.1.99", "--peer-router-asns=65000",
                    "--peer-router-passwords=c2VjcmV0LW5ldmVyLXNob3du")
    assert plan.peers[-1].password == b"secret-never-shown"
    for text in (repr(plan), str(plan), json.dumps(plan.describe())):
        assert "secret-never-shown" not in text and "c2VjcmV0" not in text
    assert plan.describe()["peers"][-1]["password"] == "<set>"


# ------------------------------------------------------------------ export attributes, import


def test_communities_prepend_and_next_hop_self_from_annotations_and_flags():
    ann = {"kube-router.io/node.bgp.communities": "no-export,65000:100",
           "kube-router.io/path-prepend.as": "65000", "kube-router.io/path-prepend.repeat-n": "5",
           "kube-router.io/node.bgp.customimportreject": "10.0.0.0/16, 192.168.1.0/24, 2001:db8::/32"}
    plan = plan_for([node("a", "10.0.0.1", ann=ann)], "a", "--override-nexthop")
    assert plan.communities == (0xFFFFFF01, 65000 << 16 | 100)
    assert plan.prepend == (65000, 5)
    assert plan.next_hop_self_external
    assert plan.import_reject_or_longer == ("10.0.0.0/16", "192.168.1.0/24", "2001:db8::/32")
    assert plan.describe()["communities"] == ["65535:65281", "65000:100"]
    assert plan.errors == ()


def test_import_rejects_default_routes_and_own_vips_only():
    objs = THREE + [service("web", "10.96.0.10", external=("192.0.2.10",))]
    plan = plan_for(objs, "a", "--advertise-cluster-ip")
    assert plan.import_reject_exact == ("0.0.0.0/0", "10.96.0.10/32", "::/0")
    assert plan.import_reject_or_longer == ()


# ------------------------------------------------------------------ pod CIDRs


def test_pod_cidrs_annotation_beats_spec():
    objs = [node("a", "10.0.0.1", "2001:db8::1", cidrs=("10.244.0.0/24",),
                 ann={"kube-router.io/pod-cidrs": "10.245.0.0/24,fd00:245::/64"})]
    plan = plan_for(objs, "a")
    assert plan.pod_cidrs == ("10.245.0.0/24", "fd00:245::/64")
    assert [(a.prefix, a.next_hop) for a in plan.advertisements] == [
        ("10.245.0.0/24", "10.0.0.1"), ("fd00:245::/64", "2001:db8::1")]


def test_pod_cidrs_annotation_with_no_good_element_falls_back_to_spec():
    objs = [node("a", "10.0.0.1", cidrs=("10.244.0.0/24",), ann={"kube-router.io/pod-cidrs": "x"})]
    plan = plan_for(objs, "a")
    assert plan.pod_cidrs == ("10.244.0.0/24",)
    assert len(plan.errors) == 1


def test_pod_cidr_of_a_family_without_a_node_address_is_not_advertised():
    # kube-router #1950: an IPv4 pod CIDR on an IPv6-only node.
    objs = [node("a", "2001:db8::1", cidrs=("10.244.0.0/24", "fd00::/64"))]
    plan = plan_for(objs, "a", "--router-id=1.1.1.1")
    assert prefixes(plan) == ["fd00::/64"]


def test_advertise_pod_cidr_false_keeps_pods_to_the_mesh_only():
    plan = plan_for(THREE, "a", "--advertise-pod-cidr=false")
    (ad,) = plan.advertisements
    assert (ad.prefix, ad.kind, ad.to_mesh, ad.to_external) == ("10.244.0.0/24", "pod-cidr", True, False)


# ------------------------------------------------------------------ services


def vips(plan: NodePlan) -> list[str]:
    return [a.prefix for a in plan.advertisements if a.kind != "pod-cidr"]


def test_no_service_ip_is_advertised_by_default():
    objs = THREE + [service("web", external=("192.0.2.10",), lb=("198.51.100.1",), type="LoadBalancer")]
    assert vips(plan_for(objs, "a")) == []


def test_per_service_annotation_overrides_the_flag_both_ways():
    objs = THREE + [service("on", "10.96.0.1", ann={"kube-router.io/service.advertise.clusterip": "true"}),
                    service("off", "10.96.0.2", ann={"kube-router.io/service.advertise.clusterip": "false"}),
                    service("dflt", "10.96.0.3")]
    assert vips(plan_for(objs, "a")) == ["10.96.0.1/32"]
    assert vips(plan_for(objs, "a", "--advertise-cluster-ip")) == ["10.96.0.1/32", "10.96.0.3/32"]


def test_missing_endpoint_slice_affects_only_that_service():
    # kube-router #1917: one service without EndpointSlices stopped every VIP.
    objs = THREE + [service("orphan", "10.96.0.1", itp="Local"),
                    service("fine", "10.96.0.2", itp="Local"), endpoints("fine", "a"),
                    service("cluster", "10.96.0.3")]
    plan = plan_for(objs, "a", "--advertise-cluster-ip")
    assert vips(plan) == ["10.96.0.2/32", "10.96.0.3/32"]
    assert any(w.startswith("service ns/orphan: no EndpointSlice") for w in plan.warnings)


def test_missing_endpoint_slice_does_not_matter_when_no_local_endpoint_is_needed():
    objs = THREE + [service("selectorless", "10.96.0.1", external=("192.0.2.1",))]
    plan = plan_for(objs, "a", "--advertise-cluster-ip", "--advertise-external-ip",
                    "--strict-external-ip-validation=false")
    assert vips(plan) == ["10.96.0.1/32", "192.0.2.1/32"]
    assert not any("EndpointSlice" in w for w in plan.warnings)


@pytest.mark.parametrize("policy_args,local_node,advertised", [
    ({"etp": "Local"}, "a", ["10.96.0.1/32", "192.0.2.1/32"]),
    ({"etp": "Local"}, "b", ["10.96.0.1/32"]),
    ({"ann": {"kube-router.io/service.local": "true"}}, "b", ["10.96.0.1/32"]),
    ({"ann": {"kube-router.io/service.local": "false"}}, "b", ["10.96.0.1/32", "192.0.2.1/32"]),
    ({"itp": "Local"}, "b", ["192.0.2.1/32"]),
    ({"itp": "Local"}, "a", ["10.96.0.1/32", "192.0.2.1/32"]),
    ({"itp": "Local", "etp": "Local"}, "b", []),
])
def test_traffic_policy_local_needs_a_local_endpoint(policy_args, local_node, advertised):
    objs = THREE + [service("web", "10.96.0.1", external=("192.0.2.1",), **policy_args),
                    endpoints("web", local_node)]
    plan = plan_for(objs, "a", "--advertise-cluster-ip", "--advertise-external-ip",
                    "--strict-external-ip-validation=false")
    assert vips(plan) == advertised


def test_local_endpoint_by_address_when_node_name_is_unset():
    objs = THREE + [service("web", "10.96.0.1", itp="Local"), endpoints("web", None, "10.0.0.1")]
    assert vips(plan_for(objs, "a", "--advertise-cluster-ip")) == ["10.96.0.1/32"]
    objs = THREE + [service("web", "10.96.0.1", itp="Local"), endpoints("web", None, "10.0.0.2")]
    assert vips(plan_for(objs, "a", "--advertise-cluster-ip")) == []


def test_endpoints_in_several_slices():
    objs = THREE + [service("web", "10.96.0.1", itp="Local"), endpoints("web", "b", slice_name="s1"),
                    endpoints("web", "a", slice_name="s2")]
    assert vips(plan_for(objs, "a", "--advertise-cluster-ip")) == ["10.96.0.1/32"]


def test_headless_and_external_name_services_advertise_nothing():
    objs = THREE + [service("headless", "None", external=("192.0.2.1",)),
                    service("ext", "", type="ExternalName")]
    plan = plan_for(objs, "a", "--advertise-cluster-ip", "--advertise-external-ip",
                    "--strict-external-ip-validation=false")
    assert vips(plan) == []


def test_lb_ips_skiplbips_and_proxy_mode():
    svc = service("lb", "10.96.0.1", type="LoadBalancer", lb=("198.51.100.1", "198.51.100.2"))
    svc["status"]["loadBalancer"]["ingress"][1]["ipMode"] = "Proxy"
    objs = THREE + [svc]
    plan = plan_for(objs, "a", "--advertise-loadbalancer-ip", "--loadbalancer-ip-range=198.51.100.0/24")
    assert vips(plan) == ["198.51.100.1/32"]
    svc["metadata"]["annotations"]["kube-router.io/service.skiplbips"] = "anything"
    assert vips(plan_for(objs, "a", "--advertise-loadbalancer-ip",
                         "--loadbalancer-ip-range=198.51.100.0/24")) == []


def test_lb_ips_of_a_non_loadbalancer_service_are_not_advertised():
    objs = THREE + [service("np", "10.96.0.1", type="NodePort", lb=("198.51.100.1",))]
    assert vips(plan_for(objs, "a", "--advertise-loadbalancer-ip",
                         "--strict-external-ip-validation=false")) == []


def test_strict_validation_ranges():
    objs = THREE + [service("web", "10.96.0.1", type="LoadBalancer",
                            external=("192.0.2.1", "203.0.113.1", "10.96.0.99"),
                            lb=("198.51.100.1", "192.0.2.2"))]
    args = ("--advertise-external-ip", "--advertise-loadbalancer-ip")
    assert vips(plan_for(objs, "a", *args)) == []  # strict, no ranges: nothing (kube-router 2.8+)
    plan = plan_for(objs, "a", *args, "--service-external-ip-range=192.0.2.0/24,10.96.0.0/16",
                    "--loadbalancer-ip-range=198.51.100.0/24")
    assert vips(plan) == ["192.0.2.1/32", "198.51.100.1/32"]
    assert any("10.96.0.99 is inside --service-cluster-ip-range" in w for w in plan.warnings)
    assert vips(plan_for(objs, "a", *args, "--strict-external-ip-validation=false")) == [
        "10.96.0.99/32", "192.0.2.1/32", "192.0.2.2/32", "198.51.100.1/32", "203.0.113.1/32"]


def test_vip_shared_by_two_services_is_one_advertisement():
    objs = THREE + [service("x", "10.96.0.1", external=("192.0.2.1",)),
                    service("y", "10.96.0.2", external=("192.0.2.1",))]
    plan = plan_for(objs, "a", "--advertise-external-ip", "--strict-external-ip-validation=false")
    (ad,) = plan.advertisements[1:]
    assert (ad.prefix, ad.kind, ad.services, ad.to_mesh, ad.to_external) == (
        "192.0.2.1/32", "external-ip", ("ns/x", "ns/y"), False, True)


def test_ipv6_vip_on_an_ipv4_node_is_not_advertised():
    objs = THREE + [service("v6", "fd00:96::1")]
    plan = plan_for(objs, "a", "--advertise-cluster-ip")
    assert vips(plan) == []
    assert any("fd00:96::1 is IPv6 but this node has no IPv6 address" in w for w in plan.warnings)


# ------------------------------------------------------------------ determinism


def test_the_plan_does_not_depend_on_object_order():
    fixture = json.loads((FIXTURES / "services.json").read_text())
    objects = fixture["objects"] + _rr_cluster()
    argv = fixture["args"] + ["--peer-router-ips=192.168.1.1,192.168.1.2",
                              "--peer-router-asns=65000,65001"]
    first = plan_for(objects, "a", *argv)
    rng = random.Random(7)
    for _ in range(5):
        shuffled = objects[:]
        rng.shuffle(shuffled)
        assert plan_for(shuffled, "a", *argv) == first
    assert first.peers == tuple(sorted(first.peers, key=lambda p: tuple(
        int(o) for o in p.address.split("."))))


def test_translate_is_pure_and_repeatable():
    snapshot = snapshot_from_objects(THREE)
    flags = AgentFlags()
    assert translate(snapshot, flags, "a") == translate(snapshot, flags, "a")
    assert dataclasses.asdict(translate(snapshot, flags, "a"))["node"] == "a"
