"""Cluster snapshot + flags -> this node's BGP plan.  PURE: no I/O, no
logging, no clock; the same inputs always give the same (sorted) plan.

What the plan holds and why (kube-router's behaviour, with the changes the
seed and the issues ask for):

- **Local AS.**  ``--cluster-asn`` in full mesh (the default), else this
  node's ``kube-router.io/node.asn``.
- **Node peers** (``peers_of_other_nodes``).  Every other node, configured
  with the AS it must have (kube-router accepts any AS from a mesh peer;
  kbgp does not), except: nodes without an address, a node with this node's
  primary address, nodes whose primary address is of the other family, and
  with ``--nodes-full-mesh=false`` nodes of another (or no) AS.  Route
  reflection (RFC 4456): a ``rr.server=ID`` node peers with every other
  server, with plain nodes, and with the clients of the same ID (which are
  its route-reflector clients, cluster id ID); a ``rr.client=ID`` node
  peers only with the servers of the same ID; a plain node peers with plain
  nodes and servers.  The rule is symmetric, so both ends of a session
  always agree to it.
- **External peers.**  ``--peer-router-*`` and this node's
  ``kube-router.io/peers`` (else ``peer.ips`` + ``peer.asns`` ...) both
  apply; for an address in both, the node's entry is used (a warning says
  so).  Each is reached from this node's best address of its family unless
  it names a local address.
- **Export.**  Pod CIDRs to node peers, and to external peers with
  ``--advertise-pod-cidr``; service IPs to external peers only; with each
  route's next hop the node's best address of the route's family.
- **Import.**  Everything, except this node's own service IPs, the default
  routes, and ``customimportreject`` prefixes with their more-specifics.
"""
from __future__ import annotations

import ipaddress
from collections.abc import Iterable
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

from kbgp.cluster import annotations as ann
from kbgp.cluster.annotations import NodeAnnotations, PeerSpec, parse_role_annotations, show
from kbgp.cluster.flags import AgentFlags
from kbgp.cluster.model import EndpointSlice, Node, Service, Snapshot

IPV4_UNICAST = (1, 1)  # (AFI, SAFI), RFC 4760
IPV6_UNICAST = (2, 1)
_FAMILY_NAMES = {IPV4_UNICAST: "ipv4-unicast", IPV6_UNICAST: "ipv6-unicast"}
# The hold time GoBGP, and so kube-router, gives node peers (RFC 4271 10 suggests 90 s).
MESH_HOLD_TIME = 90
DEFAULT_ROUTES = ("0.0.0.0/0", "::/0")
ADVERTISED_SERVICE_TYPES = ("ClusterIP", "NodePort", "LoadBalancer")


# ------------------------------------------------------------------ output


@dataclass(frozen=True, slots=True)
class PeerPlan:
    address: str                 # neighbour address
    asn: int                     # the AS it must have
    kind: str                    # "mesh" (another node) | "external"
    port: int = 179
    local_address: str | None = None
    password: bytes | None = field(default=None, repr=False)   # decoded MD5 key
    multihop_ttl: int | None = None
    route_reflector_client: bool = False   # this node is an RR server and the peer is its client
    families: tuple[tuple[int, int], ...] = (IPV4_UNICAST,)
    hold_time: int = 90
    node: str | None = None      # the peer's node name for mesh peers
    source: str = ""             # "mesh", "flag", "annotation kube-router.io/peers", ...

    def describe(self) -> dict[str, Any]:
        return {
            "address": self.address,
            "asn": self.asn,
            "kind": self.kind,
            "port": self.port,
            "local-address": self.local_address,
            "password": "<set>" if self.password is not None else None,
            "multihop-ttl": self.multihop_ttl,
            "route-reflector-client": self.route_reflector_client,
            "families": [_FAMILY_NAMES.get(f, f"afi-{f[0]}-safi-{f[1]}") for f in self.families],
            "hold-time": self.hold_time,
            "node": self.node,
            "source": self.source,
        }


