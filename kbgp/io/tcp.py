"""The asyncio side of a BGP connection: sockets in, session events out.

``PeerLink`` owns one neighbour's Session and carries out its effects with
uvloop: outbound connects (with TCP MD5, TTL and GTSM set before the SYN),
writes, closes and the session's timer.  ``Listener`` accepts inbound
connections and hands each to the PeerLink of its source address; sources that
are not configured neighbours are closed before a byte is read.
"""
from __future__ import annotations

import asyncio
import collections
import ipaddress
import logging
import socket
import time
from collections.abc import Callable
from typing import Any

from kbgp.bgp.session import CancelConnect, Close, Connect, Down, Send, Session
from kbgp.io import sockopts

log = logging.getLogger(__name__)

HIGH_WATER = 256 * 1024
LOW_WATER = 64 * 1024
# Queued UPDATE buffers are runs of whole messages; pump() writes at most
# about CHUNK bytes at a time and cuts only at message boundaries, so a
# KEEPALIVE written between two writes never lands inside an UPDATE.
CHUNK = 1 << 20


def whole_messages(data: bytes, limit: int) -> int:
    """Length of the longest run of whole BGP messages at the start of data
    that fits in limit bytes (at least one message)."""
    pos = 0
    end = len(data)
    while pos < end:
        length = int.from_bytes(data[pos + 16:pos + 18], "big")
        if pos and pos + length > limit:
            break
        pos += length
    return pos


def normalise_address(text: str) -> str:
    """'::ffff:10.0.0.1' -> '10.0.0.1'; IPv6 in RFC 5952 form."""
    addr = ipaddress.ip_address(text.split("%", 1)[0])
    if isinstance(addr, ipaddress.IPv6Address) and addr.ipv4_mapped is not None:
        return str(addr.ipv4_mapped)
    return str(addr)


class BgpProtocol(asyncio.Protocol):
    """One TCP connection; forwards everything to its PeerLink."""

    def __init__(self, link: PeerLink | None, inbound: bool, listener: Listener | None = None) -> None:
        self.link = link
        self.inbound = inbound
        self.listener = listener
        self.transport: asyncio.Transport | None = None
        self.local_address = ""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        transport.set_write_buffer_limits(HIGH_WATER, LOW_WATER)  # type: ignore[attr-defined]
        sockname = transport.get_extra_info("sockname")
        self.local_address = normalise_address(sockname[0]) if sockname else ""
        if self.inbound and self.listener is not None:
            peer = transport.get_extra_info("peername")
            self.link = self.listener.route(normalise_address(peer[0]) if peer else "", self)
            if self.link is None:
                transport.abort()  # not a configured neighbour: nothing is read from it
                return
        if self.link is not None:
            self.link.connection_made(self)

    def data_received(self, data: bytes) -> None:
        if self.link is not None:
            self.link.data_received(self, data)

    def connection_lost(self, exc: Exception | None) -> None:
        if self.link is not None:
            self.link.connection_lost(self, exc)

    def pause_writing(self) -> None:
        if self.link is not None:
            self.link.session.write_blocked(self, time.monotonic())

    def resume_writing(self) -> None:
        if self.link is not None:
            self.link.session.write_unblocked(self, time.monotonic())
            self.link.writable()


