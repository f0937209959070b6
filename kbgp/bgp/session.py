"""One BGP neighbour, sans-I/O: the FSM table, framing, codecs and timers.

A ``Session`` never touches a socket or a clock.  The I/O adapter feeds it
events (``start``, ``connection_made``, ``data_received``, ``timer`` ...) with
the current time, and carries out the effects it returns: ``Connect``,
``Send``, ``Close``, and the routing events ``Up``, ``Down``, ``Received``,
``RefreshRequested``.  ``next_deadline()`` says when to call ``timer`` next.

Connections: a session owns at most two TCP connections at once, the
established (or first) one and a colliding one.  RFC 4271 6.8 collision
resolution keeps the connection opened by the speaker with the higher BGP
identifier; with an Established connection, the new one is refused.  Both
losers get Cease / Connection Collision Resolution (6/7).
"""
from __future__ import annotations

import ipaddress
import random
from dataclasses import dataclass, field
from typing import Any

from kbgp._fast.attrs import AttrTable, DecodeContext, decode_update
from kbgp._fast.wire import (
    KEEPALIVE,
    Framer,
    decode_notification,
    decode_open,
    decode_route_refresh,
    encode_notification,
    encode_open,
    encode_route_refresh,
    shutdown_communication,
)
from kbgp.bgp.capabilities import LocalSettings, Negotiated, local_open, negotiate
from kbgp.bgp.constants import (
    MAX_MESSAGE_LEN,
    CeaseSubcode,
    ErrorCode,
    Handling,
    MsgType,
    RouteRefreshSubtype,
)
from kbgp.bgp.fsm import FSM_ERROR_SUBCODE, Action, Event, State, transition
from kbgp.bgp.messages import Notification, Open, family_name
from kbgp.errors import BgpError, bgp_error

OPENSENT_HOLD = 240.0  # RFC 4271 8.2.2: "large value", 4 minutes suggested
SEND_HOLD_MIN = 480.0  # RFC 9687: at least 8 minutes, or twice the hold time
IDLE_HOLD_MAX = 120.0
STABLE_AFTER = 60.0  # an Established session this old resets the back-off


def _count_messages(data: bytes) -> tuple[int, int]:
    """(messages, UPDATEs) in a run of whole messages."""
    pos = count = updates = 0
    end = len(data)
    while pos + 19 <= end:
        count += 1
        if data[pos + 18] == MsgType.UPDATE:
            updates += 1
        pos += int.from_bytes(data[pos + 16:pos + 18], "big") or end
    return count, updates


# ------------------------------------------------------------------ effects

@dataclass(frozen=True, slots=True)
class Connect:
    """Open an outbound TCP connection to the peer; report connection_made or connection_failed."""


@dataclass(frozen=True, slots=True)
class CancelConnect:
    """Abandon the outbound attempt in progress (an inbound connection won)."""


@dataclass(frozen=True, slots=True)
class Send:
    conn: Any
    data: bytes


@dataclass(frozen=True, slots=True)
class Close:
    """Close the connection once what was sent has left (after a NOTIFICATION)."""

    conn: Any


@dataclass(frozen=True, slots=True)
class Up:
    negotiated: Negotiated


@dataclass(frozen=True, slots=True)
class Down:
    """The Established session ended.  ``graceful`` says the peer's routes
    should be kept as stale (RFC 4724 helper): it advertised graceful restart
    and the session did not end with a NOTIFICATION sent or received
    (RFC 8538 is not negotiated), nor by our own stop."""

    reason: str
    graceful: bool
    error: BgpError | None = None


@dataclass(frozen=True, slots=True)
class Received:
    """A decoded UPDATE (prefixes still in C arrays)."""

    update: Any


@dataclass(frozen=True, slots=True)
class RefreshRequested:
    afi: int
    safi: int
    subtype: int


@dataclass(slots=True)
class _Conn:
    cid: Any
    inbound: bool
    state: State
    framer: Framer
    peer_open: Open | None = None
    negotiated: Negotiated | None = None
    hold_deadline: float | None = None
    keepalive_deadline: float | None = None
    blocked_since: float | None = None


@dataclass(slots=True)
class Counters:
    messages_in: int = 0
    messages_out: int = 0
    updates_in: int = 0
    updates_out: int = 0
    notifications_in: int = 0
    notifications_out: int = 0
    malformed: dict = field(default_factory=dict)  # handling label -> count
    flaps: int = 0


