"""kbgp._fast.netlink: route messages byte for byte, and ack decoding."""

import socket
import struct

import pytest

from kbgp._fast.netlink import (
    decode_acks,
    decode_dump,
    encode_routes,
    scan_acks,
    split_chunks,
)
from kbgp._fast.wire import PrefixArray

NLM_F_REQUEST, NLM_F_ACK = 0x1, 0x4
NLM_F_REPLACE, NLM_F_EXCL, NLM_F_CREATE = 0x100, 0x200, 0x400
RTA_DST, RTA_OIF, RTA_GATEWAY, RTA_TABLE = 1, 4, 5, 15


def rta(kind, payload):
    """An rtattr padded to 4 bytes, built independently of the encoder."""
    raw = struct.pack("=HH", 4 + len(payload), kind) + payload
    return raw + b"\0" * (-len(raw) % 4)


def rtmsg(family, dst_len, table, protocol):
    # family, dst_len, src_len, tos, table, protocol, scope, type, flags
    return struct.pack("=BBBBBBBBI", family, dst_len, 0, 0, table, protocol, 0, 1, 0)


def nlmsg(mtype, flags, seq, body):
    return struct.pack("=IHHII", 16 + len(body), mtype, flags, seq, 0) + body


def test_ipv4_message_field_by_field():
    arr = PrefixArray.from_strings(["10.1.2.0/24"])
    got = encode_routes(24, arr, "10.80.0.2", ifindex=7, table=254, protocol=17, seq_start=42)
    assert len(got) == 60
    length, mtype, flags, seq, pid = struct.unpack_from("=IHHII", got, 0)
    assert (length, mtype, seq, pid) == (60, 24, 42, 0)
    assert flags == NLM_F_REQUEST | NLM_F_ACK | NLM_F_CREATE | NLM_F_REPLACE
    fam, dlen, slen, tos, table, proto, scope, rtype, rflags = struct.unpack_from("=BBBBBBBBI", got, 16)
    assert (fam, dlen, slen, tos, table, proto, scope, rtype, rflags) == (
        socket.AF_INET, 24, 0, 0, 254, 17, 0, 1, 0)
    assert got[28:36] == struct.pack("=HH", 8, RTA_DST) + bytes([10, 1, 2, 0])
    assert got[36:44] == struct.pack("=HH", 8, RTA_GATEWAY) + bytes([10, 80, 0, 2])
    assert got[44:52] == struct.pack("=HHI", 8, RTA_OIF, 7)
    assert got[52:60] == struct.pack("=HHI", 8, RTA_TABLE, 254)
    expected = nlmsg(24, 0x505, 42, rtmsg(socket.AF_INET, 24, 254, 17)
                     + rta(RTA_DST, socket.inet_aton("10.1.2.0"))
                     + rta(RTA_GATEWAY, socket.inet_aton("10.80.0.2"))
                     + rta(RTA_OIF, struct.pack("=I", 7))
                     + rta(RTA_TABLE, struct.pack("=I", 254)))
    assert got == expected


def test_ipv6_message_field_by_field():
    arr = PrefixArray.from_strings(["fd00:80::1234/128"])
    got = encode_routes(25, arr, "fd00:80::2", table=1000, protocol=17, seq_start=7)
    length, mtype, flags, seq, pid = struct.unpack_from("=IHHII", got, 0)
    assert (length, mtype, seq, pid) == (len(got), 25, 7, 0) and length == 76
    assert flags == NLM_F_REQUEST | NLM_F_ACK          # no CREATE/REPLACE on delete
    fam, dlen, _, _, table, proto, scope, rtype, _ = struct.unpack_from("=BBBBBBBBI", got, 16)
    # table > 255: RT_TABLE_UNSPEC in rtm_table, the number in RTA_TABLE; a
    # delete matches any scope and type (RT_SCOPE_NOWHERE, RTN_UNSPEC), as
    # ``ip route del`` asks, so routes over a device (scope link) match too
    assert (fam, dlen, table, proto, scope, rtype) == (socket.AF_INET6, 128, 0, 17, 255, 0)
    assert got[28:48] == struct.pack("=HH", 20, RTA_DST) + socket.inet_pton(socket.AF_INET6, "fd00:80::1234")
    assert got[48:68] == struct.pack("=HH", 20, RTA_GATEWAY) + socket.inet_pton(socket.AF_INET6, "fd00:80::2")
    assert got[68:76] == struct.pack("=HHI", 8, RTA_TABLE, 1000)


def test_route_over_a_nexthop_object():
    arr = PrefixArray.from_strings(["10.1.2.0/24"])
    got = encode_routes(24, arr, None, table=254, protocol=17, seq_start=7, nhid=0x6B620001)
    expected = nlmsg(24, 0x505, 7, rtmsg(socket.AF_INET, 24, 254, 17)
                     + rta(RTA_DST, socket.inet_aton("10.1.2.0"))
                     + rta(30, struct.pack("=I", 0x6B620001))
                     + rta(RTA_TABLE, struct.pack("=I", 254)))
    assert got == expected
    with pytest.raises(ValueError, match="nhid: a route over a nexthop object takes neither"):
        encode_routes(24, arr, "10.80.0.2", nhid=5)
    with pytest.raises(ValueError, match="nhid"):
        encode_routes(24, arr, None, ifindex=3, nhid=5)


