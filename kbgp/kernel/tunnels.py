"""Overlay tunnels and policy routing, as kube-router does them (issue 6).

Injection decision per next hop (kube-router-behaviour.md 5.2): with the
overlay on and type ``full`` every remote next hop gets a tunnel; with type
``subnet`` only next hops outside the on-link subnets of the node's own
addresses do; a next hop inside one is routed directly ``via`` it; with the
overlay off a next hop outside them gets no route at all (the underlay
routes it).

Tunnels (5.3): ``tun-`` + the first 11 hex digits of SHA-256 over the next
hop's text without dots and colons, so kube-router's tunnels are found and
adopted; an ``ipip`` (IPv4) or ``ip6tnl`` (IPv6) link from the node address
to the next hop, brought up at creation; with ``overlay_encap fou`` a GUE
FoU port (generic netlink family ``fou``) and the tunnel encapsulated in GUE
to that port, TTL 225 like kube-router.  Per tunnel a route to the endpoint
in table 77; per pod CIDR a rule ``from <cidr> lookup 77``.

Every request is built by a pure function below from pyroute2's message
classes (tests check their exact attributes) and sent on kbgp's own socket
by kbgp.kernel.netlink.NetlinkChannel.  This module imports pyroute2 for the
message classes only.  Links, TunnelManager: called from the syncer's
netlink worker thread, never from the event loop.
"""

from __future__ import annotations

import enum
import errno as errno_mod
import hashlib
import ipaddress
import logging
import re
import socket
from dataclasses import dataclass, field

from pyroute2.netlink import ctrlmsg, genlmsg
from pyroute2.netlink.rtnl.fibmsg import fibmsg
from pyroute2.netlink.rtnl.ifaddrmsg import ifaddrmsg
from pyroute2.netlink.rtnl.ifinfmsg import ifinfmsg
from pyroute2.netlink.rtnl.rtmsg import rtmsg

from kbgp.errors import ConfigError, KernelError

log = logging.getLogger(__name__)

TUNNEL_TABLE = 77                 # kube-router's table "kube-router"
TUNNEL_KINDS = ("ipip", "ip6tnl")
FOU_TTL = 225                     # kube-router's TTL for FoU tunnels (sic)
OVERLAY_TYPES = ("subnet", "full")
OVERLAY_ENCAPS = ("ipip", "fou")
_NAME_RE = re.compile(r"^tun-[0-9a-f]{11}$")

# linux/rtnetlink.h, linux/if_link.h, linux/if_tunnel.h, linux/fou.h
RTM_NEWLINK, RTM_DELLINK, RTM_GETLINK = 16, 17, 18
RTM_GETADDR = 22
RTM_NEWROUTE, RTM_DELROUTE = 24, 25
RTM_NEWRULE, RTM_DELRULE, RTM_GETRULE = 32, 33, 34
GENL_ID_CTRL = 0x10
CTRL_CMD_GETFAMILY = 3
FOU_CMD_ADD, FOU_CMD_DEL = 1, 2
FOU_ENCAP_GUE = 2
TUNNEL_ENCAP_NONE, TUNNEL_ENCAP_FOU, TUNNEL_ENCAP_GUE = 0, 1, 2
IPPROTO_IPIP, IPPROTO_IPV6 = 4, 41
IFF_UP = 0x1
NLM_F_REPLACE, NLM_F_EXCL, NLM_F_CREATE = 0x100, 0x200, 0x400
RT_SCOPE_LINK = 253
RTN_UNICAST = 1
FR_ACT_TO_TBL = 1


# ---------------------------------------------------------------- configuration