class Session:
    """One configured neighbour (see the module docstring)."""

    def __init__(
        self,
        settings: LocalSettings,
        *,
        passive: bool = False,
        connect_retry: float = 5.0,
        idle_hold: float = 1.0,
        table: AttrTable | None = None,
        password_set: bool = False,
        rng: random.Random | None = None,
        name: str = "",
    ) -> None:
        self.settings = settings
        self.passive = passive
        self.connect_retry = connect_retry
        self.idle_hold_base = idle_hold
        self.table = table if table is not None else AttrTable()
        self.password_set = password_set
        self.rng = rng or random.Random()
        self.name = name
        self.enabled = False
        self.base_state = State.IDLE  # state while no connection exists
        self.conns: dict[Any, _Conn] = {}
        self.established: _Conn | None = None
        self.connecting = False
        self.retry_deadline: float | None = None
        self.idle_deadline: float | None = None
        self.idle_hold = 0.0
        self.established_at: float | None = None
        self.last_error = ""
        self.last_notification_in: Notification | None = None
        self.last_notification_out: tuple[int, int] | None = None
        self.last_notification_at: tuple[float, dict] | None = None  # newest either way
        self.counters = Counters()
        self.connect_failures = 0
        self._sent_open: Open | None = None

    # ----------------------------------------------------------- status

    @property
    def state(self) -> State:
        best = self.base_state
        for c in self.conns.values():
            if c.state.rank > best.rank:
                best = c.state
        return best

    @property
    def negotiated(self) -> Negotiated | None:
        return self.established.negotiated if self.established else None

    def uptime(self, now: float) -> float:
        return now - self.established_at if self.established_at is not None else 0.0

    def next_deadline(self) -> float | None:
        times = [self.retry_deadline, self.idle_deadline]
        for c in self.conns.values():
            times += [c.hold_deadline, c.keepalive_deadline]
            if c.blocked_since is not None:
                times.append(c.blocked_since + self._send_hold(c))
        live = [t for t in times if t is not None]
        return min(live) if live else None

    # ----------------------------------------------------------- inputs

    def start(self, now: float) -> list:
        """ManualStart (event 1) or, with passive, ManualStart_with_PassiveTcpEstablishment (4)."""
        self.enabled = True
        if self.base_state != State.IDLE or self.conns:
            return []
        return self._begin(now)

    def stop(self, now: float, subcode: int = CeaseSubcode.ADMINISTRATIVE_SHUTDOWN,
             message: str = "", data: bytes = b"") -> list:
        """ManualStop (event 2): Cease with the given subcode (RFC 4486), RFC 9003 text."""
        self.enabled = False
        if message and subcode in (CeaseSubcode.ADMINISTRATIVE_SHUTDOWN, CeaseSubcode.ADMINISTRATIVE_RESET):
            data = shutdown_communication(message)
        err = bgp_error(ErrorCode.CEASE, subcode, data, Handling.SESSION_RESET,
                        message or "stopped by the operator")
        out: list = []
        if self.connecting:
            out.append(CancelConnect())
            self.connecting = False
        for c in list(self.conns.values()):
            out += self._close(c, now, err, notify=True, graceful=False)
        self.base_state = State.IDLE
        self.retry_deadline = None
        self.idle_deadline = None
        return out

    def connection_made(self, cid: Any, inbound: bool, now: float) -> list:
        """TcpConnectionConfirmed (17) for inbound, Tcp_CR_Acked (16) for outbound."""
        if not inbound:
            self.connecting = False
        if not self.enabled or (self.idle_deadline is not None and inbound):
            # Idle (stopped, or holding back after errors): refuse (RFC 4271 8.2.2 Idle).
            return [Send(cid, encode_notification(ErrorCode.CEASE, CeaseSubcode.CONNECTION_REJECTED)),
                    Close(cid)]
        if self.established is not None:
            # RFC 4271 6.8: a connection colliding with an Established one is refused.
            return [Send(cid, encode_notification(ErrorCode.CEASE,
                                                  CeaseSubcode.CONNECTION_COLLISION_RESOLUTION)),
                    Close(cid)]
        if len(self.conns) >= 2:
            return [Send(cid, encode_notification(ErrorCode.CEASE, CeaseSubcode.CONNECTION_REJECTED)),
                    Close(cid)]
        out: list = []
        if inbound and self.connecting:
            out.append(CancelConnect())
            self.connecting = False
        state = self.base_state if self.base_state in (State.CONNECT, State.ACTIVE) else State.ACTIVE
        nxt = transition(state, Event.TCP_CONFIRMED)
        assert nxt is not None
        conn = _Conn(cid, inbound, nxt[0], Framer(MAX_MESSAGE_LEN))
        self.conns[cid] = conn
        self.retry_deadline = None
        self._sent_open = local_open(self.settings)
        conn.hold_deadline = now + OPENSENT_HOLD
        out.append(self._send(conn, encode_open(self._sent_open)))
        return out

    def connection_failed(self, now: float, reason: str) -> list:
        """The outbound attempt failed (TcpConnectionFails, 18)."""
        self.connecting = False
        if not self.enabled:
            return []
        self.connect_failures += 1
        self.last_error = self._connect_failure_text(reason)
        if self.conns:
            return []  # an inbound connection is in progress; keep waiting on it
        self.base_state = State.ACTIVE
        self.retry_deadline = now + self._jitter(self.connect_retry)
        return []

    def connection_lost(self, cid: Any, now: float, reason: str = "connection closed") -> list:
        c = self.conns.get(cid)
        if c is None:
            return []
        if c.state == State.OPENSENT and c.peer_open is None and self.password_set:
            reason += "; TCP MD5 authentication is the likely cause (a password is set)"
        return self._close(c, now, None, notify=False, graceful=True, reason=reason)

    def data_received(self, cid: Any, data: bytes, now: float) -> list:
        c = self.conns.get(cid)
        if c is None:
            return []
        c.framer.feed(data)
        out: list = []
        while cid in self.conns:
            try:
                msg = c.framer.next_message()
            except BgpError as err:
                out += self._error(c, now, err, Event.HEADER_ERR)
                break
            if msg is None:
                break
            self.counters.messages_in += 1
            out += self._message(c, msg[0], msg[1], now)
        return out

    def timer(self, now: float) -> list:
        out: list = []
        if self.idle_deadline is not None and now >= self.idle_deadline:
            self.idle_deadline = None
            if self.enabled and not self.conns:
                out += self._begin(now)
        if self.retry_deadline is not None and now >= self.retry_deadline:
            self.retry_deadline = None
            if self.enabled and not self.conns:
                out += self._attempt(now)
        for c in list(self.conns.values()):
            if c.hold_deadline is not None and now >= c.hold_deadline:
                err = bgp_error(ErrorCode.HOLD_TIMER_EXPIRED, 0, b"", Handling.SESSION_RESET,
                                f"no message from the peer for {self._hold_of(c):.0f} s")
                out += self._close(c, now, err, notify=True, graceful=True)
                continue
            if c.blocked_since is not None and now >= c.blocked_since + self._send_hold(c):
                err = bgp_error(ErrorCode.SEND_HOLD_TIMER_EXPIRED, 0, b"", Handling.SESSION_RESET,
                                f"the peer has not read our data for {self._send_hold(c):.0f} s (RFC 9687)")
                out += self._close(c, now, err, notify=True, graceful=True)
                continue
            if c.keepalive_deadline is not None and now >= c.keepalive_deadline:
                out.append(self._send(c, KEEPALIVE))
                c.keepalive_deadline = now + c.negotiated.keepalive_time if c.negotiated else None
        return out

    def write_blocked(self, cid: Any, now: float) -> None:
        """The transport's buffer is over its high-water mark (the peer is slow to read)."""
        c = self.conns.get(cid)
        if c is not None and c.blocked_since is None:
            c.blocked_since = now

    def write_unblocked(self, cid: Any, now: float) -> None:
        c = self.conns.get(cid)
        if c is not None:
            c.blocked_since = None

    # --------------------------------------------------- routing outputs

    def send(self, data: bytes) -> list:
        """Whole messages (already encoded, usually UPDATEs) for the Established connection."""
        c = self.established
        if c is None or not data:
            return []
        count, updates = _count_messages(data)
        self.counters.updates_out += updates
        self.counters.messages_out += count - 1  # _send counts one
        return [self._send(c, data)]

    def request_refresh(self, afi: int, safi: int) -> list:
        c = self.established
        if c is None or c.negotiated is None or not c.negotiated.route_refresh:
            return []
        return [self._send(c, encode_route_refresh(afi, safi, RouteRefreshSubtype.REQUEST))]

    def decode_context(self) -> DecodeContext:
        n = self.negotiated
        fams = n.families if n else frozenset()
        return DecodeContext(asn4=n.asn4 if n else True, ibgp=n.ibgp if n else False,
                             ipv4=(1, 1) in fams, ipv6=(2, 1) in fams)

    # ----------------------------------------------------------- internals

    def _begin(self, now: float) -> list:
        if self.passive:
            self.base_state = State.ACTIVE  # wait for the peer to connect
            return []
        return self._attempt(now)

    def _attempt(self, now: float) -> list:
        self.base_state = State.CONNECT
        self.connecting = True
        self.retry_deadline = now + self._jitter(self.connect_retry)
        return [Connect()]

    def _jitter(self, value: float) -> float:
        # RFC 4271 10: timers jittered by a factor in 0.75..1.0.
        return value * (0.75 + 0.25 * self.rng.random())

    def _hold_of(self, c: _Conn) -> float:
        return float(c.negotiated.hold_time) if c.negotiated else OPENSENT_HOLD

    def _send_hold(self, c: _Conn) -> float:
        return max(SEND_HOLD_MIN, 2.0 * self._hold_of(c))

    def _send(self, c: _Conn, data: bytes) -> Send:
        self.counters.messages_out += 1
        return Send(c.cid, data)

    def _connect_failure_text(self, reason: str) -> str:
        text = f"connect failed: {reason}"
        if self.password_set and "timed out" in reason:
            text += "; TCP MD5 authentication is the likely cause (a password is set)"
        return text

    def _message(self, c: _Conn, mtype: int, body: bytes, now: float) -> list:
        event = {
            MsgType.OPEN: Event.OPEN,
            MsgType.UPDATE: Event.UPDATE,
            MsgType.NOTIFICATION: Event.NOTIFICATION,
            MsgType.KEEPALIVE: Event.KEEPALIVE,
            MsgType.ROUTE_REFRESH: Event.ROUTE_REFRESH,
        }[MsgType(mtype)]
        if event is Event.NOTIFICATION:
            note = decode_notification(body)
            self.counters.notifications_in += 1
            self.last_notification_in = note
            self.last_notification_at = (now, {"direction": "received", "code": note.code,
                                               "subcode": note.subcode, "name": note.name,
                                               "message": note.shutdown_message})
            text = f"peer sent NOTIFICATION {note.name} ({note.code}/{note.subcode})"
            if note.shutdown_message:
                text += f": {note.shutdown_message!r}"
            return self._close(c, now, None, notify=False, graceful=False, reason=text)
        cell = transition(c.state, event)
        if cell is None:
            err = bgp_error(ErrorCode.FSM, FSM_ERROR_SUBCODE.get(c.state, 0), bytes([mtype]),
                            Handling.SESSION_RESET,
                            f"{MsgType(mtype).name} is not expected in state {c.state.value}")
            return self._close(c, now, err, notify=True, graceful=True)
        if c.negotiated is not None and c.negotiated.hold_time:
            c.hold_deadline = now + c.negotiated.hold_time
        _next, action = cell
        try:
            if action is Action.CONFIRM:
                return self._confirm(c, body, now)
            if action is Action.ESTABLISH:
                return self._establish(c, now)
            if action is Action.RESTART_HOLD:
                return []
            if action is Action.PROCESS_UPDATE:
                return self._update(c, body)
            if action is Action.PROCESS_REFRESH:
                return self._refresh(c, body)
        except BgpError as err:
            return self._error(c, now, err, Event.UPDATE_ERR if event is Event.UPDATE else Event.OPEN_ERR)
        return []

    def _confirm(self, c: _Conn, body: bytes, now: float) -> list:
        peer_open = decode_open(body)
        assert self._sent_open is not None
        negotiated = negotiate(self.settings, self._sent_open, peer_open)
        c.peer_open = peer_open
        c.negotiated = negotiated
        c.state = State.OPENCONFIRM
        c.framer.max_size = negotiated.max_message_size
        out: list = []
        # RFC 4271 6.8: another connection to this peer that has also seen an OPEN collides.
        for other in list(self.conns.values()):
            if other is c or other.peer_open is None:
                continue
            out += self._resolve_collision(c, other, now)
            if c.cid not in self.conns:
                return out
        out.append(self._send(c, KEEPALIVE))
        if negotiated.hold_time:
            c.hold_deadline = now + negotiated.hold_time
            c.keepalive_deadline = now + negotiated.keepalive_time
        else:
            c.hold_deadline = None
            c.keepalive_deadline = None
        return out

    def _resolve_collision(self, a: _Conn, b: _Conn, now: float) -> list:
        """Keep the connection initiated by the higher BGP identifier (RFC 4271 6.8)."""
        local = int(ipaddress.IPv4Address(self.settings.router_id))
        remote = int(ipaddress.IPv4Address(a.peer_open.router_id))  # type: ignore[union-attr]
        # The higher id's outbound connection survives: ours if we are higher.
        keep_inbound = remote > local
        loser = a if a.inbound != keep_inbound else b
        err = bgp_error(ErrorCode.CEASE, CeaseSubcode.CONNECTION_COLLISION_RESOLUTION, b"",
                        Handling.SESSION_RESET, "connection collision: the other connection was kept")
        return self._close(loser, now, err, notify=True, graceful=False, count_down=False)

    def _establish(self, c: _Conn, now: float) -> list:
        c.state = State.ESTABLISHED
        self.established = c
        self.established_at = now
        self.last_error = ""
        self.connect_failures = 0
        for other in list(self.conns.values()):
            if other is not c:  # a collision candidate that never reached OpenConfirm
                self._drop(other)
        assert c.negotiated is not None
        return [Up(c.negotiated)]

    def _update(self, c: _Conn, body: bytes) -> list:
        self.counters.updates_in += 1
        assert c.negotiated is not None
        u = decode_update(body, self._ctx(c), self.table)
        if u.errors:
            label = Handling(u.handling).label
            self.counters.malformed[label] = self.counters.malformed.get(label, 0) + 1
        return [Received(u)]

    def _ctx(self, c: _Conn) -> DecodeContext:
        n = c.negotiated
        assert n is not None
        return DecodeContext(asn4=n.asn4, ibgp=n.ibgp, ipv4=(1, 1) in n.families, ipv6=(2, 1) in n.families)

    def _refresh(self, c: _Conn, body: bytes) -> list:
        rr = decode_route_refresh(body)
        n = c.negotiated
        if n is None or (rr.afi, rr.safi) not in n.families:
            return []  # RFC 2918: ignore a refresh for a family not negotiated
        if rr.subtype not in (0, 1, 2) or (rr.subtype and not n.enhanced_route_refresh):
            return []  # RFC 7313: unknown subtypes are ignored
        return [RefreshRequested(rr.afi, rr.safi, rr.subtype)]

    def _error(self, c: _Conn, now: float, err: BgpError, event: Event) -> list:
        return self._close(c, now, err, notify=True, graceful=False)

    def _drop(self, c: _Conn) -> None:
        self.conns.pop(c.cid, None)

    def _close(self, c: _Conn, now: float, err: BgpError | None, *, notify: bool, graceful: bool,
               reason: str = "", count_down: bool = True) -> list:
        """End one connection: NOTIFICATION if asked, Close, and the session-level aftermath."""
        out: list = []
        if notify and err is not None:
            self.counters.notifications_out += 1
            self.last_notification_out = (err.code, err.subcode)
            self.last_notification_at = (now, {"direction": "sent", "code": err.code, "subcode": err.subcode,
                                               "name": err.describe(), "message": err.reason})
            out.append(self._send(c, encode_notification(err.code, err.subcode, err.data)))
        out.append(Close(c.cid))
        self._drop(c)
        text = reason or (f"sent NOTIFICATION {err.describe()}" if err is not None else "connection closed")
        was_established = c is self.established
        if count_down:
            self.last_error = text
        if was_established:
            self.established = None
            self.counters.flaps += 1
            stable = self.established_at is not None and now - self.established_at >= STABLE_AFTER
            self.established_at = None
            if stable:
                self.idle_hold = 0.0
            # RFC 4724 helper: the peer's routes stay (stale) when the connection
            # simply went away.  A NOTIFICATION either way (no RFC 8538 N bit is
            # negotiated) or our own stop withdraws them at once.
            peer_gr = c.negotiated is not None and c.negotiated.peer_graceful_restart is not None
            keep = graceful and err is None and self.enabled and peer_gr
            out.append(Down(text, keep, err))
        if not self.conns and count_down:
            if not self.enabled:
                self.base_state = State.IDLE
            elif err is not None or was_established or c.state is not State.OPENSENT:
                # Back off before reconnecting (RFC 4271 8.1.1 DampPeerOscillations).
                self.idle_hold = min(IDLE_HOLD_MAX, max(self.idle_hold_base, self.idle_hold * 2))
                self.base_state = State.IDLE
                self.idle_deadline = now + self._jitter(self.idle_hold)
                self.retry_deadline = None
            else:
                self.base_state = State.ACTIVE
                self.retry_deadline = now + self._jitter(self.connect_retry)
        return out

    def describe_state(self) -> str:
        return self.state.value

    def families_text(self) -> str:
        n = self.negotiated
        return ", ".join(sorted(family_name(a, s) for a, s in n.families)) if n else ""
