"""Round-trip properties of the kbgp wire codec (Hypothesis).

For every message type and every path attribute kbgp knows:
decode(encode(x)) == x; packed UPDATE encoding splits into messages that
respect max_size and carry the input prefixes in order; the RFC 6793
2-octet encoding decodes back to the same 4-octet AS path and aggregator;
the Framer cuts the same messages out of a stream however it is chunked.
"""
from __future__ import annotations

import ipaddress

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from kbgp.bgp.constants import AS_TRANS, WELL_KNOWN_COMMUNITY_VALUES
from kbgp.bgp.messages import (
    EnhancedRouteRefreshCap,
    ExtendedMessageCap,
    ExtendedNextHopCap,
    FourOctetAsCap,
    GracefulRestartCap,
    Keepalive,
    MultiprotocolCap,
    Notification,
    Open,
    RouteRefresh,
    RouteRefreshCap,
    UnknownCap,
)
from kbgp._fast.attrs import (
    DecodeContext,
    PathAttributes,
    decode_update,
    encode_attributes,
    encode_end_of_rib,
    encode_updates,
    mp_next_hop_bytes,
)
from kbgp._fast.wire import (
    KEEPALIVE,
    Framer,
    PrefixArray,
    decode_keepalive,
    decode_notification,
    decode_open,
    decode_route_refresh,
    encode_keepalive,
    encode_notification,
    encode_open,
    encode_route_refresh,
    shutdown_communication,
    split_message,
)

# No example database on disk, no per-example deadline (2 shared cores).
COMMON = dict(database=None, deadline=None,
              suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])

# ------------------------------------------------------------------ values

U8 = st.integers(0, 0xFF)
U16 = st.integers(0, 0xFFFF)
U32 = st.integers(0, 0xFFFFFFFF)
ASN = st.integers(1, 0xFFFFFFFF)                   # 4-octet ASNs, never AS 0 (RFC 7607)
ASN_MIXED = st.one_of(st.integers(1, 0xFFFF), st.integers(0x10000, 0xFFFFFFFF),
                      st.sampled_from([1, 0xFFFF, 0x10000, AS_TRANS, 0xFFFFFFFF]))

IPV4_ANY = U32.map(lambda n: str(ipaddress.IPv4Address(n)))
# Unicast next hops: not 0/8, 127/8, 224/4 (multicast) or 240/4.
IPV4_UNICAST = st.builds(
    lambda top, low: str(ipaddress.IPv4Address((top << 24) | low)),
    st.one_of(st.integers(1, 126), st.integers(128, 223)),
    st.integers(0, (1 << 24) - 1),
)
# Global unicast 2000::/3 and link-local fe80::/64.
IPV6_GLOBAL = st.integers(0, (1 << 125) - 1).map(
    lambda n: str(ipaddress.IPv6Address((1 << 125) | n)))
IPV6_LINK_LOCAL = st.integers(1, (1 << 64) - 1).map(
    lambda n: str(ipaddress.IPv6Address((0xFE80 << 112) | n)))

V4_PLEN = st.one_of(st.sampled_from([0, 1, 8, 24, 31, 32]), st.integers(0, 32))
V6_PLEN = st.one_of(st.sampled_from([0, 1, 64, 127, 128]), st.integers(0, 128))
# Prefixes given with arbitrary host bits: the array masks them.
V4_PREFIX = st.builds(lambda a, n: f"{ipaddress.IPv4Address(a)}/{n}", U32, V4_PLEN)
V6_PREFIX = st.builds(lambda a, n: f"{ipaddress.IPv6Address(a)}/{n}",
                      st.integers(0, (1 << 128) - 1), V6_PLEN)

KNOWN_ATTR_CODES = set(range(1, 11)) | set(range(14, 19)) | {25, 32}
UNKNOWN_ATTR_CODE = st.integers(0, 255).filter(lambda c: c not in KNOWN_ATTR_CODES)

