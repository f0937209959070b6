"""kbgp.kernel.tunnels without a kernel: names, the injection decision, and
the exact netlink messages kbgp sends for tunnels, FoU ports, table-77
routes and rules.

The messages are built with pyroute2's classes by kbgp; the tests read the
encoded bytes back with an independent parser and check the attribute
numbers of linux/if_link.h, linux/if_tunnel.h, linux/fou.h,
linux/rtnetlink.h and linux/fib_rules.h.
"""

from __future__ import annotations

import ipaddress
import logging
import socket
import struct

import pytest

from kbgp.errors import ConfigError
from kbgp.kernel.tunnels import (
    FOU_CMD_ADD,
    FOU_CMD_DEL,
    Decision,
    OverlayConfig,
    build_fou_request,
    build_link_request,
    build_rule,
    build_tunnel_route,
    decide,
    is_tunnel_name,
    same_subnet,
    tunnel_name,
    warn_next_hop_mismatch,
)

# linux/if_link.h
IFLA_IFNAME, IFLA_LINKINFO, IFLA_INFO_KIND, IFLA_INFO_DATA = 3, 18, 1, 2
# linux/if_tunnel.h (the same numbers serve ipip and ip6tnl)
IFLA_IPTUN_LOCAL, IFLA_IPTUN_REMOTE, IFLA_IPTUN_TTL, IFLA_IPTUN_PROTO = 2, 3, 4, 9
IFLA_IPTUN_ENCAP_TYPE, IFLA_IPTUN_ENCAP_FLAGS = 15, 16
IFLA_IPTUN_ENCAP_SPORT, IFLA_IPTUN_ENCAP_DPORT = 17, 18
TUNNEL_ENCAP_GUE = 2
# linux/fou.h
FOU_ATTR_PORT, FOU_ATTR_AF, FOU_ATTR_TYPE = 1, 2, 4
# linux/rtnetlink.h, linux/fib_rules.h
RTA_DST, RTA_OIF, RTA_TABLE = 1, 4, 15
FRA_SRC, FRA_TABLE, FRA_PROTOCOL = 2, 15, 21


def encoded(msg) -> bytes:
    msg.encode()
    return bytes(msg.data[:msg["header"]["length"]])


def attrs(buf: bytes, start: int, end: int) -> dict[int, bytes]:
    out, off = {}, start
    while off + 4 <= end:
        alen, atype = struct.unpack_from("=HH", buf, off)
        assert 4 <= alen <= end - off, "attribute overruns its container"
        out[atype & 0x3FFF] = buf[off + 4:off + alen]
        off += (alen + 3) & ~3
    return out


def link_message(msg):
    """(ifinfomsg fields, top attributes, kind, tunnel data attributes)."""
    buf = encoded(msg)
    length = struct.unpack_from("=I", buf)[0]
    assert length == len(buf)
    family, _, _type, index, flags, change = struct.unpack_from("=BBHiII", buf, 16)
    top = attrs(buf, 32, len(buf))
    info = attrs(top[IFLA_LINKINFO], 0, len(top[IFLA_LINKINFO]))
    data = attrs(info[IFLA_INFO_DATA], 0, len(info[IFLA_INFO_DATA]))
    return (family, index, flags, change), top, info[IFLA_INFO_KIND].rstrip(b"\0").decode(), data


# ----------------------------------------------------------------- names and decisions

def test_tunnel_names_match_kube_router():
    assert tunnel_name("10.0.0.1") == "tun-e443169117a"
    assert tunnel_name("192.168.1.10") == "tun-28c98c87e81"
    assert tunnel_name("2001:db8::1") == "tun-5c79b9c1639"
    # canonical text first: the same next hop written differently, same tunnel
    assert tunnel_name("2001:0db8:0:0::1") == "tun-5c79b9c1639"
    assert is_tunnel_name("tun-e443169117a") and not is_tunnel_name("tun-e443169117")
    assert not is_tunnel_name("tunl0") and not is_tunnel_name("tun-E443169117A")
    with pytest.raises(ValueError, match="'10.0.0.300' is not an IP address"):
        tunnel_name("10.0.0.300")