@dataclass(frozen=True, slots=True)
class Advertisement:
    prefix: str                  # "10.1.0.0/24", "10.96.0.10/32", "2001:db8::/64"
    next_hop: str                # the node's best address of the prefix's family
    kind: str                    # "pod-cidr" | "cluster-ip" | "external-ip" | "loadbalancer-ip"
    to_mesh: bool                # sent to mesh peers
    to_external: bool            # sent to external peers
    services: tuple[str, ...] = ()   # "ns/name" of the services behind a VIP

    def describe(self) -> dict[str, Any]:
        return {"prefix": self.prefix, "next-hop": self.next_hop, "kind": self.kind,
                "to-mesh": self.to_mesh, "to-external": self.to_external,
                "services": list(self.services)}


@dataclass(frozen=True, slots=True)
class NodePlan:
    node: str
    waiting: str | None          # set when the node cannot be planned yet
    router_id: str
    asn: int
    listen_addresses: tuple[str, ...]
    port: int
    rr_server: bool
    cluster_id: str | None       # dotted quad when rr_server
    peers: tuple[PeerPlan, ...]
    advertisements: tuple[Advertisement, ...]
    communities: tuple[int, ...]          # standard communities added towards external peers
    prepend: tuple[int, int] | None       # (asn, repeat) towards external peers
    next_hop_self_external: bool          # --override-nexthop
    import_reject_exact: tuple[str, ...]  # own VIPs (/32, /128) and 0.0.0.0/0, ::/0
    import_reject_or_longer: tuple[str, ...]   # customimportreject
    hold_time: int
    graceful_restart: bool
    graceful_restart_time: int
    graceful_restart_deferral_time: int
    node_addresses: tuple[str, ...]       # this node's addresses
    pod_cidrs: tuple[str, ...]            # this node's pod CIDRs
    errors: tuple[str, ...]               # every bad annotation element found
    warnings: tuple[str, ...]

    def describe(self) -> dict[str, Any]:
        """The plan as plain JSON-able data; passwords are "<set>"."""
        return {
            "node": self.node,
            "waiting": self.waiting,
            "router-id": self.router_id,
            "asn": self.asn,
            "listen-addresses": list(self.listen_addresses),
            "port": self.port,
            "rr-server": self.rr_server,
            "cluster-id": self.cluster_id,
            "peers": [p.describe() for p in self.peers],
            "advertisements": [a.describe() for a in self.advertisements],
            "communities": [f"{c >> 16}:{c & 0xFFFF}" for c in self.communities],
            "prepend": (None if self.prepend is None
                        else {"asn": self.prepend[0], "repeat": self.prepend[1]}),
            "next-hop-self-external": self.next_hop_self_external,
            "import-reject-exact": list(self.import_reject_exact),
            "import-reject-or-longer": list(self.import_reject_or_longer),
            "hold-time": self.hold_time,
            "graceful-restart": self.graceful_restart,
            "graceful-restart-time": self.graceful_restart_time,
            "graceful-restart-deferral-time": self.graceful_restart_deferral_time,
            "node-addresses": list(self.node_addresses),
            "pod-cidrs": list(self.pod_cidrs),
            "errors": list(self.errors),
            "warnings": list(self.warnings),
        }


# ------------------------------------------------------------------ addresses


@dataclass(frozen=True, slots=True)
class NodeAddresses:
    """A node's addresses as kube-router picks them (behaviour 3.1)."""

    primary: str | None          # first InternalIP, else first ExternalIP
    best4: str | None            # primary if IPv4, else first internal, else first external IPv4
    best6: str | None
    all: tuple[str, ...]         # every InternalIP and ExternalIP, API order, no duplicates
    invalid: tuple[str, ...] = ()  # addresses that are not IPs

    def best(self, version: int) -> str | None:
        return self.best4 if version == 4 else self.best6

    def families(self) -> tuple[tuple[int, int], ...]:
        out = []
        if self.best4 is not None:
            out.append(IPV4_UNICAST)
        if self.best6 is not None:
            out.append(IPV6_UNICAST)
        return tuple(out)


def node_addresses(node: Node) -> NodeAddresses:
    return _node_addresses(node.addresses)


# Translation runs on every cluster change and parses the same texts again;
# these memos keep it near-linear for thousands of nodes and services.  They
# are pure functions of their (string) arguments, so caching them changes
# nothing but the time taken.
_MEMO = 1 << 16


