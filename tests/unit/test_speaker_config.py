"""A node's plan as the speaker's configuration: neighbours, originated
routes, and kube-router's import/export policy expressed as rules."""
from __future__ import annotations

import json
from pathlib import Path

from kbgp.cluster.flags import parse_agent_args
from kbgp.cluster.model import snapshot_from_objects
from kbgp.cluster.speaker_config import plan_to_speaker_config
from kbgp.cluster.translate import translate
from kbgp.config import parse_speaker_config
from kbgp.policy.engine import CompiledPolicy
from kbgp._fast.wire import PrefixArray

FIXTURES = Path(__file__).parent / "fixtures" / "translate"


def node(name, ip, pod_cidr, **annotations):
    return {"kind": "Node", "metadata": {"name": name, "annotations": annotations},
            "spec": {"podCIDR": pod_cidr},
            "status": {"addresses": [{"type": "InternalIP", "address": ip}]}}


def config_for(objects, me, *argv):
    flags, _ = parse_agent_args(list(argv), {})
    plan = translate(snapshot_from_objects(objects), flags, me)
    assert plan.waiting is None, plan.waiting
    return plan, plan_to_speaker_config(plan)


def decide(cfg, neighbor, prefix, local=True, direction="export"):
    """The verdict and modifications for one route towards/from one neighbour."""
    pol = CompiledPolicy(cfg.policy)
    n = next(x for x in cfg.neighbors if x.address == neighbor)
    rules = pol.rules_for(direction, n.address, n.effective_class(cfg.asn))
    classes = pol.classify(direction, PrefixArray.from_strings([prefix]))
    mask = classes.masks[classes.class_ids()[0]] if classes is not None else 0
    o = pol.evaluate(direction, rules, mask, local)
    default = n.effective_import(True) if direction == "import" else n.effective_export(True)
    return (o.verdict or default), o


CLUSTER = [
    node("a", "10.0.0.1", "10.244.0.0/24", **{
        "kube-router.io/node.bgp.communities": "65000:7,no-export",
        "kube-router.io/path-prepend.as": "65123", "kube-router.io/path-prepend.repeat-n": "2",
        "kube-router.io/node.bgp.customimportreject": "172.16.0.0/12"}),
    node("b", "10.0.0.2", "10.244.1.0/24"),
    {"kind": "Service", "metadata": {"name": "web", "namespace": "default"},
     "spec": {"type": "ClusterIP", "clusterIP": "10.96.0.10"}},
]
ARGS = ("--advertise-cluster-ip", "--peer-router-ips=192.0.2.1", "--peer-router-asns=65001",
        "--override-nexthop")


def test_neighbours_and_originated_routes():
    plan, cfg = config_for(CLUSTER, "a", *ARGS)
    by_addr = {n.address: n for n in cfg.neighbors}
    assert sorted(by_addr) == ["10.0.0.2", "192.0.2.1"]
    assert (by_addr["10.0.0.2"].asn, by_addr["10.0.0.2"].peer_class) == (64512, "mesh")
    assert (by_addr["192.0.2.1"].asn, by_addr["192.0.2.1"].peer_class) == (65001, "external")
    assert by_addr["10.0.0.2"].description == "node b"
    assert {o.prefix: o.next_hop for o in cfg.originate} == {"10.244.0.0/24": "10.0.0.1",
                                                            "10.96.0.10/32": "10.0.0.1"}
    assert (cfg.router_id, cfg.asn, cfg.kernel) == ("10.0.0.1", 64512, True)
    # The configuration is one the speaker's own parser accepts when written out.
    described = cfg.describe()
    described.pop("kernel")
    for n in described["neighbors"]:
        n.pop("password", None)
    again = parse_speaker_config(json.loads(json.dumps(described)))
    assert again.policy == cfg.policy and again.neighbors == cfg.neighbors


