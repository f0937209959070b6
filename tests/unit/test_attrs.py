"""Example tests of kbgp._fast.attrs: End-of-RIB, AttrTable interning, RFC 7606
outcomes, RFC 6793 reconstruction, community parsing."""
from __future__ import annotations

import pytest

from kbgp.bgp.constants import AS_TRANS, Handling
from kbgp.errors import BgpError, UpdateMessageError
from kbgp._fast.attrs import (
    AttrTable,
    DecodeContext,
    PathAttributes,
    community_str,
    decode_message,
    decode_update,
    encode_attributes,
    encode_end_of_rib,
    encode_updates,
    mp_next_hop_bytes,
    parse_community,
    parse_large_community,
)
from kbgp._fast.wire import Framer, PrefixArray

ORIGIN_IGP = bytes([0x40, 1, 1, 0])
EMPTY_AS_PATH = bytes([0x40, 2, 0])
NEXT_HOP = bytes([0x40, 3, 4, 192, 0, 2, 1])
BASIC = ORIGIN_IGP + bytes([0x40, 2, 6, 2, 1, 0, 0, 0xFD, 0xE9]) + NEXT_HOP   # AS_PATH 65001
NLRI_10 = bytes([8, 10])


def attr(flags: int, code: int, value: bytes) -> bytes:
    if flags & 0x10:
        return bytes([flags, code]) + len(value).to_bytes(2, "big") + value
    return bytes([flags, code, len(value)]) + value


def update(withdrawn: bytes = b"", attrs: bytes = b"", nlri: bytes = b"") -> bytes:
    return (len(withdrawn).to_bytes(2, "big") + withdrawn
            + len(attrs).to_bytes(2, "big") + attrs + nlri)


def body_of(message: bytes) -> bytes:
    (mtype, body), = Framer(65535).messages(message)
    assert mtype == 2
    return body


def strongest(u) -> int:
    return max((e[2] for e in u.errors), default=0)


def decode_or_error(body, ctx=None):
    try:
        return decode_update(body, ctx)
    except BgpError as exc:
        return exc


# --------------------------------------------------------------- End-of-RIB

def test_end_of_rib_ipv4():
    body = body_of(encode_end_of_rib(1, 1))
    assert body == b"\x00\x00\x00\x00"
    u = decode_update(body)
    assert u.end_of_rib == (1, 1)
    assert u.handling == 0 and u.errors == () and u.announced_count() == 0 == u.withdrawn_count()
    assert u.to_dict() == {"withdrawn": [], "announced": [], "end_of_rib": "ipv4-unicast"}


def test_end_of_rib_ipv6():
    body = body_of(encode_end_of_rib(2, 1))
    assert body == update(attrs=attr(0x80, 15, b"\x00\x02\x01"))
    u = decode_update(body)
    assert u.end_of_rib == (2, 1)
    assert u.handling == 0 and u.errors == ()
    assert u.to_dict()["end_of_rib"] == "ipv6-unicast"
    assert decode_message(2, body).end_of_rib == (2, 1)


def test_end_of_rib_with_extended_length_header():
    u = decode_update(update(attrs=attr(0x90, 15, b"\x00\x02\x01")))
    assert u.end_of_rib == (2, 1)
    u = decode_update(update(attrs=attr(0x90, 15, b"\x00\x01\x01")))
    assert u.end_of_rib == (1, 1)


@pytest.mark.parametrize("body", [
    update(withdrawn=NLRI_10),                                              # withdraws a route
    update(attrs=BASIC, nlri=NLRI_10),                                      # announces one
    update(attrs=attr(0x80, 15, b"\x00\x02\x01" + bytes([32, 0x20, 1, 0x0D, 0xB8]))),
    update(attrs=attr(0x80, 15, b"\x00\x02\x01") + ORIGIN_IGP),
    update(attrs=ORIGIN_IGP + attr(0x80, 15, b"\x00\x02\x01")),
], ids=["withdrawn", "announced", "mp-withdrawn", "plus-origin-after", "plus-origin-before"])
def test_not_end_of_rib(body):
    u = decode_or_error(body)
    assert isinstance(u, BgpError) or u.end_of_rib is None