@lru_cache(maxsize=_MEMO)
def _addr(text: str) -> tuple[int, int, str] | None:
    """An IP address's (version, integer value, canonical text), or None."""
    try:
        ip = ipaddress.ip_address(text)
    except ValueError:
        return None
    return ip.version, int(ip), str(ip)


@lru_cache(maxsize=_MEMO)
def _node_addresses(addresses: tuple[tuple[str, str], ...]) -> NodeAddresses:
    internal: list[tuple[int, int, str]] = []
    external: list[tuple[int, int, str]] = []
    invalid: list[str] = []
    for kind, text in addresses:
        if kind not in ("InternalIP", "ExternalIP"):
            continue
        ip = _addr(text)
        if ip is None:
            invalid.append(text)
            continue
        (internal if kind == "InternalIP" else external).append(ip)
    ordered = internal + external
    primary = ordered[0] if ordered else None

    def best(version: int) -> str | None:
        if primary is not None and primary[0] == version:
            return primary[2]
        for ip in ordered:
            if ip[0] == version:
                return ip[2]
        return None

    return NodeAddresses(primary=None if primary is None else primary[2], best4=best(4),
                         best6=best(6), all=tuple(dict.fromkeys(ip[2] for ip in ordered)),
                         invalid=tuple(invalid))


@lru_cache(maxsize=_MEMO)
def _roles(name: str, asn: str | None, server: str | None, client: str | None) -> NodeAnnotations:
    texts = ((ann.NODE_ASN, asn), (ann.RR_SERVER, server), (ann.RR_CLIENT, client))
    return parse_role_annotations(name, {k: v for k, v in texts if v is not None})


def roles_of(node: Node) -> NodeAnnotations:
    """A node's AS and route-reflector role from its annotations."""
    a = node.annotations
    return _roles(node.name, a.get(ann.NODE_ASN), a.get(ann.RR_SERVER), a.get(ann.RR_CLIENT))


def _version(address: str) -> int:
    ip = _addr(address)
    assert ip is not None
    return ip[0]


def generate_router_id(address: str) -> str:
    """``--router-id=generate``: FNV-1a 32-bit over the address's 16-byte form
    (IPv4 as ``::ffff:a.b.c.d``), as a dotted quad (kube-router's rule)."""
    ip = ipaddress.ip_address(address)
    data = (ipaddress.IPv6Address(b"\0" * 10 + b"\xff\xff" + ip.packed) if ip.version == 4
            else ip).packed
    h = 0x811C9DC5  # FNV-1a offset basis
    for byte in data:
        h ^= byte
        h = (h * 0x01000193) & 0xFFFFFFFF  # FNV prime
    return str(ipaddress.IPv4Address(h))


def _ip_key(text: str) -> tuple[int, int, str]:
    ip = _addr(text)
    return (9, 0, text) if ip is None else ip


@lru_cache(maxsize=_MEMO)
def _prefix_key(text: str) -> tuple[int, int, int]:
    net = ipaddress.ip_network(text)
    return (net.version, int(net.network_address), net.prefixlen)


def _dedupe(items: Iterable[str]) -> tuple[str, ...]:
    return tuple(dict.fromkeys(items))


# ------------------------------------------------------------------ node peers


