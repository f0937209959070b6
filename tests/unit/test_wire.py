"""Example tests of kbgp._fast.wire: header checks, OPEN checks, NOTIFICATION,
KEEPALIVE and ROUTE-REFRESH, and the PrefixArray helpers."""
from __future__ import annotations

import ipaddress
import struct

import pytest

from kbgp.bgp.constants import AS_TRANS, Handling
from kbgp.bgp.messages import (
    FourOctetAsCap,
    GracefulRestartCap,
    Keepalive,
    MultiprotocolCap,
    Notification,
    Open,
    RouteRefresh,
    UnknownCap,
)
from kbgp.errors import BgpError, MessageHeaderError, OpenMessageError, RouteRefreshError
from kbgp._fast.wire import (
    KEEPALIVE,
    Framer,
    PrefixArray,
    decode_keepalive,
    decode_nlri,
    decode_notification,
    decode_open,
    decode_route_refresh,
    encode_notification,
    encode_open,
    encode_route_refresh,
    header,
    shutdown_communication,
    split_message,
)

MARKER = b"\xff" * 16


def msg(mtype: int, body: bytes = b"", length: int | None = None) -> bytes:
    n = 19 + len(body) if length is None else length
    return MARKER + n.to_bytes(2, "big") + bytes([mtype]) + body


def open_body(version=4, my_as=65001, hold=90, bgp_id=0xC0000201, params=b"") -> bytes:
    return struct.pack("!BHHIB", version, my_as, hold, bgp_id, len(params)) + params


def caps_param(*caps: bytes) -> bytes:
    value = b"".join(caps)
    return bytes([2, len(value)]) + value


def cap(code: int, value: bytes = b"") -> bytes:
    return bytes([code, len(value)]) + value


def error_of(fn, *args):
    with pytest.raises(BgpError) as info:
        fn(*args)
    return info.value


def framer_error(data: bytes, max_size: int = 4096) -> BgpError:
    f = Framer(max_size)
    f.feed(data)
    return error_of(f.next_message)


# ------------------------------------------------------------------ header

def test_header_bytes():
    assert header(4, 0) == KEEPALIVE == MARKER + b"\x00\x13\x04"
    assert header(2, 100) == MARKER + (119).to_bytes(2, "big") + b"\x02"


@pytest.mark.parametrize("bad_byte", [0, 7, 15])
def test_marker_not_all_ones_is_1_1_without_data(bad_byte):
    data = bytearray(KEEPALIVE)
    data[bad_byte] = 0xFE
    f = Framer()
    f.feed(bytes(data) + KEEPALIVE)
    e = error_of(f.next_message)
    assert isinstance(e, MessageHeaderError)
    assert (e.code, e.subcode, e.data) == (1, 1, b"")
    assert e.handling == Handling.SESSION_RESET
    # Framing is lost for good.
    assert not f.synchronized
    again = error_of(f.next_message)
    assert (again.code, again.subcode) == (1, 1)


@pytest.mark.parametrize("length", [0, 1, 18])
def test_length_below_19_is_1_2_with_the_length_field(length):
    e = framer_error(msg(4, length=length) + bytes(20))
    assert (e.code, e.subcode, e.data) == (1, 2, length.to_bytes(2, "big"))


def test_length_over_max_size_is_1_2():
    e = framer_error(msg(2, length=4097))
    assert (e.code, e.subcode, e.data) == (1, 2, b"\x10\x01")
    # With extended messages (RFC 8654) the same length is fine for an UPDATE.
    body = b"\x00\x00\x00\x00" + bytes(4097 - 23)
    f = Framer(65535)
    f.feed(msg(2, body))
    assert f.next_message() == (2, body)


def test_open_and_keepalive_longer_than_4096_even_with_extended_messages():
    # RFC 8654: OPEN and KEEPALIVE stay within 4096 bytes.
    e = framer_error(msg(1, bytes(4097 - 19)), 65535)
    assert (e.code, e.subcode, e.data) == (1, 2, b"\x10\x01")


@pytest.mark.parametrize("mtype,length", [
    (4, 20),   # KEEPALIVE must be exactly 19
    (1, 28),   # OPEN at least 29
    (2, 22),   # UPDATE at least 23
    (3, 20),   # NOTIFICATION at least 21
    (5, 22),   # ROUTE-REFRESH at least 23
])
def test_per_type_length_is_1_2_with_the_length_field(mtype, length):
    data = msg(mtype, bytes(length - 19))
    e = framer_error(data + KEEPALIVE)
    assert (e.code, e.subcode, e.data) == (1, 2, length.to_bytes(2, "big"))
    e = error_of(split_message, data)
    assert (e.code, e.subcode, e.data) == (1, 2, length.to_bytes(2, "big"))