@pytest.mark.parametrize("body", [
    # An attribute header cut short after the MP_UNREACH.
    update(attrs=attr(0x80, 15, b"\x00\x02\x01") + b"\x40\x01"),
    # MP_UNREACH whose length runs past the attributes.
    update(attrs=bytes([0x80, 15, 4, 0, 2, 1])),
    # MP_UNREACH too short for AFI and SAFI.
    update(attrs=attr(0x80, 15, b"\x00\x02")),
    # MP_UNREACH twice.
    update(attrs=attr(0x80, 15, b"\x00\x02\x01") * 2),
], ids=["cut-header", "overrun", "too-short", "repeated"])
def test_not_end_of_rib_when_malformed(body):
    u = decode_or_error(body)
    assert isinstance(u, BgpError) or (u.end_of_rib is None and u.handling > 0)


@pytest.mark.parametrize("flags", [0x40, 0x00, 0xC0, 0xA0, 0x50], ids=hex)
def test_not_end_of_rib_when_mp_unreach_flags_conflict(flags):
    # MP_UNREACH_NLRI is optional non-transitive (RFC 4760): with other flags
    # the attribute is malformed (RFC 7606 3c), which is no End-of-RIB marker.
    u = decode_or_error(update(attrs=attr(flags, 15, b"\x00\x02\x01")))
    assert isinstance(u, BgpError) or (u.end_of_rib is None and u.handling > 0), u.to_dict()


@pytest.mark.parametrize("flags", [0x40, 0x00, 0xC0, 0xA0], ids=hex)
def test_mp_reach_flags_conflict_is_not_ignored(flags):
    mp = (b"\x00\x02\x01\x10" + bytes.fromhex("20010db8000000000000000000000001") + b"\x00"
          + bytes([32, 0x20, 1, 0x0D, 0xB8]))
    u = decode_or_error(update(attrs=attr(flags, 14, mp) + ORIGIN_IGP + EMPTY_AS_PATH))
    assert isinstance(u, BgpError) or u.handling >= Handling.TREAT_AS_WITHDRAW, u.to_dict()


# ---------------------------------------------------------------- interning

PA = PathAttributes(origin=0, as_path=((2, (65001, 4200000000)),), next_hop="192.0.2.1", med=10,
                    communities=("65000:1", "no-export"), large_communities=((1, 2, 3),))


def test_same_set_from_two_encodings_interns_to_one_id():
    table = AttrTable()
    first = encode_attributes(PA)
    # The same attributes in reverse order, one of them with the extended-length flag.
    parts, pos = [], 0
    while pos < len(first):
        n = first[pos + 2]
        parts.append(first[pos:pos + 3 + n])
        pos += 3 + n
    med = parts[3]
    assert med[1] == 4
    parts[3] = bytes([med[0] | 0x10, 4, 0, 4]) + med[3:]
    second = b"".join(reversed(parts))
    assert second != first
    a = decode_update(update(attrs=first, nlri=NLRI_10), table=table)
    b = decode_update(update(attrs=second, nlri=NLRI_10), table=table)
    assert a.errors == () and b.errors == ()
    assert a.attr_id == b.attr_id >= 0
    assert len(table) == 1
    assert table[a.attr_id] == PA == a.attrs == b.attrs
    assert table.cached_encodings == 2


def test_equal_values_intern_to_one_id():
    table = AttrTable()
    other = PathAttributes(origin=0, as_path=[(2, [65001, 4200000000])], next_hop="192.0.2.1",
                           med=10,
                           communities=[(65000 << 16) | 1, 0xFFFFFF01], large_communities=["1:2:3"])
    assert other == PA and hash(other) == hash(PA)
    assert table.intern(PA) == table.intern(other) == 0
    assert table.intern(PA.replace(med=11)) == 1
    assert len(table) == 2