@dataclass(frozen=True, slots=True)
class OverlayConfig:
    """kube-router's --enable-overlay, --overlay-type, --overlay-encap and
    --overlay-encap-port, with the node's own addresses (tunnel sources and
    the on-link check) and its pod CIDRs (the table-77 rules)."""

    enabled: bool
    type: str = "subnet"
    encap: str = "ipip"
    encap_port: int = 5555
    node_addresses: tuple[str, ...] = ()
    pod_cidrs: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if self.type not in OVERLAY_TYPES:
            raise ConfigError(f"overlay_type: {self.type!r} is not one of "
                              f"{', '.join(OVERLAY_TYPES)}")
        if self.encap not in OVERLAY_ENCAPS:
            raise ConfigError(f"overlay_encap: {self.encap!r} is not one of "
                              f"{', '.join(OVERLAY_ENCAPS)}")
        if (not isinstance(self.encap_port, int) or isinstance(self.encap_port, bool)
                or not 1024 <= self.encap_port <= 65535):
            raise ConfigError(f"overlay_encap_port: {self.encap_port!r} is not a port "
                              f"1024..65535")
        for a in self.node_addresses:
            try:
                ipaddress.ip_address(a)
            except ValueError:
                raise ConfigError(f"overlay node_addresses: {a!r} is not an IP address") from None
        for c in self.pod_cidrs:
            try:
                ipaddress.ip_network(c)
            except ValueError:
                raise ConfigError(f"overlay pod_cidrs: {c!r} is not a CIDR "
                                  f"(network address/length)") from None

    def node_address(self, version: int) -> str | None:
        """The node's first address of IP version 4 or 6 (the tunnel source
        and the ``src`` of routes over tunnels)."""
        for a in self.node_addresses:
            if ipaddress.ip_address(a).version == version:
                return a
        return None


class Decision(enum.Enum):
    DIRECT = "direct"      # dst via NH
    TUNNEL = "tunnel"      # dst dev tun-X src <node ip>
    SKIP = "skip"          # no route: the underlay routes it


# ---------------------------------------------------------------- pure functions

def tunnel_name(next_hop: str) -> str:
    """kube-router's tunnel name for a next hop: ``tun-`` + the first 11
    hex digits of SHA-256 over its canonical text without '.' and ':'."""
    try:
        text = str(ipaddress.ip_address(next_hop))
    except ValueError:
        raise ValueError(f"tunnel next hop {next_hop!r} is not an IP address") from None
    digest = hashlib.sha256(text.replace(".", "").replace(":", "").encode()).hexdigest()
    return "tun-" + digest[:11]


def is_tunnel_name(name: str) -> bool:
    return bool(_NAME_RE.match(name))


def same_subnet(next_hop: str, subnets) -> bool:
    """Is next_hop inside one of subnets (the on-link networks of the
    node's addresses)?"""
    nh = ipaddress.ip_address(next_hop)
    return any(nh.version == s.version and nh in s for s in subnets)


def decide(next_hop: str, overlay: OverlayConfig | None, subnets) -> Decision:
    """kube-router's injection decision (5.2) for one next hop.  Without an
    overlay configuration every route is installed via its next hop."""
    if overlay is None:
        return Decision.DIRECT
    same = same_subnet(next_hop, subnets)
    if overlay.enabled and (overlay.type == "full" or not same):
        return Decision.TUNNEL
    return Decision.DIRECT if same else Decision.SKIP


def warn_next_hop_mismatch(advertised: str, tunnel_address: str) -> None:
    """For the agent: --override-nexthop with the overlay on makes the other
    nodes learn ``advertised`` as this node's next hop and build their
    tunnels to it, not to ``tunnel_address`` (kube-router docs/bgp.md, PR
    #1025)."""
    log.warning("next hop mismatch: advertised_next_hop=%s tunnel_address=%s "
                "(--override-nexthop with the overlay on: other nodes build their tunnels "
                "to the advertised next hop, not to this node's tunnel address)",
                advertised, tunnel_address)


def build_link_request(name: str, local: str, remote: str, encap: str = "ipip",
                       port: int = 5555) -> ifinfmsg:
    """RTM_NEWLINK body of a tunnel: ipip (IPv4) or ip6tnl (IPv6, ip6ip6),
    up at creation; with encap "fou", GUE to ``port`` (source port chosen by
    the kernel) and TTL 225, as kube-router's
    ``ip link add NAME type ipip|ip6tnl remote R local L ttl 225 encap gue
    encap-sport auto encap-dport PORT mode ipip|ip6ip6``."""
    v6 = ipaddress.ip_address(remote).version == 6
    if ipaddress.ip_address(local).version != (6 if v6 else 4):
        raise ValueError(f"tunnel {name}: local {local} and remote {remote} are of "
                         f"different families")
    p = "IFLA_IP6TNL_" if v6 else "IFLA_IPIP_"
    data = [(p + "LOCAL", local), (p + "REMOTE", remote),
            (p + "PROTO", IPPROTO_IPV6 if v6 else IPPROTO_IPIP)]
    if encap == "fou":
        data += [(p + "TTL", FOU_TTL), (p + "ENCAP_TYPE", TUNNEL_ENCAP_GUE),
                 (p + "ENCAP_FLAGS", 0), (p + "ENCAP_SPORT", 0), (p + "ENCAP_DPORT", port)]
    elif encap != "ipip":
        raise ValueError(f"overlay_encap {encap!r} is not ipip or fou")
    msg = ifinfmsg()
    msg["family"] = socket.AF_UNSPEC
    msg["flags"] = IFF_UP
    msg["change"] = IFF_UP
    msg["attrs"] = [
        ("IFLA_IFNAME", name),
        ("IFLA_LINKINFO", {"attrs": [("IFLA_INFO_KIND", "ip6tnl" if v6 else "ipip"),
                                     ("IFLA_INFO_DATA", {"attrs": data})]}),
    ]
    return msg


