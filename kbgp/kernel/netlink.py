"""kbgp's own rtnetlink sockets: bulk route writes, dumps, route events, and
small requests built with pyroute2's message classes.

RouteSocket writes routes in bulk.  The messages are encoded by
kbgp._fast.netlink into one buffer per batch and sent in runs of whole
messages (at most CHUNK bytes per sendmsg).  Only the last message of a run
asks for an ack: the kernel handles a run in order and answers every failing
message with its own error anyway, so one reply per run tells that the run is
done and which routes failed (man 7 netlink, NLM_F_ACK).  A failing route
only yields its own errno; the kernel carries on with the rest of the run.

EventSocket listens to route, link and address notifications without
blocking (the syncer reads it from the event loop); a socket filter drops
the notifications of kbgp's own writes in the kernel.

NexthopChannel manages kernel nexthop objects (RTM_NEWNEXTHOP, Linux 5.3+):
one per next hop kbgp uses, so that a route names its next hop by id
(RTA_NH_ID) and a gateway's device change is one message, not one per route.

NetlinkChannel sends single requests (links, addresses, rules, generic
netlink) built with pyroute2's message classes and decodes the replies with
them.  pyroute2's own sockets are not used: its asyncio core does not run
under uvloop (pyroute2#1335), and its sync IPRoute.nlm_request fails in 0.9.7.
This module and kbgp.kernel.tunnels (message classes only) are the only
importers of pyroute2.

in_netns() creates sockets inside a named network namespace: a socket keeps
the namespace it was created in, so the rest of kbgp can use it from any
thread.
"""

from __future__ import annotations

import ctypes
import errno as errno_mod
import os
import socket
import struct
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Self, TypeVar

from kbgp._fast.netlink import (
    NLM_F_DUMP,
    NLM_F_REQUEST,
    RTM_DELROUTE,
    RTM_GETROUTE,
    RTM_NEWROUTE,
    RouteBatch,
    decode_dump,
    encode_routes,
    scan_run_acks,
    split_chunks,
)
from kbgp._fast.wire import PrefixArray
from kbgp.errors import KernelError

__all__ = [
    "NETLINK_GENERIC",
    "NH_ID_BASE",
    "RTM_DELROUTE",
    "RTM_NEWROUTE",
    "RTPROT_KBGP",
    "EventSocket",
    "NetlinkChannel",
    "NexthopChannel",
    "NexthopObject",
    "RouteSocket",
    "in_netns",
    "strerror",
]

T = TypeVar("T")

RTPROT_KBGP = 17          # kube-router's protocol number, kept by kbgp
SOL_NETLINK = 270
NETLINK_ADD_MEMBERSHIP = 1
NETLINK_CAP_ACK = 10      # error replies without the echoed request
NETLINK_EXT_ACK = 11
CLONE_NEWNET = 0x40000000
_SO_SNDBUFFORCE = getattr(socket, "SO_SNDBUFFORCE", 32)
_SO_RCVBUFFORCE = getattr(socket, "SO_RCVBUFFORCE", 33)
_SO_ATTACH_FILTER = getattr(socket, "SO_ATTACH_FILTER", 26)
_ERROR_TRUESIZE = 2048    # generous kernel memory charge of one queued error

# rtnetlink multicast groups (linux/rtnetlink.h, the RTMGRP_* bit masks)
RTMGRP_LINK = 0x1
RTMGRP_IPV4_IFADDR = 0x10
RTMGRP_IPV4_ROUTE = 0x40
RTMGRP_IPV6_IFADDR = 0x100
RTMGRP_IPV6_ROUTE = 0x400

NLMSG_ERROR = 2
NLMSG_DONE = 3
NLM_F_ACK = 0x4
NETLINK_GENERIC = 16      # linux/netlink.h (not exported by the socket module)

# nexthop objects (linux/rtnetlink.h, linux/nexthop.h)
RTM_NEWNEXTHOP = 104
RTM_DELNEXTHOP = 105
RTM_GETNEXTHOP = 106
NHA_ID = 1
NHA_BLACKHOLE = 4
NHA_OIF = 5
NHA_GATEWAY = 6
NLM_F_REPLACE = 0x100
NLM_F_EXCL = 0x200
NLM_F_CREATE = 0x400
RTA_DST = 1
RTA_OIF = 4
RTA_GATEWAY = 5
RTN_UNICAST = 1
NH_ID_BASE = 0x6B620000   # "kb": kbgp's nexthop object ids are NH_ID_BASE + 1 ..; the
                          # start-up probe uses NH_ID_BASE itself


