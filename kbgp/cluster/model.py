"""The cluster snapshot: the few fields of Nodes, Services and EndpointSlices
that BGP routing reads, as frozen values.

Both sources (the Kubernetes informer and ``--cluster-file``) hand raw API
objects (dicts, as the API's JSON or ``kubectl get -o yaml`` gives them) to
``snapshot_from_objects``, so the translation never sees where they came
from.  A malformed object is skipped with a message naming it; it never stops
the others from being read.
"""
from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

EMPTY: Mapping[str, str] = {}


@dataclass(frozen=True, slots=True)
class Node:
    name: str
    # status.addresses in API order: (type, address), e.g. ("InternalIP", "10.0.0.1").
    addresses: tuple[tuple[str, str], ...] = ()
    # spec.podCIDRs (with spec.podCIDR first when podCIDRs is absent).
    pod_cidrs: tuple[str, ...] = ()
    # Left out of repr: kube-router's peer annotations carry BGP passwords.
    annotations: Mapping[str, str] = field(default_factory=dict, repr=False)
    labels: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Service:
    namespace: str
    name: str
    type: str = "ClusterIP"
    # spec.clusterIPs, with spec.clusterIP added when the list lacks it; "None" (headless) kept as is.
    cluster_ips: tuple[str, ...] = ()
    external_ips: tuple[str, ...] = ()
    # status.loadBalancer.ingress[]: (ip, ipMode or ""), hostname-only entries dropped.
    lb_ingress: tuple[tuple[str, str], ...] = ()
    external_traffic_policy: str = "Cluster"
    internal_traffic_policy: str = "Cluster"
    annotations: Mapping[str, str] = field(default_factory=dict, repr=False)

    @property
    def key(self) -> str:
        return f"{self.namespace}/{self.name}"


@dataclass(frozen=True, slots=True)
class Endpoint:
    addresses: tuple[str, ...] = ()
    node_name: str | None = None


@dataclass(frozen=True, slots=True)
class EndpointSlice:
    namespace: str
    name: str
    service_name: str | None  # label kubernetes.io/service-name
    endpoints: tuple[Endpoint, ...] = ()

    @property
    def service_key(self) -> str | None:
        return None if self.service_name is None else f"{self.namespace}/{self.service_name}"


@dataclass(frozen=True, slots=True)
class Snapshot:
    """Everything BGP routing reads from the cluster, at one moment."""

    nodes: Mapping[str, Node] = field(default_factory=dict)
    services: Mapping[str, Service] = field(default_factory=dict)  # by "namespace/name"
    endpoint_slices: Mapping[str, EndpointSlice] = field(default_factory=dict)  # by "namespace/name"
    # Objects that could not be read: one human-readable line each.
    errors: tuple[str, ...] = ()

    def slices_of(self, service_key: str) -> list[EndpointSlice]:
        return [s for s in self.endpoint_slices.values() if s.service_key == service_key]


class ObjectError(ValueError):
    """One API object that cannot be read."""


def _strs(value: Any, what: str) -> tuple[str, ...]:
    if value is None:
        return ()
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise ObjectError(f"{what} must be a list of strings")
    return tuple(value)


def _str_map(value: Any, what: str) -> Mapping[str, str]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise ObjectError(f"{what} must be a mapping")
    out = {}
    for k, v in value.items():
        if not isinstance(k, str) or not isinstance(v, str):
            raise ObjectError(f"{what}[{k!r}] must be a string")
        out[k] = v
    return out


def _section(obj: dict, key: str) -> dict:
    value = obj.get(key)
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise ObjectError(f"{key} must be a mapping")
    return value


def _meta(obj: dict) -> tuple[str, str, dict]:
    meta = _section(obj, "metadata")
    name = meta.get("name")
    if not isinstance(name, str) or not name:
        raise ObjectError("metadata.name is missing")
    ns = meta.get("namespace", "default")
    if not isinstance(ns, str):
        raise ObjectError("metadata.namespace must be a string")
    return name, ns, meta


