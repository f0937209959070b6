#!/usr/bin/env python3
"""Build the malformed-BGP-message corpus: tests/vectors/malformed/NNN-short-name.json.

Standalone on purpose (standard library only, no import of kbgp), so the corpus
cannot inherit a bug from the decoder it is meant to test.  Every message is
assembled from the small helpers below; the expected outcome of each case is
written next to the bytes that provoke it.

Usage:
    python3 tests/vectors/malformed/build_corpus.py          # (re)write the corpus
    python3 tests/vectors/malformed/build_corpus.py --check  # verify files are up to date

Re-running rewrites byte-identical files.  The README.md table is generated
from the same list, so the two never drift apart.
"""

from __future__ import annotations

import ipaddress
import json
import struct
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent

# ---------------------------------------------------------------------------
# Wire constants (RFC 4271 and the IANA BGP registries)
# ---------------------------------------------------------------------------

MARKER = b"\xff" * 16
MSG_OPEN, MSG_UPDATE, MSG_NOTIFICATION, MSG_KEEPALIVE, MSG_ROUTE_REFRESH = 1, 2, 3, 4, 5

F_OPTIONAL, F_TRANSITIVE, F_PARTIAL, F_EXTENDED = 0x80, 0x40, 0x20, 0x10
WELL_KNOWN = F_TRANSITIVE  # 0x40: well-known attributes are transitive, not optional
OPT_TRANS = F_OPTIONAL | F_TRANSITIVE  # 0xC0
OPT_NON_TRANS = F_OPTIONAL  # 0x80

A_ORIGIN, A_AS_PATH, A_NEXT_HOP, A_MED, A_LOCAL_PREF = 1, 2, 3, 4, 5
A_ATOMIC_AGGREGATE, A_AGGREGATOR, A_COMMUNITIES = 6, 7, 8
A_ORIGINATOR_ID, A_CLUSTER_LIST = 9, 10
A_MP_REACH, A_MP_UNREACH, A_EXT_COMMUNITIES = 14, 15, 16
A_AS4_PATH, A_AS4_AGGREGATOR = 17, 18
A_TUNNEL_ENCAP, A_TRAFFIC_ENG, A_IPV6_EXT_COMMUNITIES, A_AIGP = 23, 24, 25, 26
A_BGP_LS, A_LARGE_COMMUNITY, A_OTC, A_PREFIX_SID, A_ATTR_SET = 29, 32, 35, 40, 128
A_UNKNOWN = 99  # unassigned in the IANA registry

AS_SET, AS_SEQUENCE, AS_CONFED_SEQUENCE, AS_CONFED_SET = 1, 2, 3, 4

AFI_IPV4, AFI_IPV6 = 1, 2
SAFI_UNICAST, SAFI_FLOWSPEC = 1, 133

CAP_MULTIPROTOCOL, CAP_ROUTE_REFRESH, CAP_GRACEFUL_RESTART, CAP_FOUR_OCTET_AS = 1, 2, 64, 65
CAP_LLGR, CAP_SOFTWARE_VERSION = 71, 75
PARAM_CAPABILITIES, PARAM_EXTENDED = 2, 255

AS_TRANS = 23456
PEER_AS = 65001  # the AS of the peer that sends every message in the corpus
OTHER_AS = 65010

# ---------------------------------------------------------------------------
# Session contexts a case is decoded in
# ---------------------------------------------------------------------------

EBGP = {"ibgp": False, "asn4": True, "extended_message": False}
IBGP = {"ibgp": True, "asn4": True, "extended_message": False}
EBGP_AS2 = {"ibgp": False, "asn4": False, "extended_message": False}
EBGP_EXT = {"ibgp": False, "asn4": True, "extended_message": True}

# ---------------------------------------------------------------------------
# Byte helpers
# ---------------------------------------------------------------------------


def ipv4(text: str) -> bytes:
    return ipaddress.IPv4Address(text).packed


def ipv6(text: str) -> bytes:
    return ipaddress.IPv6Address(text).packed


