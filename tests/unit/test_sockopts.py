"""kbgp.io.sockopts on this host: the bytes of struct tcp_md5sig, TTL/GTSM, sockets, parsing.

Nothing here needs root or a network namespace; the loopback interface is enough.
"""
from __future__ import annotations

import errno
import ipaddress
import logging
import select
import socket
import struct

import pytest

from kbgp.errors import ConfigError
from kbgp.io import sockopts as so

KEY = b"kbgp-unit-s3cret"
MAPPED_PREFIX = b"\0" * 10 + b"\xff\xff"


def _has_ipv6_loopback() -> bool:
    if not socket.has_ipv6:
        return False
    try:
        with socket.socket(socket.AF_INET6, socket.SOCK_STREAM) as s:
            s.bind(("::1", 0))
    except OSError:
        return False
    return True


def _has_tcp_md5() -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        try:
            so.set_tcp_md5(s, "192.0.2.1", b"probe")
        except OSError as exc:
            return exc.errno != errno.ENOPROTOOPT
    return True


needs_ipv6 = pytest.mark.skipif(not _has_ipv6_loopback(), reason="no IPv6 loopback (::1) here")
needs_md5 = pytest.mark.skipif(not _has_tcp_md5(), reason="kernel without CONFIG_TCP_MD5SIG")


def native_u16(value: int) -> bytes:
    return struct.pack("=H", value)


# --------------------------------------------------------------------------- struct layout

def test_struct_is_216_bytes():
    assert so.TCP_MD5SIG_LEN == 216
    assert len(so.pack_tcp_md5sig(socket.AF_INET, "192.0.2.1", KEY)) == 216
    assert len(so.pack_tcp_md5sig(socket.AF_INET6, "2001:db8::1", KEY)) == 216


def test_layout_ipv4_peer():
    raw = so.pack_tcp_md5sig(socket.AF_INET, "192.0.2.1", KEY)
    # sockaddr_in inside sockaddr_storage (0..127)
    assert raw[0:2] == native_u16(socket.AF_INET)
    assert raw[2:4] == b"\0\0"  # port: any
    assert raw[4:8] == bytes([192, 0, 2, 1])
    assert raw[8:128] == bytes(120)
    # flags, prefixlen, keylen, ifindex
    assert raw[128] == 0
    assert raw[129] == 0
    assert raw[130:132] == native_u16(len(KEY))
    assert raw[132:136] == struct.pack("=i", 0)
    # key, zero padded to 80
    assert raw[136:136 + len(KEY)] == KEY
    assert raw[136 + len(KEY):] == bytes(80 - len(KEY))


def test_layout_ipv6_peer():
    raw = so.pack_tcp_md5sig(socket.AF_INET6, "2001:db8::1", KEY)
    assert raw[0:2] == native_u16(socket.AF_INET6)
    assert raw[2:4] == b"\0\0"  # port
    assert raw[4:8] == bytes(4)  # flowinfo
    assert raw[8:24] == socket.inet_pton(socket.AF_INET6, "2001:db8::1")
    assert raw[24:28] == bytes(4)  # scope id
    assert raw[28:128] == bytes(100)
    assert raw[128:130] == b"\0\0"
    assert raw[130:132] == native_u16(len(KEY))
    assert raw[136:136 + len(KEY)] == KEY


def test_layout_ipv4_peer_on_ipv6_socket_is_mapped():
    raw = so.pack_tcp_md5sig(socket.AF_INET6, "10.0.0.7", KEY)
    assert raw[0:2] == native_u16(socket.AF_INET6)
    assert raw[8:24] == MAPPED_PREFIX + bytes([10, 0, 0, 7])
    # the same peer written as ::ffff:a.b.c.d gives the same bytes
    assert so.pack_tcp_md5sig(socket.AF_INET6, "::ffff:10.0.0.7", KEY) == raw


def test_mapped_peer_on_ipv4_socket_is_plain_ipv4():
    raw = so.pack_tcp_md5sig(socket.AF_INET, "::ffff:10.0.0.7", KEY)
    assert raw == so.pack_tcp_md5sig(socket.AF_INET, "10.0.0.7", KEY)


