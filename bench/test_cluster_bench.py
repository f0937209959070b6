"""Benchmarks of building a cluster snapshot (kbgp/cluster/model.py) at the
size of a large cluster: 5,000 Nodes, 2,000 Services, 2,000 EndpointSlices.

    python3 -m pytest bench/test_cluster_bench.py -p no:cacheprovider --benchmark-only

- uncached: every object read (the first snapshot, and every snapshot of a
  cluster file);
- one changed: the informer's rebuild after a watch event, with a ReadCache
  and the store's unchanged objects as they were;
- relist: the rebuild after a relist, every object an equal copy of the one
  cached (recognised by resourceVersion).
"""
from __future__ import annotations

import copy

import pytest

from kbgp.cluster.model import ReadCache, snapshot_from_objects

NODES, SERVICES = 5000, 2000


def _objects() -> list[dict]:
    out: list[dict] = []
    for i in range(NODES):
        out.append({
            "kind": "Node",
            "metadata": {"name": f"node-{i}", "resourceVersion": str(10 + i),
                         "labels": {"kubernetes.io/hostname": f"node-{i}", "topology.kubernetes.io/zone": "z1"},
                         "annotations": {"kube-router.io/node.asn": "64512"}},
            "spec": {"podCIDR": f"10.{64 + i // 256}.{i % 256}.0/24",
                     "podCIDRs": [f"10.{64 + i // 256}.{i % 256}.0/24"]},
            "status": {"addresses": [{"type": "InternalIP", "address": f"172.16.{i // 256}.{i % 256}"},
                                     {"type": "Hostname", "address": f"node-{i}"}]},
        })
    for i in range(SERVICES):
        ns = f"ns-{i % 50}"
        out.append({
            "kind": "Service",
            "metadata": {"name": f"svc-{i}", "namespace": ns, "resourceVersion": str(100000 + i)},
            "spec": {"type": "ClusterIP", "clusterIP": f"10.96.{i // 256}.{i % 256}",
                     "clusterIPs": [f"10.96.{i // 256}.{i % 256}"]},
        })
        out.append({
            "kind": "EndpointSlice",
            "metadata": {"name": f"svc-{i}-abcde", "namespace": ns, "resourceVersion": str(200000 + i),
                         "labels": {"kubernetes.io/service-name": f"svc-{i}"}},
            "endpoints": [{"addresses": [f"10.64.{j}.{i % 256}"], "nodeName": f"node-{(i + j) % NODES}",
                           "conditions": {"ready": True}} for j in range(3)],
        })
    return out


@pytest.fixture(scope="module")
def objects() -> list[dict]:
    return _objects()


def test_build_uncached(benchmark, objects):
    snap = benchmark(snapshot_from_objects, objects, "bench")
    assert len(snap.nodes) == NODES and len(snap.endpoint_slices) == SERVICES


def test_rebuild_one_changed(benchmark, objects):
    cache = ReadCache()
    before = snapshot_from_objects(objects, "bench", cache)
    changed = list(objects)

    def setup():
        obj = copy.deepcopy(objects[7])
        obj["metadata"]["resourceVersion"] = str(int(obj["metadata"]["resourceVersion"]) + 1_000_000)
        changed[7] = obj
        return (changed, "bench", cache), {}

    snap = benchmark.pedantic(snapshot_from_objects, setup=setup, rounds=20, iterations=1)
    assert snap.nodes["node-1"] is before.nodes["node-1"]


def test_rebuild_after_relist(benchmark, objects):
    copies = copy.deepcopy(objects)

    def setup():
        cache = ReadCache()
        snapshot_from_objects(objects, "bench", cache)
        return (copies, "bench", cache), {}

    snap = benchmark.pedantic(snapshot_from_objects, setup=setup, rounds=5, iterations=1)
    assert len(snap.nodes) == NODES
