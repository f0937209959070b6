"""The Linux socket options a BGP speaker needs, and the sockets it listens and connects with.

* TCP MD5 signatures (RFC 2385) through ``setsockopt(IPPROTO_TCP, TCP_MD5SIG)``;
* the TTL / hop limit kbgp sends with and GTSM (RFC 5082), the minimum it accepts;
* listening and client sockets set up the way the asyncio adapter wants them;
* the kernel's TCP MD5 drop counters, so status output can name MD5 as the likely
  reason a session never comes up (the kernel drops unsigned or badly signed
  segments silently: the peer sees nothing but SYN timeouts).

Only the standard library is used.  The option numbers are Linux's (Python 3.11's
``socket`` module does not export most of them).  Nothing here ever logs, formats
or raises a TCP MD5 key: messages name the peer, never the key.
"""
from __future__ import annotations

import errno
import ipaddress
import logging
import os
import re
import socket
import struct

from kbgp.errors import ConfigError

__all__ = [
    "TCP_MD5SIG",
    "TCP_MD5SIG_EXT",
    "TCP_MD5SIG_FLAG_PREFIX",
    "TCP_MD5SIG_MAXKEYLEN",
    "TCP_MD5SIG_LEN",
    "IP_MINTTL",
    "IPV6_MINHOPCOUNT",
    "MD5_COUNTERS",
    "pack_tcp_md5sig",
    "set_tcp_md5",
    "set_ttl",
    "set_min_ttl",
    "gtsm_min_ttl",
    "create_listener",
    "create_client_socket",
    "read_netstat",
    "tcp_md5_counters",
    "parse_host_port",
    "format_host_port",
]

log = logging.getLogger(__name__)

# include/uapi/linux/tcp.h
TCP_MD5SIG = 14
TCP_MD5SIG_EXT = 32
TCP_MD5SIG_FLAG_PREFIX = 1
TCP_MD5SIG_MAXKEYLEN = 80
# include/uapi/linux/in.h and in6.h
IP_TTL = 2
IP_MINTTL = 21
IPV6_UNICAST_HOPS = 16
IPV6_V6ONLY = 26
IPV6_MINHOPCOUNT = 73

SOCKADDR_STORAGE_LEN = 128
# struct tcp_md5sig: sockaddr_storage tcpm_addr; u8 tcpm_flags; u8 tcpm_prefixlen;
# u16 tcpm_keylen; int tcpm_ifindex; u8 tcpm_key[80].  Every field already sits on
# its natural alignment, so "=" (native order, no padding) gives the C layout.
_TCP_MD5SIG = struct.Struct(f"={SOCKADDR_STORAGE_LEN}sBBHi{TCP_MD5SIG_MAXKEYLEN}s")
TCP_MD5SIG_LEN = _TCP_MD5SIG.size  # 216; the kernel refuses anything shorter
# struct sockaddr_in: family (host order), port (network order), 4-byte address.
_SOCKADDR_IN = struct.Struct("=H2s4s")
# struct sockaddr_in6: family, port, flowinfo, 16-byte address, scope id.
_SOCKADDR_IN6 = struct.Struct("=H2sI16sI")

NETSTAT_PATH = "/proc/net/netstat"
MD5_COUNTERS = ("TCPMD5NotFound", "TCPMD5Unexpected", "TCPMD5Failure")

BGP_PORT = 179

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


# --------------------------------------------------------------------------- helpers

def _ip(text: object, what: str) -> IPAddress:
    """An IP literal (not a host name) or ConfigError naming ``what``."""
    if isinstance(text, (ipaddress.IPv4Address, ipaddress.IPv6Address)):
        return text
    if not isinstance(text, str):
        raise ConfigError(f"invalid {what} {text!r}: expected an IP address string")
    try:
        return ipaddress.ip_address(text.strip())
    except ValueError:
        raise ConfigError(f"invalid {what} {text!r}: not an IPv4 or IPv6 address") from None


def _unmapped(addr: IPAddress) -> IPAddress:
    """``::ffff:a.b.c.d`` as the IPv4 address it stands for; anything else unchanged."""
    if isinstance(addr, ipaddress.IPv6Address) and addr.ipv4_mapped is not None:
        return addr.ipv4_mapped
    return addr


def _family_name(family: int) -> str:
    return {socket.AF_INET: "IPv4", socket.AF_INET6: "IPv6"}.get(family, f"family {family}")