def test_layout_prefix():
    raw = so.pack_tcp_md5sig(socket.AF_INET, "10.1.0.0", KEY, prefixlen=16)
    assert raw[128] == so.TCP_MD5SIG_FLAG_PREFIX == 1
    assert raw[129] == 16
    raw6 = so.pack_tcp_md5sig(socket.AF_INET6, "2001:db8::", KEY, prefixlen=64)
    assert (raw6[128], raw6[129]) == (1, 64)
    # a prefix of 0 still carries the flag (it means "every address")
    raw0 = so.pack_tcp_md5sig(socket.AF_INET, "0.0.0.0", KEY, prefixlen=0)
    assert (raw0[128], raw0[129]) == (1, 0)


def test_layout_removal_has_no_key():
    for key in (None, b""):
        raw = so.pack_tcp_md5sig(socket.AF_INET, "192.0.2.1", key)
        assert raw[130:132] == b"\0\0"
        assert raw[136:] == bytes(80)


def test_key_of_80_bytes_fits_and_81_does_not():
    raw = so.pack_tcp_md5sig(socket.AF_INET, "192.0.2.1", b"k" * 80)
    assert raw[136:] == b"k" * 80
    secret = b"TOPSECRET" * 9  # 81 bytes
    with pytest.raises(ConfigError) as info:
        so.pack_tcp_md5sig(socket.AF_INET, "192.0.2.1", secret)
    assert str(info.value) == "TCP MD5 key longer than 80 bytes"
    with socket.socket() as s, pytest.raises(ConfigError) as info:
        so.set_tcp_md5(s, "192.0.2.1", secret)
    assert str(info.value) == "TCP MD5 key longer than 80 bytes"
    assert "TOPSECRET" not in repr(info.value)


def test_key_must_be_bytes():
    with pytest.raises(ConfigError, match="must be bytes") as info:
        so.pack_tcp_md5sig(socket.AF_INET, "192.0.2.1", "hunter2")  # type: ignore[arg-type]
    assert "hunter2" not in str(info.value)
    assert len(so.pack_tcp_md5sig(socket.AF_INET, "192.0.2.1", bytearray(b"ab"))) == 216


@pytest.mark.parametrize(
    ("family", "peer", "prefixlen", "match"),
    [
        (socket.AF_INET, "2001:db8::1", None, "is IPv6 but the socket is IPv4"),
        (socket.AF_INET, "peer.example", None, "not an IPv4 or IPv6 address"),
        (socket.AF_INET, "10.0.0.0", 33, "out of range 0..32"),
        (socket.AF_INET, "10.0.0.0", -1, "out of range 0..32"),
        (socket.AF_INET6, "2001:db8::", 129, "out of range 0..128"),
        # the kernel keeps a mapped peer's key as an IPv4 key: its prefix is an IPv4 one
        (socket.AF_INET6, "::ffff:10.0.0.0", 33, "out of range 0..32"),
        (socket.AF_UNIX, "10.0.0.1", None, "IPv4 or IPv6 socket"),
    ],
)
def test_bad_md5_target(family, peer, prefixlen, match):
    with pytest.raises(ConfigError, match=match):
        so.pack_tcp_md5sig(family, peer, KEY, prefixlen)


# --------------------------------------------------------------------------- setsockopt TCP_MD5SIG

@needs_md5
def test_md5_on_listening_and_unconnected_sockets():
    with so.create_listener("127.0.0.1", 0) as lsock:
        so.set_tcp_md5(lsock, "127.0.0.1", KEY)
        so.set_tcp_md5(lsock, "10.0.0.0", KEY, prefixlen=8)
        so.set_tcp_md5(lsock, "127.0.0.1", None)
        so.set_tcp_md5(lsock, "10.0.0.0", b"", prefixlen=8)
    with so.create_client_socket("192.0.2.1") as csock:
        so.set_tcp_md5(csock, "192.0.2.1", KEY)


@needs_md5
def test_removing_a_missing_key_is_not_an_error():
    with so.create_client_socket("192.0.2.1") as s:
        so.set_tcp_md5(s, "192.0.2.1", None)
        so.set_tcp_md5(s, "192.0.2.1", b"")
        so.set_tcp_md5(s, "192.0.2.0", None, prefixlen=24)