SUBNETS = [ipaddress.ip_network("10.80.0.0/24"), ipaddress.ip_network("fd00:80::/64")]


@pytest.mark.parametrize("overlay, next_hop, expected", [
    (None, "10.80.0.2", Decision.DIRECT),
    (None, "10.99.0.2", Decision.DIRECT),            # no overlay config: plain gateway routes
    (OverlayConfig(False), "10.80.0.2", Decision.DIRECT),
    (OverlayConfig(False), "10.99.0.2", Decision.SKIP),     # the underlay routes it
    (OverlayConfig(True, "subnet"), "10.80.0.2", Decision.DIRECT),
    (OverlayConfig(True, "subnet"), "10.99.0.2", Decision.TUNNEL),
    (OverlayConfig(True, "full"), "10.80.0.2", Decision.TUNNEL),
    (OverlayConfig(True, "full"), "10.99.0.2", Decision.TUNNEL),
    (OverlayConfig(True, "subnet"), "fd00:80::2", Decision.DIRECT),
    (OverlayConfig(True, "subnet"), "fd00:99::2", Decision.TUNNEL),
])
def test_injection_decision(overlay, next_hop, expected):
    assert decide(next_hop, overlay, SUBNETS) is expected


def test_same_subnet_is_per_family():
    assert same_subnet("10.80.0.200", SUBNETS)
    assert not same_subnet("10.80.1.1", SUBNETS)
    assert not same_subnet("::ffff:10.80.0.2", SUBNETS)


@pytest.mark.parametrize("kwargs, message", [
    ({"type": "mesh"}, "overlay_type: 'mesh' is not one of subnet, full"),
    ({"encap": "gre"}, "overlay_encap: 'gre' is not one of ipip, fou"),
    ({"encap_port": 80}, "overlay_encap_port: 80 is not a port 1024..65535"),
    ({"encap_port": 70000}, "overlay_encap_port: 70000"),
    ({"node_addresses": ("10.0.0.1", "node-a")}, "node_addresses: 'node-a' is not an IP"),
    ({"pod_cidrs": ("10.244.1.0/24", "10.244.1.1/24")}, "pod_cidrs: '10.244.1.1/24'"),
])
def test_overlay_config_names_the_bad_value(kwargs, message):
    with pytest.raises(ConfigError, match=message.replace(".", r"\.")):
        OverlayConfig(True, **kwargs)


def test_node_address_per_family():
    o = OverlayConfig(True, node_addresses=("fd00:80::1", "10.80.0.1"))
    assert (o.node_address(4), o.node_address(6)) == ("10.80.0.1", "fd00:80::1")
    assert OverlayConfig(True).node_address(4) is None


def test_warning_names_both_addresses(caplog):
    with caplog.at_level(logging.WARNING, logger="kbgp.kernel.tunnels"):
        warn_next_hop_mismatch("192.0.2.7", "10.80.0.1")
    (rec,) = caplog.records
    assert rec.levelno == logging.WARNING
    assert "192.0.2.7" in rec.getMessage() and "10.80.0.1" in rec.getMessage()


# ----------------------------------------------------------------- exact messages

def test_ipip_link_message():
    (family, index, flags, change), top, kind, data = link_message(
        build_link_request("tun-e443169117a", "10.80.0.1", "10.0.0.1", "ipip"))
    assert (family, index, flags & 1, change & 1) == (socket.AF_UNSPEC, 0, 1, 1)   # up at once
    assert top[IFLA_IFNAME] == b"tun-e443169117a\0"
    assert kind == "ipip"
    assert data[IFLA_IPTUN_LOCAL] == socket.inet_aton("10.80.0.1")
    assert data[IFLA_IPTUN_REMOTE] == socket.inet_aton("10.0.0.1")
    assert data[IFLA_IPTUN_PROTO] == bytes([4])                   # IPPROTO_IPIP
    assert IFLA_IPTUN_ENCAP_TYPE not in data and IFLA_IPTUN_TTL not in data
    assert set(data) == {IFLA_IPTUN_LOCAL, IFLA_IPTUN_REMOTE, IFLA_IPTUN_PROTO}


