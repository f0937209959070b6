"""Value types for the BGP messages other than UPDATE.

The compiled codec in ``kbgp._fast.wire`` decodes bytes into these and encodes
them back.  UPDATE lives in ``kbgp._fast.attrs`` because its prefixes stay in C
arrays.
"""
from __future__ import annotations

from dataclasses import dataclass, field

from kbgp.bgp.constants import (
    Afi,
    CapCode,
    ErrorCode,
    MsgType,
    Safi,
    error_name,
)

Family = tuple[int, int]  # (AFI, SAFI)
IPV4_UNICAST: Family = (Afi.IPV4, Safi.UNICAST)
IPV6_UNICAST: Family = (Afi.IPV6, Safi.UNICAST)


def family_name(afi: int, safi: int) -> str:
    if safi == Safi.UNICAST and afi in (Afi.IPV4, Afi.IPV6):
        return "ipv4-unicast" if afi == Afi.IPV4 else "ipv6-unicast"
    return f"afi-{afi}-safi-{safi}"


def parse_family(text: str) -> Family:
    """'ipv4' or 'ipv4-unicast' (likewise ipv6) -> (AFI, SAFI)."""
    name = text.strip().lower()
    if name in ("ipv4", "ipv4-unicast"):
        return IPV4_UNICAST
    if name in ("ipv6", "ipv6-unicast"):
        return IPV6_UNICAST
    raise ValueError(f"unknown address family {text!r}: expected ipv4 or ipv6")


# ----------------------------------------------------------------- capabilities


@dataclass(frozen=True, slots=True)
class Capability:
    """Base of the OPEN capabilities (RFC 5492)."""

    code: int

    @property
    def name(self) -> str:
        try:
            return CapCode(self.code).name.lower().replace("_", "-")
        except ValueError:
            return "unknown"

    def to_dict(self) -> dict:
        return {"code": self.code, "name": self.name}


@dataclass(frozen=True, slots=True)
class MultiprotocolCap(Capability):
    afi: int = Afi.IPV4
    safi: int = Safi.UNICAST
    code: int = field(default=int(CapCode.MULTIPROTOCOL), init=False)

    def to_dict(self) -> dict:
        return {"code": self.code, "name": self.name, "afi": self.afi, "safi": self.safi,
                "family": family_name(self.afi, self.safi)}


@dataclass(frozen=True, slots=True)
class RouteRefreshCap(Capability):
    code: int = field(default=int(CapCode.ROUTE_REFRESH), init=False)


@dataclass(frozen=True, slots=True)
class EnhancedRouteRefreshCap(Capability):
    code: int = field(default=int(CapCode.ENHANCED_ROUTE_REFRESH), init=False)


@dataclass(frozen=True, slots=True)
class ExtendedMessageCap(Capability):
    code: int = field(default=int(CapCode.EXTENDED_MESSAGE), init=False)


@dataclass(frozen=True, slots=True)
class FourOctetAsCap(Capability):
    asn: int = 0
    code: int = field(default=int(CapCode.FOUR_OCTET_AS), init=False)

    def to_dict(self) -> dict:
        return {"code": self.code, "name": self.name, "asn": self.asn}


@dataclass(frozen=True, slots=True)
class GracefulRestartCap(Capability):
    """RFC 4724 section 3; ``notification`` is the N bit of RFC 8538."""

    restart_state: bool = False
    notification: bool = False
    restart_time: int = 0
    families: tuple[tuple[int, int, bool], ...] = ()  # (afi, safi, forwarding state preserved)
    code: int = field(default=int(CapCode.GRACEFUL_RESTART), init=False)

    def to_dict(self) -> dict:
        return {
            "code": self.code,
            "name": self.name,
            "restart_state": self.restart_state,
            "notification": self.notification,
            "restart_time": self.restart_time,
            "families": [{"family": family_name(a, s), "forwarding": f} for a, s, f in self.families],
        }


@dataclass(frozen=True, slots=True)
class ExtendedNextHopCap(Capability):
    """RFC 8950: NLRI families that may carry a next hop of another AFI."""

    families: tuple[tuple[int, int, int], ...] = ()  # (nlri afi, nlri safi, next hop afi)
    code: int = field(default=int(CapCode.EXTENDED_NEXT_HOP), init=False)

    def to_dict(self) -> dict:
        return {
            "code": self.code,
            "name": self.name,
            "families": [{"family": family_name(a, s), "next_hop_afi": n} for a, s, n in self.families],
        }


@dataclass(frozen=True, slots=True)
class UnknownCap(Capability):
    data: bytes = b""

    def to_dict(self) -> dict:
        return {"code": self.code, "name": "unknown", "hex": self.data.hex()}


# --------------------------------------------------------------------- messages


@dataclass(frozen=True, slots=True)
class Open:
    """An OPEN message (RFC 4271 section 4.2).

    ``my_as`` is the 2-octet field as sent; ``asn`` is the speaker's real AS
    (the 4-octet AS capability when present, RFC 6793).
    """

    my_as: int
    hold_time: int
    router_id: str
    capabilities: tuple[Capability, ...] = ()
    version: int = 4

    type = MsgType.OPEN

    @property
    def asn(self) -> int:
        for cap in self.capabilities:
            if isinstance(cap, FourOctetAsCap):
                return cap.asn
        return self.my_as

    def capability(self, cls: type[Capability]) -> Capability | None:
        for cap in self.capabilities:
            if isinstance(cap, cls):
                return cap
        return None

    def families(self) -> list[Family]:
        return [(c.afi, c.safi) for c in self.capabilities if isinstance(c, MultiprotocolCap)]

    def to_dict(self) -> dict:
        return {
            "version": self.version,
            "my_as": self.my_as,
            "asn": self.asn,
            "hold_time": self.hold_time,
            "router_id": self.router_id,
            "capabilities": [c.to_dict() for c in self.capabilities],
        }


@dataclass(frozen=True, slots=True)
class Notification:
    """A NOTIFICATION (RFC 4271 section 4.5), with the RFC 9003 shutdown text when present."""

    code: int
    subcode: int = 0
    data: bytes = b""
    shutdown_message: str | None = None

    type = MsgType.NOTIFICATION

    @property
    def name(self) -> str:
        return error_name(self.code, self.subcode)

    def is_cease(self) -> bool:
        return self.code == ErrorCode.CEASE

    def to_dict(self) -> dict:
        out = {"code": self.code, "subcode": self.subcode, "name": self.name, "data": self.data.hex()}
        if self.shutdown_message is not None:
            out["shutdown_message"] = self.shutdown_message
        return out


@dataclass(frozen=True, slots=True)
class Keepalive:
    type = MsgType.KEEPALIVE

    def to_dict(self) -> dict:
        return {}


@dataclass(frozen=True, slots=True)
class RouteRefresh:
    """ROUTE-REFRESH (RFC 2918) with the RFC 7313 subtype."""

    afi: int
    safi: int
    subtype: int = 0

    type = MsgType.ROUTE_REFRESH

    def to_dict(self) -> dict:
        return {"afi": self.afi, "safi": self.safi, "subtype": self.subtype,
                "family": family_name(self.afi, self.safi)}