@pytest.mark.parametrize("mtype", [0, 6, 7, 255])
def test_bad_type_is_1_3_with_the_type_byte(mtype):
    f = Framer()
    f.feed(msg(mtype, b"abc") + KEEPALIVE)
    e = error_of(f.next_message)
    assert isinstance(e, MessageHeaderError)
    assert (e.code, e.subcode, e.data) == (1, 3, bytes([mtype]))
    # The bad message is consumed; the next one is read.
    assert f.next_message() == (4, b"")
    assert f.synchronized


def test_framer_waits_for_whole_messages():
    f = Framer()
    f.feed(KEEPALIVE[:10])
    assert f.next_message() is None and f.buffered == 10
    f.feed(KEEPALIVE[10:] + KEEPALIVE[:18])
    assert f.next_message() == (4, b"")
    assert f.next_message() is None and f.buffered == 18
    f.feed(KEEPALIVE[18:])
    assert f.messages() == [(4, b"")]
    assert f.buffered == 0


def test_split_message():
    assert split_message(KEEPALIVE) == (4, b"")
    e = error_of(split_message, KEEPALIVE[:18])
    assert (e.code, e.subcode) == (1, 2)
    e = error_of(split_message, KEEPALIVE + b"\x00")
    assert (e.code, e.subcode) == (1, 2)
    e = error_of(split_message, msg(4, length=30))
    assert (e.code, e.subcode, e.data) == (1, 2, b"\x00\x1e")


# -------------------------------------------------------------------- OPEN

def test_open_minimal():
    o = decode_open(open_body())
    assert o == Open(65001, 90, "192.0.2.1", ())
    assert o.asn == 65001


@pytest.mark.parametrize("version", [0, 1, 3, 5, 255])
def test_open_version_is_2_1_with_supported_version(version):
    e = error_of(decode_open, open_body(version=version))
    assert isinstance(e, OpenMessageError)
    assert (e.code, e.subcode, e.data) == (2, 1, b"\x00\x04")


def test_open_my_as_zero_is_2_2():
    e = error_of(decode_open, open_body(my_as=0))
    assert (e.code, e.subcode) == (2, 2)


def test_open_bgp_identifier_zero_is_2_3():
    e = error_of(decode_open, open_body(bgp_id=0))
    assert (e.code, e.subcode) == (2, 3)


@pytest.mark.parametrize("ptype", [0, 1, 3, 254])
def test_open_unsupported_optional_parameter_is_2_4(ptype):
    e = error_of(decode_open, open_body(params=bytes([ptype, 2, 0, 0])))
    assert (e.code, e.subcode) == (2, 4)


@pytest.mark.parametrize("hold", [1, 2])
def test_open_hold_time_1_or_2_is_2_6(hold):
    e = error_of(decode_open, open_body(hold=hold))
    assert (e.code, e.subcode) == (2, 6)


@pytest.mark.parametrize("hold", [0, 3, 65535])
def test_open_hold_time_accepted(hold):
    assert decode_open(open_body(hold=hold)).hold_time == hold


def test_open_four_octet_as():
    body = open_body(my_as=AS_TRANS, params=caps_param(cap(65, (4200000001).to_bytes(4, "big"))))
    o = decode_open(body)
    assert o.my_as == AS_TRANS and o.asn == 4200000001
    body = open_body(my_as=65001, params=caps_param(cap(65, (65001).to_bytes(4, "big"))))
    assert decode_open(body).asn == 65001


@pytest.mark.parametrize("my_as,asn4", [
    (65001, 4200000001),   # a 4-octet AS must be announced as AS_TRANS
    (65001, 65002),        # the two fields disagree
    (AS_TRANS, 65001),     # AS_TRANS while the real AS fits two octets
    (65001, 0),            # AS 0 in the capability (RFC 7607)
])
def test_open_four_octet_as_mismatch_is_2_2(my_as, asn4):
    body = open_body(my_as=my_as, params=caps_param(cap(65, asn4.to_bytes(4, "big"))))
    e = error_of(decode_open, body)
    assert (e.code, e.subcode) == (2, 2)