def node_from_object(obj: dict) -> Node:
    name, _, meta = _meta(obj)
    spec = _section(obj, "spec")
    status = _section(obj, "status")
    addresses = []
    for i, a in enumerate(status.get("addresses") or []):
        if not isinstance(a, dict) or not isinstance(a.get("type"), str) or not isinstance(a.get("address"), str):
            raise ObjectError(f"status.addresses[{i}] needs a type and an address")
        addresses.append((a["type"], a["address"]))
    cidrs = _strs(spec.get("podCIDRs"), "spec.podCIDRs")
    single = spec.get("podCIDR")
    if single is not None and not isinstance(single, str):
        raise ObjectError("spec.podCIDR must be a string")
    if not cidrs and single:
        cidrs = (single,)
    return Node(name=name, addresses=tuple(addresses), pod_cidrs=cidrs,
                annotations=_str_map(meta.get("annotations"), "metadata.annotations"),
                labels=_str_map(meta.get("labels"), "metadata.labels"))


def service_from_object(obj: dict) -> Service:
    name, ns, meta = _meta(obj)
    spec = _section(obj, "spec")
    status = _section(obj, "status")
    ips = list(_strs(spec.get("clusterIPs"), "spec.clusterIPs"))
    single = spec.get("clusterIP")
    if single is not None and not isinstance(single, str):
        raise ObjectError("spec.clusterIP must be a string")
    if single and single not in ips:
        ips.insert(0, single)
    ingress = []
    lb = status.get("loadBalancer") or {}
    if not isinstance(lb, dict):
        raise ObjectError("status.loadBalancer must be a mapping")
    for i, ing in enumerate(lb.get("ingress") or []):
        if not isinstance(ing, dict):
            raise ObjectError(f"status.loadBalancer.ingress[{i}] must be a mapping")
        ip = ing.get("ip")
        if ip is None:
            continue  # hostname-only entries do not count
        if not isinstance(ip, str):
            raise ObjectError(f"status.loadBalancer.ingress[{i}].ip must be a string")
        mode = ing.get("ipMode") or ""
        ingress.append((ip, mode if isinstance(mode, str) else ""))
    def policy(key: str) -> str:
        v = spec.get(key) or "Cluster"
        if not isinstance(v, str):
            raise ObjectError(f"spec.{key} must be a string")
        return v
    stype = spec.get("type") or "ClusterIP"
    if not isinstance(stype, str):
        raise ObjectError("spec.type must be a string")
    return Service(namespace=ns, name=name, type=stype, cluster_ips=tuple(ips),
                   external_ips=_strs(spec.get("externalIPs"), "spec.externalIPs"),
                   lb_ingress=tuple(ingress),
                   external_traffic_policy=policy("externalTrafficPolicy"),
                   internal_traffic_policy=policy("internalTrafficPolicy"),
                   annotations=_str_map(meta.get("annotations"), "metadata.annotations"))


def endpoint_slice_from_object(obj: dict) -> EndpointSlice:
    name, ns, meta = _meta(obj)
    labels = _str_map(meta.get("labels"), "metadata.labels")
    eps = []
    for i, ep in enumerate(obj.get("endpoints") or []):
        if not isinstance(ep, dict):
            raise ObjectError(f"endpoints[{i}] must be a mapping")
        node = ep.get("nodeName")
        if node is not None and not isinstance(node, str):
            raise ObjectError(f"endpoints[{i}].nodeName must be a string")
        eps.append(Endpoint(addresses=_strs(ep.get("addresses"), f"endpoints[{i}].addresses"), node_name=node))
    return EndpointSlice(namespace=ns, name=name, service_name=labels.get("kubernetes.io/service-name"),
                         endpoints=tuple(eps))


_READERS = {
    "Node": ("nodes", node_from_object),
    "Service": ("services", service_from_object),
    "EndpointSlice": ("endpoint_slices", endpoint_slice_from_object),
}

# Parts of API objects that routing never reads and that can be large (a
# Node's status.images alone is often tens of kilobytes).  The informer drops
# them before storing an object, so thousands of Nodes do not keep every
# node's image list in memory.  Nothing the readers above look at is here.
_BULK_STATUS = {"Node": ("images", "volumesInUse", "volumesAttached")}


def slim_object(obj: dict) -> dict:
    """Drop, in place, the bulky parts of OBJ that no reader uses; return OBJ."""
    meta = obj.get("metadata")
    if isinstance(meta, dict):
        meta.pop("managedFields", None)
    drop = _BULK_STATUS.get(obj.get("kind"))  # type: ignore[arg-type]
    if drop:
        status = obj.get("status")
        if isinstance(status, dict):
            for key in drop:
                status.pop(key, None)
    return obj


