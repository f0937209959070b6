"""The cluster snapshot: the few fields of Nodes, Services and EndpointSlices
that BGP routing reads, as frozen values.

Both sources (the Kubernetes informer and ``--cluster-file``) hand raw API
objects (dicts, as the API's JSON or ``kubectl get -o yaml`` gives them) to
``snapshot_from_objects``, so the translation never sees where they came
from.  A malformed object is skipped with a message naming it; it never stops
the others from being read.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Iterable, Mapping

EMPTY: Mapping[str, str] = {}


@dataclass(frozen=True, slots=True)
class Node:
    name: str
    # status.addresses in API order: (type, address), e.g. ("InternalIP", "10.0.0.1").
    addresses: tuple[tuple[str, str], ...] = ()
    # spec.podCIDRs (with spec.podCIDR first when podCIDRs is absent).
    pod_cidrs: tuple[str, ...] = ()
    annotations: Mapping[str, str] = field(default_factory=dict)
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
    annotations: Mapping[str, str] = field(default_factory=dict)

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


def snapshot_from_objects(objects: Iterable[Any], where: str = "") -> Snapshot:
    """Read API objects (any order, other kinds ignored) into a Snapshot.

    ``where`` names the origin in error lines (a file path, "the API server").
    """
    parts: dict[str, dict] = {"nodes": {}, "services": {}, "endpoint_slices": {}}
    errors: list[str] = []
    prefix = f"{where}: " if where else ""
    for i, obj in enumerate(objects):
        if not isinstance(obj, dict):
            errors.append(f"{prefix}item {i}: not an object")
            continue
        kind = obj.get("kind")
        if kind not in _READERS:
            continue
        table, reader = _READERS[kind]
        label = (obj.get("metadata") or {}).get("name") if isinstance(obj.get("metadata"), dict) else None
        try:
            value = reader(obj)
        except ObjectError as exc:
            errors.append(f"{prefix}{kind} {label or f'(item {i})'}: {exc}")
            continue
        key = value.name if table == "nodes" else f"{value.namespace}/{value.name}"
        parts[table][key] = value
    return Snapshot(nodes=parts["nodes"], services=parts["services"],
                    endpoint_slices=parts["endpoint_slices"], errors=tuple(errors))