def _set_buffers(sock: socket.socket, bufsize: int) -> None:
    for force, plain in ((_SO_SNDBUFFORCE, socket.SO_SNDBUF),
                         (_SO_RCVBUFFORCE, socket.SO_RCVBUF)):
        try:
            sock.setsockopt(socket.SOL_SOCKET, force, bufsize)
        except OSError:               # not CAP_NET_ADMIN: capped by *mem_max
            sock.setsockopt(socket.SOL_SOCKET, plain, bufsize)


_ns_lock = threading.Lock()


def in_netns(name: str | None, factory: Callable[[], T]) -> T:
    """Run factory() with this thread inside network namespace NAME
    (/var/run/netns/NAME, as ``ip netns`` makes them), then come back.  With
    NAME None it just calls factory().  Sockets made by factory stay in NAME."""
    if name is None:
        return factory()
    if "/" in name or name in ("", ".", ".."):
        raise ValueError(f"netns {name!r} is not a namespace name")
    libc = ctypes.CDLL(None, use_errno=True)
    with _ns_lock:
        own = os.open("/proc/thread-self/ns/net", os.O_RDONLY | os.O_CLOEXEC)
        try:
            try:
                target = os.open(f"/var/run/netns/{name}", os.O_RDONLY | os.O_CLOEXEC)
            except FileNotFoundError:
                raise KernelError("setns", name, errno_mod.ENOENT,
                                  f"no network namespace named {name!r}") from None
            try:
                if libc.setns(target, CLONE_NEWNET) != 0:
                    e = ctypes.get_errno()
                    raise KernelError("setns", name, e, os.strerror(e))
                try:
                    return factory()
                finally:
                    if libc.setns(own, CLONE_NEWNET) != 0:   # pragma: no cover
                        e = ctypes.get_errno()
                        raise KernelError("setns", "back to the thread's namespace", e,
                                          os.strerror(e))
            finally:
                os.close(target)
        finally:
            os.close(own)