@needs_md5
def test_removing_a_prefix_key_needs_its_prefix():
    # What the kernel does: a key is found by address AND prefix length.
    with so.create_client_socket("192.0.2.1") as s:
        s.setsockopt(socket.IPPROTO_TCP, so.TCP_MD5SIG_EXT,
                     so.pack_tcp_md5sig(socket.AF_INET, "192.0.2.0", KEY, prefixlen=24))
        with pytest.raises(OSError) as info:
            s.setsockopt(socket.IPPROTO_TCP, so.TCP_MD5SIG,
                         so.pack_tcp_md5sig(socket.AF_INET, "192.0.2.0", None))
        assert info.value.errno == errno.ENOENT
        so.set_tcp_md5(s, "192.0.2.0", None, prefixlen=24)


@needs_md5
@needs_ipv6
def test_md5_on_dual_stack_listener():
    with so.create_listener("::", 0) as lsock:
        so.set_tcp_md5(lsock, "10.0.0.1", KEY)  # stored as ::ffff:10.0.0.1
        so.set_tcp_md5(lsock, "10.0.0.0", KEY, prefixlen=24)
        so.set_tcp_md5(lsock, "2001:db8::1", KEY)
        so.set_tcp_md5(lsock, "2001:db8::", KEY, prefixlen=64)
        so.set_tcp_md5(lsock, "10.0.0.1", None)


@needs_md5
def test_kernel_error_names_peer_not_key(caplog):
    caplog.set_level(logging.DEBUG, logger="kbgp")
    s = socket.socket()
    s.close()  # every setsockopt on it now fails
    with pytest.raises(OSError) as info:
        so.set_tcp_md5(s, "192.0.2.9", KEY)
    assert "192.0.2.9" in str(info.value)
    assert "TCP MD5" in str(info.value)
    assert KEY.decode() not in str(info.value)
    assert info.value.errno == errno.EBADF
    assert all(KEY.decode() not in r.getMessage() for r in caplog.records)


@needs_md5
def test_nothing_logged_contains_the_key(caplog):
    caplog.set_level(logging.DEBUG, logger="kbgp")
    with so.create_listener("127.0.0.1", 0) as lsock:
        so.set_tcp_md5(lsock, "127.0.0.1", KEY)
        so.set_tcp_md5(lsock, "127.0.0.1", None)
    assert caplog.records  # it does log, at debug level
    text = "\n".join(r.getMessage() for r in caplog.records)
    assert KEY.decode() not in text
    assert "127.0.0.1" in text


def _roundtrip(listen: str, server_key: bytes | None, client_key: bytes | None) -> bytes | None:
    """Connect over loopback with the given keys; the reply, or None if no connection in 1 s."""
    with so.create_listener(listen, 0) as lsock:
        port = lsock.getsockname()[1]
        if server_key is not None:
            so.set_tcp_md5(lsock, listen, server_key)
        with so.create_client_socket(listen) as csock:
            if client_key is not None:
                so.set_tcp_md5(csock, listen, client_key)
            err = csock.connect_ex((listen, port))
            assert err in (0, errno.EINPROGRESS)
            _, writable, _ = select.select([], [csock], [], 1.0)
            if not writable or csock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR):
                return None
            readable, _, _ = select.select([lsock], [], [], 1.0)
            assert readable
            conn, _ = lsock.accept()
            with conn:
                conn.settimeout(2)
                csock.settimeout(2)
                csock.sendall(b"hello")
                conn.sendall(conn.recv(16)[::-1])
                return csock.recv(16)


@needs_md5
def test_md5_loopback_connection_ipv4():
    assert _roundtrip("127.0.0.1", KEY, KEY) == b"olleh"


@needs_md5
@needs_ipv6
def test_md5_loopback_connection_ipv6():
    assert _roundtrip("::1", KEY, KEY) == b"olleh"


@needs_md5
def test_md5_loopback_wrong_key_does_not_connect():
    # Both ends of a loopback connection share one host's counters; the integration
    # tests in network namespaces check which counter grows.
    assert _roundtrip("127.0.0.1", KEY, b"another-key") is None


# --------------------------------------------------------------------------- TTL and GTSM

def test_set_ttl_ipv4():
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        so.set_ttl(s, 255)
        assert s.getsockopt(socket.IPPROTO_IP, socket.IP_TTL) == 255
        so.set_ttl(s, 1)
        assert s.getsockopt(socket.IPPROTO_IP, socket.IP_TTL) == 1