def test_several_messages_and_sequence_numbers():
    arr = PrefixArray.sequence("10.0.0.0/32", 1000)
    got = encode_routes(24, arr, None, seq_start=0xFFFFFFFF - 1, replace=False)
    assert len(got) == 1000 * 44                         # hdr + rtmsg + DST + TABLE
    for i in (0, 1, 2, 999):
        length, _, flags, seq, _ = struct.unpack_from("=IHHII", got, i * 44)
        assert length == 44 and flags == NLM_F_REQUEST | NLM_F_ACK | NLM_F_CREATE | NLM_F_EXCL
        assert seq == (0xFFFFFFFF - 1 + i) & 0xFFFFFFFF
        assert got[i * 44 + 32:i * 44 + 36] == socket.inet_aton(f"10.0.{i >> 8}.{i & 255}")


def test_gateway_list_and_packed():
    arr = PrefixArray.from_strings(["10.0.0.1/32", "10.0.0.2/32", "10.0.0.3/32"])
    got = encode_routes(24, arr, ["10.80.0.2", None, socket.inet_aton("10.80.0.3")])
    lens = [m[1] - m[0] for m in split_chunks(got, 16)]
    assert lens == [52, 44, 52]
    assert socket.inet_aton("10.80.0.3") in got[96:]
    packed = socket.inet_aton("1.1.1.1") + socket.inet_aton("2.2.2.2") + socket.inet_aton("3.3.3.3")
    got = encode_routes(24, arr, packed)
    assert [got[40 + 52 * i:44 + 52 * i] for i in range(3)] == [packed[4 * i:4 * i + 4] for i in range(3)]
    with pytest.raises(ValueError):
        encode_routes(24, arr, ["10.80.0.2"])
    with pytest.raises(ValueError):
        encode_routes(24, arr, "fd00::1")
    with pytest.raises(ValueError):
        encode_routes(26, arr, None)
    assert encode_routes(24, PrefixArray(1), "10.0.0.1") == b""


def ack(seq, err, extra=b""):
    body = struct.pack("=i", -err) + struct.pack("=IHHII", 16, 24, 5, seq, 0) + extra
    return nlmsg(2, 0x100, seq, body)


def test_decode_acks():
    data = ack(1, 0) + ack(2, 17) + nlmsg(3, 0, 3, b"\0\0\0\0") + ack(3, 101, b"\x01\x02")
    assert decode_acks(data) == [(1, 0), (2, 17), (3, 101)]
    assert decode_acks(b"") == []
    errors = {}
    assert scan_acks(bytearray(data) + bytearray(100), len(data), errors, 2, 5) == 2
    assert errors == {2: 17, 3: 101}


@pytest.mark.parametrize("cut", [1, 15, 16, 19, 35, 37, 52, 55, 71])
def test_decode_acks_truncated(cut):
    data = ack(1, 0) + ack(2, 17)
    with pytest.raises(ValueError, match="truncated"):
        decode_acks(data[:cut])


def test_decode_acks_bad_length():
    with pytest.raises(ValueError, match="length"):
        decode_acks(struct.pack("=IHHII", 8, 2, 0, 1, 0))
    short_error = struct.pack("=IHHII", 18, 2, 0, 1, 0) + b"\0\0\0\0"
    with pytest.raises(ValueError, match="truncated NLMSG_ERROR"):
        decode_acks(short_error)


def test_split_chunks():
    arr = PrefixArray.sequence("10.0.0.0/32", 5000)
    buf = encode_routes(24, arr, "10.80.0.2")
    runs = split_chunks(buf, 65536)
    assert all(end - start <= 65536 for start, end, _ in runs)
    assert sum(c for _, _, c in runs) == 5000 and runs[-1][1] == len(buf)
    assert all(runs[i][1] == runs[i + 1][0] for i in range(len(runs) - 1))
    assert {c for _, _, c in split_chunks(buf, 65536, 100)} == {100}


def test_decode_dump_filters():
    def route(family, addr, plen, table, proto, seq=9):
        return nlmsg(24, 2, seq, rtmsg(family, plen, min(table, 252), proto) + rta(RTA_DST, addr)
                     + rta(RTA_TABLE, struct.pack("=I", table)))
    data = (route(2, socket.inet_aton("10.1.0.0"), 16, 254, 17)
            + route(2, socket.inet_aton("10.2.0.0"), 16, 254, 4)
            + route(2, socket.inet_aton("10.3.0.0"), 16, 1000, 17)
            + route(10, socket.inet_pton(10, "fd00::"), 64, 254, 17))
    out = PrefixArray(1)
    assert decode_dump(data, len(data), out, 17, 254, 9) is False
    assert out.to_strings() == ["10.1.0.0/16"]
    done = nlmsg(3, 2, 9, b"\0\0\0\0")
    out6 = PrefixArray(2)
    assert decode_dump(data + done, len(data) + 20, out6, 17, 0, 9) is True
    assert out6.to_strings() == ["fd00::/64"]
    with pytest.raises(ValueError):
        decode_dump(data, len(data) - 3, PrefixArray(1), 17, 254, 9)