def peers_of_other_nodes(snapshot: Snapshot, flags: AgentFlags, me: Node, my_addrs: NodeAddresses,
                         my_roles: NodeAnnotations, asn: int
                         ) -> tuple[tuple[PeerPlan, ...], tuple[str, ...], tuple[str, ...]]:
    """This node's sessions with the other nodes -> (peers, errors, warnings).

    Behaviour 3.4, with the route-reflector rule of the seed (cluster ids are
    compared) and peers configured with the AS they must have.
    """
    if not flags.enable_ibgp:
        return (), (), ()
    errors: list[str] = []
    warnings: list[str] = []
    peers: dict[str, PeerPlan] = {}
    assert my_addrs.primary is not None
    my_version = _version(my_addrs.primary)
    my_server, my_client = my_roles.rr_server, my_roles.rr_client
    for name in sorted(snapshot.nodes):
        if name == me.name:
            continue
        other = snapshot.nodes[name]
        addrs = node_addresses(other)
        roles = roles_of(other)
        errors.extend(roles.errors)
        if addrs.primary is None:
            warnings.append(f"node {name} has no InternalIP or ExternalIP address; it is not "
                            f"peered with")
            continue
        if addrs.primary == my_addrs.primary:
            warnings.append(f"node {name} has this node's address {addrs.primary}; it is not "
                            f"peered with")
            continue
        # Route reflection (RFC 4456).  A node with both annotations is a
        # server (parse_role_annotations drops the client id).
        if my_client is not None:
            if roles.rr_server != my_client:
                continue  # a client peers only with the servers of its cluster id
        elif my_server is not None:
            if roles.rr_client is not None and roles.rr_client != my_server:
                continue  # the clients of another cluster id
        elif roles.rr_client is not None:
            continue  # a plain node peers with plain nodes and servers only
        if not flags.nodes_full_mesh:
            if roles.asn is None:
                if ann.NODE_ASN not in other.annotations:
                    warnings.append(f"node {name} has no {ann.NODE_ASN} annotation "
                                    f"(--nodes-full-mesh=false); it is not peered with")
                continue
            if roles.asn != asn:
                continue  # only nodes of the same AS peer
        version = _version(addrs.primary)
        if version != my_version:
            warnings.append(f"node {name}'s primary address {addrs.primary} is IPv{version}, this "
                            f"node's is IPv{my_version}; it is not peered with")
            continue
        if addrs.primary in peers:
            warnings.append(f"node {name} has the address {addrs.primary} of node "
                            f"{peers[addrs.primary].node}; it is not peered with")
            continue
        peers[addrs.primary] = PeerPlan(
            address=addrs.primary,
            asn=asn,
            kind="mesh",
            port=flags.bgp_port,
            local_address=my_addrs.primary,
            route_reflector_client=my_server is not None and roles.rr_client == my_server,
            families=addrs.families(),
            hold_time=MESH_HOLD_TIME,
            node=name,
            source="mesh",
        )
    return tuple(peers.values()), tuple(errors), tuple(warnings)


# ------------------------------------------------------------------ external peers


def _node_peer_specs(me: Node) -> tuple[tuple[PeerSpec, ...], str, list[str], list[str]]:
    """This node's own external peers -> (specs, source, errors, warnings)."""
    a = me.annotations
    errors: list[str] = []
    warnings: list[str] = []
    if ann.PEERS in a:
        parsed = ann.parse_peers_yaml(me.name, a[ann.PEERS])
        errors.extend(parsed.errors)
        warnings.extend(parsed.warnings)
        old = [k for k in ann.PEER_LIST_KEYS if k in a]
        if old:
            warnings.append(f"node {me.name}: annotations {', '.join(old)} are ignored: "
                            f"{ann.PEERS} is set and takes precedence")
        return parsed.value, f"annotation {ann.PEERS}", errors, warnings
    parsed = ann.parse_peer_lists(me.name, a)
    errors.extend(parsed.errors)
    warnings.extend(parsed.warnings)
    return parsed.value, f"annotation {ann.PEER_IPS}", errors, warnings


def _external_peers(flags: AgentFlags, me: Node, my_addrs: NodeAddresses,
                    errors: list[str], warnings: list[str]) -> list[PeerPlan]:
    specs: dict[str, tuple[PeerSpec, str]] = {}
    for i, address in enumerate(flags.peer_router_ips):
        specs[address] = (PeerSpec(
            address=address,
            asn=flags.peer_router_asns[i],
            port=flags.peer_router_ports[i] if flags.peer_router_ports else 179,
            password=flags.peer_router_passwords[i] if flags.peer_router_passwords else None,
        ), "flag")
    node_specs, source, errs, warns = _node_peer_specs(me)
    errors.extend(errs)
    warnings.extend(warns)
    for spec in node_specs:
        if spec.address in specs:
            warnings.append(f"node {me.name}: peer {spec.address} is in --peer-router-ips and in "
                            f"{source.split(' ', 1)[1]}; the annotation's entry is used")
        specs[spec.address] = (spec, source)
    families = my_addrs.families()
    out = []
    for address, (spec, source) in specs.items():
        version = _version(address)
        if address in my_addrs.all:
            warnings.append(f"external peer {address} ({source}) is this node's own address; it "
                            f"is not peered with")
            continue
        local = spec.local_address or my_addrs.best(version)
        if local is None:
            warnings.append(f"external peer {address} ({source}) is IPv{version} but this node "
                            f"has no IPv{version} address; it is not peered with")
            continue
        out.append(PeerPlan(
            address=address,
            asn=spec.asn,
            kind="external",
            port=spec.port,
            local_address=local,
            password=spec.password,
            multihop_ttl=flags.peer_router_multihop_ttl,
            families=families,
            hold_time=flags.bgp_holdtime,
            source=source,
        ))
    return out