@needs_ipv6
def test_set_ttl_ipv6_sets_hop_limit_and_ip_ttl():
    with socket.socket(socket.AF_INET6, socket.SOCK_STREAM) as s:
        so.set_ttl(s, 254)
        assert s.getsockopt(socket.IPPROTO_IPV6, so.IPV6_UNICAST_HOPS) == 254
        assert s.getsockopt(socket.IPPROTO_IP, socket.IP_TTL) == 254


def test_set_min_ttl_ipv4():
    with so.create_listener("127.0.0.1", 0) as s:
        so.set_min_ttl(s, so.gtsm_min_ttl(1))
        assert s.getsockopt(socket.IPPROTO_IP, so.IP_MINTTL) == 255
        so.set_min_ttl(s, 0)
        assert s.getsockopt(socket.IPPROTO_IP, so.IP_MINTTL) == 0


@needs_ipv6
def test_set_min_ttl_ipv6_sets_both():
    with so.create_listener("::", 0) as s:
        so.set_min_ttl(s, 254)
        assert s.getsockopt(socket.IPPROTO_IPV6, so.IPV6_MINHOPCOUNT) == 254
        assert s.getsockopt(socket.IPPROTO_IP, so.IP_MINTTL) == 254


@pytest.mark.parametrize("value", [0, 256, -1, 1.5, "255", True])
def test_set_ttl_rejects(value):
    with socket.socket() as s, pytest.raises(ConfigError):
        so.set_ttl(s, value)


@pytest.mark.parametrize("value", [256, -1, None])
def test_set_min_ttl_rejects(value):
    with socket.socket() as s, pytest.raises(ConfigError):
        so.set_min_ttl(s, value)


def test_gtsm_min_ttl():
    assert so.gtsm_min_ttl(1) == 255
    assert so.gtsm_min_ttl(2) == 254
    assert so.gtsm_min_ttl(255) == 1
    for bad in (0, 256, -3):
        with pytest.raises(ConfigError):
            so.gtsm_min_ttl(bad)


# --------------------------------------------------------------------------- sockets

def test_listener_ipv4_port_0():
    with so.create_listener("127.0.0.1", 0) as s:
        host, port = s.getsockname()
        assert host == "127.0.0.1" and port > 0
        assert s.family == socket.AF_INET
        assert s.gettimeout() == 0.0  # non-blocking
        assert s.getsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR) == 1
        assert s.getsockopt(socket.SOL_SOCKET, socket.SO_ACCEPTCONN) == 1
        with socket.create_connection(("127.0.0.1", port), timeout=2):
            select.select([s], [], [], 2)
            conn, _ = s.accept()
            conn.close()


@needs_ipv6
def test_listener_v6only_depends_on_address():
    with so.create_listener("::", 0) as s:
        assert s.getsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY) == 0
    with so.create_listener("::1", 0) as s:
        assert s.getsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY) == 1
        assert s.family == socket.AF_INET6


def test_listener_error_names_address_and_port():
    with so.create_listener("127.0.0.1", 0) as first:
        port = first.getsockname()[1]
        with pytest.raises(OSError, match=rf"127\.0\.0\.1:{port}") as info:
            so.create_listener("127.0.0.1", port)
        assert info.value.errno == errno.EADDRINUSE
    with pytest.raises(OSError, match=r"192\.0\.2\.77:0") as info:
        so.create_listener("192.0.2.77", 0)  # TEST-NET-1: not on this host
    assert info.value.errno == errno.EADDRNOTAVAIL


@pytest.mark.parametrize(("address", "port"), [("localhost", 179), ("10.0.0.1", 70000),
                                               ("10.0.0.1", -1)])
def test_listener_rejects_bad_input(address, port):
    with pytest.raises(ConfigError):
        so.create_listener(address, port)


def test_client_socket_unbound():
    with so.create_client_socket("192.0.2.1") as s:
        assert s.family == socket.AF_INET
        assert s.gettimeout() == 0.0
        assert s.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY) == 1
        assert s.getsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR) == 1
        assert s.getsockname() == ("0.0.0.0", 0)
        with pytest.raises(OSError):
            s.getpeername()