def build_link_up(index: int) -> ifinfmsg:
    msg = ifinfmsg()
    msg["family"] = socket.AF_UNSPEC
    msg["index"] = index
    msg["flags"] = IFF_UP
    msg["change"] = IFF_UP
    return msg


def build_link_delete(index: int) -> ifinfmsg:
    msg = ifinfmsg()
    msg["family"] = socket.AF_UNSPEC
    msg["index"] = index
    return msg


class foumsg(genlmsg):
    """Generic netlink family "fou" (linux/fou.h)."""

    prefix = "FOU_ATTR_"
    nla_map = (
        ("FOU_ATTR_UNSPEC", "none"),
        ("FOU_ATTR_PORT", "be16"),
        ("FOU_ATTR_AF", "uint8"),
        ("FOU_ATTR_IPPROTO", "uint8"),
        ("FOU_ATTR_TYPE", "uint8"),
        ("FOU_ATTR_REMCSUM_NOPARTIAL", "flag"),
    )


def build_fou_request(cmd: int, port: int, family: int) -> foumsg:
    """FOU_CMD_ADD/DEL of a GUE receive port (``ip fou add port P gue``)."""
    msg = foumsg()
    msg["cmd"] = cmd
    msg["version"] = 0
    msg["attrs"] = [("FOU_ATTR_PORT", port), ("FOU_ATTR_AF", family)]
    if cmd == FOU_CMD_ADD:
        msg["attrs"].append(("FOU_ATTR_TYPE", FOU_ENCAP_GUE))
    return msg


def build_family_request(name: str) -> ctrlmsg:
    msg = ctrlmsg()
    msg["cmd"] = CTRL_CMD_GETFAMILY
    msg["version"] = 1
    msg["attrs"] = [("CTRL_ATTR_FAMILY_NAME", name)]
    return msg


def build_tunnel_route(next_hop: str, index: int, protocol: int) -> rtmsg:
    """``NH/32 (or /128) dev tun-X table 77`` with kbgp's protocol."""
    nh = ipaddress.ip_address(next_hop)
    msg = rtmsg()
    msg["family"] = socket.AF_INET if nh.version == 4 else socket.AF_INET6
    msg["dst_len"] = nh.max_prefixlen
    msg["table"] = TUNNEL_TABLE
    msg["proto"] = protocol
    msg["scope"] = RT_SCOPE_LINK
    msg["type"] = RTN_UNICAST
    msg["attrs"] = [("RTA_DST", str(nh)), ("RTA_OIF", index), ("RTA_TABLE", TUNNEL_TABLE)]
    return msg


def build_rule(cidr: str, protocol: int = 0) -> fibmsg:
    """``from <cidr> lookup 77`` (kube-router's policy rule per pod CIDR)."""
    net = ipaddress.ip_network(cidr)
    msg = fibmsg()
    msg["family"] = socket.AF_INET if net.version == 4 else socket.AF_INET6
    msg["src_len"] = net.prefixlen
    msg["table"] = TUNNEL_TABLE
    msg["action"] = FR_ACT_TO_TBL
    msg["attrs"] = [("FRA_SRC", str(net.network_address)), ("FRA_TABLE", TUNNEL_TABLE)]
    if protocol:
        msg["attrs"].append(("FRA_PROTOCOL", protocol))
    return msg