def prefix(text: str) -> bytes:
    """NLRI encoding of one prefix: length octet, then just enough address octets."""
    net = ipaddress.ip_network(text)
    return bytes([net.prefixlen]) + net.network_address.packed[: (net.prefixlen + 7) // 8]


def prefixes(texts) -> bytes:
    return b"".join(prefix(t) for t in texts)


def header(
    msg_type: int, body_len: int, length: int | None = None, marker: bytes = MARKER
) -> bytes:
    """The 19-byte message header; `length` overrides the computed length field."""
    if length is None:
        length = 19 + body_len
    return marker + struct.pack("!HB", length, msg_type)


def message(
    msg_type: int, body: bytes = b"", length: int | None = None, marker: bytes = MARKER
) -> bytes:
    return header(msg_type, len(body), length, marker) + body


def attr(flags: int, code: int, value: bytes = b"", length: int | None = None) -> bytes:
    """One path attribute.  `length` overrides the length field (the value is written as given).

    A value longer than 255 bytes gets the Extended Length flag automatically.
    """
    if length is None:
        length = len(value)
        if length > 255:
            flags |= F_EXTENDED
    if flags & F_EXTENDED:
        return struct.pack("!BBH", flags, code, length) + value
    return struct.pack("!BBB", flags, code, length) + value


def update(
    withdrawn: bytes = b"",
    attrs=b"",
    nlri: bytes = b"",
    withdrawn_len: int | None = None,
    attrs_len: int | None = None,
    length: int | None = None,
) -> bytes:
    """An UPDATE; `withdrawn_len` / `attrs_len` override the two length fields."""
    if not isinstance(attrs, (bytes, bytearray)):
        attrs = b"".join(attrs)
    wlen = len(withdrawn) if withdrawn_len is None else withdrawn_len
    alen = len(attrs) if attrs_len is None else attrs_len
    body = struct.pack("!H", wlen) + withdrawn + struct.pack("!H", alen) + attrs + nlri
    return message(MSG_UPDATE, body, length)


def open_fixed(
    version: int = 4, my_as: int = PEER_AS, hold: int = 90, bgp_id: str = "192.0.2.1"
) -> bytes:
    """The fixed OPEN fields before the Optional Parameters Length octet (9 bytes)."""
    return struct.pack("!BHH", version, my_as, hold) + ipv4(bgp_id)


def open_msg(
    version: int = 4,
    my_as: int = PEER_AS,
    hold: int = 90,
    bgp_id: str = "192.0.2.1",
    params: bytes | None = None,
    opt_len: int | None = None,
) -> bytes:
    """An OPEN with classic (RFC 4271) optional parameters; `opt_len` overrides the length octet."""
    if params is None:
        params = cap_param(*STD_CAPS)
    olen = len(params) if opt_len is None else opt_len
    return message(MSG_OPEN, open_fixed(version, my_as, hold, bgp_id) + bytes([olen]) + params)


def open_ext(params: bytes, ext_len: int | None = None, **fixed) -> bytes:
    """An RFC 9072 OPEN: 255, 255, a 2-byte length, then parameters with 3-byte headers."""
    elen = len(params) if ext_len is None else ext_len
    body = open_fixed(**fixed) + bytes([255, PARAM_EXTENDED]) + struct.pack("!H", elen) + params
    return message(MSG_OPEN, body)


def open_raw(tail: bytes, **fixed) -> bytes:
    """An OPEN whose bytes after the fixed fields are given verbatim (for truncation cases)."""
    return message(MSG_OPEN, open_fixed(**fixed) + tail)


def cap(code: int, value: bytes = b"", length: int | None = None) -> bytes:
    return struct.pack("!BB", code, len(value) if length is None else length) + value


def param(ptype: int, value: bytes, length: int | None = None) -> bytes:
    return struct.pack("!BB", ptype, len(value) if length is None else length) + value


def ext_param(ptype: int, value: bytes, length: int | None = None) -> bytes:
    return struct.pack("!BH", ptype, len(value) if length is None else length) + value


def cap_param(*caps: bytes) -> bytes:
    return param(PARAM_CAPABILITIES, b"".join(caps))


def cap_mp(afi: int, safi: int) -> bytes:
    return cap(CAP_MULTIPROTOCOL, struct.pack("!HBB", afi, 0, safi))


def cap_as4(asn: int) -> bytes:
    return cap(CAP_FOUR_OCTET_AS, struct.pack("!I", asn))


STD_CAPS = (
    cap_mp(AFI_IPV4, SAFI_UNICAST),
    cap_mp(AFI_IPV6, SAFI_UNICAST),
    cap(CAP_ROUTE_REFRESH),
    cap_as4(PEER_AS),
)


def notification(code: int, subcode: int, data: bytes = b"") -> bytes:
    return message(MSG_NOTIFICATION, bytes([code, subcode]) + data)


def route_refresh(
    afi: int = AFI_IPV4, safi: int = SAFI_UNICAST, subtype: int = 0, extra: bytes = b""
) -> bytes:
    return message(MSG_ROUTE_REFRESH, struct.pack("!HBB", afi, subtype, safi) + extra)


# --- attribute values -------------------------------------------------------


def segment(seg_type: int, asns, asn4: bool = True, count: int | None = None) -> bytes:
    """One AS_PATH segment; `count` overrides the segment length octet."""
    fmt = "!I" if asn4 else "!H"
    body = b"".join(struct.pack(fmt, a) for a in asns)
    return struct.pack("!BB", seg_type, len(asns) if count is None else count) + body


def long_path(n: int, asn4: bool = True) -> bytes:
    """An AS_SEQUENCE path of n ASNs, peer AS first, split into segments of at most 255."""
    asns = [PEER_AS] + [4200000000 + i for i in range(1, n)]
    return b"".join(segment(AS_SEQUENCE, asns[i : i + 255], asn4) for i in range(0, n, 255))


def mp_reach(
    afi: int,
    safi: int,
    nh: bytes,
    nlri: bytes = b"",
    nh_len: int | None = None,
    reserved: bytes = b"\x00",
) -> bytes:
    return (
        struct.pack("!HBB", afi, safi, len(nh) if nh_len is None else nh_len) + nh + reserved + nlri
    )


def mp_unreach(afi: int, safi: int, withdrawn: bytes = b"") -> bytes:
    return struct.pack("!HB", afi, safi) + withdrawn


def origin(value: int = 0, flags: int = WELL_KNOWN) -> bytes:
    return attr(flags, A_ORIGIN, bytes([value]))


def as_path(ctx: dict, asns=(PEER_AS, OTHER_AS), flags: int = WELL_KNOWN) -> bytes:
    return attr(flags, A_AS_PATH, segment(AS_SEQUENCE, asns, ctx["asn4"]))


def next_hop(addr: str = "192.0.2.1", flags: int = WELL_KNOWN) -> bytes:
    return attr(flags, A_NEXT_HOP, ipv4(addr))


def local_pref(value: int = 100, flags: int = WELL_KNOWN) -> bytes:
    return attr(flags, A_LOCAL_PREF, struct.pack("!I", value))


def med(value: int = 50, flags: int = OPT_NON_TRANS) -> bytes:
    return attr(flags, A_MED, struct.pack("!I", value))


def communities(*pairs, flags: int = OPT_TRANS) -> bytes:
    return attr(flags, A_COMMUNITIES, b"".join(struct.pack("!HH", a, b) for a, b in pairs))


def aggregator_value(asn: int, asn4: bool, addr: str = "192.0.2.9") -> bytes:
    return struct.pack("!I" if asn4 else "!H", asn) + ipv4(addr)


EXT_COMM_RT = b"\x00\x02" + struct.pack("!HI", PEER_AS, 100)  # route target 65001:100
IPV6_EXT_COMM = b"\x00\x02" + ipv6("2001:db8::1") + struct.pack("!H", 100)
LARGE_COMM = struct.pack("!III", PEER_AS, 1, 2)

V4_NLRI = ("10.1.0.0/24", "10.2.0.0/16")
V4_WITHDRAWN = ("10.9.0.0/24",)
V6_NLRI = ("2001:db8:1::/48", "2001:db8:2::/64")
V6_NH = ipv6("2001:db8::1")
V6_LL = ipv6("fe80::1")


def std_attrs(ctx: dict, replace: dict | None = None, omit=(), extra=()) -> bytes:
    """ORIGIN, AS_PATH, NEXT_HOP (and LOCAL_PREF on iBGP), all valid, peer AS first.

    `replace` maps a type code to the bytes that stand in its place (b"" to drop it, or
    several attributes concatenated); `omit` drops codes; `extra` is appended in order.
    """
    replace = replace or {}
    base = {A_ORIGIN: origin(), A_AS_PATH: as_path(ctx), A_NEXT_HOP: next_hop()}
    if ctx["ibgp"]:
        base[A_LOCAL_PREF] = local_pref()
    out = [replace.get(code, value) for code, value in base.items() if code not in omit]
    out.extend(extra)
    return b"".join(out)


def std_update(
    ctx: dict = EBGP, replace: dict | None = None, omit=(), extra=(), nlri=V4_NLRI, withdrawn=()
) -> bytes:
    return update(prefixes(withdrawn), std_attrs(ctx, replace, omit, extra), prefixes(nlri))


def mp_only_attrs(ctx: dict, *mp_attrs: bytes, origin_attr: bytes | None = None) -> bytes:
    """ORIGIN and AS_PATH, then the given MP attributes: no NEXT_HOP, as RFC 4760 allows."""
    return (origin() if origin_attr is None else origin_attr) + as_path(ctx) + b"".join(mp_attrs)


def padded_update(total: int) -> bytes:
    """A valid eBGP UPDATE of exactly `total` bytes, padded by an unknown transitive attribute."""
    probe = std_update(extra=[attr(OPT_TRANS | F_EXTENDED, A_UNKNOWN, b"")])
    fill = total - len(probe)
    assert fill >= 0
    return std_update(extra=[attr(OPT_TRANS | F_EXTENDED, A_UNKNOWN, bytes(fill))])


# ---------------------------------------------------------------------------
# Expected outcomes
# ---------------------------------------------------------------------------

RESET, DISABLE, TAW, DISCARD, NONE = (
    "session-reset",
    "afi-safi-disable",
    "treat-as-withdraw",
    "attribute-discard",
    "none",
)


def expect(
    handling: str,
    code: int | None = None,
    subcode: int | None = None,
    announced=None,
    withdrawn=None,
    absent=None,
) -> dict:
    out: dict = {"handling": handling}
    if handling == NONE:
        assert code is None and subcode is None
    else:
        assert code is not None and subcode is not None
        out["code"] = code
        out["subcode"] = subcode
    if announced is not None:
        out["announced"] = list(announced)
    if withdrawn is not None:
        out["withdrawn"] = list(withdrawn)
    if absent is not None:
        out["absent_attributes"] = list(absent)
    return out


CASES: list[dict] = []


def case(
    name: str,
    description: str,
    reference: str,
    data: bytes,
    outcome: dict,
    ctx: dict = EBGP,
    length_mismatch: bool = False,
) -> None:
    """Register one case.  `length_mismatch` marks the cases whose header length is the fault and
    cannot equal the number of bytes written."""
    CASES.append(
        {
            "name": name,
            "description": description,
            "reference": reference,
            "ctx": ctx,
            "data": data,
            "expect": outcome,
            "length_mismatch": length_mismatch,
        }
    )


# ---------------------------------------------------------------------------
# 1. Message header (RFC 4271 s4.1, s6.1; RFC 8654)
# ---------------------------------------------------------------------------

case(
    "header-marker-not-all-ones",
    "A KEEPALIVE whose 16-byte marker has its last octet 0xfe instead of 0xff.",
    "RFC 4271 s6.1",
    message(MSG_KEEPALIVE, marker=b"\xff" * 15 + b"\xfe"),
    expect(RESET, 1, 1),
)

case(
    "header-length-18",
    "A header whose length field says 18, less than the 19-byte header itself.",
    "RFC 4271 s6.1; robustness M4",
    message(MSG_KEEPALIVE, length=18),
    expect(RESET, 1, 2),
    length_mismatch=True,
)

case(
    "header-length-4097",
    "A well-formed 4097-byte UPDATE on a session without the Extended Message capability.",
    "RFC 4271 s6.1; RFC 8654",
    padded_update(4097),
    expect(RESET, 1, 2),
)

case(
    "header-length-4097-extended",
    "The same 4097-byte UPDATE on a session that negotiated Extended Messages, where it is legal.",
    "RFC 8654",
    padded_update(4097),
    expect(NONE, announced=V4_NLRI),
    ctx=EBGP_EXT,
)

case(
    "header-open-over-4096-extended",
    "An OPEN of more than 4096 bytes (RFC 9072 parameters full of unknown capabilities) even "
    "with Extended Messages in the context.",
    "RFC 8654 (OPEN and KEEPALIVE stay within 4096)",
    open_ext(ext_param(PARAM_CAPABILITIES, b"".join(STD_CAPS) + cap(200, bytes(250)) * 17)),
    expect(RESET, 1, 2),
    ctx=EBGP_EXT,
)

for msg_type in (0, 6, 255):
    case(
        f"header-type-{msg_type}",
        f"A 19-byte message of type {msg_type}, which no RFC defines.",
        "RFC 4271 s6.1; robustness M4",
        message(msg_type),
        expect(RESET, 1, 3),
    )

case(
    "keepalive-length-20",
    "A KEEPALIVE carrying one byte of body, length 20 instead of exactly 19.",
    "RFC 4271 s6.1; robustness M4",
    message(MSG_KEEPALIVE, b"\x00"),
    expect(RESET, 1, 2),
)

case(
    "open-length-28",
    "An OPEN of 28 bytes that stops before the Optional Parameters Length octet (minimum is 29).",
    "RFC 4271 s6.1",
    message(MSG_OPEN, open_fixed()),
    expect(RESET, 1, 2),
)

case(
    "update-length-22",
    "An UPDATE of 22 bytes, one short of the 23-byte minimum (both length fields).",
    "RFC 4271 s6.1",
    message(MSG_UPDATE, b"\x00\x00\x00"),
    expect(RESET, 1, 2),
)

case(
    "notification-length-20",
    "A NOTIFICATION of 20 bytes holding only the error code, without the subcode octet.",
    "RFC 4271 s6.1",
    message(MSG_NOTIFICATION, b"\x06"),
    expect(RESET, 1, 2),
)

case(
    "route-refresh-length-22",
    "A ROUTE-REFRESH of 22 bytes that stops before the SAFI octet.",
    "RFC 2918 s3; RFC 4271 s6.1",
    message(MSG_ROUTE_REFRESH, struct.pack("!HB", AFI_IPV4, 0)),
    expect(RESET, 1, 2),
)

# ---------------------------------------------------------------------------
# 2. OPEN (RFC 4271 s6.2, RFC 5492, RFC 6793, RFC 4724, RFC 4760, RFC 9072)
# ---------------------------------------------------------------------------

case(
    "open-valid-minimal",
    "A minimal 29-byte OPEN with no optional parameters at all.",
    "RFC 4271 s4.2",
    open_msg(params=b""),
    expect(NONE),
)

for version in (3, 5):
    case(
        f"open-version-{version}",
        f"An otherwise valid OPEN announcing BGP version {version}.",
        "RFC 4271 s6.2; robustness O9",
        open_msg(version=version),
        expect(RESET, 2, 1),
    )

case(
    "open-my-as-zero",
    "An OPEN with My Autonomous System 0 and no 4-octet AS capability.",
    "RFC 7607 s2; robustness O9",
    open_msg(my_as=0, params=cap_param(cap_mp(AFI_IPV4, SAFI_UNICAST))),
    expect(RESET, 2, 2),
)

for hold in (1, 2):
    case(
        f"open-hold-time-{hold}",
        f"An OPEN with a hold time of {hold} second(s), which RFC 4271 says must be rejected.",
        "RFC 4271 s6.2; robustness O9",
        open_msg(hold=hold),
        expect(RESET, 2, 6),
    )

case(
    "open-hold-time-0",
    "An OPEN with hold time 0, which is legal and means no keepalives.",
    "RFC 4271 s4.2",
    open_msg(hold=0),
    expect(NONE),
)

case(
    "open-bgp-id-zero",
    "An OPEN with BGP Identifier 0.0.0.0.",
    "RFC 4271 s6.2; robustness O9",
    open_msg(bgp_id="0.0.0.0"),
    expect(RESET, 2, 3),
)

for ptype in (1, 3):
    case(
        f"open-param-type-{ptype}",
        f"An OPEN whose only optional parameter has type {ptype}, neither Capabilities (2) nor "
        "the RFC 9072 marker.",
        "RFC 4271 s6.2",
        open_msg(params=param(ptype, b"\x01\x02\x03\x04")),
        expect(RESET, 2, 4),
    )

case(
    "open-params-truncated",
    "An OPEN whose Optional Parameters Length claims 10 bytes more than the message holds.",
    "RFC 4271 s6.2; robustness O2",
    open_msg(opt_len=len(cap_param(*STD_CAPS)) + 10),
    expect(RESET, 2, 0),
)

case(
    "open-cap-overruns-param",
    "A Capabilities parameter of length 6 holding a multiprotocol capability that claims 8 bytes "
    "of value.",
    "RFC 5492 s4; robustness O3",
    open_msg(
        params=param(
            PARAM_CAPABILITIES, cap(CAP_MULTIPROTOCOL, struct.pack("!HBB", 1, 0, 1), length=8)
        )
    ),
    expect(RESET, 2, 0),
)

case(
    "open-ends-after-param-length",
    "A 29-byte OPEN whose Optional Parameters Length is 8 but which ends right after that octet.",
    "RFC 4271 s6.2; robustness O2 (CVE-2022-43681)",
    open_raw(b"\x08"),
    expect(RESET, 2, 0),
)

case(
    "open-ends-after-param-type",
    "An OPEN whose one byte of optional parameters is a parameter type with no parameter length "
    "octet.",
    "RFC 4271 s6.2; robustness O2",
    open_raw(b"\x01\x02"),
    expect(RESET, 2, 0),
)

case(
    "open-ends-after-param-header",
    "An OPEN whose only parameter header says 6 bytes of capabilities follow, and the message "
    "ends there.",
    "RFC 4271 s6.2; robustness O2",
    open_raw(b"\x02\x02\x06"),
    expect(RESET, 2, 0),
)

case(
    "open-ext-ends-after-255",
    "An OPEN whose Optional Parameters Length is 255 and which ends right after it, with no "
    "Non-Ext OP Type.",
    "RFC 9072 s2; robustness O1",
    open_raw(b"\xff"),
    expect(RESET, 2, 0),
)

case(
    "open-ext-ends-inside-header",
    "An RFC 9072 OPEN (255, 255) that ends after the first octet of the 2-byte Extended Opt. "
    "Parm. Length.",
    "RFC 9072 s2; robustness O1 (CVE-2022-40302)",
    open_raw(b"\xff\xff\x00"),
    expect(RESET, 2, 0),
)

case(
    "open-ext-length-past-end",
    "An RFC 9072 OPEN whose Extended Opt. Parm. Length is 100 while 9 bytes of parameters follow.",
    "RFC 9072 s2; robustness O1",
    open_ext(ext_param(PARAM_CAPABILITIES, cap_as4(PEER_AS)), ext_len=100),
    expect(RESET, 2, 0),
)

case(
    "open-ext-param-header-truncated",
    "An RFC 9072 OPEN whose 2 bytes of extended parameters cannot hold one 3-byte parameter "
    "header.",
    "RFC 9072 s2; robustness O1 (CVE-2022-40318)",
    open_ext(b"\x02\x00"),
    expect(RESET, 2, 0),
)

case(
    "open-ext-param-overruns",
    "An RFC 9072 OPEN with a Capabilities parameter whose 2-byte length (16) runs past the "
    "extended parameters block.",
    "RFC 9072 s2; robustness O1",
    open_ext(ext_param(PARAM_CAPABILITIES, cap_as4(PEER_AS), length=16)),
    expect(RESET, 2, 0),
)

case(
    "open-ext-valid",
    "A valid RFC 9072 OPEN carrying the usual capabilities with 2-byte parameter lengths.",
    "RFC 9072 s2",
    open_ext(ext_param(PARAM_CAPABILITIES, b"".join(STD_CAPS))),
    expect(NONE),
)

for length in (2, 6):
    value = (
        struct.pack("!I", PEER_AS)[:length]
        if length < 4
        else struct.pack("!I", PEER_AS) + bytes(length - 4)
    )
    case(
        f"open-cap-as4-length-{length}",
        f"A 4-octet AS capability of length {length} instead of 4.",
        "RFC 6793 s3; robustness O5 (CVE-2022-36440)",
        open_msg(params=cap_param(cap_mp(AFI_IPV4, SAFI_UNICAST), cap(CAP_FOUR_OCTET_AS, value))),
        expect(RESET, 2, 0),
    )

case(
    "open-cap-as4-zero",
    "A 4-octet AS capability carrying AS 0.",
    "RFC 7607 s2; RFC 6793 s3",
    open_msg(params=cap_param(cap_mp(AFI_IPV4, SAFI_UNICAST), cap_as4(0))),
    expect(RESET, 2, 2),
)

case(
    "open-cap-as4-mismatch",
    "An OPEN with My-AS 65002 and a 4-octet AS capability of 65001, neither equal nor AS_TRANS.",
    "RFC 6793 s4.1; robustness O5",
    open_msg(my_as=65002, params=cap_param(cap_mp(AFI_IPV4, SAFI_UNICAST), cap_as4(PEER_AS))),
    expect(RESET, 2, 2),
)

case(
    "open-as-trans-with-as4",
    "An OPEN with My-AS AS_TRANS (23456) and a 4-octet AS capability of 4200000001, the legal "
    "form for a large ASN.",
    "RFC 6793 s4.1",
    open_msg(my_as=AS_TRANS, params=cap_param(cap_mp(AFI_IPV4, SAFI_UNICAST), cap_as4(4200000001))),
    expect(NONE),
)

case(
    "open-cap-gr-length-1",
    "A graceful restart capability of length 1, too short for the restart flags and time.",
    "RFC 4724 s3; robustness O8",
    open_msg(params=cap_param(cap_mp(AFI_IPV4, SAFI_UNICAST), cap(CAP_GRACEFUL_RESTART, b"\x00"))),
    expect(RESET, 2, 0),
)

case(
    "open-cap-gr-partial-tuple",
    "A graceful restart capability of length 5: flags and time plus a 3-byte family tuple "
    "(tuples are 4 bytes).",
    "RFC 4724 s3; robustness O8",
    open_msg(
        params=cap_param(
            cap_mp(AFI_IPV4, SAFI_UNICAST),
            cap(CAP_GRACEFUL_RESTART, struct.pack("!H", 120) + b"\x00\x01\x01"),
        )
    ),
    expect(RESET, 2, 0),
)

case(
    "open-cap-gr-no-families",
    "A graceful restart capability of length 2 with restart time 120 and no family tuples, which "
    "is legal.",
    "RFC 4724 s3",
    open_msg(
        params=cap_param(
            cap_mp(AFI_IPV4, SAFI_UNICAST), cap(CAP_GRACEFUL_RESTART, struct.pack("!H", 120))
        )
    ),
    expect(NONE),
)

for length in (3, 5):
    value = struct.pack("!HBB", AFI_IPV4, 0, SAFI_UNICAST)
    value = value[:3] if length == 3 else value + b"\x00"
    case(
        f"open-cap-mp-length-{length}",
        f"A multiprotocol capability of length {length} instead of 4.",
        "RFC 4760 s8",
        open_msg(params=cap_param(cap(CAP_MULTIPROTOCOL, value), cap_as4(PEER_AS))),
        expect(RESET, 2, 0),
    )

case(
    "open-cap-unknown",
    "An OPEN with an unassigned capability (code 200, 3 bytes) next to the usual ones; it is "
    "kept, not an error.",
    "RFC 5492 s3",
    open_msg(params=cap_param(*STD_CAPS, cap(200, b"\x01\x02\x03"))),
    expect(NONE),
)

case(
    "open-cap-unknown-zero-length",
    "An OPEN with three zero-length unassigned capabilities (code 128) that a parser must step "
    "over.",
    "RFC 5492 s4; robustness O4",
    open_msg(params=cap_param(*STD_CAPS, cap(128), cap(128), cap(128))),
    expect(NONE),
)

case(
    "open-cap-llgr-bad-length",
    "A long-lived graceful restart capability (71) of length 5, not a multiple of 7; kbgp does "
    "not implement it, so it is an unknown capability.",
    "robustness O6; RFC 5492 s3",
    open_msg(params=cap_param(*STD_CAPS, cap(CAP_LLGR, b"\x00\x01\x01\x80\x00"))),
    expect(NONE),
)

case(
    "open-cap-software-version-long",
    "A software-version capability (75) of 100 bytes whose inner length octet says 200; kbgp "
    "does not interpret it.",
    "robustness O7; RFC 5492 s3",
    open_msg(params=cap_param(*STD_CAPS, cap(CAP_SOFTWARE_VERSION, bytes([200]) + b"x" * 99))),
    expect(NONE),
)

# ---------------------------------------------------------------------------
# 3. NOTIFICATION (RFC 4271 s4.5, RFC 9003) and ROUTE-REFRESH (RFC 2918, RFC 7313)
# ---------------------------------------------------------------------------

case(
    "notification-shutdown-valid",
    "A Cease/Administrative Shutdown with a well-formed 11-byte RFC 9003 shutdown communication.",
    "RFC 9003 s2",
    notification(6, 2, bytes([11]) + b"maintenance"),
    expect(NONE),
)

case(
    "notification-shutdown-length-overrun",
    "A Cease/Administrative Shutdown whose shutdown-communication length octet says 40 while 11 "
    "bytes follow.",
    "RFC 9003 s4; robustness M3",
    notification(6, 2, bytes([40]) + b"maintenance"),
    expect(NONE),
)

case(
    "notification-shutdown-bad-utf8",
    "A Cease/Administrative Reset whose shutdown communication is not valid UTF-8.",
    "RFC 9003 s4; robustness M3",
    notification(6, 4, bytes([4]) + b"\xc3\x28\xff\xfe"),
    expect(NONE),
)

case(
    "notification-unknown-code",
    "A NOTIFICATION with error code 42, which no RFC defines, and two bytes of data.",
    "RFC 4271 s4.5",
    notification(42, 7, b"\xde\xad"),
    expect(NONE),
)

case(
    "route-refresh-length-24",
    "A ROUTE-REFRESH request (subtype 0) of 24 bytes carrying one trailing byte; only ORF could "
    "make it legal and kbgp does not negotiate ORF.",
    "RFC 7313 s5; robustness M2",
    route_refresh(extra=b"\x00"),
    expect(RESET, 7, 1),
)

case(
    "route-refresh-borr-length-24",
    "A Beginning-of-RIB-Refresh (subtype 1) of 24 bytes instead of 23.",
    "RFC 7313 s5; robustness M2",
    route_refresh(subtype=1, extra=b"\x00"),
    expect(RESET, 7, 1),
)

case(
    "route-refresh-orf-truncated",
    "A ROUTE-REFRESH with an ORF block whose length field (32) runs past the 30-byte message.",
    "RFC 5291; RFC 7313 s5; robustness M1",
    route_refresh(extra=b"\x01\x40" + struct.pack("!H", 32) + b"\x00\x00\x00"),
    expect(RESET, 7, 1),
)

case(
    "route-refresh-subtype-7",
    "A 23-byte ROUTE-REFRESH for IPv4 unicast with the undefined subtype 7, which is ignored.",
    "RFC 7313 s3",
    route_refresh(subtype=7),
    expect(NONE),
)

# ---------------------------------------------------------------------------
# 4. UPDATE framing (RFC 4271 s6.3, RFC 7606 s3, s4, s5.3)
# ---------------------------------------------------------------------------

case(
    "update-withdrawn-length-past-end",
    "An UPDATE whose Withdrawn Routes Length (100) runs past the end of the message.",
    "RFC 4271 s6.3; RFC 7606 s4; robustness U2",
    update(prefixes(V4_WITHDRAWN), b"", b"", withdrawn_len=100),
    expect(RESET, 3, 1),
)

case(
    "update-attr-length-past-end",
    "An UPDATE whose Total Path Attribute Length is 50 bytes more than the message holds.",
    "RFC 4271 s6.3; RFC 7606 s4; robustness U2",
    update(b"", std_attrs(EBGP), prefixes(V4_NLRI), attrs_len=len(std_attrs(EBGP)) + 50),
    expect(RESET, 3, 1),
)

case(
    "update-withdrawn-prefix-len-33",
    "A withdrawn IPv4 prefix with prefix length 33.",
    "RFC 4271 s6.3; RFC 7606 s3(i), s5.3; robustness U30",
    update(b"\x21\x0a\x09\x00\x00\x00"),
    expect(RESET, 3, 10),
)

case(
    "update-withdrawn-prefix-truncated",
    "A withdrawn IPv4 /24 whose address bytes run past the 3-byte Withdrawn Routes field.",
    "RFC 4271 s6.3; RFC 7606 s3(i), s5.3; robustness U30",
    update(b"\x18\x0a\x09", std_attrs(EBGP), prefixes(V4_NLRI)),
    expect(RESET, 3, 10),
)

case(
    "update-nlri-prefix-len-33",
    "An announced IPv4 prefix with prefix length 33 after valid attributes.",
    "RFC 4271 s6.3; RFC 7606 s5.3; robustness U30",
    update(b"", std_attrs(EBGP), prefix("10.1.0.0/24") + b"\x21\x0a\x02\x00\x00\x00"),
    expect(RESET, 3, 10),
)

case(
    "update-nlri-prefix-truncated",
    "An announced IPv4 /24 at the end of the message with only two of its three address bytes "
    "present.",
    "RFC 4271 s6.3; RFC 7606 s5.3; robustness U30",
    update(b"", std_attrs(EBGP), prefix("10.1.0.0/24") + b"\x18\x0a\x02"),
    expect(RESET, 3, 10),
)

case(
    "update-attr-overruns-block",
    "The last attribute (MED) claims 12 bytes of value but only 4 remain in the path attribute "
    "block.",
    "RFC 7606 s4; robustness U1 (CVE-2017-15865)",
    update(
        b"",
        std_attrs(EBGP, extra=[attr(OPT_NON_TRANS, A_MED, struct.pack("!I", 50), length=12)]),
        prefixes(V4_NLRI),
    ),
    expect(TAW, 3, 1, announced=V4_NLRI),
)

case(
    "update-attr-ext-length-overruns-block",
    "The last attribute has the Extended Length flag and a 2-byte length of 300 with 4 bytes of "
    "value in the block.",
    "RFC 7606 s4; robustness U1",
    update(
        b"",
        std_attrs(EBGP, extra=[attr(OPT_TRANS | F_EXTENDED, A_UNKNOWN, b"\x00" * 4, length=300)]),
        prefixes(V4_NLRI),
    ),
    expect(TAW, 3, 1, announced=V4_NLRI),
)

case(
    "update-attr-header-2-bytes-left",
    "After the valid attributes two stray bytes remain in the block, too few for an attribute "
    "header.",
    "RFC 7606 s4; robustness U3",
    update(b"", std_attrs(EBGP, extra=[b"\xc0\x63"]), prefixes(V4_NLRI)),
    expect(TAW, 3, 1, announced=V4_NLRI),
)

case(
    "update-attr-header-ext-3-bytes-left",
    "After the valid attributes three bytes remain whose flags octet has Extended Length set, so "
    "the 4-byte header does not fit.",
    "RFC 7606 s4; robustness U3",
    update(b"", std_attrs(EBGP, extra=[b"\xd0\x63\x00"]), prefixes(V4_NLRI)),
    expect(TAW, 3, 1, announced=V4_NLRI),
)

# ---------------------------------------------------------------------------
# 5. MP_REACH_NLRI / MP_UNREACH_NLRI (RFC 4760, RFC 7606 s3(g), s5.3, s7.11, s7.12)
# ---------------------------------------------------------------------------

MP_REACH_V6 = attr(
    OPT_NON_TRANS, A_MP_REACH, mp_reach(AFI_IPV6, SAFI_UNICAST, V6_NH, prefixes(V6_NLRI))
)
MP_UNREACH_V6 = attr(
    OPT_NON_TRANS, A_MP_UNREACH, mp_unreach(AFI_IPV6, SAFI_UNICAST, prefix("2001:db8:9::/48"))
)


def mp_reach_attr(value: bytes) -> bytes:
    return attr(OPT_NON_TRANS, A_MP_REACH, value)


def mp_unreach_attr(value: bytes) -> bytes:
    return attr(OPT_NON_TRANS, A_MP_UNREACH, value)


case(
    "mp-reach-ipv6-valid",
    "An UPDATE with ORIGIN, AS_PATH and an IPv6 unicast MP_REACH_NLRI but no NEXT_HOP attribute, "
    "which is legal.",
    "RFC 4760 s3; RFC 7606 s3(d)",
    update(b"", mp_only_attrs(EBGP, MP_REACH_V6)),
    expect(NONE, announced=V6_NLRI),
)

case(
    "mp-reach-ipv6-link-local-nh",
    "An IPv6 unicast MP_REACH_NLRI with a 32-byte next hop (global plus link-local).",
    "RFC 2545 s3; robustness 1.11",
    update(
        b"",
        mp_only_attrs(
            EBGP, mp_reach_attr(mp_reach(AFI_IPV6, SAFI_UNICAST, V6_NH + V6_LL, prefixes(V6_NLRI)))
        ),
    ),
    expect(NONE, announced=V6_NLRI),
)

case(
    "mp-reach-ipv4-unicast",
    "An IPv4 unicast MP_REACH_NLRI with a 4-byte next hop, as some speakers send instead of the "
    "NLRI field.",
    "RFC 4760 s3",
    update(
        b"",
        mp_only_attrs(
            EBGP,
            mp_reach_attr(
                mp_reach(AFI_IPV4, SAFI_UNICAST, ipv4("192.0.2.1"), prefix("10.3.0.0/24"))
            ),
        ),
    ),
    expect(NONE, announced=["10.3.0.0/24"]),
)

case(
    "mp-unreach-only-no-attributes",
    "An UPDATE whose only attribute is an IPv6 MP_UNREACH_NLRI, with no ORIGIN or AS_PATH, which "
    "is legal.",
    "RFC 4760 s4; RFC 7606 s3(d); robustness 1.11",
    update(b"", MP_UNREACH_V6),
    expect(NONE, announced=[], withdrawn=["2001:db8:9::/48"]),
)

case(
    "mp-reach-twice",
    "An UPDATE carrying two IPv6 MP_REACH_NLRI attributes.",
    "RFC 7606 s3(g); robustness U10",
    update(b"", mp_only_attrs(EBGP, MP_REACH_V6, MP_REACH_V6)),
    expect(RESET, 3, 1),
)

case(
    "mp-unreach-twice",
    "An UPDATE carrying two IPv6 MP_UNREACH_NLRI attributes.",
    "RFC 7606 s3(g); robustness U10",
    update(b"", MP_UNREACH_V6 + MP_UNREACH_V6),
    expect(RESET, 3, 1),
)

case(
    "mp-reach-nh-len-0",
    "An IPv6 unicast MP_REACH_NLRI whose next-hop length is 0.",
    "RFC 7606 s7.11; robustness U8 (CVE-2023-46752)",
    update(
        b"",
        mp_only_attrs(
            EBGP, mp_reach_attr(mp_reach(AFI_IPV6, SAFI_UNICAST, b"", prefixes(V6_NLRI)))
        ),
    ),
    expect(RESET, 3, 9),
)

case(
    "mp-reach-nh-len-9",
    "An IPv6 unicast MP_REACH_NLRI whose next-hop length is 9.",
    "RFC 7606 s7.11; robustness U8",
    update(
        b"",
        mp_only_attrs(
            EBGP, mp_reach_attr(mp_reach(AFI_IPV6, SAFI_UNICAST, V6_NH[:9], prefixes(V6_NLRI)))
        ),
    ),
    expect(RESET, 3, 9),
)

case(
    "mp-reach-nh-len-4-ipv6",
    "An IPv6 unicast MP_REACH_NLRI with a 4-byte (IPv4-sized) next hop; IPv6 needs 16 or 32.",
    "RFC 7606 s7.11; RFC 2545 s3; robustness 1.11",
    update(
        b"",
        mp_only_attrs(
            EBGP,
            mp_reach_attr(mp_reach(AFI_IPV6, SAFI_UNICAST, ipv4("192.0.2.1"), prefixes(V6_NLRI))),
        ),
    ),
    expect(RESET, 3, 9),
)

case(
    "mp-reach-nh-len-64-past-attr",
    "An IPv6 MP_REACH_NLRI whose next-hop length is 64 while only 17 bytes of the attribute "
    "remain.",
    "RFC 7606 s7.11; robustness U8",
    update(
        b"",
        mp_only_attrs(EBGP, mp_reach_attr(mp_reach(AFI_IPV6, SAFI_UNICAST, V6_NH, b"", nh_len=64))),
    ),
    expect(RESET, 3, 9),
)

case(
    "mp-reach-too-short",
    "An MP_REACH_NLRI of 3 bytes (AFI and SAFI only), shorter than the 5-byte minimum.",
    "RFC 7606 s7.11; robustness U8",
    update(b"", mp_only_attrs(EBGP, mp_reach_attr(struct.pack("!HB", AFI_IPV6, SAFI_UNICAST)))),
    expect(RESET, 3, 9),
)

case(
    "mp-reach-no-reserved-byte",
    "An IPv6 MP_REACH_NLRI that ends right after its 16-byte next hop, before the reserved octet.",
    "RFC 7606 s7.11; robustness U8",
    update(
        b"",
        mp_only_attrs(EBGP, mp_reach_attr(mp_reach(AFI_IPV6, SAFI_UNICAST, V6_NH, reserved=b""))),
    ),
    expect(RESET, 3, 9),
)

case(
    "mp-reach-ipv6-prefix-len-129",
    "An IPv6 MP_REACH_NLRI whose second prefix has length 129.",
    "RFC 7606 s5.3; RFC 4760 s7",
    update(
        b"",
        mp_only_attrs(
            EBGP,
            mp_reach_attr(
                mp_reach(
                    AFI_IPV6, SAFI_UNICAST, V6_NH, prefix("2001:db8:1::/48") + b"\x81" + bytes(17)
                )
            ),
        ),
    ),
    expect(RESET, 3, 9),
)

case(
    "mp-reach-ipv6-prefix-truncated",
    "An IPv6 MP_REACH_NLRI whose last prefix, a /64, has only 4 of its 8 address bytes inside "
    "the attribute.",
    "RFC 7606 s5.3; RFC 4760 s7",
    update(
        b"",
        mp_only_attrs(
            EBGP,
            mp_reach_attr(
                mp_reach(
                    AFI_IPV6,
                    SAFI_UNICAST,
                    V6_NH,
                    prefix("2001:db8:1::/48") + b"\x40\x20\x01\x0d\xb8",
                )
            ),
        ),
    ),
    expect(RESET, 3, 9),
)

case(
    "mp-reach-ipv4-prefix-len-33",
    "An IPv4 unicast MP_REACH_NLRI carrying a prefix of length 33.",
    "RFC 7606 s5.3; RFC 4760 s7",
    update(
        b"",
        mp_only_attrs(
            EBGP,
            mp_reach_attr(
                mp_reach(AFI_IPV4, SAFI_UNICAST, ipv4("192.0.2.1"), b"\x21\x0a\x03\x00\x00\x00")
            ),
        ),
    ),
    expect(RESET, 3, 9),
)

case(
    "mp-unreach-prefix-truncated",
    "An IPv6 MP_UNREACH_NLRI with a /64 prefix of which only 4 address bytes are present.",
    "RFC 7606 s7.12; robustness U9 (FRR mp-unreach-truncated)",
    update(b"", mp_unreach_attr(mp_unreach(AFI_IPV6, SAFI_UNICAST, b"\x40\x20\x01\x0d\xb8"))),
    expect(RESET, 3, 9),
)

case(
    "mp-unreach-prefix-len-129",
    "An IPv6 MP_UNREACH_NLRI with a prefix of length 129.",
    "RFC 7606 s5.3, s7.12",
    update(b"", mp_unreach_attr(mp_unreach(AFI_IPV6, SAFI_UNICAST, b"\x81" + bytes(17)))),
    expect(RESET, 3, 9),
)

case(
    "mp-unreach-too-short",
    "An MP_UNREACH_NLRI of 2 bytes, too short to hold its AFI and SAFI.",
    "RFC 7606 s7.12",
    update(b"", mp_unreach_attr(struct.pack("!H", AFI_IPV6))),
    expect(RESET, 3, 9),
)

case(
    "mp-reach-flowspec-garbage",
    "An MP_REACH_NLRI for IPv4 flowspec (AFI 1, SAFI 133), which kbgp does not negotiate, full "
    "of invalid flowspec NLRI.",
    "RFC 4760 s7; robustness U29",
    update(
        b"",
        mp_only_attrs(
            EBGP,
            mp_reach_attr(mp_reach(AFI_IPV4, SAFI_FLOWSPEC, b"", b"\x05\xff\xff\x01\x02\x0f\x81")),
        ),
    ),
    expect(NONE, announced=[]),
)

case(
    "mp-unreach-flowspec-garbage",
    "An MP_UNREACH_NLRI for IPv4 flowspec (AFI 1, SAFI 133) with an operator byte claiming more "
    "data than present.",
    "RFC 4760 s7; robustness U29",
    update(b"", mp_unreach_attr(mp_unreach(AFI_IPV4, SAFI_FLOWSPEC, b"\x10\x01\x18\x0a"))),
    expect(NONE, withdrawn=[]),
)

case(
    "mp-reach-missing-origin",
    "An IPv6 MP_REACH_NLRI announcing prefixes with AS_PATH but no ORIGIN.",
    "RFC 7606 s3(d); RFC 4271 s6.3",
    update(b"", as_path(EBGP) + MP_REACH_V6),
    expect(TAW, 3, 3, announced=V6_NLRI),
)

# ---------------------------------------------------------------------------
# 6. Repeated attributes (RFC 7606 s3(g))
# ---------------------------------------------------------------------------

case(
    "dup-communities",
    "Two COMMUNITIES attributes; the second is discarded and the first kept.",
    "RFC 7606 s3(g); robustness U11",
    std_update(extra=[communities((PEER_AS, 100)), communities((PEER_AS, 200))]),
    expect(DISCARD, 3, 1, announced=V4_NLRI),
)

case(
    "dup-origin",
    "Two ORIGIN attributes (IGP, then INCOMPLETE); the second is discarded.",
    "RFC 7606 s3(g); robustness U11",
    std_update(replace={A_ORIGIN: origin(0) + origin(2)}),
    expect(DISCARD, 3, 1, announced=V4_NLRI),
)

case(
    "dup-med",
    "Two MULTI_EXIT_DISC attributes; the second is discarded.",
    "RFC 7606 s3(g); robustness U11",
    std_update(extra=[med(50), med(60)]),
    expect(DISCARD, 3, 1, announced=V4_NLRI),
)

case(
    "dup-unknown-transitive",
    "Two copies of the unknown optional transitive attribute 99; the second is discarded.",
    "RFC 7606 s3(g)",
    std_update(extra=[attr(OPT_TRANS, A_UNKNOWN, b"\x01"), attr(OPT_TRANS, A_UNKNOWN, b"\x02")]),
    expect(DISCARD, 3, 1, announced=V4_NLRI),
)

# ---------------------------------------------------------------------------
# 7. Attribute flags (RFC 4271 s4.3, s6.3; RFC 7606 s3(c))
# ---------------------------------------------------------------------------

case(
    "origin-flags-optional",
    "ORIGIN with flags 0xc0, the Optional bit set on a well-known attribute.",
    "RFC 7606 s3(c); robustness U12",
    std_update(replace={A_ORIGIN: origin(flags=0xC0)}),
    expect(TAW, 3, 4, announced=V4_NLRI),
)

case(
    "origin-flags-partial",
    "ORIGIN with flags 0x60, the Partial bit set on a well-known attribute.",
    "RFC 4271 s4.3, s6.3; robustness U12",
    std_update(replace={A_ORIGIN: origin(flags=0x60)}),
    expect(TAW, 3, 4, announced=V4_NLRI),
)

case(
    "as-path-flags-optional",
    "AS_PATH with flags 0xc0, the Optional bit set on a well-known attribute.",
    "RFC 7606 s3(c)",
    std_update(replace={A_AS_PATH: as_path(EBGP, flags=0xC0)}),
    expect(TAW, 3, 4, announced=V4_NLRI),
)

case(
    "next-hop-flags-not-transitive",
    "NEXT_HOP with flags 0x00, the Transitive bit clear on a well-known attribute.",
    "RFC 7606 s3(c)",
    std_update(replace={A_NEXT_HOP: next_hop(flags=0x00)}),
    expect(TAW, 3, 4, announced=V4_NLRI),
)

case(
    "local-pref-flags-optional",
    "LOCAL_PREF on iBGP with flags 0xc0, the Optional bit set on a well-known attribute.",
    "RFC 7606 s3(c)",
    std_update(IBGP, replace={A_LOCAL_PREF: local_pref(flags=0xC0)}),
    expect(TAW, 3, 4, announced=V4_NLRI),
    ctx=IBGP,
)

case(
    "med-flags-not-optional",
    "MULTI_EXIT_DISC with flags 0x40, the Optional bit clear on an optional attribute.",
    "RFC 7606 s3(c)",
    std_update(extra=[med(flags=0x40)]),
    expect(TAW, 3, 4, announced=V4_NLRI),
)

case(
    "communities-flags-not-optional",
    "COMMUNITIES with flags 0x40, the Optional bit clear on an optional attribute.",
    "RFC 7606 s3(c)",
    std_update(extra=[communities((PEER_AS, 100), flags=0x40)]),
    expect(TAW, 3, 4, announced=V4_NLRI),
)

case(
    "communities-flags-not-transitive",
    "COMMUNITIES with flags 0x80, the Transitive bit clear on an optional transitive attribute.",
    "RFC 7606 s3(c)",
    std_update(extra=[communities((PEER_AS, 100), flags=0x80)]),
    expect(TAW, 3, 4, announced=V4_NLRI),
)

case(
    "atomic-aggregate-flags-optional",
    "ATOMIC_AGGREGATE with flags 0xc0; its own rule is attribute discard.",
    "RFC 7606 s3(c), s7.6",
    std_update(extra=[attr(0xC0, A_ATOMIC_AGGREGATE)]),
    expect(DISCARD, 3, 4, announced=V4_NLRI, absent=["atomic_aggregate"]),
)

case(
    "aggregator-flags-not-optional",
    "AGGREGATOR with flags 0x40, the Optional bit clear; its own rule is attribute discard.",
    "RFC 7606 s3(c), s7.7",
    std_update(extra=[attr(0x40, A_AGGREGATOR, aggregator_value(PEER_AS, True))]),
    expect(DISCARD, 3, 4, announced=V4_NLRI, absent=["aggregator"]),
)

case(
    "origin-flags-reserved-bits",
    "ORIGIN with flags 0x4f: the four reserved low bits are set and must be ignored.",
    "RFC 4271 s4.3; robustness U16",
    std_update(replace={A_ORIGIN: origin(flags=0x4F)}),
    expect(NONE, announced=V4_NLRI),
)

case(
    "aggregator-flags-reserved-bits",
    "AGGREGATOR with flags 0xc8: a reserved low bit is set and must be ignored.",
    "RFC 4271 s4.3; robustness U16",
    std_update(extra=[attr(0xC8, A_AGGREGATOR, aggregator_value(PEER_AS, True))]),
    expect(NONE, announced=V4_NLRI),
)

case(
    "origin-extended-length-flag",
    "ORIGIN sent with the Extended Length flag (0x50) and a 2-byte length of 1, which is legal.",
    "RFC 4271 s4.3",
    std_update(replace={A_ORIGIN: attr(WELL_KNOWN | F_EXTENDED, A_ORIGIN, b"\x00")}),
    expect(NONE, announced=V4_NLRI),
)

# ---------------------------------------------------------------------------
# 8. Per-attribute rules (RFC 7606 s7, RFC 7607, RFC 6793, RFC 8092)
# ---------------------------------------------------------------------------

# ORIGIN (s7.1)
for length in (0, 2):
    case(
        f"origin-length-{length}",
        f"ORIGIN with attribute length {length} instead of 1.",
        "RFC 7606 s7.1; robustness U12",
        std_update(replace={A_ORIGIN: attr(WELL_KNOWN, A_ORIGIN, bytes(length))}),
        expect(TAW, 3, 5, announced=V4_NLRI),
    )

for value in (3, 255):
    case(
        f"origin-value-{value}",
        f"ORIGIN with the undefined value {value}.",
        "RFC 7606 s7.1; robustness U12",
        std_update(replace={A_ORIGIN: origin(value)}),
        expect(TAW, 3, 6, announced=V4_NLRI),
    )

# AS_PATH (s7.2, RFC 7607, RFC 5065)
for seg_type in (0, 5):
    case(
        f"as-path-segment-type-{seg_type}",
        f"AS_PATH with one segment of undefined type {seg_type}.",
        "RFC 7606 s7.2; robustness U13",
        std_update(
            replace={A_AS_PATH: attr(WELL_KNOWN, A_AS_PATH, segment(seg_type, [PEER_AS, OTHER_AS]))}
        ),
        expect(TAW, 3, 11, announced=V4_NLRI),
    )

case(
    "as-path-segment-length-0",
    "AS_PATH whose second segment is an AS_SEQUENCE of length 0.",
    "RFC 7606 s7.2; robustness U13",
    std_update(
        replace={
            A_AS_PATH: attr(
                WELL_KNOWN, A_AS_PATH, segment(AS_SEQUENCE, [PEER_AS]) + segment(AS_SEQUENCE, [])
            )
        }
    ),
    expect(TAW, 3, 11, announced=V4_NLRI),
)

case(
    "as-path-segment-overrun",
    "AS_PATH whose only segment claims 255 ASNs but holds one.",
    "RFC 7606 s7.2; robustness U13",
    std_update(
        replace={A_AS_PATH: attr(WELL_KNOWN, A_AS_PATH, segment(AS_SEQUENCE, [PEER_AS], count=255))}
    ),
    expect(TAW, 3, 11, announced=V4_NLRI),
)

case(
    "as-path-segment-underrun",
    "AS_PATH with one valid segment followed by a single stray octet, too short for a segment "
    "header.",
    "RFC 7606 s7.2",
    std_update(
        replace={
            A_AS_PATH: attr(
                WELL_KNOWN, A_AS_PATH, segment(AS_SEQUENCE, [PEER_AS, OTHER_AS]) + b"\x02"
            )
        }
    ),
    expect(TAW, 3, 11, announced=V4_NLRI),
)

case(
    "as-path-as-zero",
    "AS_PATH containing AS 0 after the peer AS.",
    "RFC 7607 s2; RFC 7606 s7.2; robustness U13",
    std_update(replace={A_AS_PATH: as_path(EBGP, [PEER_AS, 0, OTHER_AS])}),
    expect(TAW, 3, 11, announced=V4_NLRI),
)

case(
    "as-path-as-zero-2-octet",
    "A 2-octet AS_PATH (session without 4-octet AS) containing AS 0.",
    "RFC 7607 s2; RFC 7606 s7.2",
    std_update(EBGP_AS2, replace={A_AS_PATH: as_path(EBGP_AS2, [PEER_AS, 0])}),
    expect(TAW, 3, 11, announced=V4_NLRI),
    ctx=EBGP_AS2,
)

case(
    "as-path-confed-on-ebgp",
    "An eBGP AS_PATH that starts with an AS_CONFED_SEQUENCE segment.",
    "RFC 5065 s5; RFC 7606 s7.2",
    std_update(
        replace={
            A_AS_PATH: attr(
                WELL_KNOWN,
                A_AS_PATH,
                segment(AS_CONFED_SEQUENCE, [65500]) + segment(AS_SEQUENCE, [PEER_AS, OTHER_AS]),
            )
        }
    ),
    expect(TAW, 3, 11, announced=V4_NLRI),
)

case(
    "as-path-confed-set-on-ebgp",
    "An eBGP AS_PATH whose second segment is an AS_CONFED_SET.",
    "RFC 5065 s5; RFC 7606 s7.2",
    std_update(
        replace={
            A_AS_PATH: attr(
                WELL_KNOWN,
                A_AS_PATH,
                segment(AS_SEQUENCE, [PEER_AS]) + segment(AS_CONFED_SET, [65500, 65501]),
            )
        }
    ),
    expect(TAW, 3, 11, announced=V4_NLRI),
)

case(
    "as-path-confed-on-ibgp",
    "An iBGP AS_PATH that starts with an AS_CONFED_SEQUENCE segment, legal inside a confederation.",
    "RFC 5065 s5",
    std_update(
        IBGP,
        replace={
            A_AS_PATH: attr(
                WELL_KNOWN,
                A_AS_PATH,
                segment(AS_CONFED_SEQUENCE, [65500]) + segment(AS_SEQUENCE, [PEER_AS, OTHER_AS]),
            )
        },
    ),
    expect(NONE, announced=V4_NLRI),
    ctx=IBGP,
)

case(
    "as-path-empty-ibgp",
    "An iBGP UPDATE with an empty (zero-length) AS_PATH, as a locally originated route has.",
    "RFC 4271 s5.1.2; RFC 7606 s4",
    std_update(IBGP, replace={A_AS_PATH: attr(WELL_KNOWN, A_AS_PATH, b"")}),
    expect(NONE, announced=V4_NLRI),
    ctx=IBGP,
)

case(
    "as-path-1000-asns",
    "An AS_PATH of exactly 1000 ASNs in four AS_SEQUENCE segments, at kbgp's cap and so accepted.",
    "robustness 1.3 (AS_PATH cap)",
    std_update(replace={A_AS_PATH: attr(WELL_KNOWN, A_AS_PATH, long_path(1000))}),
    expect(NONE, announced=V4_NLRI),
)

case(
    "as-path-1001-asns",
    "An AS_PATH of 1001 ASNs, one over kbgp's cap of 1000.",
    "robustness 1.3 (AS_PATH cap), U14",
    std_update(replace={A_AS_PATH: attr(WELL_KNOWN, A_AS_PATH, long_path(1001))}),
    expect(TAW, 3, 11, announced=V4_NLRI),
)

case(
    "as-path-2100-asns-extended",
    "An AS_PATH of 2100 ASNs in an 8.5 KB UPDATE, only possible with Extended Messages.",
    "robustness U14 (CVE-2026-49943); RFC 8654",
    std_update(replace={A_AS_PATH: attr(WELL_KNOWN, A_AS_PATH, long_path(2100))}),
    expect(TAW, 3, 11, announced=V4_NLRI),
    ctx=EBGP_EXT,
)

# NEXT_HOP (s7.3, RFC 4271 s6.3)
for length in (0, 3, 5):
    case(
        f"next-hop-length-{length}",
        f"NEXT_HOP with attribute length {length} instead of 4.",
        "RFC 7606 s7.3; robustness U17",
        std_update(
            replace={
                A_NEXT_HOP: attr(WELL_KNOWN, A_NEXT_HOP, (ipv4("192.0.2.1") + b"\x00")[:length])
            }
        ),
        expect(TAW, 3, 5, announced=V4_NLRI),
    )

for addr, what in (
    ("0.0.0.0", "zero"),
    ("127.0.0.1", "loopback"),
    ("224.0.0.1", "multicast"),
    ("255.255.255.255", "broadcast"),
):
    case(
        f"next-hop-{what}",
        f"NEXT_HOP {addr}, which is not a valid unicast host address.",
        "RFC 4271 s6.3; RFC 7606 s7.3; robustness U17",
        std_update(replace={A_NEXT_HOP: next_hop(addr)}),
        expect(TAW, 3, 8, announced=V4_NLRI),
    )

# MULTI_EXIT_DISC (s7.4)
for length in (0, 3, 5):
    case(
        f"med-length-{length}",
        f"MULTI_EXIT_DISC with attribute length {length} instead of 4.",
        "RFC 7606 s7.4; robustness U18",
        std_update(extra=[attr(OPT_NON_TRANS, A_MED, bytes(range(1, length + 1)))]),
        expect(TAW, 3, 5, announced=V4_NLRI),
    )

# LOCAL_PREF (s7.5)
case(
    "local-pref-from-ebgp",
    "A well-formed LOCAL_PREF received from an eBGP peer.",
    "RFC 7606 s7.5; RFC 4271 s5.1.5; robustness U18",
    std_update(extra=[local_pref(200)]),
    expect(DISCARD, 3, 9, announced=V4_NLRI, absent=["local_pref"]),
)

case(
    "local-pref-from-ebgp-bad-length",
    "A LOCAL_PREF of length 3 received from an eBGP peer; the eBGP rule discards it before any "
    "length check.",
    "RFC 7606 s7.5",
    std_update(extra=[attr(WELL_KNOWN, A_LOCAL_PREF, b"\x00\x00\xc8")]),
    expect(DISCARD, 3, 9, announced=V4_NLRI, absent=["local_pref"]),
)

for length in (0, 3, 5):
    case(
        f"local-pref-length-{length}-ibgp",
        f"LOCAL_PREF on iBGP with attribute length {length} instead of 4.",
        "RFC 7606 s7.5; robustness U18",
        std_update(
            IBGP,
            replace={A_LOCAL_PREF: attr(WELL_KNOWN, A_LOCAL_PREF, bytes(range(1, length + 1)))},
        ),
        expect(TAW, 3, 5, announced=V4_NLRI),
        ctx=IBGP,
    )

# ATOMIC_AGGREGATE (s7.6)
case(
    "atomic-aggregate-length-1",
    "ATOMIC_AGGREGATE with attribute length 1 instead of 0.",
    "RFC 7606 s7.6; robustness U21",
    std_update(extra=[attr(WELL_KNOWN, A_ATOMIC_AGGREGATE, b"\x00")]),
    expect(DISCARD, 3, 5, announced=V4_NLRI, absent=["atomic_aggregate"]),
)

# AGGREGATOR (s7.7, RFC 7607)
for length in (6, 7, 9):
    value = (aggregator_value(PEER_AS, True) + b"\x00")[:length]
    if length == 6:
        value = aggregator_value(PEER_AS, False)
    case(
        f"aggregator-length-{length}",
        f"AGGREGATOR of length {length} on a 4-octet AS session, where it must be 8.",
        "RFC 7606 s7.7; robustness U21",
        std_update(extra=[attr(OPT_TRANS, A_AGGREGATOR, value)]),
        expect(DISCARD, 3, 5, announced=V4_NLRI, absent=["aggregator"]),
    )

case(
    "aggregator-length-8-as2",
    "AGGREGATOR of length 8 on a 2-octet AS session, where it must be 6.",
    "RFC 7606 s7.7",
    std_update(EBGP_AS2, extra=[attr(OPT_TRANS, A_AGGREGATOR, aggregator_value(PEER_AS, True))]),
    expect(DISCARD, 3, 5, announced=V4_NLRI, absent=["aggregator"]),
    ctx=EBGP_AS2,
)

case(
    "aggregator-as-zero",
    "AGGREGATOR of the right length whose AS is 0.",
    "RFC 7607 s2; robustness U21",
    std_update(extra=[attr(OPT_TRANS, A_AGGREGATOR, aggregator_value(0, True))]),
    expect(DISCARD, 3, 9, announced=V4_NLRI, absent=["aggregator"]),
)

# COMMUNITIES (s7.8)
for length in (0, 5):
    case(
        f"communities-length-{length}",
        f"COMMUNITIES with attribute length {length}, not a non-zero multiple of 4.",
        "RFC 7606 s7.8; robustness U19",
        std_update(
            extra=[
                attr(
                    OPT_TRANS, A_COMMUNITIES, (struct.pack("!HH", PEER_AS, 100) + b"\x01")[:length]
                )
            ]
        ),
        expect(TAW, 3, 9, announced=V4_NLRI),
    )

# ORIGINATOR_ID (s7.9) and CLUSTER_LIST (s7.10)
case(
    "originator-id-from-ebgp",
    "A well-formed ORIGINATOR_ID received from an eBGP peer.",
    "RFC 7606 s7.9; robustness U20",
    std_update(extra=[attr(OPT_NON_TRANS, A_ORIGINATOR_ID, ipv4("192.0.2.7"))]),
    expect(DISCARD, 3, 9, announced=V4_NLRI, absent=["originator_id"]),
)

for length in (3, 5):
    case(
        f"originator-id-length-{length}-ibgp",
        f"ORIGINATOR_ID on iBGP with attribute length {length} instead of 4.",
        "RFC 7606 s7.9; robustness U20",
        std_update(
            IBGP,
            extra=[attr(OPT_NON_TRANS, A_ORIGINATOR_ID, (ipv4("192.0.2.7") + b"\x00")[:length])],
        ),
        expect(TAW, 3, 5, announced=V4_NLRI),
        ctx=IBGP,
    )

case(
    "cluster-list-from-ebgp",
    "A well-formed CLUSTER_LIST received from an eBGP peer.",
    "RFC 7606 s7.10; robustness U20",
    std_update(extra=[attr(OPT_NON_TRANS, A_CLUSTER_LIST, ipv4("192.0.2.8"))]),
    expect(DISCARD, 3, 9, announced=V4_NLRI, absent=["cluster_list"]),
)

for length in (0, 5):
    case(
        f"cluster-list-length-{length}-ibgp",
        f"CLUSTER_LIST on iBGP with attribute length {length}, not a non-zero multiple of 4.",
        "RFC 7606 s7.10; robustness U20",
        std_update(
            IBGP,
            extra=[attr(OPT_NON_TRANS, A_CLUSTER_LIST, (ipv4("192.0.2.8") + b"\x00")[:length])],
        ),
        expect(TAW, 3, 5, announced=V4_NLRI),
        ctx=IBGP,
    )

# EXTENDED_COMMUNITIES (s7.14), IPv6 extended communities (s7.15), LARGE_COMMUNITY (RFC 8092 s6)
for length in (0, 9):
    case(
        f"ext-communities-length-{length}",
        f"EXTENDED_COMMUNITIES with attribute length {length}, not a non-zero multiple of 8.",
        "RFC 7606 s7.14; robustness U19",
        std_update(extra=[attr(OPT_TRANS, A_EXT_COMMUNITIES, (EXT_COMM_RT + b"\x00")[:length])]),
        expect(TAW, 3, 9, announced=V4_NLRI),
    )

for length in (0, 21):
    case(
        f"ipv6-ext-communities-length-{length}",
        f"IPv6 Address Specific Extended Community attribute with length {length}, not a "
        "non-zero multiple of 20.",
        "RFC 7606 s7.15; robustness U19",
        std_update(
            extra=[attr(OPT_TRANS, A_IPV6_EXT_COMMUNITIES, (IPV6_EXT_COMM + b"\x00")[:length])]
        ),
        expect(TAW, 3, 9, announced=V4_NLRI),
    )

for length in (0, 13):
    case(
        f"large-communities-length-{length}",
        f"LARGE_COMMUNITY with attribute length {length}, not a non-zero multiple of 12.",
        "RFC 8092 s6; robustness U19",
        std_update(extra=[attr(OPT_TRANS, A_LARGE_COMMUNITY, (LARGE_COMM + b"\x00")[:length])]),
        expect(TAW, 3, 9, announced=V4_NLRI),
    )

# AS4_PATH and AS4_AGGREGATOR (RFC 6793 s6, RFC 7607)
AS2_PATH_WITH_TRANS = as_path(EBGP_AS2, [PEER_AS, AS_TRANS, OTHER_AS])


def as4_path(*segments: bytes) -> bytes:
    return attr(OPT_TRANS, A_AS4_PATH, b"".join(segments))


case(
    "as4-path-valid-as2",
    "A 2-octet session's AS_PATH with AS_TRANS plus a matching AS4_PATH, the normal RFC 6793 "
    "shape.",
    "RFC 6793 s4.2.3",
    std_update(
        EBGP_AS2,
        replace={A_AS_PATH: AS2_PATH_WITH_TRANS},
        extra=[as4_path(segment(AS_SEQUENCE, [4200000001, OTHER_AS]))],
    ),
    expect(NONE, announced=V4_NLRI),
    ctx=EBGP_AS2,
)

case(
    "as4-path-segment-overrun",
    "AS4_PATH whose segment claims 5 ASNs but holds 2, on a 2-octet AS session.",
    "RFC 6793 s6; robustness U15",
    std_update(
        EBGP_AS2,
        replace={A_AS_PATH: AS2_PATH_WITH_TRANS},
        extra=[as4_path(segment(AS_SEQUENCE, [4200000001, OTHER_AS], count=5))],
    ),
    expect(DISCARD, 3, 9, announced=V4_NLRI),
    ctx=EBGP_AS2,
)

case(
    "as4-path-segment-type-7",
    "AS4_PATH with a segment of undefined type 7, on a 2-octet AS session.",
    "RFC 6793 s6",
    std_update(
        EBGP_AS2,
        replace={A_AS_PATH: AS2_PATH_WITH_TRANS},
        extra=[as4_path(segment(7, [4200000001, OTHER_AS]))],
    ),
    expect(DISCARD, 3, 9, announced=V4_NLRI),
    ctx=EBGP_AS2,
)

case(
    "as4-path-confed-segment",
    "AS4_PATH starting with an AS_CONFED_SEQUENCE segment, which RFC 6793 forbids in AS4_PATH.",
    "RFC 6793 s6; robustness U15",
    std_update(
        EBGP_AS2,
        replace={A_AS_PATH: AS2_PATH_WITH_TRANS},
        extra=[
            as4_path(
                segment(AS_CONFED_SEQUENCE, [65500]), segment(AS_SEQUENCE, [4200000001, OTHER_AS])
            )
        ],
    ),
    expect(DISCARD, 3, 9, announced=V4_NLRI),
    ctx=EBGP_AS2,
)

case(
    "as4-path-as-zero",
    "AS4_PATH containing AS 0, on a 2-octet AS session.",
    "RFC 7607 s2; RFC 6793 s6",
    std_update(
        EBGP_AS2,
        replace={A_AS_PATH: AS2_PATH_WITH_TRANS},
        extra=[as4_path(segment(AS_SEQUENCE, [0, OTHER_AS]))],
    ),
    expect(DISCARD, 3, 9, announced=V4_NLRI),
    ctx=EBGP_AS2,
)

case(
    "as4-path-longer-than-as-path",
    "AS4_PATH with 4 ASNs against an AS_PATH of 3; RFC 6793 says to ignore AS4_PATH, never to "
    "reset.",
    "RFC 6793 s4.2.3; robustness U15 (CVE-2026-41643)",
    std_update(
        EBGP_AS2,
        replace={A_AS_PATH: AS2_PATH_WITH_TRANS},
        extra=[as4_path(segment(AS_SEQUENCE, [4200000001, 4200000002, 4200000003, OTHER_AS]))],
    ),
    expect(NONE, announced=V4_NLRI),
    ctx=EBGP_AS2,
)

case(
    "as4-path-between-new-speakers",
    "A well-formed AS4_PATH received on a session where both sides have the 4-octet AS capability.",
    "RFC 6793 s6",
    std_update(
        replace={A_AS_PATH: as_path(EBGP, [PEER_AS, 4200000001, OTHER_AS])},
        extra=[as4_path(segment(AS_SEQUENCE, [4200000001, OTHER_AS]))],
    ),
    expect(DISCARD, 3, 9, announced=V4_NLRI),
)

AGGREGATOR_TRANS = attr(OPT_TRANS, A_AGGREGATOR, aggregator_value(AS_TRANS, False))

case(
    "as4-aggregator-length-6",
    "AS4_AGGREGATOR of length 6 instead of 8, next to an AGGREGATOR holding AS_TRANS, on a "
    "2-octet AS session.",
    "RFC 6793 s6",
    std_update(
        EBGP_AS2,
        extra=[
            AGGREGATOR_TRANS,
            attr(OPT_TRANS, A_AS4_AGGREGATOR, aggregator_value(PEER_AS, False)),
        ],
    ),
    expect(DISCARD, 3, 9, announced=V4_NLRI),
    ctx=EBGP_AS2,
)

case(
    "as4-aggregator-as-zero",
    "AS4_AGGREGATOR of length 8 whose AS is 0, on a 2-octet AS session.",
    "RFC 7607 s2; RFC 6793 s6",
    std_update(
        EBGP_AS2,
        extra=[AGGREGATOR_TRANS, attr(OPT_TRANS, A_AS4_AGGREGATOR, aggregator_value(0, True))],
    ),
    expect(DISCARD, 3, 9, announced=V4_NLRI),
    ctx=EBGP_AS2,
)

case(
    "as4-aggregator-between-new-speakers",
    "A well-formed AS4_AGGREGATOR received on a session where both sides have the 4-octet AS "
    "capability.",
    "RFC 6793 s6",
    std_update(
        extra=[
            attr(OPT_TRANS, A_AGGREGATOR, aggregator_value(PEER_AS, True)),
            attr(OPT_TRANS, A_AS4_AGGREGATOR, aggregator_value(4200000001, True)),
        ]
    ),
    expect(DISCARD, 3, 9, announced=V4_NLRI),
)

# ---------------------------------------------------------------------------
# 9. Missing well-known mandatory attributes (RFC 4271 s6.3, RFC 7606 s3(d))
# ---------------------------------------------------------------------------

for code, label in ((A_ORIGIN, "origin"), (A_AS_PATH, "as-path"), (A_NEXT_HOP, "next-hop")):
    case(
        f"missing-{label}",
        "An UPDATE announcing IPv4 NLRI with every mandatory attribute except "
        f"{label.upper().replace('-', '_')}.",
        "RFC 7606 s3(d); RFC 4271 s6.3",
        std_update(omit=(code,)),
        expect(TAW, 3, 3, announced=V4_NLRI),
    )

case(
    "missing-local-pref-ibgp",
    "An iBGP UPDATE announcing IPv4 NLRI without LOCAL_PREF.",
    "RFC 7606 s3(d); RFC 4271 s5.1.5",
    std_update(IBGP, omit=(A_LOCAL_PREF,)),
    expect(TAW, 3, 3, announced=V4_NLRI),
    ctx=IBGP,
)

case(
    "missing-all-attr-length-0",
    "An UPDATE with Total Path Attribute Length 0 and two prefixes in the NLRI field.",
    "RFC 7606 s3(d); robustness U4 (CVE-2023-41358)",
    update(b"", b"", prefixes(V4_NLRI)),
    expect(TAW, 3, 3, announced=V4_NLRI),
)

case(
    "missing-all-only-unknown-transitive",
    "An UPDATE whose only attribute is an unknown optional transitive one (31), with IPv4 NLRI.",
    "RFC 7606 s3(d); robustness U5 (CVE-2023-46753)",
    update(b"", attr(OPT_TRANS, 31, b"\x00\x01\x02\x03"), prefixes(V4_NLRI)),
    expect(TAW, 3, 3, announced=V4_NLRI),
)

case(
    "missing-all-mp-unreach-plus-nlri",
    "An UPDATE with only an IPv6 MP_UNREACH_NLRI attribute plus IPv4 NLRI, so the announced "
    "routes lack mandatory attributes.",
    "RFC 7606 s3(d); robustness U6 (CVE-2023-47234)",
    update(b"", MP_UNREACH_V6, prefixes(V4_NLRI)),
    expect(TAW, 3, 3, announced=V4_NLRI, withdrawn=["2001:db8:9::/48"]),
)

case(
    "withdraw-only-no-attributes",
    "An UPDATE that only withdraws an IPv4 prefix and carries no path attributes, which is legal.",
    "RFC 4271 s4.3",
    update(prefixes(V4_WITHDRAWN)),
    expect(NONE, announced=[], withdrawn=V4_WITHDRAWN),
)

# ---------------------------------------------------------------------------
# 10. Unknown and uninterpreted attributes (RFC 4271 s5, s6.3; RFC 7606 s2; robustness 1.2)
# ---------------------------------------------------------------------------

case(
    "unknown-well-known",
    "An attribute with unassigned type code 99 and flags 0x40 (Optional bit clear), an "
    "unrecognized well-known attribute.",
    "RFC 4271 s6.3",
    std_update(extra=[attr(WELL_KNOWN, A_UNKNOWN, b"\x01\x02")]),
    expect(RESET, 3, 2),
)

case(
    "unknown-optional-transitive",
    "An unassigned optional transitive attribute (99, flags 0xc0); it is kept and passed on.",
    "RFC 4271 s5; robustness U28",
    std_update(extra=[attr(OPT_TRANS, A_UNKNOWN, b"\x01\x02\x03")]),
    expect(NONE, announced=V4_NLRI),
)

case(
    "unknown-optional-transitive-partial",
    "An unassigned optional transitive attribute with the Partial bit already set (flags 0xe0).",
    "RFC 4271 s5",
    std_update(extra=[attr(OPT_TRANS | F_PARTIAL, A_UNKNOWN, b"\x01\x02\x03")]),
    expect(NONE, announced=V4_NLRI),
)

case(
    "unknown-optional-non-transitive",
    "An unassigned optional non-transitive attribute (99, flags 0x80); it is quietly dropped.",
    "RFC 4271 s5",
    std_update(extra=[attr(OPT_NON_TRANS, A_UNKNOWN, b"\x01\x02\x03")]),
    expect(NONE, announced=V4_NLRI, absent=["unknown"]),
)

case(
    "tunnel-encap-garbage",
    "A Tunnel Encapsulation attribute (23, optional transitive) whose TLV length runs past the "
    "attribute.",
    "RFC 9012; robustness U22 (CVE-2023-38802)",
    std_update(extra=[attr(OPT_TRANS, A_TUNNEL_ENCAP, b"\x00\x08\x00\x40\x01\x00\x02")]),
    expect(NONE, announced=V4_NLRI),
)

case(
    "traffic-engineering-garbage",
    "A Traffic Engineering attribute (24, optional non-transitive) of 3 bytes, shorter than its "
    "fixed part.",
    "RFC 7606 s7.13; RFC 5543",
    std_update(extra=[attr(OPT_NON_TRANS, A_TRAFFIC_ENG, b"\x01\x02\x03")]),
    expect(NONE, announced=V4_NLRI, absent=["unknown"]),
)

case(
    "aigp-garbage",
    "An AIGP attribute (26, optional non-transitive) whose TLV length of 2 is shorter than its "
    "own header.",
    "RFC 7311; robustness U25 (CVE-2023-41359)",
    std_update(extra=[attr(OPT_NON_TRANS, A_AIGP, b"\x01\x00\x02\x00\x00")]),
    expect(NONE, announced=V4_NLRI, absent=["unknown"]),
)

case(
    "bgp-ls-garbage-transitive",
    "A BGP-LS attribute (29) sent optional transitive, with a TLV whose length runs past the "
    "attribute.",
    "RFC 9552; robustness U23 (CVE-2023-4481)",
    std_update(extra=[attr(OPT_TRANS, A_BGP_LS, b"\x04\x04\x00\x20\x01\x02")]),
    expect(NONE, announced=V4_NLRI),
)

case(
    "otc-length-3",
    "An Only-to-Customer attribute (35, optional transitive) of length 3 instead of 4; kbgp does "
    "not interpret OTC.",
    "RFC 9234 s5; robustness U26",
    std_update(extra=[attr(OPT_TRANS, A_OTC, b"\x00\xfd\xe9")]),
    expect(NONE, announced=V4_NLRI),
)

case(
    "prefix-sid-garbage-non-transitive",
    "A Prefix-SID attribute (40) sent without the Transitive bit, with a TLV length running past "
    "the attribute.",
    "RFC 8669; robustness U24 (CVE-2024-31948)",
    std_update(extra=[attr(OPT_NON_TRANS, A_PREFIX_SID, b"\x01\x00\x30\x00\x00\x00")]),
    expect(NONE, announced=V4_NLRI, absent=["unknown"]),
)

case(
    "attr-set-garbage",
    "An ATTR_SET attribute (128, optional transitive) too short to hold its Origin AS.",
    "RFC 7606 s7.16; RFC 6368",
    std_update(extra=[attr(OPT_TRANS, A_ATTR_SET, b"\xfd\xe9\x40")]),
    expect(NONE, announced=V4_NLRI),
)

case(
    "unknown-optional-transitive-64000-bytes",
    "An unassigned optional transitive attribute of 64000 bytes in an UPDATE that needs Extended "
    "Messages.",
    "RFC 8654; robustness U27",
    std_update(extra=[attr(OPT_TRANS, A_UNKNOWN, bytes(i % 251 for i in range(64000)))]),
    expect(NONE, announced=V4_NLRI),
    ctx=EBGP_EXT,
)

# ---------------------------------------------------------------------------
# 11. End-of-RIB and UPDATEs without reachable NLRI (RFC 4724 s2, RFC 7606 s5.2)
# ---------------------------------------------------------------------------

case(
    "eor-ipv4-empty-update",
    "An empty 23-byte UPDATE, the IPv4 unicast End-of-RIB marker.",
    "RFC 4724 s2",
    update(),
    expect(NONE, announced=[], withdrawn=[]),
)

case(
    "eor-ipv6-mp-unreach",
    "An UPDATE carrying only an empty IPv6 unicast MP_UNREACH_NLRI, the IPv6 End-of-RIB marker.",
    "RFC 4724 s2",
    update(b"", mp_unreach_attr(mp_unreach(AFI_IPV6, SAFI_UNICAST))),
    expect(NONE, announced=[], withdrawn=[]),
)

case(
    "eor-shaped-bad-origin",
    "An UPDATE with no NLRI and no withdrawals whose only attribute is an ORIGIN of value 5; "
    "with no reachable NLRI the error escalates to session reset.",
    "RFC 7606 s5.2; robustness U7 (CVE-2023-47235)",
    update(b"", origin(5)),
    expect(RESET, 3, 6),
)

case(
    "eor-shaped-bad-atomic-aggregate",
    "An UPDATE with no NLRI whose only attribute is an ATOMIC_AGGREGATE of length 1; attribute "
    "discard does not escalate.",
    "RFC 7606 s5.2, s7.6",
    update(b"", attr(WELL_KNOWN, A_ATOMIC_AGGREGATE, b"\x00")),
    expect(DISCARD, 3, 5, announced=[], absent=["atomic_aggregate"]),
)

case(
    "withdraw-with-bad-origin",
    "An UPDATE that withdraws an IPv4 prefix and also carries ORIGIN, AS_PATH and NEXT_HOP with "
    "an ORIGIN value of 5 but announces nothing.",
    "RFC 7606 s5.2",
    update(prefixes(V4_WITHDRAWN), std_attrs(EBGP, replace={A_ORIGIN: origin(5)})),
    expect(RESET, 3, 6),
)

# ---------------------------------------------------------------------------
# 12. Two faults: the strongest outcome wins (RFC 7606 s3(h))
# ---------------------------------------------------------------------------

case(
    "two-faults-discard-and-taw",
    "A malformed ATOMIC_AGGREGATE (discard) and an ORIGIN of value 5 (treat-as-withdraw) in one "
    "UPDATE.",
    "RFC 7606 s3(h)",
    std_update(
        replace={A_ORIGIN: origin(5)}, extra=[attr(WELL_KNOWN, A_ATOMIC_AGGREGATE, b"\x00")]
    ),
    expect(TAW, 3, 6, announced=V4_NLRI, absent=["atomic_aggregate"]),
)

case(
    "two-faults-discard-and-missing",
    "A LOCAL_PREF from eBGP (discard) and no NEXT_HOP for the IPv4 NLRI (treat-as-withdraw).",
    "RFC 7606 s3(h), s3(d), s7.5",
    std_update(omit=(A_NEXT_HOP,), extra=[local_pref(200)]),
    expect(TAW, 3, 3, announced=V4_NLRI, absent=["local_pref"]),
)

case(
    "two-faults-taw-and-dup-mp-reach",
    "An ORIGIN of value 5 (treat-as-withdraw) and two MP_REACH_NLRI attributes (session reset).",
    "RFC 7606 s3(h), s3(g)",
    update(
        b"",
        std_attrs(EBGP, replace={A_ORIGIN: origin(5)}, extra=[MP_REACH_V6, MP_REACH_V6]),
        prefixes(V4_NLRI),
    ),
    expect(RESET, 3, 1),
)

case(
    "two-faults-taw-and-unknown-well-known",
    "A MULTI_EXIT_DISC of length 3 (treat-as-withdraw) followed by an unrecognized well-known "
    "attribute (session reset).",
    "RFC 7606 s3(h); RFC 4271 s6.3",
    std_update(
        extra=[attr(OPT_NON_TRANS, A_MED, b"\x00\x00\x01"), attr(WELL_KNOWN, A_UNKNOWN, b"\x01")]
    ),
    expect(RESET, 3, 2),
)


# ---------------------------------------------------------------------------
# Output
# ---------------------------------------------------------------------------

README_HEAD = """\
# Malformed BGP message corpus

One JSON file per case, `NNN-short-name.json`, each holding one whole BGP message and
what a decoder must make of it.  The files and the table below are generated by
`build_corpus.py` (standard library only, no import of kbgp); edit that script, not the
JSON, and re-run it:

    python3 tests/vectors/malformed/build_corpus.py          # rewrite the corpus
    python3 tests/vectors/malformed/build_corpus.py --check  # fail if the files are stale

## File format

```json
{
  "name": "origin-value-3",
  "description": "ORIGIN with the undefined value 3.",
  "reference": "RFC 7606 s7.1; robustness U12",
  "context": {"ibgp": false, "asn4": true, "extended_message": false},
  "hex": "ffffffffffffffffffffffffffffffff003c02...",
  "expect": {
    "handling": "treat-as-withdraw",
    "code": 3,
    "subcode": 6,
    "announced": ["10.1.0.0/24", "10.2.0.0/16"]
  }
}
```

- `context`: the session the message arrives on. `ibgp`: the peer is internal. `asn4`: both
  sides have the 4-octet AS capability (AS_PATH and AGGREGATOR carry 4-octet ASNs, AS4_PATH and
  AS4_AGGREGATOR are not expected). `extended_message`: RFC 8654 was negotiated.
- `hex`: the whole message including the 16-byte marker, lowercase. The header length field
  equals the number of bytes in every case except `header-length-18`, whose fault is a length
  field smaller than the header itself.
- `expect.handling`: the strongest RFC 7606 outcome for the message, one of `session-reset`,
  `afi-safi-disable`, `treat-as-withdraw`, `attribute-discard`, `none`.
- `expect.code` / `expect.subcode`: the NOTIFICATION code and subcode of that outcome (omitted
  for `none`). For treat-as-withdraw and attribute-discard it is the subcode RFC 4271 s6.3
  names for the fault, which a decoder reports though it does not send it: 3/3 missing
  well-known, 3/4 flags, 3/5 length, 3/6 ORIGIN, 3/8 NEXT_HOP, 3/9 optional attribute,
  3/11 AS_PATH, 3/1 malformed attribute list (attribute block framing, repeated attributes).
- `expect.announced` / `expect.withdrawn` (optional): every prefix the message carries, in the
  order of `kbgp decode` (IPv4 field first, then MP_REACH / MP_UNREACH). Given only when the
  NLRI can still be located; `[]` asserts that nothing is there or that an un-negotiated
  family was not parsed.
- `expect.absent_attributes` (optional): keys of the `kbgp decode` `attributes` object
  (docs/decode-json.md) that must not appear: the discarded attribute, or `unknown` where an
  unknown optional non-transitive attribute must be dropped.

## Rules the corpus encodes

- Each case holds one fault, except the `two-faults-*` cases, where the stronger outcome wins
  (RFC 7606 s3(h)) and its code is recorded.
- Every UPDATE that is not about mandatory attributes carries a valid ORIGIN (IGP), AS_PATH
  (AS_SEQUENCE 65001 65010, 2 or 4 octets per the context), NEXT_HOP 192.0.2.1 and, on iBGP,
  LOCAL_PREF 100, so exactly one rule fires.
- An UPDATE that carries path attributes other than MP_UNREACH_NLRI but no reachable NLRI
  escalates any error other than attribute discard to session reset (RFC 7606 s5.2):
  `eor-shaped-bad-origin`, `withdraw-with-bad-origin`.
- A malformed MP_REACH_NLRI / MP_UNREACH_NLRI (next-hop length, truncation, bad prefix) is a
  session reset with 3/9; kbgp does not use AFI/SAFI disable.
- Attributes kbgp does not interpret (Tunnel Encapsulation 23, Traffic Engineering 24, AIGP 26,
  BGP-LS 29, OTC 35, Prefix-SID 40, ATTR_SET 128) are unknown attributes to it: optional
  transitive ones are kept opaque, optional non-transitive ones dropped, never parsed.
- An AS_PATH is capped at 1000 ASNs (treat-as-withdraw above it) whatever the message size.

## Cases

| # | name | handling | code/subcode | reference |
|---|---|---|---|---|
"""


def render(index: int, c: dict) -> tuple[str, str]:
    data = c["data"]
    doc = {
        "name": c["name"],
        "description": c["description"],
        "reference": c["reference"],
        "context": dict(c["ctx"]),
        "hex": data.hex(),
        "expect": c["expect"],
    }
    return f"{index:03d}-{c['name']}.json", json.dumps(doc, indent=2) + "\n"


def validate() -> None:
    names = [c["name"] for c in CASES]
    dupes = {n for n in names if names.count(n) > 1}
    assert not dupes, f"duplicate case names: {sorted(dupes)}"
    for c in CASES:
        data, name = c["data"], c["name"]
        assert len(data) >= 19, name
        declared = struct.unpack("!H", data[16:18])[0]
        if c["length_mismatch"]:
            assert declared != len(data), f"{name}: marked as a length fault but lengths agree"
        else:
            assert declared == len(data), f"{name}: header says {declared}, message has {len(data)}"
        assert len(data) <= 65535, name
        # a message over the size limit must be expected to fail with 1/2 (OPEN and KEEPALIVE never
        # get the extended limit, RFC 8654)
        big_ok = c["ctx"]["extended_message"] and data[18] not in (MSG_OPEN, MSG_KEEPALIVE)
        if len(data) > (65535 if big_ok else 4096):
            assert (c["expect"].get("code"), c["expect"].get("subcode")) == (1, 2), name
        desc = c["description"]
        assert desc.endswith(".") and desc[0].isupper(), name
        assert c["expect"]["handling"] in (RESET, DISABLE, TAW, DISCARD, NONE), name


def build() -> dict[str, str]:
    validate()
    files: dict[str, str] = {}
    rows = []
    for i, c in enumerate(CASES, 1):
        fname, text = render(i, c)
        files[fname] = text
        e = c["expect"]
        code = f"{e['code']}/{e['subcode']}" if "code" in e else "-"
        rows.append(f"| {i:03d} | `{c['name']}` | {e['handling']} | {code} | {c['reference']} |")
    files["README.md"] = README_HEAD + "\n".join(rows) + "\n"
    return files


def main(argv: list[str]) -> int:
    files = build()
    stale_json = {p.name for p in HERE.glob("[0-9][0-9][0-9]-*.json")} - set(files)
    if "--check" in argv:
        bad = [
            n for n, t in files.items() if not (HERE / n).exists() or (HERE / n).read_text() != t
        ]
        bad += sorted(stale_json)
        for n in bad:
            print(f"stale: {n}")
        print(f"{len(CASES)} cases, {'up to date' if not bad else f'{len(bad)} stale'}")
        return 1 if bad else 0
    for name in sorted(stale_json):
        (HERE / name).unlink()
    for name, text in files.items():
        path = HERE / name
        if not path.exists() or path.read_text() != text:
            path.write_text(text)
    print(f"wrote {len(CASES)} cases to {HERE}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