class ReadCache:
    """What ``snapshot_from_objects`` made of each object last time.

    The informer rebuilds the whole snapshot after each batch of watch
    events.  With a cache, an object that is the very dict seen last time
    (the informer's store keeps unchanged objects as they are) costs one
    dict lookup; an equal copy of it (after a relist) is recognised by kind,
    namespace, name and resourceVersion; only changed objects are read
    again.  Every unchanged value is then the very object of the previous
    snapshot, so comparing two snapshots is mostly identity checks.  Objects
    without a name or a resourceVersion (a hand-written cluster file) are
    always read.  A cached object must not be changed in place afterwards.
    One cache per source: the cached error lines carry that source's name.
    """

    __slots__ = ("_by_id", "_by_version")

    def __init__(self) -> None:
        # An entry: (object, (kind, namespace, name), resourceVersion, table, key,
        #            value or None, error line or None).  The object is kept so
        #            that its id cannot be reused while the entry lives.
        self._by_id: dict[int, tuple] = {}
        self._by_version: dict[tuple[str, str, str], tuple] = {}

    def __len__(self) -> int:
        return len(self._by_version)


def snapshot_from_objects(objects: Iterable[Any], where: str = "",
                          cache: ReadCache | None = None) -> Snapshot:
    """Read API objects (any order, other kinds ignored) into a Snapshot.

    ``where`` names the origin in error lines (a file path, "the API server").
    With ``cache``, objects unchanged since the previous call with the same
    cache are not read again (see ReadCache).  O(objects).
    """
    parts: dict[str, dict] = {"nodes": {}, "services": {}, "endpoint_slices": {}}
    errors: list[str] = []
    prefix = f"{where}: " if where else ""
    old_ids = cache._by_id if cache is not None else None
    old_versions = cache._by_version if cache is not None else {}
    new_ids: dict[int, tuple] = {}
    new_versions: dict[tuple[str, str, str], tuple] = {}
    for i, obj in enumerate(objects):
        if old_ids is not None:
            hit = old_ids.get(id(obj))
            if hit is not None and hit[0] is obj:
                new_ids[id(obj)] = new_versions[hit[1]] = hit
                if hit[6] is None:
                    parts[hit[3]][hit[4]] = hit[5]
                else:
                    errors.append(hit[6])
                continue
        if not isinstance(obj, dict):
            errors.append(f"{prefix}item {i}: not an object")
            continue
        kind = obj.get("kind")
        if kind not in _READERS:
            continue
        table, reader = _READERS[kind]
        meta = obj.get("metadata")
        label = meta.get("name") if isinstance(meta, dict) else None
        ckey = None
        if old_ids is not None and isinstance(label, str) and label:
            rv = meta.get("resourceVersion")  # type: ignore[union-attr]
            if isinstance(rv, str) and rv:
                ns = meta.get("namespace")  # type: ignore[union-attr]
                ckey = (kind, ns if isinstance(ns, str) else "", label)
                hit = old_versions.get(ckey)
                if hit is not None and hit[2] == rv:
                    hit = (obj, *hit[1:])
                    new_ids[id(obj)] = new_versions[ckey] = hit
                    if hit[6] is None:
                        parts[table][hit[4]] = hit[5]
                    else:
                        errors.append(hit[6])
                    continue
        try:
            value = reader(obj)
        except ObjectError as exc:
            line = f"{prefix}{kind} {label or f'(item {i})'}: {exc}"
            errors.append(line)
            if ckey is not None:
                new_ids[id(obj)] = new_versions[ckey] = (obj, ckey, rv, table, None, None, line)
            continue
        key = value.name if table == "nodes" else f"{value.namespace}/{value.name}"
        parts[table][key] = value
        if ckey is not None:
            new_ids[id(obj)] = new_versions[ckey] = (obj, ckey, rv, table, key, value, None)
    if cache is not None:
        cache._by_id = new_ids
        cache._by_version = new_versions
    return Snapshot(nodes=parts["nodes"], services=parts["services"],
                    endpoint_slices=parts["endpoint_slices"], errors=tuple(errors))