def test_export_policy_is_kube_routers():
    _, cfg = config_for(CLUSTER, "a", *ARGS)
    # Pod CIDR: to the mesh unmodified, to external peers with communities, prepend, next-hop-self.
    verdict, o = decide(cfg, "10.0.0.2", "10.244.0.0/24")
    assert verdict == "accept" and not o.modifies
    verdict, o = decide(cfg, "192.0.2.1", "10.244.0.0/24")
    assert verdict == "accept"
    assert o.add_communities == (65000 << 16 | 7, 0xFFFFFF01) and o.prepends == ((65123, 2),)
    assert o.next_hop_self
    # A service IP never goes to the mesh; it goes to external peers.
    assert decide(cfg, "10.0.0.2", "10.96.0.10/32")[0] == "reject"
    assert decide(cfg, "192.0.2.1", "10.96.0.10/32")[0] == "accept"
    # Learned routes go nowhere (not a route reflector).
    assert decide(cfg, "192.0.2.1", "10.244.1.0/24", local=False)[0] == "reject"
    assert decide(cfg, "10.0.0.2", "10.244.1.0/24", local=False)[0] == "reject"


def test_advertise_pod_cidr_false_keeps_pods_from_external_peers():
    _, cfg = config_for(CLUSTER, "a", *ARGS, "--advertise-pod-cidr=false")
    assert decide(cfg, "192.0.2.1", "10.244.0.0/24")[0] == "reject"
    assert decide(cfg, "10.0.0.2", "10.244.0.0/24")[0] == "accept"


def test_import_policy_rejects_own_vips_defaults_and_custom_prefixes():
    _, cfg = config_for(CLUSTER, "a", *ARGS)
    for prefix, want in [("10.96.0.10/32", "reject"), ("0.0.0.0/0", "reject"),
                         ("172.16.0.0/12", "reject"), ("172.16.5.0/24", "reject"),
                         ("172.32.0.0/16", "accept"), ("10.244.1.0/24", "accept"),
                         ("10.96.0.99/32", "accept"), ("0.0.0.0/1", "accept")]:
        for neighbor in ("10.0.0.2", "192.0.2.1"):
            assert decide(cfg, neighbor, prefix, local=False, direction="import")[0] == want, (prefix, neighbor)


def test_route_reflector_server_reflects_and_clients_are_marked():
    objects = [node("s", "10.0.0.1", "10.244.0.0/24", **{"kube-router.io/rr.server": "42"}),
               node("c1", "10.0.0.2", "10.244.1.0/24", **{"kube-router.io/rr.client": "42"}),
               node("c2", "10.0.0.3", "10.244.2.0/24", **{"kube-router.io/rr.client": "42"})]
    plan, cfg = config_for(objects, "s")
    assert cfg.cluster_id == "0.0.0.42"
    assert {n.address: n.peer_class for n in cfg.neighbors} == {"10.0.0.2": "rr-client", "10.0.0.3": "rr-client"}
    assert all(n.route_reflector_client for n in cfg.neighbors)
    assert decide(cfg, "10.0.0.2", "10.244.2.0/24", local=False)[0] == "accept"
    _, client = config_for(objects, "c1")
    assert [n.address for n in client.neighbors] == ["10.0.0.1"]
    assert client.cluster_id is None
    assert decide(client, "10.0.0.1", "10.244.2.0/24", local=False)[0] == "reject"


def test_every_fixture_plan_becomes_a_valid_configuration():
    for path in sorted(FIXTURES.glob("*.json")):
        fixture = json.loads(path.read_text())
        flags, _ = parse_agent_args(fixture["args"], {})
        snapshot = snapshot_from_objects(fixture["objects"])
        for name in snapshot.nodes:
            plan = translate(snapshot, flags, name)
            if plan.waiting:
                continue
            cfg = plan_to_speaker_config(plan)
            CompiledPolicy(cfg.policy)
            assert len(cfg.neighbors) == len(plan.peers), path.name