@pytest.mark.parametrize("params", [
    bytes([2]),                                   # parameter header cut
    bytes([2, 5, 1, 4, 0, 1]),                    # parameter runs past the OPEN
    caps_param(bytes([1])),                       # capability header cut
    caps_param(bytes([1, 4, 0, 1])),              # capability runs past its parameter
    caps_param(cap(1, b"\x00\x01\x00")),          # multiprotocol of length 3
    caps_param(cap(2, b"\x00")),                  # route refresh with a value
    caps_param(cap(65, b"\x00\x00\xfd")),         # 4-octet AS of length 3
    caps_param(cap(64, b"\x00")),                 # graceful restart of length 1
    caps_param(cap(5, b"\x00\x01\x00\x01")),      # extended next hop not a multiple of 6
])
def test_open_malformed_parameters_are_2_0(params):
    e = error_of(decode_open, open_body(params=params))
    assert e.code == 2 and e.subcode == 0


def test_open_optional_parameter_length_mismatch():
    body = open_body(params=caps_param(cap(2)))
    e = error_of(decode_open, body + b"\x00")
    assert e.code == 2
    e = error_of(decode_open, body[:-1])
    assert e.code == 2


def test_open_shorter_than_29_bytes_is_1_2():
    e = error_of(decode_open, open_body()[:9])
    assert (e.code, e.subcode, e.data) == (1, 2, (28).to_bytes(2, "big"))


def test_open_rfc9072_extended_parameters():
    caps = cap(1, b"\x00\x01\x00\x01") + cap(70) + cap(200, bytes(250))
    params = bytes([2]) + len(caps).to_bytes(2, "big") + caps
    body = (struct.pack("!BHHIBB", 4, 65001, 90, 0xC0000201, 255, 255)
            + len(params).to_bytes(2, "big") + params)
    o = decode_open(body)
    assert [c.code for c in o.capabilities] == [1, 70, 200]
    assert o.capabilities[2] == UnknownCap(200, bytes(250))
    # Truncated extended length.
    e = error_of(decode_open, body[:12])
    assert e.code == 2


def test_open_graceful_restart_bits():
    value = (((0x80 | 0x40) << 8 | 300).to_bytes(2, "big")
             + b"\x00\x01\x01\x80" + b"\x00\x02\x01\x00")
    o = decode_open(open_body(params=caps_param(cap(64, value))))
    assert o.capabilities == (GracefulRestartCap(True, True, 300, ((1, 1, True), (2, 1, False))),)


def test_open_encode_decode():
    o = Open(AS_TRANS, 180, "10.0.0.1", (MultiprotocolCap(1, 1), FourOctetAsCap(4200000000)))
    raw = encode_open(o)
    assert raw[:16] == MARKER and raw[18] == 1 and int.from_bytes(raw[16:18], "big") == len(raw)
    assert decode_open(raw[19:]) == o


# ------------------------------------------------------------ NOTIFICATION

def test_notification_plain():
    raw = encode_notification(3, 11, b"\x01\x02")
    assert raw == MARKER + b"\x00\x17\x03\x03\x0b\x01\x02"
    assert decode_notification(raw[19:]) == Notification(3, 11, b"\x01\x02", None)


@pytest.mark.parametrize("subcode", [2, 4])
def test_notification_shutdown_text(subcode):
    data = shutdown_communication("maintenance until 18:00")
    assert data == bytes([23]) + b"maintenance until 18:00"
    n = decode_notification(bytes([6, subcode]) + data)
    assert n.shutdown_message == "maintenance until 18:00"
    assert n.data == data


def test_notification_shutdown_utf8():
    text = "arrêt planifié ✓"
    n = decode_notification(bytes([6, 2]) + shutdown_communication(text))
    assert n.shutdown_message == text


def test_notification_shutdown_empty_and_absent():
    assert decode_notification(bytes([6, 2, 0])).shutdown_message == ""
    assert decode_notification(bytes([6, 2])).shutdown_message is None
    # Other Cease subcodes carry no shutdown communication.
    assert decode_notification(bytes([6, 3, 5]) + b"hello").shutdown_message is None
    assert decode_notification(bytes([3, 2, 5]) + b"hello").shutdown_message is None


def test_notification_shutdown_length_past_the_data():
    # The length byte says 10, only 3 bytes follow: what is there, no error.
    n = decode_notification(bytes([6, 2, 10]) + b"abc")
    assert n.shutdown_message.startswith("abc")
    assert n.data == bytes([10]) + b"abc"


def test_notification_shutdown_invalid_utf8():
    n = decode_notification(bytes([6, 2, 3]) + b"a\xffb")
    assert n.shutdown_message == "a\ufffdb"
    n = decode_notification(bytes([6, 4, 2]) + b"\xe2\x82")   # a cut 3-byte character
    assert n.shutdown_message == "\ufffd"


