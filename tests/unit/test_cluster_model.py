"""The cluster snapshot (kbgp.cluster.model): what is read from Nodes,
Services and EndpointSlices, that a malformed object is skipped with a line
naming it and the bad field, and that the read cache reuses unchanged values."""
from __future__ import annotations

import copy

import pytest

from kbgp.cluster.model import (
    Endpoint,
    ReadCache,
    Snapshot,
    slim_object,
    snapshot_from_objects,
)

NODE = {
    "apiVersion": "v1", "kind": "Node",
    "metadata": {"name": "worker-1", "resourceVersion": "101",
                 "labels": {"kubernetes.io/hostname": "worker-1", "rack": "r1"},
                 "annotations": {"kube-router.io/node.asn": "64512",
                                 "kube-router.io/peer.passwords": "c2VjcmV0LXBhc3N3b3Jk"},
                 "managedFields": [{"manager": "kubelet", "operation": "Update"}]},
    "spec": {"podCIDR": "10.244.1.0/24", "podCIDRs": ["10.244.1.0/24", "fd00:10:244:1::/64"]},
    "status": {"addresses": [{"type": "InternalIP", "address": "10.0.0.11"},
                             {"type": "InternalIP", "address": "fd00::11"},
                             {"type": "Hostname", "address": "worker-1"}],
               "images": [{"names": ["registry.example/pause:3.9"], "sizeBytes": 1}],
               "conditions": [{"type": "Ready", "status": "True"}]},
}

SERVICE = {
    "apiVersion": "v1", "kind": "Service",
    "metadata": {"name": "web", "namespace": "apps", "resourceVersion": "202",
                 "annotations": {"kube-router.io/service.local": "true"}},
    "spec": {"type": "LoadBalancer", "clusterIP": "10.96.0.10", "clusterIPs": ["10.96.0.10", "fd00:96::10"],
             "externalIPs": ["192.0.2.10"], "externalTrafficPolicy": "Local"},
    "status": {"loadBalancer": {"ingress": [{"ip": "198.51.100.7", "ipMode": "VIP"},
                                            {"hostname": "lb.example.com"},
                                            {"ip": "198.51.100.8"}]}},
}

SLICE = {
    "apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
    "metadata": {"name": "web-abcde", "namespace": "apps", "resourceVersion": "303",
                 "labels": {"kubernetes.io/service-name": "web"}},
    "addressType": "IPv4",
    "endpoints": [{"addresses": ["10.244.1.5"], "nodeName": "worker-1", "conditions": {"ready": True}},
                  {"addresses": ["10.244.2.6"]}],
}


def test_node_fields():
    s = snapshot_from_objects([NODE])
    n = s.nodes["worker-1"]
    assert n.addresses == (("InternalIP", "10.0.0.11"), ("InternalIP", "fd00::11"), ("Hostname", "worker-1"))
    assert n.pod_cidrs == ("10.244.1.0/24", "fd00:10:244:1::/64")
    assert n.annotations["kube-router.io/node.asn"] == "64512"
    assert n.labels == {"kubernetes.io/hostname": "worker-1", "rack": "r1"}


def test_node_pod_cidr_without_pod_cidrs_and_bare_node():
    obj = {"kind": "Node", "metadata": {"name": "a"}, "spec": {"podCIDR": "10.244.9.0/24"}}
    assert snapshot_from_objects([obj]).nodes["a"].pod_cidrs == ("10.244.9.0/24",)
    bare = snapshot_from_objects([{"kind": "Node", "metadata": {"name": "b"}}]).nodes["b"]
    assert (bare.addresses, bare.pod_cidrs, dict(bare.annotations), dict(bare.labels)) == ((), (), {}, {})


def test_node_repr_leaves_annotations_out():
    # kube-router's peer annotations carry BGP passwords.
    n = snapshot_from_objects([NODE]).nodes["worker-1"]
    assert "c2VjcmV0" not in repr(n) and "annotations" not in repr(n)
    assert "c2VjcmV0" not in repr(snapshot_from_objects([NODE]))