COMMUNITY = st.one_of(
    U32,
    st.builds(lambda a, b: f"{a}:{b}", U16, U16),
    st.sampled_from(sorted(WELL_KNOWN_COMMUNITY_VALUES)),
)
LARGE_COMMUNITY = st.one_of(
    st.tuples(U32, U32, U32),
    st.builds(lambda a, b, c: f"{a}:{b}:{c}", U32, U32, U32),
)


def canonical(prefix: str) -> str:
    return str(ipaddress.ip_network(prefix, strict=False))


def as_paths(confed: bool = False, asn=ASN, max_segments: int = 5, max_len: int = 12):
    """AS paths of AS_SEQUENCE / AS_SET segments (and confederation segments when asked)."""
    types = [1, 2, 3, 4] if confed else [1, 2]
    segment = st.tuples(st.sampled_from(types),
                        st.lists(asn, min_size=1, max_size=max_len).map(tuple))
    return st.lists(segment, min_size=0, max_size=max_segments).map(tuple)


@st.composite
def path_attributes(draw, ibgp: bool = False, next_hop: bool = True, confed: bool = False,
                    asn=ASN, small: bool = False):
    """A valid attribute set: ORIGIN and AS_PATH always, NEXT_HOP when asked,
    LOCAL_PREF (and maybe ORIGINATOR_ID / CLUSTER_LIST) on iBGP."""
    kw = {
        "origin": draw(st.integers(0, 2)),
        "as_path": draw(as_paths(confed=confed, asn=asn, max_segments=2 if small else 5,
                                 max_len=3 if small else 12)),
    }
    if next_hop:
        kw["next_hop"] = draw(IPV4_UNICAST)
    if small:
        return PathAttributes(**kw)
    kw["med"] = draw(st.none() | U32)
    if ibgp:
        kw["local_pref"] = draw(U32)
        kw["originator_id"] = draw(st.none() | IPV4_ANY)
        kw["cluster_list"] = tuple(draw(st.lists(IPV4_ANY, max_size=4)))
    kw["atomic_aggregate"] = draw(st.booleans())
    kw["aggregator"] = draw(st.none() | st.tuples(asn, IPV4_ANY))
    kw["communities"] = tuple(draw(st.lists(COMMUNITY, max_size=6)))
    kw["large_communities"] = tuple(draw(st.lists(LARGE_COMMUNITY, max_size=4)))
    kw["extended_communities"] = tuple(
        draw(st.lists(st.binary(min_size=8, max_size=8), max_size=4)))
    kw["ipv6_extended_communities"] = tuple(
        draw(st.lists(st.binary(min_size=20, max_size=20), max_size=2)))
    kw["unknown"] = tuple(draw(st.lists(
        st.tuples(st.sampled_from([0xC0, 0xE0]), UNKNOWN_ATTR_CODE, st.binary(max_size=300)),
        max_size=3, unique_by=lambda t: t[1])))
    return PathAttributes(**kw)


SCALARS = ("origin", "next_hop", "med", "local_pref", "atomic_aggregate", "aggregator",
           "communities", "originator_id", "cluster_list", "mp_next_hop", "extended_communities",
           "ipv6_extended_communities", "large_communities")


def assert_same_attributes(got: PathAttributes, want: PathAttributes) -> None:
    """got came off the wire; want was encoded.  Unknown attributes come back with Partial set."""
    assert got is not None
    for name in SCALARS:
        assert getattr(got, name) == getattr(want, name), name
    assert got.as_path == want.as_path
    assert got.as_path_flat() == want.as_path_flat()
    assert got.as_path_length() == want.as_path_length()
    assert got.unknown == tuple((flags | 0x20, code, value) for flags, code, value in want.unknown)
    assert got == want
    assert hash(got) == hash(want)