def test_repeated_update_hits_the_cache():
    table = AttrTable()
    body = update(attrs=encode_attributes(PA), nlri=NLRI_10 + bytes([16, 192, 168]))
    ids = set()
    for _ in range(3):
        u = decode_update(body, table=table)
        assert u.errors == () and u.announced() == ["10.0.0.0/8", "192.168.0.0/16"]
        ids.add(u.attr_id)
        assert table.cached_encodings == 1
    assert len(ids) == 1 and len(table) == 1
    # Other NLRI with the same attributes: still one cached encoding.
    body = update(attrs=encode_attributes(PA), nlri=bytes([24, 198, 51, 100]))
    u = decode_update(body, table=table)
    assert u.attr_id in ids and table.cached_encodings == 1


def test_ipv6_updates_with_the_same_attributes_share_an_id():
    table = AttrTable()
    attrs = encode_attributes(PA.replace(next_hop=None))
    nh = mp_next_hop_bytes(["2001:db8::1", "fe80::1"])
    ids = set()
    for prefixes in (["2001:db8::/32"], ["2001:db8:1::/48", "2001:db8:2::/48"]):
        out = encode_updates(PrefixArray.from_strings(prefixes), attrs, mp_next_hop=nh)
        (_t, body), = Framer().messages(out)
        u = decode_update(body, table=table)
        assert u.errors == () and u.announced() == prefixes
        assert u.attrs.mp_next_hop == ("2001:db8::1", "fe80::1")
        ids.add(u.attr_id)
    assert len(ids) == 1 and len(table) == 1


def test_treat_as_withdraw_gets_no_id():
    table = AttrTable()
    body = update(attrs=EMPTY_AS_PATH + NEXT_HOP, nlri=NLRI_10)     # no ORIGIN
    for _ in range(2):
        u = decode_update(body, table=table)
        assert u.treat_as_withdraw and u.attr_id == -1
        assert u.error[:2] == (3, 3)


def test_context_is_part_of_the_cache_key():
    table = AttrTable()
    # AS_PATH of one 4-octet ASN: two 2-octet ASNs on a 2-octet session.
    body = update(attrs=ORIGIN_IGP + bytes([0x40, 2, 6, 2, 1, 0, 1, 0, 2]) + NEXT_HOP, nlri=NLRI_10)
    four = decode_update(body, DecodeContext(asn4=True), table)
    two = decode_update(body, DecodeContext(asn4=False), table)
    assert four.errors == () and four.attr_id >= 0
    assert four.attrs.as_path == ((2, (0x10002,)),)
    # Read two octets at a time the same bytes are a malformed AS_PATH, not the cached answer.
    assert two.treat_as_withdraw and two.error[:2] == (3, 11) and two.attr_id == -1
    assert decode_update(body, DecodeContext(asn4=True), table).attr_id == four.attr_id


# -------------------------------------------------------------- RFC 7606

def test_handling_is_the_strongest_error_even_past_the_error_list():
    # 17 repeated MEDs (attribute discard each), then an ORIGIN of length 2
    # (treat-as-withdraw): the outcome and the reported error must agree.
    med = attr(0x80, 4, b"\x00\x00\x00\x01")
    attrs = med * 17 + attr(0x40, 1, b"\x00\x00") + EMPTY_AS_PATH + NEXT_HOP
    u = decode_update(update(attrs=attrs, nlri=NLRI_10))
    assert u.handling == Handling.TREAT_AS_WITHDRAW
    assert u.handling == strongest(u), u.errors
    assert u.error is not None and u.error[2] == u.handling
    assert u.error[:2] == (3, 5) and u.error[3] == 1
    assert u.to_dict()["error"]["handling"] == "treat-as-withdraw"


def test_repeated_attribute_keeps_the_first():
    attrs = BASIC + attr(0x80, 4, b"\x00\x00\x00\x01") + attr(0x80, 4, b"\x00\x00\x00\x02")
    u = decode_update(update(attrs=attrs, nlri=NLRI_10))
    assert u.attrs.med == 1
    assert u.handling == Handling.ATTRIBUTE_DISCARD == strongest(u)
    assert u.errors[0][:4] == (3, 1, 1, 4)