# ---------------------------------------------------------------- kernel access

@dataclass(frozen=True, slots=True)
class TunnelInfo:
    name: str
    index: int
    kind: str
    local: str | None
    remote: str | None
    encap_type: int
    encap_dport: int
    up: bool


def _linkinfo(msg) -> tuple[str | None, dict]:
    info = msg.get_attr("IFLA_LINKINFO")
    if info is None:
        return None, {}
    kind = info.get_attr("IFLA_INFO_KIND")
    data = info.get_attr("IFLA_INFO_DATA")
    attrs = {}
    if data is not None and not isinstance(data, (str, bytes)):
        for name, value in data.get("attrs", []):
            attrs[name.replace("IFLA_IP6TNL_", "").replace("IFLA_IPIP_", "")] = value
    return kind, attrs


class Links:
    """Link, address, rule, table-77 and FoU requests in one namespace.
    Owns its sockets (made by the caller inside the namespace)."""

    def __init__(self, route_channel, genl_channel=None) -> None:
        self.rt = route_channel
        self.genl = genl_channel
        self._fou_family: int | None = None

    def close(self) -> None:
        self.rt.close()
        if self.genl is not None:
            self.genl.close()

    # -- reading
    def addresses(self) -> list[tuple[str, int, int]]:
        """(address, prefix length, ifindex) of every interface address."""
        req = ifaddrmsg()
        req["family"] = socket.AF_UNSPEC
        out = []
        for m in self.rt.dump(req, RTM_GETADDR, ifaddrmsg, "addresses"):
            addr = m.get_attr("IFA_LOCAL") or m.get_attr("IFA_ADDRESS")
            if addr:
                out.append((addr, m["prefixlen"], m["index"]))
        return out

    def connected_subnets(self, node_addresses) -> list:
        """The on-link networks of the node's addresses (kube-router: look
        each node IP up on the local interfaces, take that entry's prefix)."""
        wanted = {str(ipaddress.ip_address(a)) for a in node_addresses}
        nets = []
        for addr, plen, _ in self.addresses():
            try:
                if str(ipaddress.ip_address(addr)) in wanted:
                    nets.append(ipaddress.ip_interface(f"{addr}/{plen}").network)
            except ValueError:
                continue
        return nets

    def links(self) -> dict[str, tuple[int, str | None, dict, bool]]:
        """name -> (index, kind, tunnel data, up)."""
        req = ifinfmsg()
        req["family"] = socket.AF_UNSPEC
        out = {}
        for m in self.rt.dump(req, RTM_GETLINK, ifinfmsg, "links"):
            name = m.get_attr("IFLA_IFNAME")
            kind, data = _linkinfo(m)
            out[name] = (m["index"], kind, data, bool(m["flags"] & IFF_UP))
        return out

    def tunnels(self) -> dict[str, TunnelInfo]:
        """The links named like kube-router's tunnels, with their kind and
        endpoints (any kind: the caller decides what it may touch)."""
        out = {}
        for name, (index, kind, data, up) in self.links().items():
            if not is_tunnel_name(name):
                continue
            out[name] = TunnelInfo(name, index, kind or "", data.get("LOCAL"), data.get("REMOTE"),
                                   int(data.get("ENCAP_TYPE") or 0),
                                   int(data.get("ENCAP_DPORT") or 0), up)
        return out

    def rules(self) -> list[tuple[int, str | None, int, int]]:
        """(family, source CIDR or None, table, action) of every rule."""
        out = []
        for family in (socket.AF_INET, socket.AF_INET6):
            req = fibmsg()
            req["family"] = family
            for m in self.rt.dump(req, RTM_GETRULE, fibmsg, "rules"):
                src = m.get_attr("FRA_SRC")
                table = m.get_attr("FRA_TABLE") or m["table"]
                cidr = f"{src}/{m['src_len']}" if src else None
                out.append((family, cidr, table, m["action"]))
        return out

    # -- writing
    def link_index(self, name: str) -> int:
        """The ifindex of link NAME (RTM_GETLINK by name)."""
        req = ifinfmsg()
        req["family"] = socket.AF_UNSPEC
        req["attrs"] = [("IFLA_IFNAME", name)]
        found = self.rt.request(req, RTM_GETLINK, 0, f"link {name}", parse=ifinfmsg)
        if not found:
            raise KernelError("link get", name, errno_mod.ENODEV, "no such link")
        return found[0]["index"]

    def create_tunnel(self, name: str, local: str, remote: str, encap: str, port: int) -> int:
        self.rt.request(build_link_request(name, local, remote, encap, port), RTM_NEWLINK,
                        NLM_F_CREATE | NLM_F_EXCL, f"link {name}")
        return self.link_index(name)

    def set_up(self, index: int, name: str) -> None:
        self.rt.request(build_link_up(index), RTM_NEWLINK, 0, f"link {name} up")

    def delete_link(self, index: int, name: str) -> None:
        self.rt.request(build_link_delete(index), RTM_DELLINK, 0, f"link {name}")

    def replace_tunnel_route(self, next_hop: str, index: int, protocol: int) -> None:
        self.rt.request(build_tunnel_route(next_hop, index, protocol), RTM_NEWROUTE,
                        NLM_F_CREATE | NLM_F_REPLACE, f"table {TUNNEL_TABLE} route {next_hop}")

    def add_rule(self, cidr: str, protocol: int) -> None:
        self.rt.request(build_rule(cidr, protocol), RTM_NEWRULE, NLM_F_CREATE | NLM_F_EXCL,
                        f"rule from {cidr} lookup {TUNNEL_TABLE}")

    def delete_rule(self, cidr: str) -> None:
        self.rt.request(build_rule(cidr), RTM_DELRULE, 0,
                        f"rule from {cidr} lookup {TUNNEL_TABLE}")

    def _fou(self) -> int:
        if self._fou_family is None:
            if self.genl is None:
                raise KernelError("fou", "generic netlink", errno_mod.ENOTSUP,
                                  "no generic netlink socket")
            try:
                reply = self.genl.request(build_family_request("fou"), GENL_ID_CTRL, 0,
                                          "generic netlink family fou", parse=ctrlmsg)
            except KernelError as e:
                raise KernelError("fou", "generic netlink family fou", e.errno,
                                  "the kernel has no fou module (needed by overlay_encap fou)"
                                  ) from None
            self._fou_family = reply[0].get_attr("CTRL_ATTR_FAMILY_ID")
        return self._fou_family

    def add_fou_port(self, port: int, family: int) -> None:
        try:
            self.genl.request(build_fou_request(FOU_CMD_ADD, port, family), self._fou(), 0,
                              f"fou port {port}")
        except KernelError as e:
            if e.errno != errno_mod.EEXIST:
                raise

    def delete_fou_port(self, port: int, family: int) -> None:
        try:
            self.genl.request(build_fou_request(FOU_CMD_DEL, port, family), self._fou(), 0,
                              f"fou port {port}")
        except KernelError as e:
            if e.errno not in (errno_mod.ENOENT, errno_mod.ESRCH, errno_mod.EINVAL):
                raise