def frames(data: bytes, max_size: int = 65535) -> list[tuple[int, bytes]]:
    framer = Framer(max_size)
    out = framer.messages(data)
    assert framer.buffered == 0
    return out


def update_body(withdrawn: bytes = b"", attrs: bytes = b"", nlri: bytes = b"") -> bytes:
    return (len(withdrawn).to_bytes(2, "big") + withdrawn
            + len(attrs).to_bytes(2, "big") + attrs + nlri)


# -------------------------------------------------------------------- OPEN

KNOWN_CAP_CODES = {1, 2, 5, 6, 64, 65, 70}

CAPABILITY = st.one_of(
    st.builds(MultiprotocolCap, U16, U8),
    st.just(RouteRefreshCap()),
    st.just(EnhancedRouteRefreshCap()),
    st.just(ExtendedMessageCap()),
    st.builds(GracefulRestartCap, st.booleans(), st.booleans(), st.integers(0, 0xFFF),
              st.lists(st.tuples(U16, U8, st.booleans()), max_size=5).map(tuple)),
    st.builds(ExtendedNextHopCap,
              st.lists(st.tuples(U16, U16, U16), min_size=1, max_size=5).map(tuple)),
    st.builds(UnknownCap, st.integers(0, 255).filter(lambda c: c not in KNOWN_CAP_CODES),
              st.binary(max_size=40)),
)


@st.composite
def open_messages(draw, min_caps: int = 0, max_caps: int = 12):
    caps = draw(st.lists(CAPABILITY, min_size=min_caps, max_size=max_caps))
    asn = draw(st.none() | ASN_MIXED)
    if asn is None:
        my_as = draw(st.integers(1, 0xFFFF))
    else:
        my_as = AS_TRANS if asn > 0xFFFF else asn
        caps.insert(draw(st.integers(0, len(caps))), FourOctetAsCap(asn))
    hold = draw(st.one_of(st.just(0), st.integers(3, 0xFFFF)))
    router_id = draw(U32.filter(bool).map(lambda n: str(ipaddress.IPv4Address(n))))
    return Open(my_as, hold, router_id, tuple(caps))


def cap_bytes(msg: Open) -> int:
    """Bytes the capabilities take inside one optional parameter."""
    total = 0
    for c in msg.capabilities:
        if isinstance(c, MultiprotocolCap) or isinstance(c, FourOctetAsCap):
            total += 6
        elif isinstance(c, GracefulRestartCap):
            total += 4 + 4 * len(c.families)
        elif isinstance(c, ExtendedNextHopCap):
            total += 2 + 6 * len(c.families)
        elif isinstance(c, UnknownCap):
            total += 2 + len(c.data)
        else:
            total += 2
    return total


@settings(**COMMON, max_examples=300)
@given(open_messages(max_caps=60))
def test_open_roundtrip(msg):
    raw = encode_open(msg)
    mtype, body = split_message(raw)
    assert mtype == 1
    got = decode_open(body)
    assert got == msg
    assert got.asn == msg.asn
    assert got.to_dict() == msg.to_dict()
    extended = body[9] == 255 and body[10] == 255
    # RFC 9072: the extended form exactly when one capabilities parameter no longer fits 255 bytes.
    assert extended == (cap_bytes(msg) + 2 > 255)


@settings(**COMMON, max_examples=60)
@given(open_messages(min_caps=70, max_caps=90))
def test_open_many_capabilities_use_rfc9072(msg):
    raw = encode_open(msg)
    assert len(raw) <= 4096
    body = raw[19:]
    assert body[9] == 255 and body[10] == 255      # Non-Ext OP Len 255, Non-Ext OP Type 255
    assert int.from_bytes(body[11:13], "big") == len(body) - 13
    assert body[13] == 2                                       # one capabilities parameter
    assert int.from_bytes(body[14:16], "big") == len(body) - 16
    assert decode_open(body) == msg