def test_service_fields():
    svc = snapshot_from_objects([SERVICE]).services["apps/web"]
    assert svc.key == "apps/web" and svc.type == "LoadBalancer"
    assert svc.cluster_ips == ("10.96.0.10", "fd00:96::10")
    assert svc.external_ips == ("192.0.2.10",)
    assert svc.lb_ingress == (("198.51.100.7", "VIP"), ("198.51.100.8", ""))  # hostname-only dropped
    assert (svc.external_traffic_policy, svc.internal_traffic_policy) == ("Local", "Cluster")
    assert svc.annotations == {"kube-router.io/service.local": "true"}


def test_service_defaults_headless_and_cluster_ip_not_in_list():
    s = snapshot_from_objects([
        {"kind": "Service", "metadata": {"name": "plain"}},
        {"kind": "Service", "metadata": {"name": "headless", "namespace": "x"}, "spec": {"clusterIP": "None"}},
        {"kind": "Service", "metadata": {"name": "old"}, "spec": {"clusterIP": "10.96.0.3", "clusterIPs": ["fd00::3"]}},
    ])
    plain = s.services["default/plain"]
    assert (plain.type, plain.cluster_ips, plain.external_traffic_policy) == ("ClusterIP", (), "Cluster")
    assert s.services["x/headless"].cluster_ips == ("None",)
    assert s.services["default/old"].cluster_ips == ("10.96.0.3", "fd00::3")


def test_endpoint_slice_fields_and_slices_of():
    s = snapshot_from_objects([SLICE, SERVICE,
                               {"kind": "EndpointSlice", "metadata": {"name": "orphan", "namespace": "apps"}}])
    es = s.endpoint_slices["apps/web-abcde"]
    assert es.service_key == "apps/web"
    assert es.endpoints == (Endpoint(("10.244.1.5",), "worker-1"), Endpoint(("10.244.2.6",), None))
    assert s.slices_of("apps/web") == [es]
    assert s.endpoint_slices["apps/orphan"].service_key is None
    assert s.slices_of("other/web") == []


def test_any_order_and_other_kinds_ignored():
    objs = [SLICE, {"kind": "Pod", "metadata": {"name": "p"}}, SERVICE, {"kind": "ConfigMap"}, NODE]
    assert snapshot_from_objects(objs) == snapshot_from_objects([NODE, SERVICE, SLICE])
    assert snapshot_from_objects([]) == Snapshot()


def _broken(base: dict, path: str, value) -> dict:
    obj = copy.deepcopy(base)
    *parents, last = path.split(".")
    target = obj
    for p in parents:
        target = target.setdefault(p, {})
    target[last] = value
    return obj


@pytest.mark.parametrize("base, path, value, message", [
    (NODE, "metadata.name", "", "Node (item 0): metadata.name is missing"),
    (NODE, "metadata.annotations", ["x"], "Node worker-1: metadata.annotations must be a mapping"),
    (NODE, "metadata.annotations", {"kube-router.io/node.asn": 64512},
     "Node worker-1: metadata.annotations['kube-router.io/node.asn'] must be a string"),
    (NODE, "metadata.labels", {"rack": None}, "Node worker-1: metadata.labels['rack'] must be a string"),
    (NODE, "spec.podCIDRs", "10.244.1.0/24", "Node worker-1: spec.podCIDRs must be a list of strings"),
    (NODE, "spec", "oops", "Node worker-1: spec must be a mapping"),
    (NODE, "status.addresses", [{"type": "InternalIP"}],
     "Node worker-1: status.addresses[0] needs a type and an address"),
    (SERVICE, "spec.clusterIP", 10, "Service web: spec.clusterIP must be a string"),
    (SERVICE, "spec.externalIPs", [1], "Service web: spec.externalIPs must be a list of strings"),
    (SERVICE, "status.loadBalancer", ["x"], "Service web: status.loadBalancer must be a mapping"),
    (SERVICE, "status.loadBalancer", {"ingress": [{"ip": 7}]},
     "Service web: status.loadBalancer.ingress[0].ip must be a string"),
    (SERVICE, "spec.type", 3, "Service web: spec.type must be a string"),
    (SERVICE, "spec.externalTrafficPolicy", ["Local"], "Service web: spec.externalTrafficPolicy must be a string"),
    (SERVICE, "metadata.namespace", 5, "Service web: metadata.namespace must be a string"),
    (SLICE, "endpoints", ["10.0.0.1"], "EndpointSlice web-abcde: endpoints[0] must be a mapping"),
    (SLICE, "endpoints", [{"addresses": "10.0.0.1"}],
     "EndpointSlice web-abcde: endpoints[0].addresses must be a list of strings"),
    (SLICE, "endpoints", [{"addresses": [], "nodeName": 4}],
     "EndpointSlice web-abcde: endpoints[0].nodeName must be a string"),
])
def test_malformed_object_is_skipped_and_named(base, path, value, message):
    bad = _broken(base, path, value)
    s = snapshot_from_objects([bad, NODE if base is not NODE else SERVICE], where="cluster.yaml")
    assert s.errors == (f"cluster.yaml: {message}",)
    # The others are still read.
    assert len(s.nodes) + len(s.services) + len(s.endpoint_slices) == 1


