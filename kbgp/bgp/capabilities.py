"""What kbgp advertises in its OPEN, and what two OPENs negotiate (RFC 5492).

``negotiate()`` folds both sides' capabilities into one ``Negotiated`` value
that the rest of the speaker reads: families, 4-octet AS, route refresh,
enhanced route refresh, graceful restart, extended messages, hold time.
"""
from __future__ import annotations

from dataclasses import dataclass, field

from kbgp.bgp.constants import AS_TRANS, MAX_EXTENDED_MESSAGE_LEN, MAX_MESSAGE_LEN, OpenError
from kbgp.bgp.messages import (
    IPV4_UNICAST,
    EnhancedRouteRefreshCap,
    ExtendedMessageCap,
    ExtendedNextHopCap,
    Family,
    FourOctetAsCap,
    GracefulRestartCap,
    MultiprotocolCap,
    Open,
    RouteRefreshCap,
    family_name,
)
from kbgp.errors import OpenMessageError


@dataclass(frozen=True, slots=True)
class LocalSettings:
    """The parts of a neighbour's configuration that shape the OPEN exchange."""

    asn: int
    router_id: str
    hold_time: int = 90
    families: tuple[Family, ...] = (IPV4_UNICAST,)
    peer_asn: int = 0  # 0: accept any AS the OPEN carries
    graceful_restart: bool = True
    restart_time: int = 120
    restarting: bool = False  # R bit: only after a real restart (RFC 4724 4.1)
    forwarding_preserved: bool = False  # F bit per family: only when routes were really kept
    extended_message: bool = True
    extended_next_hop: bool = False


def local_open(s: LocalSettings) -> Open:
    """The OPEN kbgp sends (RFC 4271 4.2, RFC 6793: AS_TRANS when the AS needs 4 octets)."""
    caps: list = [MultiprotocolCap(afi, safi) for afi, safi in s.families]
    caps += [RouteRefreshCap(), EnhancedRouteRefreshCap(), FourOctetAsCap(s.asn)]
    if s.extended_message:
        caps.append(ExtendedMessageCap())
    if s.extended_next_hop:
        caps.append(ExtendedNextHopCap(((1, 1, 2),)))
    if s.graceful_restart:
        caps.append(GracefulRestartCap(
            restart_state=s.restarting,
            notification=False,
            restart_time=s.restart_time,
            families=tuple((afi, safi, s.forwarding_preserved) for afi, safi in s.families),
        ))
    my_as = s.asn if s.asn <= 0xFFFF else AS_TRANS
    return Open(my_as=my_as, hold_time=s.hold_time, router_id=s.router_id, capabilities=tuple(caps))


@dataclass(frozen=True, slots=True)
class Negotiated:
    """The result of one OPEN exchange; read-only for the life of the session."""

    peer_asn: int
    peer_router_id: str
    local_asn: int
    hold_time: int
    keepalive_time: float
    families: frozenset[Family]
    asn4: bool
    route_refresh: bool
    enhanced_route_refresh: bool
    extended_message: bool
    peer_graceful_restart: GracefulRestartCap | None
    local_graceful_restart: bool
    peer_capability_codes: tuple[int, ...] = field(default=())

    @property
    def ibgp(self) -> bool:
        return self.peer_asn == self.local_asn

    @property
    def max_message_size(self) -> int:
        return MAX_EXTENDED_MESSAGE_LEN if self.extended_message else MAX_MESSAGE_LEN

    @property
    def graceful_restart(self) -> bool:
        """Both sides advertised GR: the peer keeps our routes across our restart and we keep its."""
        return self.peer_graceful_restart is not None and self.local_graceful_restart

    def peer_forwarding_preserved(self, family: Family) -> bool:
        gr = self.peer_graceful_restart
        if gr is None:
            return False
        return any((a, s) == family and f for a, s, f in gr.families)

    def describe(self) -> dict:
        return {
            "families": sorted(family_name(a, s) for a, s in self.families),
            "four_octet_as": self.asn4,
            "route_refresh": self.route_refresh,
            "enhanced_route_refresh": self.enhanced_route_refresh,
            "extended_message": self.extended_message,
            "graceful_restart": self.graceful_restart,
            "hold_time": self.hold_time,
            "keepalive_time": self.keepalive_time,
        }


def negotiate(local: LocalSettings, sent: Open, received: Open) -> Negotiated:
    """Check the peer's OPEN against our settings and fold both into Negotiated.

    Raises OpenMessageError with the RFC 4271 6.2 subcode: Bad Peer AS (2/2),
    Bad BGP Identifier (2/3, RFC 6286: an iBGP peer may not share our id),
    Unsupported Capability (2/7, no address family in common).
    """
    peer_asn = received.asn
    if local.peer_asn and peer_asn != local.peer_asn:
        raise OpenMessageError(
            2, OpenError.BAD_PEER_AS, peer_asn.to_bytes(4, "big") if peer_asn > 0xFFFF else
            peer_asn.to_bytes(2, "big"), reason=f"peer says AS {peer_asn}, configured AS is {local.peer_asn}")
    if peer_asn == local.asn and received.router_id == local.router_id:
        raise OpenMessageError(2, OpenError.BAD_BGP_IDENTIFIER,
                               reason=f"iBGP peer uses our own BGP identifier {local.router_id}")
    peer_families = set(received.families()) or {IPV4_UNICAST}  # RFC 4760: no MP cap means IPv4 unicast
    families = frozenset(set(local.families) & peer_families)
    if not families:
        raise OpenMessageError(
            2, OpenError.UNSUPPORTED_CAPABILITY, reason="no address family in common: we want "
            + ", ".join(family_name(*f) for f in local.families) + "; the peer offers "
            + ", ".join(family_name(*f) for f in sorted(peer_families)))
    hold = min(local.hold_time, received.hold_time)
    codes = tuple(c.code for c in received.capabilities)

    def both(cls) -> bool:
        return sent.capability(cls) is not None and received.capability(cls) is not None

    peer_gr = received.capability(GracefulRestartCap)
    return Negotiated(
        peer_asn=peer_asn,
        peer_router_id=received.router_id,
        local_asn=local.asn,
        hold_time=hold,
        keepalive_time=hold / 3 if hold else 0.0,
        families=families,
        asn4=both(FourOctetAsCap),
        route_refresh=both(RouteRefreshCap),
        enhanced_route_refresh=both(EnhancedRouteRefreshCap),
        extended_message=both(ExtendedMessageCap),
        peer_graceful_restart=peer_gr,  # type: ignore[arg-type]
        local_graceful_restart=sent.capability(GracefulRestartCap) is not None,
        peer_capability_codes=codes,
    )