# ------------------------------------------------------------------ advertisements


def _own_pod_cidrs(me: Node, errors: list[str], warnings: list[str]) -> list[str]:
    """``kube-router.io/pod-cidrs``, else spec.podCIDRs (behaviour 2.3)."""
    text = me.annotations.get(ann.POD_CIDRS)
    if text is not None:
        parsed = ann.parse_pod_cidrs(me.name, text)
        errors.extend(parsed.errors)
        warnings.extend(parsed.warnings)
        if parsed.value:
            return list(parsed.value)
        if me.pod_cidrs:
            warnings.append(f"node {me.name}: annotation {ann.POD_CIDRS} holds no usable CIDR; "
                            f"spec.podCIDRs is used")
    out: list[str] = []
    for i, cidr in enumerate(me.pod_cidrs, 1):
        try:
            net = ipaddress.ip_network(cidr, strict=False)
        except ValueError:
            warnings.append(f"node {me.name}: spec.podCIDRs element {i} {show(cidr)} is not a "
                            f"CIDR; it is not advertised")
            continue
        if str(net) not in out:
            out.append(str(net))
    return out


def _slices_by_service(snapshot: Snapshot) -> dict[str, list[EndpointSlice]]:
    index: dict[str, list[EndpointSlice]] = {}
    for s in snapshot.endpoint_slices.values():
        if s.service_key is not None:
            index.setdefault(s.service_key, []).append(s)
    return index


def _has_local_endpoint(slices: list[EndpointSlice], me: str, my_ips: frozenset[str]) -> bool:
    """An endpoint on this node: its nodeName, or (without one) one of its
    addresses is this node's (behaviour 4.4; readiness is not checked)."""
    for s in slices:
        for ep in s.endpoints:
            if ep.node_name is not None:
                if ep.node_name == me:
                    return True
            elif any(a in my_ips for a in ep.addresses):
                return True
    return False


@lru_cache(maxsize=1024)
def _ranges(ranges: tuple[str, ...]) -> tuple[tuple[int, int, int], ...]:
    """CIDRs -> (version, first, last) integer intervals."""
    out = []
    for r in ranges:
        net = ipaddress.ip_network(r)
        out.append((net.version, int(net.network_address), int(net.broadcast_address)))
    return tuple(out)


def _in_ranges(ip: tuple[int, int, str], ranges: tuple[str, ...]) -> bool:
    version, value, _ = ip
    return any(v == version and first <= value <= last for v, first, last in _ranges(ranges))


@dataclass(slots=True)
class _Vip:
    kind: str
    services: set[str]


def _service_vips(snapshot: Snapshot, flags: AgentFlags, me: Node, my_addrs: NodeAddresses,
                  errors: list[str], warnings: list[str]) -> dict[str, _Vip]:
    """This node's service IPs to advertise (behaviour 4.4), per service: a
    service that cannot be evaluated affects only itself (#1917 fixed)."""
    index = _slices_by_service(snapshot)
    my_ips = frozenset(my_addrs.all)
    vips: dict[str, _Vip] = {}
    for key in sorted(snapshot.services):
        svc = snapshot.services[key]
        for ip, kind in _one_service(svc, key, index.get(key), flags, me.name, my_ips, my_addrs,
                                     errors, warnings):
            vip = vips.get(ip)
            if vip is None:
                vips[ip] = _Vip(kind, {key})
            else:
                vip.services.add(key)
    return vips


