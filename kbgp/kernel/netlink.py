"""RouteSocket: kbgp's own rtnetlink socket for installing routes in bulk.

The messages are encoded by kbgp._fast.netlink into one buffer per batch and
sent in runs of whole messages (at most CHUNK bytes per sendmsg).  Every
message asks for an ack; a failing route only yields its own errno, the kernel
carries on with the rest of the run.
"""

from __future__ import annotations

import os
import socket
import struct

from kbgp._fast.netlink import (
    NLM_F_DUMP,
    NLM_F_REQUEST,
    RTM_DELROUTE,
    RTM_GETROUTE,
    RTM_NEWROUTE,
    decode_dump,
    encode_routes,
    scan_acks,
    split_chunks,
)
from kbgp._fast.wire import PrefixArray

__all__ = ["RouteSocket", "RTM_NEWROUTE", "RTM_DELROUTE", "RTPROT_KBGP"]

RTPROT_KBGP = 17          # kube-router's protocol number, kept by kbgp
SOL_NETLINK = 270
NETLINK_CAP_ACK = 10      # error replies without the echoed request
_SO_SNDBUFFORCE = getattr(socket, "SO_SNDBUFFORCE", 32)
_SO_RCVBUFFORCE = getattr(socket, "SO_RCVBUFFORCE", 33)
_ACK_TRUESIZE = 2048      # generous kernel memory charge of one queued ack


class RouteSocket:
    """A raw AF_NETLINK / NETLINK_ROUTE socket writing routes in bulk."""

    CHUNK = 64 * 1024

    def __init__(self, bufsize: int = 32 * 1024 * 1024, timeout: float = 30.0) -> None:
        self.sock = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW | socket.SOCK_CLOEXEC,
                                  socket.NETLINK_ROUTE)
        try:
            for force, plain in ((_SO_SNDBUFFORCE, socket.SO_SNDBUF),
                                 (_SO_RCVBUFFORCE, socket.SO_RCVBUF)):
                try:
                    self.sock.setsockopt(socket.SOL_SOCKET, force, bufsize)
                except OSError:               # not CAP_NET_ADMIN: capped by *mem_max
                    self.sock.setsockopt(socket.SOL_SOCKET, plain, bufsize)
            try:
                self.sock.setsockopt(SOL_NETLINK, NETLINK_CAP_ACK, 1)
            except OSError:
                pass
            self.sock.bind((0, 0))
            self.sock.settimeout(timeout)
        except BaseException:
            self.sock.close()
            raise
        rcvbuf = self.sock.getsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF)
        # Every message of a run is acked before the next run is sent: keep
        # a run's acks well inside the receive buffer (no ENOBUFS, no lost ack).
        self.max_msgs = max(1, rcvbuf // (2 * _ACK_TRUESIZE))
        self._rbuf = bytearray(1 << 20)
        self._seq = 1
        self.last_seq_start = 0

    # -- context manager ---------------------------------------------------
    def close(self) -> None:
        self.sock.close()

    def __enter__(self) -> "RouteSocket":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def fileno(self) -> int:
        return self.sock.fileno()

    # -- sequence numbers ----------------------------------------------------
    def _take_seq(self, n: int) -> int:
        seq = self._seq
        if seq + n > 0xFFFFFFFF:
            seq = 1
        self._seq = seq + n
        return seq

    # -- bulk writes -----------------------------------------------------------
    def apply(self, op: int, prefixes: PrefixArray, gateway=None, *, ifindex: int = 0,
              table: int = 254, protocol: int = RTPROT_KBGP, replace: bool = True) -> dict:
        """Send one RTM_NEWROUTE/RTM_DELROUTE per prefix and wait for all acks.

        gateway: None, one address for all routes, or a list parallel to
        prefixes (see kbgp._fast.netlink.encode_routes).  Returns
        {seq: errno} for the routes that failed (empty when all succeeded);
        prefix i was sent with seq ``self.last_seq_start + i``.
        """
        n = len(prefixes)
        if n == 0:
            return {}
        seq0 = self._take_seq(n)
        self.last_seq_start = seq0
        buf = encode_routes(op, prefixes, gateway, ifindex, table, protocol, seq0, replace)
        errors: dict = {}
        view = memoryview(buf)
        rbuf = self._rbuf
        sock = self.sock
        for start, end, count in split_chunks(buf, self.CHUNK, self.max_msgs):
            sock.sendto(view[start:end], (0, 0))
            got = 0
            while got < count:
                k = sock.recv_into(rbuf)
                got += scan_acks(rbuf, k, errors, seq0, n)
        return errors

    def add(self, prefixes: PrefixArray, gateway=None, **kw) -> dict:
        return self.apply(RTM_NEWROUTE, prefixes, gateway, **kw)

    def delete(self, prefixes: PrefixArray, gateway=None, **kw) -> dict:
        return self.apply(RTM_DELROUTE, prefixes, gateway, **kw)

    def errors_by_prefix(self, prefixes: PrefixArray, errors: dict) -> dict:
        """{prefix text: errno} for the result of the last apply()."""
        return {prefixes.prefix(seq - self.last_seq_start): e for seq, e in errors.items()}

    # -- reading back ----------------------------------------------------------
    def dump_array(self, protocol: int = RTPROT_KBGP, table: int = 254,
                   family: int = socket.AF_INET) -> PrefixArray:
        """The destinations of the routes of this protocol (-1: any) in this
        table (0: any) and family, as a PrefixArray."""
        if family not in (socket.AF_INET, socket.AF_INET6):
            raise ValueError(f"family must be AF_INET or AF_INET6, not {family}")
        seq = self._take_seq(1)
        req = struct.pack("=IHHII", 28, RTM_GETROUTE, NLM_F_REQUEST | NLM_F_DUMP, seq, 0)
        req += struct.pack("=BBBBBBBBI", family, 0, 0, 0, 0, 0, 0, 0, 0)
        out = PrefixArray(1 if family == socket.AF_INET else 2)
        self.sock.sendto(req, (0, 0))
        rbuf = self._rbuf
        while True:
            k = self.sock.recv_into(rbuf)
            if decode_dump(rbuf, k, out, protocol, table, seq):
                return out

    def dump(self, protocol: int = RTPROT_KBGP, table: int = 254,
             family: int = socket.AF_INET) -> set:
        """The set of prefixes (text) installed with this protocol and table."""
        return set(self.dump_array(protocol, table, family).to_strings())


def strerror(errno_: int) -> str:
    return os.strerror(errno_)