def _check_int(what: str, value: object, low: int, high: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ConfigError(f"{what} must be an integer, not {type(value).__name__}")
    if not low <= value <= high:
        raise ConfigError(f"{what} {value} is out of range {low}..{high}")
    return value


def _reason(exc: OSError) -> str:
    return exc.strerror or str(exc)


def format_host_port(host: str, port: int) -> str:
    """``10.0.0.1:179`` or ``[2001:db8::1]:179``."""
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


# --------------------------------------------------------------------------- TCP MD5

def _normalise_key(key: bytes | bytearray | memoryview | None) -> bytes:
    if key is None:
        return b""
    if isinstance(key, str):
        # Never guess an encoding for a secret; the caller decodes it.
        raise ConfigError("TCP MD5 key must be bytes, not str")
    if not isinstance(key, (bytes, bytearray, memoryview)):
        raise ConfigError(f"TCP MD5 key must be bytes, not {type(key).__name__}")
    key = bytes(key)
    if len(key) > TCP_MD5SIG_MAXKEYLEN:
        raise ConfigError(f"TCP MD5 key longer than {TCP_MD5SIG_MAXKEYLEN} bytes")
    return key


def _md5_target(family: int, peer: object, prefixlen: int | None) -> tuple[bytes, str]:
    """The ``sockaddr_storage`` bytes for ``peer`` on a ``family`` socket, and a text for messages.

    On an AF_INET6 socket an IPv4 peer is written as ``::ffff:a.b.c.d``: that is
    how IPv4 connections on a dual-stack socket are seen, and the kernel then keeps
    the key as an IPv4 key (so a prefix length stays an IPv4 one, 0..32).
    """
    addr = _unmapped(_ip(peer, "TCP MD5 peer address"))
    if family == socket.AF_INET:
        if addr.version != 4:
            raise ConfigError(f"TCP MD5 peer {peer} is IPv6 but the socket is IPv4")
        raw = _SOCKADDR_IN.pack(socket.AF_INET, b"\0\0", addr.packed)
    elif family == socket.AF_INET6:
        packed = addr.packed if addr.version == 6 else b"\0" * 10 + b"\xff\xff" + addr.packed
        raw = _SOCKADDR_IN6.pack(socket.AF_INET6, b"\0\0", 0, packed, 0)
    else:
        raise ConfigError(f"TCP MD5 needs an IPv4 or IPv6 socket, not {_family_name(family)}")
    text = str(addr)
    if prefixlen is not None:
        _check_int("TCP MD5 prefix length", prefixlen, 0, 32 if addr.version == 4 else 128)
        text = f"{text}/{prefixlen}"
    return raw.ljust(SOCKADDR_STORAGE_LEN, b"\0"), text


def pack_tcp_md5sig(
    family: int,
    peer: str,
    key: bytes | None,
    prefixlen: int | None = None,
) -> bytes:
    """The ``struct tcp_md5sig`` (216 bytes) that sets (or, with no key, removes) ``peer``'s key.

    ``family`` is the family of the socket the option goes on.  With ``prefixlen``
    the structure carries TCP_MD5SIG_FLAG_PREFIX and must be set with TCP_MD5SIG_EXT.
    """
    raw_key = _normalise_key(key)
    addr, _ = _md5_target(family, peer, prefixlen)
    flags = TCP_MD5SIG_FLAG_PREFIX if prefixlen is not None else 0
    return _TCP_MD5SIG.pack(addr, flags, prefixlen or 0, len(raw_key), 0, raw_key)


def set_tcp_md5(
    sock: socket.socket,
    peer: str,
    key: bytes | None,
    prefixlen: int | None = None,
) -> None:
    """Sign (RFC 2385) every segment to and from ``peer`` with ``key``; None or b"" removes it.

    Works on a listening socket (the key is then inherited by the sockets accepted
    from that peer, and the kernel drops SYNs from it that are unsigned or wrongly
    signed) and on a socket that is not connected yet.  ``prefixlen`` makes the key
    cover every address in ``peer/prefixlen`` (TCP_MD5SIG_EXT); removing such a key
    needs the same prefix length.  Removing a key that is not there is not an error.
    """
    raw_key = _normalise_key(key)
    family = sock.family
    addr, target = _md5_target(family, peer, prefixlen)
    flags = TCP_MD5SIG_FLAG_PREFIX if prefixlen is not None else 0
    data = _TCP_MD5SIG.pack(addr, flags, prefixlen or 0, len(raw_key), 0, raw_key)
    optname = TCP_MD5SIG_EXT if prefixlen is not None else TCP_MD5SIG
    action = "set" if raw_key else "remove"
    try:
        sock.setsockopt(socket.IPPROTO_TCP, optname, data)
    except OSError as exc:
        if not raw_key and exc.errno == errno.ENOENT:
            # Nothing to remove: the outcome the caller wanted (kube-router #370).
            log.debug("no TCP MD5 key for peer %s to remove", target)
            return
        if exc.errno == errno.ENOPROTOOPT:
            why = "this kernel has no TCP MD5 support (CONFIG_TCP_MD5SIG)"
        elif exc.errno == getattr(errno, "EKEYREJECTED", -1):
            why = "a TCP-AO key already covers this peer"
        else:
            why = _reason(exc)
        raise OSError(
            exc.errno, f"cannot {action} the TCP MD5 key for peer {target}: {why}"
        ) from exc
    log.debug("TCP MD5 key %s for peer %s", "set" if raw_key else "removed", target)


# --------------------------------------------------------------------------- TTL and GTSM

def _setsockopt_int(sock: socket.socket, level: int, optname: int, value: int, what: str) -> None:
    try:
        sock.setsockopt(level, optname, value)
    except OSError as exc:
        raise OSError(exc.errno, f"cannot set {what} to {value}: {_reason(exc)}") from exc


def set_ttl(sock: socket.socket, ttl: int) -> None:
    """Send with IP TTL / IPv6 hop limit ``ttl`` (1..255).

    An AF_INET6 socket gets both: IPV6_UNICAST_HOPS for IPv6 and IP_TTL for the
    IPv4-mapped connections a dual-stack socket may carry.
    """
    _check_int("TTL", ttl, 1, 255)
    family = sock.family
    if family == socket.AF_INET:
        _setsockopt_int(sock, socket.IPPROTO_IP, IP_TTL, ttl, "IP_TTL")
    elif family == socket.AF_INET6:
        _setsockopt_int(sock, socket.IPPROTO_IPV6, IPV6_UNICAST_HOPS, ttl, "IPV6_UNICAST_HOPS")
        _setsockopt_int(sock, socket.IPPROTO_IP, IP_TTL, ttl, "IP_TTL")
    else:
        raise ConfigError(f"TTL needs an IPv4 or IPv6 socket, not {_family_name(family)}")


def set_min_ttl(sock: socket.socket, min_ttl: int) -> None:
    """GTSM (RFC 5082): drop received segments whose TTL / hop limit is below ``min_ttl``.

    0 turns the check off.  On an AF_INET6 socket both IPV6_MINHOPCOUNT and
    IP_MINTTL are set, so IPv4-mapped connections are checked too.  Set it on the
    listening socket before accepting: accepted sockets inherit it, and SYNs that
    fail the check never create a connection.
    """
    _check_int("minimum TTL", min_ttl, 0, 255)
    family = sock.family
    if family == socket.AF_INET:
        _setsockopt_int(sock, socket.IPPROTO_IP, IP_MINTTL, min_ttl, "IP_MINTTL")
    elif family == socket.AF_INET6:
        _setsockopt_int(sock, socket.IPPROTO_IPV6, IPV6_MINHOPCOUNT, min_ttl, "IPV6_MINHOPCOUNT")
        _setsockopt_int(sock, socket.IPPROTO_IP, IP_MINTTL, min_ttl, "IP_MINTTL")
    else:
        raise ConfigError(f"minimum TTL needs an IPv4 or IPv6 socket, not {_family_name(family)}")


def gtsm_min_ttl(hops: int) -> int:
    """The minimum TTL that accepts a peer ``hops`` router hops away: 256 - hops (1 -> 255)."""
    _check_int("GTSM hop count", hops, 1, 255)
    return 256 - hops


# --------------------------------------------------------------------------- sockets

# A route reflector's clients (or a cluster's nodes) may all connect at once
# after a restart; the kernel caps this at net.core.somaxconn.
LISTEN_BACKLOG = 4096


def create_listener(address: str, port: int, backlog: int = LISTEN_BACKLOG) -> socket.socket:
    """A bound, listening, non-blocking TCP socket on ``address``:``port``.

    ``::`` accepts IPv4 as well (IPV6_V6ONLY=0); a specific IPv6 address only IPv6.
    """
    addr = _ip(address, "listen address")
    _check_int("listen port", port, 0, 65535)
    _check_int("listen backlog", backlog, 0, 65535)
    host = str(addr)
    where = format_host_port(host, port)
    family = socket.AF_INET6 if addr.version == 6 else socket.AF_INET
    try:
        sock = socket.socket(family, socket.SOCK_STREAM)
    except OSError as exc:
        raise OSError(exc.errno, f"cannot listen on {where}: {_reason(exc)}") from exc
    try:
        sock.setblocking(False)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if family == socket.AF_INET6:
            dual = addr.is_unspecified or addr.ipv4_mapped is not None
            sock.setsockopt(socket.IPPROTO_IPV6, IPV6_V6ONLY, 0 if dual else 1)
        sock.bind((host, port))
        sock.listen(backlog)
    except OSError as exc:
        sock.close()
        raise OSError(exc.errno, f"cannot listen on {where}: {_reason(exc)}") from exc
    log.debug("listening on %s", format_host_port(host, sock.getsockname()[1]))
    return sock


def create_client_socket(
    remote: str,
    local: str | None = None,
    local_port: int = 0,
) -> socket.socket:
    """An unconnected, non-blocking TCP socket for connecting to ``remote``.

    It has ``remote``'s address family, SO_REUSEADDR and TCP_NODELAY, and is bound
    to ``local``:``local_port`` when either is given.  Set TCP MD5 and TTL options
    on it before connecting.
    """
    raddr = _ip(remote, "remote address")
    _check_int("local port", local_port, 0, 65535)
    family = socket.AF_INET6 if raddr.version == 6 else socket.AF_INET
    bind_host: str | None = None
    if local is not None:
        laddr = _ip(local, "local address")
        if laddr.version != raddr.version:
            raise ConfigError(
                f"local address {local} and remote address {remote} are of different families"
            )
        bind_host = str(laddr)
    elif local_port:
        bind_host = "::" if family == socket.AF_INET6 else "0.0.0.0"
    try:
        sock = socket.socket(family, socket.SOCK_STREAM)
    except OSError as exc:
        raise OSError(exc.errno, f"cannot create a socket for {remote}: {_reason(exc)}") from exc
    try:
        sock.setblocking(False)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    except OSError as exc:
        sock.close()
        raise OSError(exc.errno, f"cannot set up a socket for {remote}: {_reason(exc)}") from exc
    if bind_host is not None:
        try:
            sock.bind((bind_host, local_port))
        except OSError as exc:
            sock.close()
            where = format_host_port(bind_host, local_port)
            raise OSError(exc.errno, f"cannot bind to {where}: {_reason(exc)}") from exc
    return sock


# --------------------------------------------------------------------------- counters

def read_netstat(
    section: str = "TcpExt",
    path: str | os.PathLike[str] = NETSTAT_PATH,
) -> dict[str, int]:
    """One section of /proc/net/netstat (a line of names, then a line of values); {} if unreadable.

    The numbers are those of the network namespace of the reading process.
    """
    prefix = section + ":"
    try:
        with open(path, encoding="ascii", errors="replace") as f:
            rows = [line.split() for line in f if line.startswith(prefix)]
    except OSError as exc:
        log.debug("cannot read %s: %s", path, _reason(exc))
        return {}
    if len(rows) < 2 or len(rows[0]) != len(rows[1]):
        return {}
    counters: dict[str, int] = {}
    for name, value in zip(rows[0][1:], rows[1][1:]):
        try:
            counters[name] = int(value)
        except ValueError:
            continue
    return counters


def tcp_md5_counters(path: str | os.PathLike[str] = NETSTAT_PATH) -> dict[str, int]:
    """TCPMD5NotFound, TCPMD5Unexpected and TCPMD5Failure, or {} if they cannot be read.

    NotFound: a segment came unsigned where a key is configured; Unexpected: it came
    signed where none is; Failure: the signature did not match (wrong key).  Growth
    while a session is stuck in Connect/Active means TCP MD5 is the likely cause.
    """
    ext = read_netstat("TcpExt", path)
    return {name: ext[name] for name in MD5_COUNTERS if name in ext}


# --------------------------------------------------------------------------- parsing

_PORT = re.compile(r"[0-9]{1,5}")


def parse_host_port(text: str, default_port: int = BGP_PORT) -> tuple[str, int]:
    """Split ``10.0.0.1:179``, ``10.0.0.1``, ``[2001:db8::1]:1790``, ``[::]`` or ``2001:db8::1``.

    The address comes back normalised (``2001:DB8::0001`` -> ``2001:db8::1``).  A bare
    IPv6 address is all address: to give a port, use brackets.  Host names are not
    accepted.
    """
    if not isinstance(text, str):
        raise ConfigError(f"invalid address {text!r}: expected a string")

    def bad(why: str) -> ConfigError:
        return ConfigError(f"invalid address {text!r}: {why}")

    s = text.strip()
    if not s:
        raise bad("empty")
    port_text: str | None = None
    if s.startswith("["):
        end = s.find("]")
        if end < 0:
            raise bad("missing ']'")
        host, rest = s[1:end], s[end + 1:]
        if rest:
            if not rest.startswith(":"):
                raise bad("expected ':port' after ']'")
            port_text = rest[1:]
        try:
            addr: IPAddress = ipaddress.IPv6Address(host)
        except ValueError:
            raise bad("brackets must hold an IPv6 address") from None
    elif s.count(":") == 1:
        host, port_text = s.split(":")
        try:
            addr = ipaddress.IPv4Address(host)
        except ValueError:
            raise bad("expected an IPv4 address before ':port'") from None
    else:
        try:
            addr = ipaddress.ip_address(s)
        except ValueError:
            raise bad("not an IPv4 or IPv6 address") from None
    if port_text is None:
        port = default_port
    else:
        if not _PORT.fullmatch(port_text):
            raise bad("the port must be a number 1..65535")
        port = int(port_text)
        if not 1 <= port <= 65535:
            raise bad("the port must be a number 1..65535")
    return str(addr), port