def _one_service(svc: Service, key: str, slices: list[EndpointSlice] | None, flags: AgentFlags,
                 me: str, my_ips: frozenset[str], my_addrs: NodeAddresses,
                 errors: list[str], warnings: list[str]) -> list[tuple[str, str]]:
    """One service's IPs this node advertises -> [(ip, kind)]."""
    if svc.type not in ADVERTISED_SERVICE_TYPES:
        return []
    if not svc.cluster_ips or any(ip in ("", "None") for ip in svc.cluster_ips):
        return []  # headless (or not allocated yet): nothing to advertise
    a = svc.annotations

    def effective(anno: str, default: bool) -> bool:
        if anno not in a:
            return default
        parsed = ann.parse_service_bool(key, anno, a[anno])
        errors.extend(parsed.errors)
        return parsed.value

    adv_cluster = effective(ann.SVC_ADVERTISE_CLUSTER_IP, flags.advertise_cluster_ip)
    adv_external = effective(ann.SVC_ADVERTISE_EXTERNAL_IP, flags.advertise_external_ip)
    adv_lb = (svc.type == "LoadBalancer"
              and effective(ann.SVC_ADVERTISE_LB_IP, flags.advertise_loadbalancer_ip)
              and ann.SVC_SKIP_LB_IPS not in a)  # presence, any value (deprecated)
    if not (adv_cluster or adv_external or adv_lb):
        return []
    external_local = (svc.external_traffic_policy == "Local"
                      or (ann.SVC_LOCAL in a and effective(ann.SVC_LOCAL, False)))
    internal_local = svc.internal_traffic_policy == "Local"
    local: bool | None = None
    if (adv_cluster and internal_local) or ((adv_external or adv_lb) and external_local):
        if not slices:
            warnings.append(f"service {key}: no EndpointSlice, so whether this node has a local "
                            f"endpoint is unknown; its IPs that need one (traffic policy Local) "
                            f"are not advertised")
        else:
            local = _has_local_endpoint(slices, me, my_ips)

    def usable(kind: str, text: str) -> tuple[int, int, str] | None:
        ip = _addr(text)
        if ip is None:
            warnings.append(f"service {key}: {kind} {show(text)} is not an IP address; it is not "
                            f"advertised")
            return None
        if my_addrs.best(ip[0]) is None:
            warnings.append(f"service {key}: {kind} {ip[2]} is IPv{ip[0]} but this node has no "
                            f"IPv{ip[0]} address for its next hop; it is not advertised")
            return None
        return ip

    def validated(kind: str, ip: tuple[int, int, str], allowed: tuple[str, ...],
                  flag: str) -> bool:
        # kube-router 2.8+ service IP validation: with strict validation an
        # external or load-balancer IP must be inside its range and outside
        # the cluster IP range.
        if not flags.strict_external_ip_validation:
            return True
        if not _in_ranges(ip, allowed):
            warnings.append(f"service {key}: {kind} {ip[2]} is outside {flag}; it is not advertised "
                            f"(--strict-external-ip-validation)")
            return False
        if _in_ranges(ip, flags.service_cluster_ip_range):
            warnings.append(f"service {key}: {kind} {ip[2]} is inside --service-cluster-ip-range; it "
                            f"is not advertised (--strict-external-ip-validation)")
            return False
        return True

    out: list[tuple[str, str]] = []
    if adv_cluster and not (internal_local and not local):
        for text in svc.cluster_ips:
            ip = usable("cluster IP", text)
            if ip is not None:
                out.append((ip[2], "cluster-ip"))
    if external_local and not local:
        return out
    if adv_external:
        for text in svc.external_ips:
            ip = usable("external IP", text)
            if ip is not None and validated("external IP", ip, flags.service_external_ip_range,
                                            "--service-external-ip-range"):
                out.append((ip[2], "external-ip"))
    if adv_lb:
        for text, mode in svc.lb_ingress:
            if mode == "Proxy":
                continue  # the load balancer proxies: the IP is not routed to the nodes
            ip = usable("load-balancer IP", text)
            if ip is not None and validated("load-balancer IP", ip, flags.loadbalancer_ip_range,
                                            "--loadbalancer-ip-range"):
                out.append((ip[2], "loadbalancer-ip"))
    return out