def test_client_socket_bound_to_local():
    with so.create_client_socket("127.0.0.1", local="127.0.0.1") as s:
        assert s.getsockname()[0] == "127.0.0.1"
        assert s.getsockname()[1] > 0
    with so.create_listener("127.0.0.1", 0) as taken:
        port = taken.getsockname()[1]
        with pytest.raises(OSError, match=rf"127\.0\.0\.1:{port}"):
            # SO_REUSEADDR does not share a port with a listener
            so.create_client_socket("127.0.0.1", local="127.0.0.1", local_port=port)


@needs_ipv6
def test_client_socket_ipv6():
    with so.create_client_socket("2001:db8::1", local="::1") as s:
        assert s.family == socket.AF_INET6
        assert s.getsockname()[0] == "::1"


def test_client_socket_family_mismatch():
    with pytest.raises(ConfigError, match="different families"):
        so.create_client_socket("2001:db8::1", local="127.0.0.1")
    with pytest.raises(ConfigError):
        so.create_client_socket("bgp.example")


# --------------------------------------------------------------------------- counters

NETSTAT = """\
TcpExt: SyncookiesSent TCPMD5NotFound TCPMD5Unexpected TCPMD5Failure TCPMinTTLDrop
TcpExt: 0 4 5 6 7
IpExt: InNoRoutes TCPMD5NotFound
IpExt: 1 999
"""


def test_md5_counters_from_a_file(tmp_path):
    path = tmp_path / "netstat"
    path.write_text(NETSTAT)
    assert so.tcp_md5_counters(path) == {
        "TCPMD5NotFound": 4, "TCPMD5Unexpected": 5, "TCPMD5Failure": 6,
    }
    assert so.read_netstat("TcpExt", path)["TCPMinTTLDrop"] == 7
    assert so.read_netstat("IpExt", path) == {"InNoRoutes": 1, "TCPMD5NotFound": 999}


def test_md5_counters_unreadable(tmp_path):
    assert so.tcp_md5_counters(tmp_path / "missing") == {}
    broken = tmp_path / "broken"
    broken.write_text("TcpExt: A B C\n")
    assert so.tcp_md5_counters(broken) == {}


def test_md5_counters_of_this_host():
    counters = so.tcp_md5_counters()
    if counters:  # a kernel with TCP MD5 and a readable /proc
        assert set(counters) == set(so.MD5_COUNTERS)
        assert all(isinstance(v, int) and v >= 0 for v in counters.values())


# --------------------------------------------------------------------------- parse_host_port

@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("10.0.0.1:179", ("10.0.0.1", 179)),
        ("10.0.0.1", ("10.0.0.1", 179)),
        ("10.0.0.1:1790", ("10.0.0.1", 1790)),
        ("[2001:db8::1]:1790", ("2001:db8::1", 1790)),
        ("[::]:179", ("::", 179)),
        ("[::1]", ("::1", 179)),
        ("2001:db8::1", ("2001:db8::1", 179)),
        ("2001:DB8::0001", ("2001:db8::1", 179)),
        ("::", ("::", 179)),
        (" 10.0.0.1:65535 ", ("10.0.0.1", 65535)),
    ],
)
def test_parse_host_port(text, expected):
    assert so.parse_host_port(text) == expected


def test_parse_host_port_mapped():
    host, port = so.parse_host_port("[::ffff:10.0.0.1]:1179")
    assert ipaddress.ip_address(host) == ipaddress.ip_address("::ffff:10.0.0.1")
    assert port == 1179


def test_parse_host_port_default():
    assert so.parse_host_port("10.0.0.1", default_port=1179) == ("10.0.0.1", 1179)
    assert so.parse_host_port("2001:db8::1", 1179) == ("2001:db8::1", 1179)
    assert so.parse_host_port("10.0.0.1:179", default_port=1179) == ("10.0.0.1", 179)


@pytest.mark.parametrize(
    "text",
    [
        "", "   ", "10.0.0.1:", ":179", "10.0.0.1:0", "10.0.0.1:65536", "10.0.0.1:abc",
        "10.0.0.1:+179", "10.0.0.1:1_79", "10.0.0.256", "bgp.example:179", "bgp.example",
        "[2001:db8::1", "[2001:db8::1]179", "[2001:db8::1]:", "[10.0.0.1]:179", "[]:179",
        "2001:db8::1::2", "10.0.0.1:179:1",
    ],
)
def test_parse_host_port_errors(text):
    with pytest.raises(ConfigError) as info:
        so.parse_host_port(text)
    assert repr(text) in str(info.value)