def test_notification_shutdown_communication_cut_at_255_bytes():
    text = "é" * 200                      # 400 bytes of UTF-8
    data = shutdown_communication(text)
    assert data[0] == 254 and data[1:] == ("é" * 127).encode()
    assert shutdown_communication("x" * 300) == bytes([255]) + b"x" * 255


@pytest.mark.parametrize("body", [b"", b"\x06"])
def test_notification_shorter_than_21_bytes(body):
    e = error_of(decode_notification, body)
    assert (e.code, e.subcode, e.data) == (1, 2, (19 + len(body)).to_bytes(2, "big"))


# ------------------------------------------------- KEEPALIVE, ROUTE-REFRESH

def test_keepalive():
    assert decode_keepalive(b"") == Keepalive()
    e = error_of(decode_keepalive, b"\x00")
    assert (e.code, e.subcode, e.data) == (1, 2, b"\x00\x14")


def test_route_refresh():
    raw = encode_route_refresh(2, 1, 1)
    assert raw == MARKER + b"\x00\x17\x05\x00\x02\x01\x01"
    assert decode_route_refresh(raw[19:]) == RouteRefresh(2, 1, 1)
    assert decode_route_refresh(b"\x00\x01\x00\x01") == RouteRefresh(1, 1, 0)


@pytest.mark.parametrize("body", [b"", b"\x00\x01\x00", b"\x00\x01\x00\x01\x00",
                                  b"\x00\x01\x00\x01" + bytes(20)])
def test_route_refresh_bad_length_is_7_1_with_the_whole_message(body):
    e = error_of(decode_route_refresh, body)
    assert isinstance(e, RouteRefreshError)
    assert (e.code, e.subcode) == (7, 1)
    # RFC 7313 section 5: the data is the complete ROUTE-REFRESH message.
    assert e.data == MARKER + (19 + len(body)).to_bytes(2, "big") + b"\x05" + body


# --------------------------------------------------------------- prefixes

def test_prefix_array_from_strings_and_helpers():
    arr = PrefixArray.from_strings(["10.0.0.0/8", "192.0.2.0/24", "0.0.0.0/0", "198.51.100.7/32"])
    assert arr.afi == 1 and len(arr) == 4 and arr
    assert arr.to_strings() == ["10.0.0.0/8", "192.0.2.0/24", "0.0.0.0/0", "198.51.100.7/32"]
    assert arr.to_strings(1, 3) == ["192.0.2.0/24", "0.0.0.0/0"]
    assert list(arr) == arr.to_strings()
    assert arr.prefix(0) == "10.0.0.0/8" and arr.prefix(-1) == "198.51.100.7/32"
    with pytest.raises(IndexError):
        arr.prefix(4)
    with pytest.raises(IndexError):
        arr.prefix(-5)
    assert arr.keys() == [(0x0A000000 << 8) | 8, (0xC0000200 << 8) | 24, 0, (0xC6336407 << 8) | 32]
    assert arr.nlri_bytes() == b"\x08\x0a" + b"\x18\xc0\x00\x02" + b"\x00" + b"\x20\xc6\x33\x64\x07"
    assert decode_nlri(1, arr.nlri_bytes()) == arr
    assert not PrefixArray(1) and len(PrefixArray(2)) == 0
    assert PrefixArray.from_strings([], afi=2).afi == 2


def test_prefix_array_ipv6():
    arr = PrefixArray.from_strings(["2001:db8::/32", "::/0", "2001:db8::1/128", "fe80::/10"])
    assert arr.afi == 2
    assert arr.to_strings() == ["2001:db8::/32", "::/0", "2001:db8::1/128", "fe80::/10"]
    assert decode_nlri(2, arr.nlri_bytes()) == arr
    # keys(): (address << 8) | length, the address 128 bits wide.
    assert arr.keys()[0] == (0x20010DB8 << 104) | 32
    assert arr.keys()[1] == 0
    assert arr.keys()[2] == (((0x20010DB8 << 96) | 1) << 8) | 128
    assert PrefixArray.from_keys(2, arr.keys()) == arr


def test_prefix_array_keys_roundtrip_ipv4():
    arr = PrefixArray.from_strings(["10.0.0.0/8", "0.0.0.0/0", "255.255.255.255/32"])
    assert PrefixArray.from_keys(1, arr.keys()) == arr


