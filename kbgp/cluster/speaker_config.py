"""This node's plan as the speaker's configuration (pure).

The agent runs the same BGP engine as ``kbgp speaker``; this turns a
``NodePlan`` (kbgp.cluster.translate) into a ``SpeakerConfig`` whose
neighbours, originated routes and policy say what kube-router's GoBGP
policies say (kube-router-behaviour.md section 4), as data:

import (default accept)
  reject this node's own service IPs and the default routes (exact), and the
  ``node.bgp.customimportreject`` prefixes with every more-specific.
export (default reject)
  this node's pod CIDRs, unmodified, to node peers (mesh and route-reflector
  clients); on a route-reflector server, every learned route to node peers
  too (the speaker's iBGP rules decide what may be reflected);
  its service IPs and, with --advertise-pod-cidr, its pod CIDRs to external
  peers, with the node's communities added, its AS-path prepend and, with
  --override-nexthop, next-hop-self.

Applying a new plan is ``Speaker.reconfigure``: only what changed changes.
"""
from __future__ import annotations

from kbgp.cluster.translate import NodePlan
from kbgp.config import (DEFAULT_STALE_TIME, GracefulRestartConfig, ListenAddress, NeighborConfig,
                         OriginateConfig, SpeakerConfig)
from kbgp.policy.model import Match, Policy, PrefixRange, Rule

NODE_CLASSES = ("mesh", "rr-client")


def _exact(prefixes) -> tuple[PrefixRange, ...]:
    out = []
    for p in prefixes:
        plen = int(p.rsplit("/", 1)[1])
        out.append(PrefixRange(p, plen, plen))
    return tuple(out)


def _or_longer(prefixes) -> tuple[PrefixRange, ...]:
    out = []
    for p in prefixes:
        plen = int(p.rsplit("/", 1)[1])
        out.append(PrefixRange(p, plen, 128 if ":" in p else 32))
    return tuple(out)


def plan_policy(plan: NodePlan) -> Policy:
    to_mesh = [a.prefix for a in plan.advertisements if a.to_mesh]
    to_external = [a.prefix for a in plan.advertisements if a.to_external]
    sets = {
        "to-mesh": _exact(to_mesh),
        "to-external": _exact(to_external),
        "reject-exact": _exact(plan.import_reject_exact),
        "reject-or-longer": _or_longer(plan.import_reject_or_longer),
    }
    # An empty set matches nothing here (unlike GoBGP, where kube-router has to
    # leave such statements out): no rule needs to be dropped for it.
    import_rules = (
        Rule(Match(prefix_sets=("reject-exact", "reject-or-longer")), action="reject",
             name="own service IPs, default routes, customimportreject"),
    )
    export_rules = [
        Rule(Match(prefix_sets=("to-mesh",), peer_classes=NODE_CLASSES, source="local"),
             name="pod CIDRs to node peers"),
    ]
    if plan.rr_server:
        export_rules.append(Rule(Match(peer_classes=NODE_CLASSES, source="learned"),
                                 name="reflection (route-reflector server)"))
    prepend = (plan.prepend[0], plan.prepend[1]) if plan.prepend else None
    export_rules.append(Rule(
        Match(prefix_sets=("to-external",), peer_classes=("external",), source="local"),
        add_communities=tuple(plan.communities), prepend=prepend,
        next_hop_self=plan.next_hop_self_external,
        name="service IPs and pod CIDRs to external peers"))
    return Policy(prefix_sets=sets, import_rules=import_rules, export_rules=tuple(export_rules))


def _neighbor(plan: NodePlan, p) -> NeighborConfig:
    if p.kind == "mesh":
        peer_class = "rr-client" if p.route_reflector_client else "mesh"
        description = f"node {p.node}" if p.node else "node"
    else:
        peer_class = "external"
        description = f"external ({p.source})" if p.source else "external"
    return NeighborConfig(
        address=p.address, asn=p.asn, port=p.port, local_address=p.local_address,
        password=p.password, multihop_ttl=p.multihop_ttl, hold_time=p.hold_time,
        route_reflector_client=p.route_reflector_client, families=tuple(p.families),
        import_policy="accept", export_policy="reject", peer_class=peer_class,
        description=description)


def plan_to_speaker_config(plan: NodePlan, source: str = "cluster") -> SpeakerConfig:
    if plan.waiting:
        raise ValueError(f"no configuration while waiting: {plan.waiting}")
    gr = GracefulRestartConfig(
        enabled=plan.graceful_restart,
        restart_time=min(plan.graceful_restart_time, 4095),
        stale_time=DEFAULT_STALE_TIME,
        deferral_time=plan.graceful_restart_deferral_time)
    return SpeakerConfig(
        router_id=plan.router_id,
        asn=plan.asn,
        listen=tuple(ListenAddress(a, plan.port) for a in plan.listen_addresses),
        cluster_id=plan.cluster_id if plan.rr_server else None,
        kernel=True,
        hold_time=plan.hold_time,
        graceful_restart=gr,
        neighbors=tuple(_neighbor(plan, p) for p in plan.peers),
        originate=tuple(OriginateConfig(prefix=a.prefix, next_hop=a.next_hop)
                        for a in plan.advertisements),
        policy=plan_policy(plan),
        source=source,
    )