def test_non_objects_are_named_by_position():
    s = snapshot_from_objects(["text", NODE, None, 7])
    assert s.errors == ("item 0: not an object", "item 2: not an object", "item 3: not an object")
    assert list(s.nodes) == ["worker-1"]


def test_bad_annotation_error_does_not_quote_the_value():
    bad = _broken(NODE, "metadata.annotations", {"kube-router.io/peer.passwords": ["c2VjcmV0"]})
    [line] = snapshot_from_objects([bad]).errors
    assert "c2VjcmV0" not in line and "kube-router.io/peer.passwords" in line


def test_read_cache_reuses_values_of_unchanged_resource_versions():
    cache = ReadCache()
    nodes = [_broken(NODE, "metadata.name", f"w{i}") for i in range(3)]
    first = snapshot_from_objects([*nodes, SERVICE], "api", cache)
    assert len(cache) == 4
    changed = _broken(nodes[1], "metadata.resourceVersion", "999")
    changed["metadata"]["labels"] = {"rack": "r2"}
    second = snapshot_from_objects([nodes[0], changed, nodes[2], SERVICE], "api", cache)
    assert second.nodes["w0"] is first.nodes["w0"] and second.nodes["w2"] is first.nodes["w2"]
    assert second.services["apps/web"] is first.services["apps/web"]
    assert second.nodes["w1"] is not first.nodes["w1"] and second.nodes["w1"].labels == {"rack": "r2"}
    # The same answer as without a cache.
    assert second == snapshot_from_objects([nodes[0], changed, nodes[2], SERVICE], "api")
    # Deleted objects leave the cache.
    snapshot_from_objects([nodes[0]], "api", cache)
    assert len(cache) == 1


def test_read_cache_keeps_errors_and_ignores_objects_without_resource_version():
    cache = ReadCache()
    bad = _broken(NODE, "spec.podCIDRs", "x")
    unversioned = {"kind": "Node", "metadata": {"name": "hand-written"}}
    a = snapshot_from_objects([bad, unversioned], "api", cache)
    b = snapshot_from_objects([bad, unversioned], "api", cache)
    assert a.errors == b.errors == ("api: Node worker-1: spec.podCIDRs must be a list of strings",)
    assert len(cache) == 1  # only the versioned one
    assert b.nodes["hand-written"] == a.nodes["hand-written"]
    # A fixed object under the same resourceVersion would be a server bug; a new one is read.
    fixed = _broken(NODE, "metadata.resourceVersion", "102")
    assert "worker-1" in snapshot_from_objects([fixed], "api", cache).nodes


def test_slim_object_drops_only_what_no_reader_uses():
    obj = copy.deepcopy(NODE)
    before = snapshot_from_objects([copy.deepcopy(NODE)])
    assert slim_object(obj) is obj
    assert "managedFields" not in obj["metadata"] and "images" not in obj["status"]
    assert obj["status"]["conditions"] == NODE["status"]["conditions"]
    assert snapshot_from_objects([obj]) == before
    for weird in ({"kind": "Node", "metadata": "x", "status": []}, {"kind": "Service"}, {}):
        slim_object(weird)  # never fails on a malformed object