def test_prefix_host_bits_are_masked():
    v4 = PrefixArray.from_strings(["10.1.2.3/16", "10.1.2.3/0", "10.1.2.255/31", "10.1.2.3/32"])
    assert v4.to_strings() == ["10.1.0.0/16", "0.0.0.0/0", "10.1.2.254/31", "10.1.2.3/32"]
    v6 = PrefixArray.from_strings(["2001:db8::ffff/32", "2001:db8:1:2:3:4:5:6/64",
                                   "2001:db8::1/127", "2001:db8:0:0:8000::1/65", "::1/0"])
    assert v6.to_strings() == ["2001:db8::/32", "2001:db8:1:2::/64", "2001:db8::/127",
                               str(ipaddress.ip_network("2001:db8:0:0:8000::/65")), "::/0"]
    a = PrefixArray(1)
    a.append("192.0.2.77/24")
    assert a == PrefixArray.from_strings(["192.0.2.0/24"])
    # Host bits set on the wire are masked too.
    assert decode_nlri(1, bytes([12, 10, 0xFF])).to_strings() == ["10.240.0.0/12"]
    assert decode_nlri(1, bytes([12, 10, 0xFF])) == PrefixArray.from_strings(["10.240.0.0/12"])
    assert decode_nlri(2, bytes([9]) + b"\x20\xff").to_strings() == ["2080::/9"]
    assert decode_nlri(1, bytes([0])).to_strings() == ["0.0.0.0/0"]


def test_prefix_array_mixing_families():
    arr = PrefixArray(1)
    with pytest.raises(ValueError):
        arr.append("2001:db8::/32")
    with pytest.raises(ValueError):
        PrefixArray(3)
    with pytest.raises(ValueError):
        PrefixArray.from_strings(["10.0.0.0/8"]).concat(PrefixArray.from_strings(["::/0"]))


def test_prefix_array_append_concat_equality():
    a = PrefixArray(1)
    a.append("10.0.0.0/8")
    a.append("10.0.0.0/8")
    b = PrefixArray.from_strings(["192.0.2.0/24"])
    c = a.concat(b)
    assert c.to_strings() == ["10.0.0.0/8", "10.0.0.0/8", "192.0.2.0/24"]
    assert a.to_strings() == ["10.0.0.0/8", "10.0.0.0/8"]        # unchanged
    assert c == PrefixArray.from_strings(c.to_strings())
    assert c != b
    assert PrefixArray(1) == PrefixArray(1) and PrefixArray(1) != PrefixArray(2)
    assert PrefixArray.from_strings(["10.0.0.0/8"]) != PrefixArray.from_strings(["10.0.0.0/9"])


def test_prefix_array_sequence():
    s = PrefixArray.sequence("10.0.0.0/24", 3)
    assert s.to_strings() == ["10.0.0.0/24", "10.0.1.0/24", "10.0.2.0/24"]
    s = PrefixArray.sequence("2001:db8::/48", 2)
    assert s.to_strings() == ["2001:db8::/48", "2001:db8:1::/48"]
    assert len(PrefixArray.sequence("0.0.0.0/16", 65536)) == 65536
    assert PrefixArray.sequence("255.255.255.0/24", 1).to_strings() == ["255.255.255.0/24"]
    with pytest.raises(ValueError):
        PrefixArray.sequence("0.0.0.0/2", 5)          # there are only four /2s
    with pytest.raises(ValueError):
        PrefixArray.sequence("0.0.0.0/0", 1)


@pytest.mark.parametrize("first,count", [("255.255.255.0/24", 2), ("10.0.0.0/16", 65536),
                                         ("ffff:ffff:ffff:ffff::/64", 2)])
def test_prefix_array_sequence_does_not_wrap_around(first, count):
    # Consecutive prefixes from first: past the top of the address space there are none.
    with pytest.raises(ValueError):
        PrefixArray.sequence(first, count)


@pytest.mark.parametrize("afi,data", [
    (1, bytes([33, 1, 2, 3, 4, 5])),   # longer than /32
    (1, bytes([24, 10, 0])),           # runs past the field
    (1, bytes([8])),                   # length byte only
    (2, bytes([129]) + bytes(17)),     # longer than /128
    (2, bytes([64]) + bytes(7)),       # runs past the field
])
def test_decode_nlri_errors_are_3_10(afi, data):
    e = error_of(decode_nlri, afi, data)
    assert (e.code, e.subcode) == (3, 10)


def test_decode_nlri_empty():
    assert len(decode_nlri(1, b"")) == 0 and decode_nlri(2, b"").afi == 2