@pytest.mark.parametrize("cap_len", [200, 252, 253, 254, 255, 257])
def test_open_extended_length_boundary(cap_len):
    # One unknown capability of cap_len bytes (header included): its parameter is cap_len + 2.
    msg = Open(65001, 90, "192.0.2.1", (UnknownCap(200, bytes(range(cap_len - 2))),))
    body = encode_open(msg)[19:]
    if cap_len + 2 <= 255:
        assert body[9] == cap_len + 2 and body[10] == 2 and body[11] == cap_len
    else:
        assert body[9] == 255 and body[10] == 255
    assert decode_open(body) == msg


# ------------------------------------------------------------ NOTIFICATION

@settings(**COMMON, max_examples=300)
@given(code=U8, subcode=U8, data=st.binary(max_size=300))
def test_notification_roundtrip(code, subcode, data):
    mtype, body = split_message(encode_notification(code, subcode, data))
    assert mtype == 3
    got = decode_notification(body)
    assert (got.code, got.subcode, got.data) == (code, subcode, data)
    if not (code == 6 and subcode in (2, 4) and data):
        assert got.shutdown_message is None


@settings(**COMMON, max_examples=300)
@given(subcode=st.sampled_from([2, 4]), text=st.text(max_size=300))
def test_notification_shutdown_text_roundtrip(subcode, text):
    data = shutdown_communication(text)
    assert data[0] == len(data) - 1 <= 255
    sent = data[1:].decode("utf-8")
    # The longest prefix of the text, cut at a character boundary, that fits 255 bytes.
    assert text.startswith(sent)
    if sent != text:
        assert len(data) - 1 + len(text[len(sent)].encode("utf-8")) > 255
    else:
        assert len(text.encode("utf-8")) <= 255
    _t, body = split_message(encode_notification(6, subcode, data))
    got = decode_notification(body)
    assert got == Notification(6, subcode, data, sent)


# ------------------------------------------------ KEEPALIVE, ROUTE-REFRESH

def test_keepalive_roundtrip():
    assert encode_keepalive() == KEEPALIVE
    assert split_message(KEEPALIVE) == (4, b"")
    assert decode_keepalive(b"") == Keepalive()


@settings(**COMMON, max_examples=200)
@given(afi=U16, safi=U8, subtype=U8)
def test_route_refresh_roundtrip(afi, safi, subtype):
    mtype, body = split_message(encode_route_refresh(afi, safi, subtype))
    assert mtype == 5 and len(body) == 4
    assert decode_route_refresh(body) == RouteRefresh(afi, safi, subtype)


# ------------------------------------------------------------------ UPDATE

@settings(**COMMON, max_examples=250)
@given(ibgp=st.booleans(), data=st.data())
def test_attributes_roundtrip_ipv4(ibgp, data):
    pa = data.draw(path_attributes(ibgp=ibgp, confed=ibgp))
    prefixes = data.draw(st.lists(V4_PREFIX, min_size=1, max_size=40))
    arr = PrefixArray.from_strings(prefixes, afi=1)
    out = encode_updates(arr, encode_attributes(pa), max_size=65535)
    msgs = frames(out)
    assert [t for t, _ in msgs] == [2]
    u = decode_update(msgs[0][1], DecodeContext(ibgp=ibgp))
    assert u.errors == () and u.handling == 0
    assert_same_attributes(u.attrs, pa)
    assert u.nlri == arr
    assert u.announced() == [canonical(p) for p in prefixes]
    assert u.mp_nlri is None and u.withdrawn_count() == 0
    assert u.end_of_rib is None