class RouteSocket:
    """A raw AF_NETLINK / NETLINK_ROUTE socket writing routes in bulk."""

    CHUNK = 64 * 1024

    def __init__(self, bufsize: int = 32 * 1024 * 1024, timeout: float = 60.0) -> None:
        self.sock = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW | socket.SOCK_CLOEXEC,
                                  socket.NETLINK_ROUTE)
        try:
            _set_buffers(self.sock, bufsize)
            try:
                self.sock.setsockopt(SOL_NETLINK, NETLINK_CAP_ACK, 1)
            except OSError:
                pass
            self.sock.bind((0, 0))
            self.sock.settimeout(timeout)
        except BaseException:
            self.sock.close()
            raise
        self.portid = self.sock.getsockname()[0]
        rcvbuf = self.sock.getsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF)
        # A run is answered before the next one is sent; even if every
        # message of a run fails, its errors must fit in the receive buffer.
        self.max_msgs = max(1, rcvbuf // (2 * _ERROR_TRUESIZE))
        self._rbuf = bytearray(1 << 20)
        self._seq = 1
        self.last_seq_start = 0

    # -- context manager ---------------------------------------------------
    def close(self) -> None:
        self.sock.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def fileno(self) -> int:
        return self.sock.fileno()

    # -- sequence numbers ----------------------------------------------------
    def take_seq(self, n: int) -> int:
        """Reserve n consecutive sequence numbers; returns the first."""
        seq = self._seq
        if seq + n > 0xFFFFFFFF:
            seq = 1
        self._seq = seq + n
        return seq

    _take_seq = take_seq

    # -- bulk writes -----------------------------------------------------------
    def send_runs(self, buf: bytes, runs: list, seq0: int, n: int) -> dict:
        """Send a buffer of n messages (sequence numbers seq0 ..) run by run,
        each run acked by its last message (encode_routes with
        ack_run_bytes, or RouteState.build); wait for every run's answer.
        Returns {seq: errno} for the messages that failed."""
        errors: dict = {}
        view = memoryview(buf)
        rbuf = self._rbuf
        sock = self.sock
        seq = seq0
        for start, end, count in runs:
            last = (seq + count - 1) & 0xFFFFFFFF
            sock.sendto(view[start:end], (0, 0))
            while True:
                k = sock.recv_into(rbuf)
                if scan_run_acks(rbuf, k, errors, seq0, n, last):
                    break
            seq = (seq + count) & 0xFFFFFFFF
        return errors

    def send_batch(self, batch: RouteBatch) -> dict:
        """send_runs for a RouteBatch of kbgp._fast.netlink.RouteState."""
        return self.send_runs(batch.buf, batch.runs, batch.seq0, batch.n)

    def apply(self, op: int, prefixes: PrefixArray, gateway=None, *, ifindex: int = 0,
              table: int = 254, protocol: int = RTPROT_KBGP, replace: bool = True) -> dict:
        """Send one RTM_NEWROUTE/RTM_DELROUTE per prefix and wait for all of them.

        gateway: None, one address for all routes, or a list parallel to
        prefixes (see kbgp._fast.netlink.encode_routes).  Returns
        {seq: errno} for the routes that failed (empty when all succeeded);
        prefix i was sent with seq ``self.last_seq_start + i``.
        """
        n = len(prefixes)
        if n == 0:
            return {}
        seq0 = self.take_seq(n)
        self.last_seq_start = seq0
        buf = encode_routes(op, prefixes, gateway, ifindex, table, protocol, seq0, replace,
                            self.CHUNK, self.max_msgs)
        return self.send_runs(buf, split_chunks(buf, self.CHUNK, self.max_msgs), seq0, n)

    def add(self, prefixes: PrefixArray, gateway=None, **kw) -> dict:
        return self.apply(RTM_NEWROUTE, prefixes, gateway, **kw)

    def delete(self, prefixes: PrefixArray, gateway=None, **kw) -> dict:
        return self.apply(RTM_DELROUTE, prefixes, gateway, **kw)

    def errors_by_prefix(self, prefixes: PrefixArray, errors: dict) -> dict:
        """{prefix text: errno} for the result of the last apply()."""
        return {prefixes.prefix(seq - self.last_seq_start): e for seq, e in errors.items()}

    # -- reading back ----------------------------------------------------------
    def dump_iter(self, family: int = socket.AF_INET) -> Iterator[tuple[bytearray, int, int]]:
        """Dump the routes of FAMILY: yields (buffer, length, seq) per read,
        until the kernel's NLMSG_DONE has been yielded (the consumer, e.g.
        RouteState.reconcile_feed, finds it).  The buffer is reused."""
        if family not in (socket.AF_INET, socket.AF_INET6):
            raise ValueError(f"family must be AF_INET or AF_INET6, not {family}")
        seq = self.take_seq(1)
        req = struct.pack("=IHHII", 28, RTM_GETROUTE, NLM_F_REQUEST | NLM_F_DUMP, seq, 0)
        req += struct.pack("=BBBBBBBBI", family, 0, 0, 0, 0, 0, 0, 0, 0)
        self.sock.sendto(req, (0, 0))
        rbuf = self._rbuf
        while True:
            k = self.sock.recv_into(rbuf)
            yield rbuf, k, seq

    def dump_array(self, protocol: int = RTPROT_KBGP, table: int = 254,
                   family: int = socket.AF_INET) -> PrefixArray:
        """The destinations of the routes of this protocol (-1: any) in this
        table (0: any) and family, as a PrefixArray."""
        out = PrefixArray(1 if family == socket.AF_INET else 2)
        for rbuf, k, seq in self.dump_iter(family):
            if decode_dump(rbuf, k, out, protocol, table, seq):
                return out
        raise AssertionError("unreachable")   # pragma: no cover

    def dump(self, protocol: int = RTPROT_KBGP, table: int = 254,
             family: int = socket.AF_INET) -> set:
        """The set of prefixes (text) installed with this protocol and table."""
        return set(self.dump_array(protocol, table, family).to_strings())


def _pid_filter(portid: int) -> bytes:
    """A classic BPF program (SO_ATTACH_FILTER) that drops the netlink
    messages whose nlmsg_pid is portid: the notifications the kernel sends
    about kbgp's own writes.  BPF loads are big-endian, nlmsg_pid is in host
    order: compare against the swapped value."""
    swapped = struct.unpack(">I", struct.pack("=I", portid))[0]
    BPF_LD_W_ABS, BPF_JEQ_K, BPF_RET_K = 0x20, 0x15, 0x06
    insns = [
        (BPF_LD_W_ABS, 0, 0, 12),           # A = nlmsg_pid
        (BPF_JEQ_K, 0, 1, swapped),         # A == ours ? next : skip one
        (BPF_RET_K, 0, 0, 0),               # drop
        (BPF_RET_K, 0, 0, 0xFFFFFFFF),      # keep all of it
    ]
    return b"".join(struct.pack("=HBBI", *i) for i in insns)


class EventSocket:
    """Non-blocking subscriber to route (both families), link and address
    notifications, minus those caused by the writer with portid ``ignore``."""

    GROUPS = (RTMGRP_IPV4_ROUTE | RTMGRP_IPV6_ROUTE | RTMGRP_LINK
              | RTMGRP_IPV4_IFADDR | RTMGRP_IPV6_IFADDR)

    def __init__(self, ignore: int = 0, bufsize: int = 8 * 1024 * 1024,
                 groups: int = GROUPS) -> None:
        self.sock = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW | socket.SOCK_CLOEXEC,
                                  socket.NETLINK_ROUTE)
        try:
            _set_buffers(self.sock, bufsize)
            if ignore:
                prog = _pid_filter(ignore)
                self._prog = ctypes.create_string_buffer(prog, len(prog))
                fprog = struct.pack("HL", len(prog) // 8, ctypes.addressof(self._prog))
                self.sock.setsockopt(socket.SOL_SOCKET, _SO_ATTACH_FILTER, fprog)
            self.sock.bind((0, groups))
            self.sock.setblocking(False)
        except BaseException:
            self.sock.close()
            raise
        self.ignore = ignore
        self.rbuf = bytearray(1 << 20)

    def fileno(self) -> int:
        return self.sock.fileno()

    def read(self) -> int | None:
        """Read one datagram into self.rbuf: its length, None when nothing
        is waiting.  Raises OSError(ENOBUFS) when notifications were lost."""
        try:
            return self.sock.recv_into(self.rbuf)
        except BlockingIOError:
            return None

    def close(self) -> None:
        self.sock.close()



def read_replies(sock, rbuf: bytearray, seq: int, what: str) -> list[tuple[int, bytes]]:
    """The replies to request SEQ on a netlink socket, as (type, whole
    message), until its ack or NLMSG_DONE; an error ack raises
    KernelError("netlink", WHAT, errno)."""
    out = []
    while True:
        k = sock.recv_into(rbuf)
        data = bytes(rbuf[:k])
        off = 0
        while off + 16 <= k:
            length, mtype, _flags, mseq, _pid = struct.unpack_from("=IHHII", data, off)
            if length < 16 or off + length > k:
                raise KernelError("netlink", what, errno_mod.EPROTO, f"bad reply length {length}")
            if mseq == seq:
                if mtype == NLMSG_DONE:
                    return out
                if mtype == NLMSG_ERROR:
                    err = -struct.unpack_from("=i", data, off + 16)[0]
                    if err:
                        raise KernelError("netlink", what, err, os.strerror(err))
                    return out
                out.append((mtype, data[off:off + length]))
            off += (length + 3) & ~3

class NetlinkChannel:
    """Blocking request/response on a netlink socket with pyroute2's message
    classes (for links, addresses, rules, generic netlink: a few messages,
    never per route)."""

    def __init__(self, protocol: int = socket.NETLINK_ROUTE, timeout: float = 10.0) -> None:
        self.sock = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW | socket.SOCK_CLOEXEC,
                                  protocol)
        try:
            try:
                self.sock.setsockopt(SOL_NETLINK, NETLINK_EXT_ACK, 1)
            except OSError:
                pass
            self.sock.bind((0, 0))
            self.sock.settimeout(timeout)
        except BaseException:
            self.sock.close()
            raise
        self._seq = 0
        self._rbuf = bytearray(1 << 18)

    def close(self) -> None:
        self.sock.close()

    def _send(self, msg, msg_type: int, flags: int) -> int:
        self._seq = (self._seq + 1) & 0x7FFFFFFF or 1
        msg["header"]["type"] = msg_type
        msg["header"]["flags"] = flags
        msg["header"]["sequence_number"] = self._seq
        msg["header"]["pid"] = 0
        msg.encode()
        self.sock.sendto(bytes(msg.data[:msg["header"]["length"]]), (0, 0))
        return self._seq

    def _replies(self, seq: int, parse, what: str) -> list:
        out = []
        for _mtype, message in read_replies(self.sock, self._rbuf, seq, what):
            if parse is not None:
                m = parse(message)
                m.decode()
                out.append(m)
        return out

    def request(self, msg, msg_type: int, flags: int, what: str, parse=None) -> list:
        """Send msg (a pyroute2 message) with NLM_F_REQUEST | NLM_F_ACK |
        flags and wait for its ack; raises KernelError(op, what, errno)."""
        seq = self._send(msg, msg_type, NLM_F_REQUEST | NLM_F_ACK | flags)
        return self._replies(seq, parse, what)

    def dump(self, msg, msg_type: int, parse, what: str) -> list:
        """A NLM_F_DUMP request; the replies decoded with parse (a class)."""
        seq = self._send(msg, msg_type, NLM_F_REQUEST | NLM_F_DUMP)
        return self._replies(seq, parse, what)