class PeerLink:
    """Drives one Session with real sockets and a real clock."""

    def __init__(
        self,
        session: Session,
        address: str,
        port: int,
        *,
        local_address: str | None,
        password: bytes | None,
        ttl: int,
        min_ttl: int | None,
        on_effect: Callable[[PeerLink, Any], None],
        connect_timeout: float = 5.0,
    ) -> None:
        self.session = session
        self.address = address
        self.port = port
        self.local_address = local_address
        self.password = password
        self.ttl = ttl
        self.min_ttl = min_ttl
        self.on_effect = on_effect
        self.connect_timeout = connect_timeout
        self.loop = asyncio.get_running_loop()
        self.protocols: set[BgpProtocol] = set()
        self.connect_task: asyncio.Task | None = None
        self.timer_handle: asyncio.TimerHandle | None = None
        self.closed = False
        self.pending: collections.deque[bytes] = collections.deque()

    # ------------------------------------------------------------- effects

    def apply(self, effects: list) -> None:
        for e in effects:
            if isinstance(e, Send):
                proto: BgpProtocol = e.conn
                if proto.transport is not None and not proto.transport.is_closing():
                    proto.transport.write(e.data)
            elif isinstance(e, Close):
                proto = e.conn
                if proto.transport is not None:
                    proto.transport.close()  # after what was written has been sent
                self.protocols.discard(proto)
            elif isinstance(e, Connect):
                self._connect()
            elif isinstance(e, CancelConnect):
                if self.connect_task is not None:
                    self.connect_task.cancel()
                    self.connect_task = None
            else:
                if isinstance(e, Down):
                    self.pending.clear()  # what was queued for the old session is void
                self.on_effect(self, e)
        self._rearm()

    def _rearm(self) -> None:
        if self.timer_handle is not None:
            self.timer_handle.cancel()
            self.timer_handle = None
        if self.closed:
            return
        deadline = self.session.next_deadline()
        if deadline is not None:
            delay = max(0.0, deadline - time.monotonic())
            self.timer_handle = self.loop.call_later(delay + 0.001, self._tick)

    def _tick(self) -> None:
        self.timer_handle = None
        self.apply(self.session.timer(time.monotonic()))

    # ------------------------------------------------------------ commands

    def start(self) -> None:
        self.apply(self.session.start(time.monotonic()))

    def stop(self, subcode: int, message: str = "", data: bytes = b"") -> None:
        self.apply(self.session.stop(time.monotonic(), subcode, message, data))

    def shutdown(self) -> None:
        """Forget the peer: cancel timers and attempts, abort what is left."""
        self.closed = True
        if self.timer_handle is not None:
            self.timer_handle.cancel()
        if self.connect_task is not None:
            self.connect_task.cancel()
        for p in list(self.protocols):
            if p.transport is not None:
                p.transport.close()

    def send(self, data: bytes) -> None:
        """Queue UPDATE bytes.  They are written only while the connection's
        buffer is under its high-water mark, so a slow peer holds back its own
        UPDATEs and nothing else, and a KEEPALIVE (written directly by the
        session) never waits behind more than HIGH_WATER bytes of table."""
        if data:
            self.pending.append(data)
            self.pump()

    def pump(self) -> None:
        while self.pending and self.write_buffer_size() < HIGH_WATER:
            chunk = self.pending.popleft()
            if len(chunk) > CHUNK:
                cut = whole_messages(chunk, CHUNK)
                if cut < len(chunk):
                    self.pending.appendleft(chunk[cut:])
                    chunk = chunk[:cut]
            before = self.session.established
            self.apply(self.session.send(chunk))
            if before is None:
                self.pending.clear()
                return

    def drop_pending(self) -> None:
        self.pending.clear()

    def write_buffer_size(self) -> int:
        c = self.session.established
        if c is None:
            return 0
        proto: BgpProtocol = c.cid
        return proto.transport.get_write_buffer_size() if proto.transport else 0

    def writable(self) -> None:
        self.pump()

    # --------------------------------------------------------- connections

    def _connect(self) -> None:
        if self.connect_task is not None and not self.connect_task.done():
            return
        self.connect_task = self.loop.create_task(self._connect_once())

    async def _connect_once(self) -> None:
        sock = None
        try:
            sock = sockopts.create_client_socket(self.address, self.local_address)
            if self.password:
                sockopts.set_tcp_md5(sock, self.address, self.password)
            sockopts.set_ttl(sock, self.ttl)
            if self.min_ttl:
                sockopts.set_min_ttl(sock, self.min_ttl)
            await asyncio.wait_for(self.loop.sock_connect(sock, (self.address, self.port)),
                                   self.connect_timeout)
            proto = BgpProtocol(self, inbound=False)
            await self.loop.create_connection(lambda: proto, sock=sock)
            sock = None
        except asyncio.CancelledError:
            if sock is not None:
                sock.close()
            raise
        except asyncio.TimeoutError:
            if sock is not None:
                sock.close()
            self.apply(self.session.connection_failed(time.monotonic(), "timed out"))
        except OSError as exc:
            if sock is not None:
                sock.close()
            self.apply(self.session.connection_failed(time.monotonic(), exc.strerror or str(exc)))
        finally:
            self.connect_task = None

    def connection_made(self, proto: BgpProtocol) -> None:
        if self.closed:
            if proto.transport is not None:
                proto.transport.abort()
            return
        sock: socket.socket | None = proto.transport.get_extra_info("socket") if proto.transport else None
        if sock is not None and proto.inbound:
            # The listener is shared by every neighbour, so per-neighbour TTL and
            # GTSM (RFC 5082) go on the accepted socket: from here on, segments
            # from further away than ttl-security allows are dropped by the kernel.
            try:
                sockopts.set_ttl(sock, self.ttl)
                if self.min_ttl:
                    sockopts.set_min_ttl(sock, self.min_ttl)
            except OSError as exc:
                log.warning("peer=%s could not set TTL/GTSM on an accepted connection: %s",
                            self.address, exc.strerror or exc)
        self.protocols.add(proto)
        self.apply(self.session.connection_made(proto, proto.inbound, time.monotonic()))

    def data_received(self, proto: BgpProtocol, data: bytes) -> None:
        self.apply(self.session.data_received(proto, data, time.monotonic()))

    def connection_lost(self, proto: BgpProtocol, exc: Exception | None) -> None:
        self.protocols.discard(proto)
        reason = f"connection lost: {exc}" if exc else "connection closed by the peer"
        self.apply(self.session.connection_lost(proto, time.monotonic(), reason))


class Listener:
    """Accepts BGP connections on one address and routes them to neighbours."""

    def __init__(self, route: Callable[[str], PeerLink | None]) -> None:
        self._route = route
        self.servers: list[asyncio.AbstractServer] = []
        self.sockets: list[socket.socket] = []
        self._refused: dict[str, float] = {}

    def route(self, source: str, proto: BgpProtocol) -> PeerLink | None:
        link = self._route(source)
        if link is None or link.closed:
            now = time.monotonic()
            if now - self._refused.get(source, -1e9) >= 60.0:
                self._refused[source] = now
                log.warning("refused BGP connection from %s: not a configured neighbor "
                            "(logged once a minute per source)", source)
            return None
        return link

    async def listen(self, address: str, port: int) -> None:
        sock = sockopts.create_listener(address, port)
        self.sockets.append(sock)
        loop = asyncio.get_running_loop()
        server = await loop.create_server(lambda: BgpProtocol(None, inbound=True, listener=self), sock=sock)
        self.servers.append(server)

    def set_password(self, peer: str, key: bytes | None) -> None:
        """Install (or remove) a neighbour's MD5 key on every listening socket."""
        for sock in self.sockets:
            fam_ok = sock.family == socket.AF_INET6 or ":" not in peer
            if fam_ok:
                sockopts.set_tcp_md5(sock, peer, key)

    def close(self) -> None:
        for s in self.servers:
            s.close()