@settings(**COMMON, max_examples=250)
@given(ibgp=st.booleans(), link_local=st.booleans(), data=st.data())
def test_attributes_roundtrip_ipv6(ibgp, link_local, data):
    pa = data.draw(path_attributes(ibgp=ibgp, next_hop=data.draw(st.booleans())))
    prefixes = data.draw(st.lists(V6_PREFIX, min_size=1, max_size=40))
    nh = (data.draw(IPV6_GLOBAL),) + ((data.draw(IPV6_LINK_LOCAL),) if link_local else ())
    arr = PrefixArray.from_strings(prefixes, afi=2)
    out = encode_updates(arr, encode_attributes(pa), mp_next_hop=mp_next_hop_bytes(nh),
                         max_size=65535)
    msgs = frames(out)
    assert len(msgs) == 1
    u = decode_update(msgs[0][1], DecodeContext(ibgp=ibgp))
    assert u.errors == () and u.handling == 0
    assert_same_attributes(u.attrs, pa.replace(mp_next_hop=nh))
    assert len(u.nlri) == 0
    assert u.mp_nlri == arr
    assert u.announced() == [canonical(p) for p in prefixes]


@settings(**COMMON, max_examples=150)
@given(link_local=st.booleans(), data=st.data())
def test_ipv4_with_ipv6_next_hop_roundtrip(link_local, data):
    # RFC 8950: IPv4 NLRI in MP_REACH_NLRI with an IPv6 next hop.
    pa = data.draw(path_attributes(next_hop=False))
    prefixes = data.draw(st.lists(V4_PREFIX, min_size=1, max_size=40))
    nh = (data.draw(IPV6_GLOBAL),) + ((data.draw(IPV6_LINK_LOCAL),) if link_local else ())
    arr = PrefixArray.from_strings(prefixes, afi=1)
    out = encode_updates(arr, encode_attributes(pa), mp_next_hop=mp_next_hop_bytes(nh))
    (t, body), = frames(out)
    u = decode_update(body)
    assert u.errors == ()
    assert u.mp_nlri == arr and u.mp_nlri.afi == 1
    assert_same_attributes(u.attrs, pa.replace(mp_next_hop=nh))


@settings(**COMMON, max_examples=200)
@given(ibgp=st.booleans(), data=st.data())
def test_path_attributes_value_roundtrip(ibgp, data):
    # Constructor normalisation and replace() keep the same canonical value.
    pa = data.draw(path_attributes(ibgp=ibgp, confed=ibgp))
    assert PathAttributes(**pa.as_kwargs()) == pa
    assert pa.replace() == pa
    assert PathAttributes(communities=pa.community_strings()).communities == pa.communities


def test_long_as_sequence_splits_into_segments():
    # Segments hold at most 255 ASNs on the wire; the meaning is one sequence.
    path = ((2, tuple(range(1, 601))),)
    pa = PathAttributes(origin=0, as_path=path, next_hop="192.0.2.1")
    wire = encode_attributes(pa)
    assert wire[4] & 0x10 and wire[5] == 2                     # AS_PATH with an extended length
    value = wire[8:8 + int.from_bytes(wire[6:8], "big")]
    counts, pos = [], 0
    while pos < len(value):
        assert value[pos] == 2
        counts.append(value[pos + 1])
        pos += 2 + 4 * value[pos + 1]
    assert counts == [255, 255, 90]
    (t, body), = frames(encode_updates(PrefixArray.from_strings(["10.0.0.0/8"]), wire))
    u = decode_update(body)
    assert u.errors == ()
    assert u.attrs.as_path_flat() == list(range(1, 601))
    assert u.attrs.as_path_length() == 600
    assert u.attrs == pa


# ---------------------------------------------------------------- packing

def nlri_size(prefix: str) -> int:
    return 1 + (ipaddress.ip_network(prefix, strict=False).prefixlen + 7) // 8


MAX_SIZES = st.one_of(st.sampled_from([100, 4096, 65535]), st.integers(40, 5000))


