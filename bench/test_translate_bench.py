"""How long one translation (cluster snapshot + flags -> NodePlan) takes.

Run from the repository root after building the extensions in place:

    python3 -m pytest bench/test_translate_bench.py -p no:cacheprovider --benchmark-only

Clusters of N nodes (three route-reflector servers, the rest their clients)
and S LoadBalancer services (every second one with externalTrafficPolicy
Local, one EndpointSlice each), with cluster and load-balancer IPs
advertised.  Timed from a route-reflector server (it peers with every node)
and from a client (it peers with three).  The agent translates again on
every cluster change, so this is the cost of one change.
"""
from __future__ import annotations

import ipaddress

import pytest

from kbgp.cluster.flags import parse_agent_args
from kbgp.cluster.model import snapshot_from_objects
from kbgp.cluster.translate import translate

PEDANTIC = {"rounds": 5, "iterations": 1, "warmup_rounds": 1}


def cluster(nodes: int, services: int) -> list[dict]:
    objs: list[dict] = []
    for i in range(nodes):
        ip = str(ipaddress.IPv4Address(0x0A000001 + i))
        role = {"kube-router.io/rr.server": "1"} if i < 3 else {"kube-router.io/rr.client": "1"}
        objs.append({"kind": "Node", "metadata": {"name": f"n{i}", "annotations": role},
                     "spec": {"podCIDRs": [f"10.{64 + i // 256}.{i % 256}.0/24"]},
                     "status": {"addresses": [{"type": "InternalIP", "address": ip}]}})
    for j in range(services):
        objs.append({
            "kind": "Service", "metadata": {"name": f"s{j}", "namespace": "ns"},
            "spec": {"type": "LoadBalancer",
                     "clusterIP": str(ipaddress.IPv4Address(0x0A600001 + j)),
                     "externalTrafficPolicy": "Local" if j % 2 else "Cluster"},
            "status": {"loadBalancer": {"ingress": [
                {"ip": str(ipaddress.IPv4Address(0xC6336400 + j))}]}}})
        objs.append({
            "kind": "EndpointSlice",
            "metadata": {"name": f"s{j}-x", "namespace": "ns",
                         "labels": {"kubernetes.io/service-name": f"s{j}"}},
            "endpoints": [{"addresses": ["10.64.0.5"], "nodeName": f"n{j % nodes}"}]})
    return objs


@pytest.mark.parametrize("nodes,services", [(100, 500), (5000, 10000)])
@pytest.mark.parametrize("view", ["rr-server", "rr-client"])
def test_translate(benchmark, nodes, services, view):
    snapshot = snapshot_from_objects(cluster(nodes, services))
    flags, _ = parse_agent_args(["--advertise-cluster-ip", "--advertise-loadbalancer-ip",
                                 "--loadbalancer-ip-range=198.51.100.0/22"], {})
    node = "n0" if view == "rr-server" else "n10"
    plan = benchmark.pedantic(translate, args=(snapshot, flags, node), **PEDANTIC)
    assert plan.waiting is None
    assert len(plan.peers) == (nodes - 1 if view == "rr-server" else 3)
    benchmark.extra_info.update(peers=len(plan.peers), advertisements=len(plan.advertisements))