def test_missing_well_known_attributes():
    u = decode_update(update(attrs=NEXT_HOP, nlri=NLRI_10))
    assert u.treat_as_withdraw and u.error[:2] == (3, 3)
    assert "ORIGIN" in u.error[4] and "AS_PATH" in u.error[4]
    u = decode_update(update(attrs=BASIC, nlri=NLRI_10), DecodeContext(ibgp=True))
    assert u.treat_as_withdraw and "LOCAL_PREF" in u.error[4]


def test_martian_next_hop_is_treat_as_withdraw():
    for nh in ([0, 1, 2, 3], [127, 0, 0, 1], [224, 0, 0, 5], [255, 255, 255, 255]):
        attrs = ORIGIN_IGP + EMPTY_AS_PATH + attr(0x40, 3, bytes(nh))
        u = decode_update(update(attrs=attrs, nlri=NLRI_10))
        assert u.treat_as_withdraw and u.error[:2] == (3, 8)


def test_as_path_with_as_zero_is_treat_as_withdraw():
    attrs = ORIGIN_IGP + attr(0x40, 2, bytes([2, 1, 0, 0, 0, 0])) + NEXT_HOP
    u = decode_update(update(attrs=attrs, nlri=NLRI_10))
    assert u.treat_as_withdraw and u.error[:2] == (3, 11)


def test_unrecognized_well_known_attribute_resets():
    bad = attr(0x40, 200, b"xyz")
    with pytest.raises(UpdateMessageError) as info:
        decode_update(update(attrs=BASIC + bad, nlri=NLRI_10))
    assert (info.value.code, info.value.subcode) == (3, 2)
    assert info.value.data == bad


def test_mp_reach_twice_resets():
    mp = attr(0x80, 14, b"\x00\x02\x01\x10" + bytes(15) + b"\x01\x00" + bytes([16, 0x20, 0x01]))
    with pytest.raises(BgpError) as info:
        decode_update(update(attrs=mp + mp + ORIGIN_IGP + EMPTY_AS_PATH))
    assert (info.value.code, info.value.subcode) == (3, 1)


def test_unknown_attributes():
    transitive = attr(0xC0, 200, b"keep")
    non_transitive = attr(0x80, 201, b"drop")
    u = decode_update(update(attrs=BASIC + transitive + non_transitive, nlri=NLRI_10))
    assert u.errors == ()
    assert u.attrs.unknown == ((0xC0, 200, b"keep"),)
    # Passed on with the Partial bit set (RFC 4271 5).
    assert encode_attributes(u.attrs).endswith(bytes([0xE0, 200, 4]) + b"keep")
    assert u.to_dict()["attributes"]["unknown"] == [
        {"code": 200, "flags": 0xC0, "hex": b"keep".hex()}]


def test_ebgp_discards_ibgp_attributes():
    pa = PA.replace(local_pref=200, originator_id="192.0.2.9", cluster_list=("192.0.2.10",))
    body = update(attrs=encode_attributes(pa), nlri=NLRI_10)
    u = decode_update(body, DecodeContext(ibgp=False))
    assert u.handling == Handling.ATTRIBUTE_DISCARD and not u.treat_as_withdraw
    assert (u.attrs.local_pref, u.attrs.originator_id, u.attrs.cluster_list) == (None, None, ())
    assert sorted(e[3] for e in u.errors) == [5, 9, 10]
    i = decode_update(body, DecodeContext(ibgp=True))
    assert i.errors == () and i.attrs == pa