@dataclass(slots=True)
class TunnelManager:
    """The overlay's kernel side: which next hops get a tunnel, the tunnels
    themselves, their table-77 routes and the pod CIDR rules.  Runs in the
    syncer's netlink thread."""

    links: Links
    overlay: OverlayConfig | None
    protocol: int = 17
    subnets: list = field(default_factory=list)
    tunnels: dict = field(default_factory=dict)      # name -> TunnelInfo (ours or adopted)
    _fou_ready: set = field(default_factory=set)

    def refresh(self) -> None:
        """Re-read the node's on-link subnets and the tunnels in the kernel."""
        if self.overlay is None:
            return
        self.subnets = self.links.connected_subnets(self.overlay.node_addresses)
        self.tunnels = {n: t for n, t in self.links.tunnels().items() if t.kind in TUNNEL_KINDS}

    def decide(self, next_hop: str) -> Decision:
        return decide(next_hop, self.overlay, self.subnets)

    def _matches(self, t: TunnelInfo, local: str, remote: str) -> bool:
        want_kind = "ip6tnl" if ipaddress.ip_address(remote).version == 6 else "ipip"
        if t.kind != want_kind or t.remote is None or t.local is None:
            return False
        if ipaddress.ip_address(t.remote) != ipaddress.ip_address(remote) \
                or ipaddress.ip_address(t.local) != ipaddress.ip_address(local):
            return False
        if self.overlay.encap == "fou":
            return t.encap_type == TUNNEL_ENCAP_GUE and t.encap_dport == self.overlay.encap_port
        return t.encap_type == TUNNEL_ENCAP_NONE

    def ensure(self, next_hop: str) -> tuple[int, str]:
        """The tunnel to next_hop, created (or re-created when its kind,
        endpoints or encapsulation differ), up, with its table-77 route:
        (ifindex, source address for routes over it)."""
        version = ipaddress.ip_address(next_hop).version
        local = self.overlay.node_address(version)
        if local is None:
            raise KernelError("tunnel", next_hop, errno_mod.EADDRNOTAVAIL,
                              f"the node has no IPv{version} address for the tunnel source")
        name = tunnel_name(next_hop)
        family = socket.AF_INET if version == 4 else socket.AF_INET6
        current = self.tunnels.get(name)          # as of the last refresh()
        if current is None:
            current = self.links.tunnels().get(name)
        if current is not None and current.kind not in TUNNEL_KINDS:
            raise KernelError("tunnel", name, errno_mod.EEXIST,
                              f"a {current.kind or 'untyped'} link of that name exists and is "
                              f"not a tunnel kbgp may replace")
        if current is not None and not self._matches(current, local, next_hop):
            log.info("tunnel re-created name=%s next_hop=%s reason=encapsulation or endpoints "
                     "differ (kind=%s encap_type=%s dport=%s)", name, next_hop, current.kind,
                     current.encap_type, current.encap_dport)
            self.links.delete_link(current.index, name)
            if self.overlay.encap == "ipip" and current.encap_type == TUNNEL_ENCAP_GUE:
                self.links.delete_fou_port(current.encap_dport or self.overlay.encap_port, family)
            current = None
        if current is None:
            if self.overlay.encap == "fou" and family not in self._fou_ready:
                self.links.add_fou_port(self.overlay.encap_port, family)
                self._fou_ready.add(family)
            index = self.links.create_tunnel(name, local, next_hop, self.overlay.encap,
                                             self.overlay.encap_port)
            log.info("tunnel created name=%s next_hop=%s local=%s encap=%s", name, next_hop,
                     local, self.overlay.encap)
        else:
            index = current.index
            if not current.up:
                self.links.set_up(index, name)
        self.links.replace_tunnel_route(next_hop, index, self.protocol)
        self.tunnels[name] = TunnelInfo(name, index, "ip6tnl" if version == 6 else "ipip",
                                        local, next_hop,
                                        TUNNEL_ENCAP_GUE if self.overlay.encap == "fou"
                                        else TUNNEL_ENCAP_NONE,
                                        self.overlay.encap_port if self.overlay.encap == "fou"
                                        else 0, True)
        return index, local

    def cleanup(self, needed: set[str]) -> list[str]:
        """Delete the tunnels (ipip/ip6tnl named tun-...) not in needed;
        their table-77 routes go with them.  Returns the names deleted."""
        removed = []
        for name, t in sorted(self.links.tunnels().items()):
            if name in needed or t.kind not in TUNNEL_KINDS:
                continue
            try:
                self.links.delete_link(t.index, name)
                removed.append(name)
                log.info("tunnel removed name=%s remote=%s reason=no route uses it", name,
                         t.remote)
            except KernelError as e:
                if e.errno != errno_mod.ENODEV:
                    log.error("tunnel removal failed name=%s error=%s", name, e)
            self.tunnels.pop(name, None)
        return removed

    def sync_rules(self) -> tuple[list[str], list[str]]:
        """Overlay on: a rule ``from <pod CIDR> lookup 77`` for each pod CIDR.
        Overlay off: those rules removed.  Returns (added, removed) CIDRs."""
        if self.overlay is None:
            return [], []
        present = {ipaddress.ip_network(c) for fam, c, table, action in self.links.rules()
                   if c and table == TUNNEL_TABLE and action == FR_ACT_TO_TBL}
        added, removed = [], []
        for cidr in self.overlay.pod_cidrs:
            net = ipaddress.ip_network(cidr)
            if self.overlay.enabled and net not in present:
                self.links.add_rule(str(net), self.protocol)
                added.append(str(net))
            elif not self.overlay.enabled and net in present:
                self.links.delete_rule(str(net))
                removed.append(str(net))
        return added, removed