@settings(**COMMON, max_examples=200)
@given(afi=st.sampled_from([1, 2]), link_local=st.booleans(), max_size=MAX_SIZES, data=st.data())
def test_encode_updates_packs_announcements(afi, link_local, max_size, data):
    prefixes = data.draw(st.lists(V4_PREFIX if afi == 1 else V6_PREFIX, min_size=1, max_size=400))
    pa = data.draw(path_attributes(next_hop=afi == 1, small=True))
    attrs = encode_attributes(pa)
    nh = ()
    if afi == 2:
        nh = (data.draw(IPV6_GLOBAL),) + ((data.draw(IPV6_LINK_LOCAL),) if link_local else ())
    nh_bytes = mp_next_hop_bytes(nh)
    arr = PrefixArray.from_strings(prefixes, afi=afi)
    fixed = 23 + len(attrs) + (4 + 5 + len(nh_bytes) if afi == 2 else 0)
    widest = max(nlri_size(p) for p in prefixes)
    try:
        out = encode_updates(arr, attrs, mp_next_hop=nh_bytes, max_size=max_size)
    except ValueError:
        assert fixed + widest > max_size
        return
    msgs = frames(out, 65535)
    sizes = []
    got = []
    for t, body in msgs:
        assert t == 2
        sizes.append(19 + len(body))
        assert 19 + len(body) <= max_size
        u = decode_update(body)
        assert u.errors == () and u.handling == 0
        part = u.nlri if afi == 1 else u.mp_nlri
        assert len(part) > 0
        got.append(part.to_strings())
        assert_same_attributes(u.attrs, pa.replace(mp_next_hop=nh))
    flat = [p for chunk in got for p in chunk]
    assert flat == [canonical(p) for p in prefixes]
    # Packed: the first prefix of each message did not fit into the one before.
    for i in range(len(got) - 1):
        assert sizes[i] + nlri_size(got[i + 1][0]) > max_size


@settings(**COMMON, max_examples=200)
@given(afi=st.sampled_from([1, 2]), max_size=MAX_SIZES, data=st.data())
def test_encode_updates_packs_withdrawals(afi, max_size, data):
    prefixes = data.draw(st.lists(V4_PREFIX if afi == 1 else V6_PREFIX, min_size=1, max_size=400))
    arr = PrefixArray.from_strings(prefixes, afi=afi)
    fixed = 23 + (7 if afi == 2 else 0)
    widest = max(nlri_size(p) for p in prefixes)
    try:
        out = encode_updates(withdraw=arr, max_size=max_size)
    except ValueError:
        assert fixed + widest > max_size
        return
    msgs = frames(out, 65535)
    got, sizes = [], []
    for t, body in msgs:
        assert t == 2 and 19 + len(body) <= max_size
        sizes.append(19 + len(body))
        u = decode_update(body)
        assert u.errors == () and u.announced_count() == 0
        part = u.withdrawn if afi == 1 else u.mp_withdrawn
        if afi == 2:
            assert len(u.withdrawn) == 0
        assert len(part) > 0
        got.append(part.to_strings())
        assert u.end_of_rib is None
    assert [p for chunk in got for p in chunk] == [canonical(p) for p in prefixes]
    for i in range(len(got) - 1):
        assert sizes[i] + nlri_size(got[i + 1][0]) > max_size


@settings(**COMMON, max_examples=100)
@given(data=st.data())
def test_encode_updates_withdrawals_then_announcements(data):
    afi = data.draw(st.sampled_from([1, 2]))
    pfx = V4_PREFIX if afi == 1 else V6_PREFIX
    gone = data.draw(st.lists(pfx, min_size=1, max_size=60))
    new = data.draw(st.lists(pfx, min_size=1, max_size=60))
    pa = data.draw(path_attributes(next_hop=afi == 1, small=True))
    nh = (data.draw(IPV6_GLOBAL),) if afi == 2 else ()
    out = encode_updates(PrefixArray.from_strings(new, afi=afi), encode_attributes(pa),
                         withdraw=PrefixArray.from_strings(gone, afi=afi),
                         mp_next_hop=mp_next_hop_bytes(nh), max_size=200)
    withdrawn, announced, seen_announce = [], [], False
    for _t, body in frames(out):
        u = decode_update(body)
        assert u.errors == ()
        if u.withdrawn_count():
            assert not seen_announce and u.announced_count() == 0
            withdrawn += u.withdrawn_prefixes()
        else:
            seen_announce = True
            announced += u.announced()
    assert withdrawn == [canonical(p) for p in gone]
    assert announced == [canonical(p) for p in new]