def test_decoding_a_full_size_two_octet_update_with_a_table():
    # 65535-byte UPDATE from a 2-octet AS peer: 1000 ASNs and a large unknown attribute.
    path = b"".join(bytes([2, 250]) + b"\x00\x01" * 250 for _ in range(4))
    attrs = ORIGIN_IGP + attr(0x50, 2, path) + NEXT_HOP
    room = 65535 - 19 - 4 - len(attrs) - 4 - len(NLRI_10)
    attrs += attr(0xD0, 200, b"x" * room)
    body = update(attrs=attrs, nlri=NLRI_10)
    assert 19 + len(body) == 65535
    for table in (None, AttrTable()):
        try:
            u = decode_update(body, DecodeContext(asn4=False), table)
        except BgpError:
            continue
        assert u.handling == strongest(u)
        assert len(u.attrs.as_path_flat()) == 1000


# -------------------------------------------------------------- RFC 6793

def test_as4_path_is_used_when_aggregator_is_not_from_an_old_speaker():
    # A NEW speaker with a 2-octet AS aggregated the route and sends it to an
    # OLD speaker: AGGREGATOR 65001 (no AS4_AGGREGATOR needed), AS_PATH with
    # AS_TRANS and the real path in AS4_PATH.  RFC 6793 4.2.3 ignores AS4_PATH
    # only when AGGREGATOR (not AS_TRANS) comes *with* an AS4_AGGREGATOR.
    pa = PathAttributes(origin=0, as_path=((2, (65001, 4200000000)),), next_hop="192.0.2.1",
                        aggregator=(65001, "192.0.2.1"))
    attrs = encode_attributes(pa, asn4=False)
    assert bytes([0xC0, 17]) in attrs and bytes([0xC0, 18]) not in attrs
    u = decode_update(update(attrs=attrs, nlri=NLRI_10), DecodeContext(asn4=False))
    assert u.attrs.aggregator == (65001, "192.0.2.1")
    assert u.attrs.as_path == ((2, (65001, 4200000000)),)


def test_as4_attributes_ignored_when_aggregator_and_as4_aggregator_disagree():
    # AGGREGATOR with a real 2-octet AS *and* an AS4_AGGREGATOR: both AS4_ attributes are ignored.
    attrs = (ORIGIN_IGP + attr(0x40, 2, bytes([2, 2, 0xFD, 0xE9]) + AS_TRANS.to_bytes(2, "big"))
             + NEXT_HOP + attr(0xC0, 7, bytes([0xFD, 0xEA, 192, 0, 2, 7]))
             + attr(0xC0, 17, bytes([2, 1]) + (4200000000).to_bytes(4, "big"))
             + attr(0xC0, 18, (4200000001).to_bytes(4, "big") + bytes([192, 0, 2, 8])))
    u = decode_update(update(attrs=attrs, nlri=NLRI_10), DecodeContext(asn4=False))
    assert u.attrs.aggregator == (65002, "192.0.2.7")
    assert u.attrs.as_path == ((2, (65001, AS_TRANS)),)


def test_as4_aggregator_replaces_as_trans():
    pa = PathAttributes(origin=0, as_path=((2, (4200000000,)),), next_hop="192.0.2.1",
                        aggregator=(4200000000, "192.0.2.1"))
    body = update(attrs=encode_attributes(pa, asn4=False), nlri=NLRI_10)
    u = decode_update(body, DecodeContext(asn4=False))
    assert u.attrs.aggregator == (4200000000, "192.0.2.1")
    assert u.attrs.as_path == pa.as_path


def test_as4_path_longer_than_as_path_is_ignored():
    attrs = (ORIGIN_IGP + attr(0x40, 2, bytes([2, 1]) + AS_TRANS.to_bytes(2, "big")) + NEXT_HOP
             + attr(0xC0, 17, bytes([2, 2]) + (4200000000).to_bytes(4, "big")
                    + (4200000001).to_bytes(4, "big")))
    u = decode_update(update(attrs=attrs, nlri=NLRI_10), DecodeContext(asn4=False))
    assert u.attrs.as_path == ((2, (AS_TRANS,)),)