# ------------------------------------------------------------------ the plan


def _waiting(node: str, why: str, flags: AgentFlags, addrs: tuple[str, ...] = (),
             errors: Iterable[str] = (), warnings: Iterable[str] = ()) -> NodePlan:
    return NodePlan(
        node=node, waiting=why, router_id="",
        asn=flags.cluster_asn if flags.nodes_full_mesh else 0,
        listen_addresses=(), port=flags.bgp_port, rr_server=False, cluster_id=None, peers=(),
        advertisements=(), communities=(), prepend=None,
        next_hop_self_external=flags.override_nexthop, import_reject_exact=(),
        import_reject_or_longer=(), hold_time=flags.bgp_holdtime,
        graceful_restart=flags.bgp_graceful_restart,
        graceful_restart_time=flags.bgp_graceful_restart_time,
        graceful_restart_deferral_time=flags.bgp_graceful_restart_deferral_time,
        node_addresses=addrs, pod_cidrs=(), errors=_dedupe(errors), warnings=_dedupe(warnings),
    )


def translate(snapshot: Snapshot, flags: AgentFlags, node_name: str) -> NodePlan:
    """This node's BGP plan from the cluster state and the flags."""
    me = snapshot.nodes.get(node_name)
    if me is None:
        return _waiting(node_name, f"node {node_name} is not in the cluster state", flags)
    errors: list[str] = []
    warnings: list[str] = []
    addrs = node_addresses(me)
    for text in addrs.invalid:
        warnings.append(f"node {me.name}: status.addresses {show(text)} is not an IP address")
    if addrs.primary is None:
        return _waiting(me.name, f"node {me.name} has no InternalIP or ExternalIP address yet",
                        flags, errors=errors, warnings=warnings)
    if flags.enable_ipv4 and addrs.best4 is None:
        warnings.append(f"--enable-ipv4 is set but node {me.name} has no IPv4 address")
    if flags.enable_ipv6 and addrs.best6 is None:
        warnings.append(f"--enable-ipv6 is set but node {me.name} has no IPv6 address")
    roles = roles_of(me)
    errors.extend(roles.errors)
    warnings.extend(roles.warnings)

    # Router id (behaviour 3.2).
    if flags.router_id == "generate":
        router_id = generate_router_id(addrs.primary)
    elif flags.router_id:
        router_id = flags.router_id
    elif addrs.best4 is not None:
        router_id = addrs.best4
    else:
        why = (f"node {me.name} has only IPv6 addresses and no --router-id is set; a router id "
               f"is 4 bytes: set --router-id=generate or --router-id=<an IPv4 address>")
        return _waiting(me.name, why, flags, addrs.all, errors, warnings)

    # Local AS.
    if flags.nodes_full_mesh:
        asn = flags.cluster_asn
    elif roles.asn is not None:
        asn = roles.asn
    else:
        why = (f"node {me.name} has no valid {ann.NODE_ASN} annotation, which "
               f"--nodes-full-mesh=false needs")
        return _waiting(me.name, why, flags, addrs.all, errors, warnings)

    # Peers: other nodes, then external peers (an explicit external entry
    # wins over a node peer at the same address).
    mesh, errs, warns = peers_of_other_nodes(snapshot, flags, me, addrs, roles, asn)
    errors.extend(errs)
    warnings.extend(warns)
    peers: dict[str, PeerPlan] = {p.address: p for p in mesh}
    for p in _external_peers(flags, me, addrs, errors, warnings):
        if p.address in peers:
            warnings.append(f"external peer {p.address} ({p.source}) is node "
                            f"{peers[p.address].node}'s address; it is peered with as external")
        peers[p.address] = p

    # Advertisements.
    pod_cidrs = _own_pod_cidrs(me, errors, warnings)
    ads: dict[str, Advertisement] = {}
    for cidr in pod_cidrs:
        version = ipaddress.ip_network(cidr).version
        next_hop = addrs.best(version)
        if next_hop is None:
            warnings.append(f"node {me.name}: pod CIDR {cidr} is IPv{version} but the node has no "
                            f"IPv{version} address for its next hop; it is not advertised")
            continue
        ads[cidr] = Advertisement(prefix=cidr, next_hop=next_hop, kind="pod-cidr", to_mesh=True,
                                  to_external=flags.advertise_pod_cidr)
    vips = _service_vips(snapshot, flags, me, addrs, errors, warnings)
    vip_prefixes = []
    for ip, vip in vips.items():
        version = _version(ip)
        prefix = f"{ip}/{32 if version == 4 else 128}"
        vip_prefixes.append(prefix)
        services = tuple(sorted(vip.services))
        if prefix in ads:  # a pod CIDR of one address that is also a service IP
            old = ads[prefix]
            ads[prefix] = Advertisement(prefix, old.next_hop, old.kind, old.to_mesh, True, services)
            continue
        ads[prefix] = Advertisement(prefix=prefix, next_hop=addrs.best(version) or "",
                                    kind=vip.kind, to_mesh=False, to_external=True,
                                    services=services)

    # Export attributes and import rules of this node's annotations.
    a = me.annotations
    communities: tuple[int, ...] = ()
    if ann.COMMUNITIES in a:
        parsed_c = ann.parse_communities(me.name, a[ann.COMMUNITIES])
        communities = parsed_c.value
        errors.extend(parsed_c.errors)
        warnings.extend(parsed_c.warnings)
    parsed_p = ann.parse_path_prepend(me.name, a)
    errors.extend(parsed_p.errors)
    warnings.extend(parsed_p.warnings)
    reject_longer: tuple[str, ...] = ()
    if ann.CUSTOM_IMPORT_REJECT in a:
        parsed_r = ann.parse_custom_import_reject(me.name, a[ann.CUSTOM_IMPORT_REJECT])
        reject_longer = tuple(sorted(parsed_r.value, key=_prefix_key))
        errors.extend(parsed_r.errors)
        warnings.extend(parsed_r.warnings)
    reject_exact = tuple(sorted(set(vip_prefixes) | set(DEFAULT_ROUTES), key=_prefix_key))

    # Listen addresses (behaviour 3.3).
    listen = [x for x in (addrs.best4, addrs.best6) if x is not None]
    if ann.BGP_LOCAL_ADDRESSES in a:
        parsed_l = ann.parse_bgp_local_addresses(me.name, a[ann.BGP_LOCAL_ADDRESSES])
        errors.extend(parsed_l.errors)
        warnings.extend(parsed_l.warnings)
        chosen = []
        for ip in parsed_l.value:
            version = _version(ip)
            if addrs.best(version) is None:
                warnings.append(f"node {me.name}: annotation {ann.BGP_LOCAL_ADDRESSES}: {ip} is "
                                f"IPv{version} but the node has no IPv{version} address; it is "
                                f"not listened on")
                continue
            chosen.append(ip)
        if chosen:
            listen = chosen
        else:
            warnings.append(f"node {me.name}: annotation {ann.BGP_LOCAL_ADDRESSES} leaves no "
                            f"address; the node's addresses are listened on")

    return NodePlan(
        node=me.name,
        waiting=None,
        router_id=router_id,
        asn=asn,
        listen_addresses=tuple(listen),
        port=flags.bgp_port,
        rr_server=roles.rr_server is not None,
        cluster_id=roles.rr_server,
        peers=tuple(sorted(peers.values(), key=lambda p: _ip_key(p.address))),
        advertisements=tuple(sorted(ads.values(), key=lambda x: _prefix_key(x.prefix))),
        communities=communities,
        prepend=parsed_p.value,
        next_hop_self_external=flags.override_nexthop,
        import_reject_exact=reject_exact,
        import_reject_or_longer=reject_longer,
        hold_time=flags.bgp_holdtime,
        graceful_restart=flags.bgp_graceful_restart,
        graceful_restart_time=flags.bgp_graceful_restart_time,
        graceful_restart_deferral_time=flags.bgp_graceful_restart_deferral_time,
        node_addresses=addrs.all,
        pod_cidrs=tuple(sorted(pod_cidrs, key=_prefix_key)),
        errors=_dedupe(errors),
        warnings=_dedupe(warnings),
    )