def strerror(errno_: int) -> str:
    return os.strerror(errno_)


@dataclass(frozen=True, slots=True)
class NexthopObject:
    """One kernel nexthop object as a dump lists it."""

    id: int
    family: int               # AF_INET / AF_INET6 (AF_UNSPEC: blackhole, group)
    protocol: int
    gateway: str | None
    oif: int
    blackhole: bool = False


def _attr(typ: int, payload: bytes = b"") -> bytes:
    n = 4 + len(payload)
    return struct.pack("=HH", n, typ) + payload + b"\0" * ((-n) & 3)


class NexthopChannel:
    """Blocking requests for kernel nexthop objects and gateway lookups on
    a NETLINK_ROUTE socket of its own (a few messages per next hop, never
    per route).  Errors raise KernelError(op, what, errno)."""

    def __init__(self, timeout: float = 10.0) -> None:
        self.sock = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW | socket.SOCK_CLOEXEC,
                                  socket.NETLINK_ROUTE)
        try:
            try:
                self.sock.setsockopt(SOL_NETLINK, NETLINK_CAP_ACK, 1)
            except OSError:
                pass
            self.sock.bind((0, 0))
            self.sock.settimeout(timeout)
        except BaseException:
            self.sock.close()
            raise
        self.portid = self.sock.getsockname()[0]
        self._seq = 0
        self._rbuf = bytearray(1 << 18)

    def close(self) -> None:
        self.sock.close()

    def _request(self, mtype: int, flags: int, body: bytes, what: str) -> list[tuple[int, bytes]]:
        """Send one message; the replies of its sequence number as
        (type, payload after the netlink header) until the ack or NLMSG_DONE."""
        self._seq = (self._seq + 1) & 0x7FFFFFFF or 1
        seq = self._seq
        self.sock.sendto(struct.pack("=IHHII", 16 + len(body), mtype, NLM_F_REQUEST | flags,
                                     seq, 0) + body, (0, 0))
        return [(rtype, message[16:]) for rtype, message in read_replies(self.sock, self._rbuf, seq, what)]

    @staticmethod
    def _attrs(payload: bytes, start: int) -> dict[int, bytes]:
        out = {}
        off = start
        while off + 4 <= len(payload):
            alen, atyp = struct.unpack_from("=HH", payload, off)
            if alen < 4 or off + alen > len(payload):
                break
            out[atyp & 0x3FFF] = payload[off + 4:off + alen]
            off += (alen + 3) & ~3
        return out

    def probe(self, protocol: int) -> int:
        """Can this kernel hold nexthop objects?  Creates and deletes a
        blackhole object with id NH_ID_BASE; returns 0 or the errno."""
        body = struct.pack("=BBBBI", socket.AF_INET, 0, protocol, 0, 0) \
            + _attr(NHA_ID, struct.pack("=I", NH_ID_BASE)) + _attr(NHA_BLACKHOLE)
        try:
            self._request(RTM_NEWNEXTHOP, NLM_F_ACK | NLM_F_CREATE | NLM_F_REPLACE, body,
                          "nexthop object probe")
        except KernelError as e:
            # ENETDOWN: a blackhole object needs "lo" up; the kernel knows
            # the message, which is what is asked (a kernel without nexthop
            # objects answers EOPNOTSUPP).
            return 0 if e.errno == errno_mod.ENETDOWN else (e.errno or errno_mod.EOPNOTSUPP)
        try:
            self.delete(NH_ID_BASE)
        except KernelError as e:
            return e.errno
        return 0

    def set(self, nh_id: int, gateway: str, oif: int, protocol: int,
            replace: bool = True) -> None:
        """Create nexthop object nh_id via gateway out of interface oif, or
        (replace) change its attributes: the routes using it follow at once.
        Without replace an existing nh_id gives EEXIST."""
        family = socket.AF_INET6 if ":" in gateway else socket.AF_INET
        body = struct.pack("=BBBBI", family, 0, protocol, 0, 0) \
            + _attr(NHA_ID, struct.pack("=I", nh_id)) \
            + _attr(NHA_GATEWAY, socket.inet_pton(family, gateway)) \
            + _attr(NHA_OIF, struct.pack("=I", oif))
        self._request(RTM_NEWNEXTHOP,
                      NLM_F_ACK | NLM_F_CREATE | (NLM_F_REPLACE if replace else NLM_F_EXCL),
                      body, f"nexthop id {nh_id} via {gateway}")

    def delete(self, nh_id: int) -> bool:
        """Delete nexthop object nh_id (the kernel deletes the routes still
        using it); False when there was none."""
        body = struct.pack("=BBBBI", socket.AF_UNSPEC, 0, 0, 0, 0) \
            + _attr(NHA_ID, struct.pack("=I", nh_id))
        try:
            self._request(RTM_DELNEXTHOP, NLM_F_ACK, body, f"nexthop id {nh_id}")
        except KernelError as e:
            if e.errno == errno_mod.ENOENT:
                return False
            raise
        return True

    def dump(self) -> list[NexthopObject]:
        """Every nexthop object of the namespace."""
        body = struct.pack("=BBBBI", socket.AF_UNSPEC, 0, 0, 0, 0)
        out = []
        for mtype, payload in self._request(RTM_GETNEXTHOP, NLM_F_DUMP, body, "nexthop dump"):
            if mtype != RTM_NEWNEXTHOP or len(payload) < 8:
                continue
            family, _scope, protocol, _r, _flags = struct.unpack_from("=BBBBI", payload)
            a = self._attrs(payload, 8)
            if NHA_ID not in a or len(a[NHA_ID]) != 4:
                continue
            gw = a.get(NHA_GATEWAY)
            gateway = None
            if gw is not None and len(gw) in (4, 16):
                gateway = socket.inet_ntop(socket.AF_INET if len(gw) == 4 else socket.AF_INET6,
                                           gw)
            oif = struct.unpack("=I", a[NHA_OIF])[0] if len(a.get(NHA_OIF, b"")) == 4 else 0
            out.append(NexthopObject(struct.unpack("=I", a[NHA_ID])[0], family, protocol,
                                     gateway, oif, NHA_BLACKHOLE in a))
        return out

    def gateway_oif(self, gateway: str) -> int:
        """The interface the kernel reaches gateway on directly (RTM_GETROUTE),
        0 when it is not on a link of ours (no route, or only via another
        router, or a local address): such a next hop needs no object."""
        family = socket.AF_INET6 if ":" in gateway else socket.AF_INET
        raw = socket.inet_pton(family, gateway)
        body = struct.pack("=BBBBBBBBI", family, len(raw) * 8, 0, 0, 0, 0, 0, 0, 0) \
            + _attr(RTA_DST, raw)
        try:
            replies = self._request(RTM_GETROUTE, NLM_F_ACK, body, f"route to {gateway}")
        except KernelError:
            return 0
        for mtype, payload in replies:
            if mtype != RTM_NEWROUTE or len(payload) < 12 or payload[7] != RTN_UNICAST:
                continue
            a = self._attrs(payload, 12)
            if RTA_GATEWAY in a or len(a.get(RTA_OIF, b"")) != 4:
                return 0
            return struct.unpack("=I", a[RTA_OIF])[0]
        return 0