# --------------------------------------------------------- RFC 6793 (2-octet)

def walk_attributes(attrs: bytes) -> dict[int, bytes]:
    """Tiny independent attribute walk: code -> value."""
    out, pos = {}, 0
    while pos < len(attrs):
        flags, code = attrs[pos], attrs[pos + 1]
        if flags & 0x10:
            n, pos = int.from_bytes(attrs[pos + 2:pos + 4], "big"), pos + 4
        else:
            n, pos = attrs[pos + 2], pos + 3
        out[code] = attrs[pos:pos + n]
        pos += n
    assert pos == len(attrs)
    return out


def parse_path(value: bytes, width: int) -> list[tuple[int, list[int]]]:
    segs, pos = [], 0
    while pos < len(value):
        t, n = value[pos], value[pos + 1]
        pos += 2
        segs.append((t, [int.from_bytes(value[pos + width * k:pos + width * (k + 1)], "big")
                         for k in range(n)]))
        pos += width * n
    return segs


@settings(**COMMON, max_examples=300)
@given(pa=path_attributes(asn=ASN_MIXED), prefixes=st.lists(V4_PREFIX, min_size=1, max_size=10))
@example(pa=PathAttributes(origin=0, as_path=((2, (65001, 4200000000)),), next_hop="192.0.2.1",
                           aggregator=(65001, "192.0.2.1")),
         prefixes=["10.0.0.0/8"])
def test_two_octet_encoding_roundtrip(pa, prefixes):
    attrs = encode_attributes(pa, asn4=False)
    # The wire itself (RFC 6793 4.2.2): AS_TRANS in place of 4-octet ASNs, the real ones in AS4_*.
    wire = walk_attributes(attrs)
    big_path = any(a > 0xFFFF for a in pa.as_path_flat())
    if pa.as_path is not None:
        assert [a for _t, asns in parse_path(wire[2], 2) for a in asns] == [
            a if a <= 0xFFFF else AS_TRANS for a in pa.as_path_flat()]
    assert (17 in wire) == big_path
    if big_path:
        assert [a for _t, asns in parse_path(wire[17], 4) for a in asns] == pa.as_path_flat()
    if pa.aggregator is not None:
        assert len(wire[7]) == 6
        asn = pa.aggregator[0]
        assert int.from_bytes(wire[7][:2], "big") == (asn if asn <= 0xFFFF else AS_TRANS)
        assert (18 in wire) == (pa.aggregator[0] > 0xFFFF)
    body = update_body(attrs=attrs, nlri=PrefixArray.from_strings(prefixes, afi=1).nlri_bytes())
    u = decode_update(body, DecodeContext(asn4=False))
    assert u.errors == () and u.handling == 0
    # RFC 6793 4.2.3: the NEW speaker rebuilds the real path and aggregator.
    assert u.attrs.as_path == pa.as_path
    assert u.attrs.aggregator == pa.aggregator
    assert u.attrs == pa


# ------------------------------------------------------------------- iBGP

@settings(**COMMON, max_examples=150)
@given(pa=path_attributes(ibgp=True), local_pref=U32, originator=IPV4_ANY,
       cluster=st.lists(IPV4_ANY, min_size=1, max_size=5))