def test_as4_attributes_discarded_between_new_speakers():
    attrs = BASIC + attr(0xC0, 17, bytes([2, 1]) + (4200000000).to_bytes(4, "big"))
    u = decode_update(update(attrs=attrs, nlri=NLRI_10), DecodeContext(asn4=True))
    assert u.attrs.as_path == ((2, (65001,)),)
    assert u.handling == Handling.ATTRIBUTE_DISCARD and u.errors[0][3] == 17


# ------------------------------------------------------------- communities

@pytest.mark.parametrize("text,value", [
    ("65000:1", (65000 << 16) | 1), (" 0:0 ", 0), ("65535:65535", 0xFFFFFFFF),
    ("4294967295", 0xFFFFFFFF),
    ("no-export", 0xFFFFFF01), ("NO_EXPORT", 0xFFFFFF01), ("no-advertise", 0xFFFFFF02),
    ("blackhole", 0xFFFF029A), ("graceful-shutdown", 0xFFFF0000),
])
def test_parse_community(text, value):
    assert parse_community(text) == value


@pytest.mark.parametrize("text", ["65536:1", "1:65536", "abc", "1:2:3", "-1:5", "", "4294967296",
                                  "no-such-community", "1:", ":1", "1.5:2"])
def test_parse_community_errors_name_the_text(text):
    with pytest.raises(ValueError) as info:
        parse_community(text)
    assert repr(text) in str(info.value) or text in str(info.value)
    with pytest.raises(ValueError) as info:
        PathAttributes(communities=("65000:1", text))
    assert text in str(info.value)


@pytest.mark.parametrize("text", ["1:2", "1:2:3:4", "4294967296:0:0", "a:b:c", "", "1::3",
                                  "-1:0:0"])
def test_parse_large_community_errors_name_the_text(text):
    with pytest.raises(ValueError) as info:
        parse_large_community(text)
    assert text in str(info.value)
    with pytest.raises(ValueError) as info:
        PathAttributes(large_communities=(text,))
    assert text in str(info.value)


def test_parse_large_community():
    assert parse_large_community("4200000000:1:2") == (4200000000, 1, 2)
    assert parse_large_community(" 0:0:4294967295 ") == (0, 0, 0xFFFFFFFF)


def test_community_strings():
    assert community_str(0xFFFFFF01) == "no-export"
    assert community_str((65000 << 16) | 1) == "65000:1"
    assert PA.community_strings() == ["65000:1", "no-export"]


def test_path_attributes_validation():
    with pytest.raises(ValueError):
        PathAttributes(origin=3)
    with pytest.raises(ValueError):
        PathAttributes(next_hop="300.0.0.1")
    with pytest.raises(ValueError):
        PathAttributes(extended_communities=(b"1234567",))


def test_path_attributes_helpers():
    pa = PathAttributes(as_path=((2, (1, 2, 3)), (1, (4, 5)), (3, (6,))))
    assert pa.as_path_flat() == [1, 2, 3, 4, 5, 6]
    assert pa.as_path_length() == 4                       # AS_SET counts 1, confederation 0
    assert pa.origin == -1 and pa.med is None and pa.communities == ()
    assert pa.replace(med=5).med == 5 and pa.med is None
    assert pa.to_dict() == {"as_path": [{"type": "as-sequence", "asns": [1, 2, 3]},
                                        {"type": "as-set", "asns": [4, 5]},
                                        {"type": "as-confed-sequence", "asns": [6]}]}


def test_update_to_dict_shape():
    body = update(withdrawn=bytes([16, 10, 1]), attrs=encode_attributes(PA), nlri=NLRI_10)
    d = decode_update(body).to_dict()
    assert list(d) == ["withdrawn", "announced", "attributes"]
    assert d["withdrawn"] == ["10.1.0.0/16"] and d["announced"] == ["10.0.0.0/8"]
    assert d["attributes"] == {
        "origin": "igp",
        "as_path": [{"type": "as-sequence", "asns": [65001, 4200000000]}],
        "next_hop": "192.0.2.1", "med": 10,
        "communities": ["65000:1", "no-export"],
        "large_communities": ["1:2:3"],
    }