def test_ipip_fou_gue_link_message():
    _, _top, kind, data = link_message(
        build_link_request("tun-28c98c87e81", "10.80.0.1", "192.168.1.10", "fou", 5555))
    assert kind == "ipip"
    assert data[IFLA_IPTUN_REMOTE] == socket.inet_aton("192.168.1.10")
    assert data[IFLA_IPTUN_TTL] == bytes([225])                   # kube-router's TTL
    assert struct.unpack("=H", data[IFLA_IPTUN_ENCAP_TYPE]) == (TUNNEL_ENCAP_GUE,)
    assert struct.unpack("=H", data[IFLA_IPTUN_ENCAP_FLAGS]) == (0,)
    assert data[IFLA_IPTUN_ENCAP_SPORT] == b"\0\0"                # auto
    assert data[IFLA_IPTUN_ENCAP_DPORT] == struct.pack(">H", 5555)   # network order


def test_ip6tnl_link_message():
    _, _top, kind, data = link_message(
        build_link_request("tun-5c79b9c1639", "fd00:80::1", "2001:db8::1", "fou", 6000))
    assert kind == "ip6tnl"
    assert data[IFLA_IPTUN_LOCAL] == socket.inet_pton(socket.AF_INET6, "fd00:80::1")
    assert data[IFLA_IPTUN_REMOTE] == socket.inet_pton(socket.AF_INET6, "2001:db8::1")
    assert data[IFLA_IPTUN_PROTO] == bytes([41])                  # ip6ip6
    assert data[IFLA_IPTUN_ENCAP_DPORT] == struct.pack(">H", 6000)
    with pytest.raises(ValueError, match="different families"):
        build_link_request("tun-x", "10.80.0.1", "2001:db8::1")


def test_fou_port_messages():
    buf = encoded(build_fou_request(FOU_CMD_ADD, 5555, socket.AF_INET))
    cmd, _version = struct.unpack_from("=BB", buf, 16)
    a = attrs(buf, 20, len(buf))
    assert cmd == FOU_CMD_ADD
    assert a[FOU_ATTR_PORT] == struct.pack(">H", 5555)
    assert a[FOU_ATTR_AF] == bytes([socket.AF_INET])
    assert a[FOU_ATTR_TYPE] == bytes([2])                         # FOU_ENCAP_GUE
    buf = encoded(build_fou_request(FOU_CMD_DEL, 5555, socket.AF_INET6))
    a = attrs(buf, 20, len(buf))
    assert buf[16] == FOU_CMD_DEL and FOU_ATTR_TYPE not in a
    assert a[FOU_ATTR_AF] == bytes([socket.AF_INET6])


def test_table_77_route_message():
    buf = encoded(build_tunnel_route("10.0.0.1", 42, 17))
    fam, dlen, _, _, table, proto, scope, rtype, _ = struct.unpack_from("=BBBBBBBBI", buf, 16)
    a = attrs(buf, 28, len(buf))
    assert (fam, dlen, table, proto, scope, rtype) == (socket.AF_INET, 32, 77, 17, 253, 1)
    assert a[RTA_DST] == socket.inet_aton("10.0.0.1")
    assert struct.unpack("=I", a[RTA_OIF]) == (42,)
    assert struct.unpack("=I", a[RTA_TABLE]) == (77,)
    buf = encoded(build_tunnel_route("2001:db8::1", 42, 17))
    assert buf[17] == 128


def test_rule_message():
    buf = encoded(build_rule("10.244.1.0/24", 17))
    fam, dlen, slen, _tos, table, _, _, action, _flags = struct.unpack_from("=BBBBBBBBI", buf,
                                                                             16)
    a = attrs(buf, 28, len(buf))
    assert (fam, dlen, slen, table, action) == (socket.AF_INET, 0, 24, 77, 1)   # FR_ACT_TO_TBL
    assert a[FRA_SRC] == socket.inet_aton("10.244.1.0")
    assert struct.unpack("=I", a[FRA_TABLE]) == (77,)
    assert a[FRA_PROTOCOL] == bytes([17])
    buf = encoded(build_rule("fd00:244:1::/64"))
    a = attrs(buf, 28, len(buf))
    assert buf[16] == socket.AF_INET6 and buf[18] == 64 and FRA_PROTOCOL not in a