def test_ibgp_keeps_ibgp_only_attributes(pa, local_pref, originator, cluster):
    pa = pa.replace(local_pref=local_pref, originator_id=originator, cluster_list=tuple(cluster))
    body = update_body(attrs=encode_attributes(pa), nlri=bytes([8, 10]))
    u = decode_update(body, DecodeContext(ibgp=True))
    assert u.errors == ()
    assert u.attrs.local_pref == local_pref
    assert u.attrs.originator_id == originator
    assert u.attrs.cluster_list == tuple(cluster)
    assert_same_attributes(u.attrs, pa)
    # The same bytes from an external peer: the three are discarded (RFC 7606 7.5, 7.9, 7.10).
    e = decode_update(body, DecodeContext(ibgp=False))
    assert e.attrs.local_pref is None and e.attrs.originator_id is None
    assert e.attrs.cluster_list == ()
    assert e.handling == 1
    assert sorted(err[3] for err in e.errors) == [5, 9, 10]
    assert all(err[:3] == (3, 9, 1) for err in e.errors)
    assert e.announced() == ["10.0.0.0/8"]


# ------------------------------------------------------------------ Framer

def sample_messages():
    pa = PathAttributes(origin=0, as_path=((2, (65001,)),), next_hop="192.0.2.1", med=5)
    return st.one_of(
        st.just(KEEPALIVE),
        st.builds(encode_route_refresh, st.sampled_from([1, 2]), st.just(1), st.integers(0, 2)),
        st.builds(encode_notification, st.integers(1, 8), U8, st.binary(max_size=40)),
        open_messages(max_caps=4).map(encode_open),
        st.lists(V4_PREFIX, min_size=1, max_size=20).map(
            lambda ps: encode_updates(PrefixArray.from_strings(ps, afi=1), encode_attributes(pa))),
        st.sampled_from([encode_end_of_rib(1, 1), encode_end_of_rib(2, 1)]),
    )


def expected_messages(stream: bytes) -> list[tuple[int, bytes]]:
    out, pos = [], 0
    while pos < len(stream):
        n = int.from_bytes(stream[pos + 16:pos + 18], "big")
        out.append((stream[pos + 18], stream[pos + 19:pos + n]))
        pos += n
    return out


def drain(framer: Framer, into: list) -> None:
    while True:
        m = framer.next_message()
        if m is None:
            return
        into.append(m)


@settings(**COMMON, max_examples=200)
@given(parts=st.lists(sample_messages(), min_size=1, max_size=8), data=st.data())
def test_framer_arbitrary_chunks(parts, data):
    stream = b"".join(parts)
    cuts = sorted(set(data.draw(st.lists(st.integers(0, len(stream)), max_size=25))))
    framer = Framer(4096)
    got = []
    last = 0
    for c in cuts + [len(stream)]:
        framer.feed(stream[last:c])
        drain(framer, got)
        last = c
    assert got == expected_messages(stream)
    assert framer.buffered == 0 and framer.synchronized


@settings(**COMMON, max_examples=40)
@given(parts=st.lists(sample_messages(), min_size=1, max_size=4))
def test_framer_byte_by_byte(parts):
    stream = b"".join(parts)
    framer = Framer()
    got = []
    for i in range(len(stream)):
        framer.feed(stream[i:i + 1])
        drain(framer, got)
        assert sum(19 + len(b) for _t, b in got) + framer.buffered == i + 1
    assert got == expected_messages(stream)
    assert framer.buffered == 0


@settings(**COMMON, max_examples=150)
@given(parts=st.lists(sample_messages(), max_size=5), tail=sample_messages(), data=st.data())
def test_framer_keeps_partial_tail(parts, tail, data):
    k = data.draw(st.integers(1, len(tail) - 1))
    stream = b"".join(parts)
    framer = Framer()
    got = framer.messages(stream + tail[:k])
    assert got == expected_messages(stream)
    assert framer.buffered == k
    assert framer.next_message() is None
    assert framer.buffered == k
    got = framer.messages(tail[k:])
    assert got == expected_messages(tail)
    assert framer.buffered == 0
