"""Session scenarios: two sans-I/O sessions back to back on a fake clock.

No sockets and no sleeps: a tiny in-memory 'network' carries each side's
Send/Close effects to the other side and the clock only moves when the test
moves it.
"""
from __future__ import annotations

import random

import pytest

from kbgp._fast.attrs import PathAttributes, encode_attributes, encode_end_of_rib, encode_updates
from kbgp._fast.wire import KEEPALIVE, PrefixArray, decode_notification, encode_notification, encode_open
from kbgp.bgp.capabilities import LocalSettings, local_open
from kbgp.bgp.fsm import State
from kbgp.bgp.messages import IPV4_UNICAST, IPV6_UNICAST, Open
from kbgp.bgp.session import CancelConnect, Close, Connect, Down, Received, RefreshRequested, Send, Session, Up


class Net:
    """Connects sessions a and b; records what crosses the wire."""

    def __init__(self, a: Session, b: Session):
        self.s = {"a": a, "b": b}
        self.now = 0.0
        self.events: dict[str, list] = {"a": [], "b": []}
        self.wire: list[tuple[str, bytes]] = []
        self.links: dict[tuple[str, int], tuple[str, int]] = {}
        self.next_id = 0
        self.pending_connect: dict[str, bool] = {"a": False, "b": False}
        self.auto_accept = True

    def other(self, side: str) -> str:
        return "b" if side == "a" else "a"

    def apply(self, side: str, effects: list) -> None:
        self.apply_all([(side, e) for e in effects])

    def apply_all(self, queue: list) -> None:
        """Carry out effects in order; what they cause joins the end of the queue."""
        while queue:
            who, e = queue.pop(0)
            sess = self.s[who]
            peer = self.other(who)
            if isinstance(e, Connect):
                self.pending_connect[who] = True
            elif isinstance(e, CancelConnect):
                self.pending_connect[who] = False
            elif isinstance(e, Send):
                self.wire.append((who, e.data))
                far = self.links.get((who, e.conn))
                if far is not None:
                    queue += [(far[0], x) for x in self.s[far[0]].data_received(far[1], e.data, self.now)]
            elif isinstance(e, Close):
                far = self.links.pop((who, e.conn), None)
                if far is not None:
                    self.links.pop(far, None)
                    queue += [(far[0], x) for x in self.s[far[0]].connection_lost(far[1], self.now)]
            else:
                self.events[who].append(e)

    def complete_connect(self, side: str) -> None:
        """The TCP handshake side -> other completes."""
        assert self.pending_connect[side]
        self.pending_connect[side] = False
        self.next_id += 1
        ca, cb = ("out", self.next_id), ("in", self.next_id)
        peer = self.other(side)
        self.links[(side, ca)] = (peer, cb)
        self.links[(peer, cb)] = (side, ca)
        # Both ends learn of the connection before any byte crosses it.
        inbound = self.s[peer].connection_made(cb, True, self.now)
        outbound = self.s[side].connection_made(ca, False, self.now)
        self.apply_all([(peer, e) for e in inbound] + [(side, e) for e in outbound])

    def simultaneous_open(self) -> None:
        """Both sides' outbound connections complete before either sees the other's OPEN."""
        effects = []
        ends = []
        for side in ("a", "b"):
            assert self.pending_connect[side]
            self.pending_connect[side] = False
            self.next_id += 1
            peer = self.other(side)
            ca, cb = ("out", self.next_id), ("in", self.next_id)
            self.links[(side, ca)] = (peer, cb)
            self.links[(peer, cb)] = (side, ca)
            ends.append((side, ca, False))
            ends.append((peer, cb, True))
        # Outbound ends first: each side registers its own connection, then accepts the other's.
        for who, cid, inbound in sorted(ends, key=lambda e: e[2]):
            effects += [(who, e) for e in self.s[who].connection_made(cid, inbound, self.now)]
        self.apply_all(effects)

    def advance(self, seconds: float, step: float = 0.5) -> None:
        end = self.now + seconds
        while self.now < end:
            self.now = min(end, self.now + step)
            for side in ("a", "b"):
                self.apply(side, self.s[side].timer(self.now))

    def messages_from(self, side: str, mtype: int) -> list[bytes]:
        return [d for who, d in self.wire if who == side and d[18] == mtype]


def make(asn=65001, rid="10.0.0.1", peer_asn=65002, passive=False, hold=90, families=(IPV4_UNICAST,),
         **kw) -> Session:
    settings = LocalSettings(asn=asn, router_id=rid, hold_time=hold, families=families, peer_asn=peer_asn, **kw)
    return Session(settings, passive=passive, connect_retry=5.0, idle_hold=1.0, rng=random.Random(1))


def establish(a: Session, b: Session) -> Net:
    net = Net(a, b)
    net.apply("a", a.start(0.0))
    net.apply("b", b.start(0.0))
    net.complete_connect("a")
    return net


def test_establishment_and_negotiation():
    a = make()
    b = make(asn=65002, rid="10.0.0.2", peer_asn=65001, passive=True, hold=30)
    net = establish(a, b)
    assert a.state is State.ESTABLISHED and b.state is State.ESTABLISHED
    up = [e for e in net.events["a"] if isinstance(e, Up)]
    assert len(up) == 1
    n = up[0].negotiated
    assert n.hold_time == 30 and n.keepalive_time == 10
    assert n.asn4 and n.route_refresh and n.enhanced_route_refresh and n.extended_message
    assert n.families == {IPV4_UNICAST} and not n.ibgp and n.peer_asn == 65002


def test_passive_side_never_connects():
    b = make(passive=True)
    net = Net(b, make())
    net.apply("a", b.start(0.0))
    assert not net.pending_connect["a"] and b.state is State.ACTIVE


def test_any_as_peer_accepts_the_open_and_ibgp_when_equal():
    a = make(asn=64512, peer_asn=0)
    b = make(asn=64512, rid="10.0.0.2", peer_asn=0, passive=True)
    net = establish(a, b)
    assert a.negotiated.ibgp and a.negotiated.peer_asn == 64512


def test_wrong_peer_as_is_refused_with_2_2():
    a = make(peer_asn=65009)
    b = make(asn=65002, rid="10.0.0.2", peer_asn=65001, passive=True)
    net = establish(a, b)
    notes = [decode_notification(d[19:]) for d in net.messages_from("a", 3)]
    assert [(n.code, n.subcode) for n in notes] == [(2, 2)]
    assert a.state is not State.ESTABLISHED and "AS 65002" in a.last_error


def test_keepalive_timing_and_hold_expiry():
    a = make(hold=9)
    b = make(asn=65002, rid="10.0.0.2", peer_asn=65001, passive=True, hold=9)
    net = establish(a, b)
    before = len(net.messages_from("a", 4))
    net.advance(9.0)
    # keepalive = hold / 3 = 3 s: three more in 9 s, and the session stays up.
    assert len(net.messages_from("a", 4)) - before == 3
    assert a.state is State.ESTABLISHED
    # b stops talking (frozen): a's hold timer expires after 9 s with 4/0.
    net.links = {k: v for k, v in net.links.items() if k[0] != "b"}
    b_timer = b.timer
    b.timer = lambda now: []  # type: ignore[method-assign]
    net.advance(10.0)
    notes = [decode_notification(d[19:]) for d in net.messages_from("a", 3)]
    assert (4, 0) in [(n.code, n.subcode) for n in notes]
    downs = [e for e in net.events["a"] if isinstance(e, Down)]
    assert downs and not downs[0].graceful  # we sent a NOTIFICATION: no GR helper (no RFC 8538)
    b.timer = b_timer  # type: ignore[method-assign]


def test_hold_time_zero_sends_no_keepalives():
    a = make(hold=0)
    b = make(asn=65002, rid="10.0.0.2", peer_asn=65001, passive=True)
    net = establish(a, b)
    n = len(net.messages_from("a", 4))
    net.advance(600.0, step=10)
    assert len(net.messages_from("a", 4)) == n and a.state is State.ESTABLISHED


@pytest.mark.parametrize("state,subcode", [("opensent", 1), ("openconfirm", 2), ("established", 3)])
def test_wrong_message_in_state_is_an_fsm_error(state, subcode):
    a = make()
    b = make(asn=65002, rid="10.0.0.2", peer_asn=65001, passive=True)
    net = Net(a, b)
    net.apply("a", a.start(0.0))
    net.next_id += 1
    # Drive a by hand: one outbound connection, feed chosen messages.
    effects = a.connection_made("c", False, 0.0)
    peer_open = encode_open(local_open(b.settings))
    if state == "opensent":
        wrong = KEEPALIVE
    elif state == "openconfirm":
        a.data_received("c", peer_open, 0.0)
        wrong = encode_updates(PrefixArray.from_strings(["10.0.0.0/24"]),
                               encode_attributes(PathAttributes(origin=0, as_path=[(2, (65002,))],
                                                                next_hop="192.0.2.1")))
    else:
        a.data_received("c", peer_open + KEEPALIVE, 0.0)
        assert a.state is State.ESTABLISHED
        wrong = peer_open
    out = a.data_received("c", wrong, 1.0)
    notes = [decode_notification(e.data[19:]) for e in out if isinstance(e, Send) and e.data[18] == 3]
    assert [(n.code, n.subcode) for n in notes] == [(5, subcode)]
    assert any(isinstance(e, Close) for e in out)


def test_notification_received_closes_without_answer():
    a = make()
    b = make(asn=65002, rid="10.0.0.2", peer_asn=65001, passive=True)
    net = establish(a, b)
    sent_before = len(net.messages_from("a", 3))
    net.apply("b", b.stop(net.now, message="maintenance window"))
    assert a.state is not State.ESTABLISHED
    assert len(net.messages_from("a", 3)) == sent_before  # never answer a NOTIFICATION
    assert a.last_notification_in.shutdown_message == "maintenance window"
    assert "maintenance window" in a.last_error
    down = [e for e in net.events["a"] if isinstance(e, Down)][0]
    assert not down.graceful  # Cease: the peer's routes go at once


def test_header_error_sends_1_x():
    a = make()
    b = make(asn=65002, rid="10.0.0.2", peer_asn=65001, passive=True)
    net = establish(a, b)
    conn = next(iter(a.conns))
    out = a.data_received(conn, b"\x00" * 19, net.now)
    notes = [decode_notification(e.data[19:]) for e in out if isinstance(e, Send)]
    assert [(n.code, n.subcode) for n in notes] == [(1, 1)]


def test_updates_and_refresh_reach_the_owner():
    a = make(families=(IPV4_UNICAST, IPV6_UNICAST))
    b = make(asn=65002, rid="10.0.0.2", peer_asn=65001, passive=True, families=(IPV4_UNICAST, IPV6_UNICAST))
    net = establish(a, b)
    attrs = encode_attributes(PathAttributes(origin=0, as_path=[(2, (65002,))], next_hop="192.0.2.2"))
    data = encode_updates(PrefixArray.sequence("10.1.0.0/24", 3000), attrs) + encode_end_of_rib(1, 1)
    net.apply("b", b.send(data))
    received = [e.update for e in net.events["a"] if isinstance(e, Received)]
    assert sum(len(u.nlri) for u in received) == 3000
    assert received[-1].end_of_rib == (1, 1)
    net.apply("b", b.request_refresh(2, 1))
    assert [e for e in net.events["a"] if isinstance(e, RefreshRequested)] == [RefreshRequested(2, 1, 0)]


def test_collision_keeps_the_connection_of_the_higher_router_id():
    a = make(rid="10.0.0.1")
    b = make(asn=65002, rid="10.0.0.2", peer_asn=65001)
    net = Net(a, b)
    net.apply("a", a.start(0.0))
    net.apply("b", b.start(0.0))
    # Both connect at once: two TCP connections.
    net.simultaneous_open()
    assert a.state is State.ESTABLISHED and b.state is State.ESTABLISHED
    # Exactly one connection survives on each side: the one b (higher id) opened.
    assert len(a.conns) == 1 and len(b.conns) == 1
    (a_conn,) = a.conns.values()
    assert a_conn.inbound  # b initiated it
    # Each side detects the collision on its own and dumps the same connection
    # (the one a opened) with Cease / Connection Collision Resolution.
    cease7 = [decode_notification(d[19:]) for who, d in net.wire if d[18] == 3]
    assert cease7 and {(n.code, n.subcode) for n in cease7} == {(6, 7)}


def test_collision_lost_the_other_way():
    a = make(rid="10.0.0.9")
    b = make(asn=65002, rid="10.0.0.2", peer_asn=65001)
    net = Net(a, b)
    net.apply("a", a.start(0.0))
    net.apply("b", b.start(0.0))
    net.simultaneous_open()
    (a_conn,) = a.conns.values()
    assert not a_conn.inbound and a.state is State.ESTABLISHED  # a (higher id) kept its own


def test_connection_to_established_peer_is_refused():
    a = make()
    b = make(asn=65002, rid="10.0.0.2", peer_asn=65001)
    net = establish(a, b)
    out = a.connection_made("late", True, net.now)
    note = decode_notification([e for e in out if isinstance(e, Send)][0].data[19:])
    assert (note.code, note.subcode) == (6, 7)


def test_tcp_loss_with_graceful_restart_keeps_routes_and_backs_off():
    a = make()
    b = make(asn=65002, rid="10.0.0.2", peer_asn=65001, passive=True)
    net = establish(a, b)
    conn = next(iter(a.conns))
    out = a.connection_lost(conn, net.now)
    net.apply("a", out)
    down = [e for e in net.events["a"] if isinstance(e, Down)][0]
    assert down.graceful  # peer advertised GR, TCP just dropped: keep its routes as stale
    assert a.state is State.IDLE and a.idle_deadline is not None
    first = a.idle_hold
    # Flapping: each failure doubles the idle hold (with jitter), up to a cap.
    net.advance(first + 0.5)
    net.complete_connect("a")
    assert a.state is State.ESTABLISHED
    net.apply("a", a.connection_lost(next(iter(a.conns)), net.now))
    assert a.idle_hold == 2 * first


def test_restart_state_bit_only_when_restarting():
    fresh = local_open(LocalSettings(asn=65001, router_id="10.0.0.1"))
    after = local_open(LocalSettings(asn=65001, router_id="10.0.0.1", restarting=True,
                                     forwarding_preserved=True))
    from kbgp.bgp.messages import GracefulRestartCap
    assert fresh.capability(GracefulRestartCap).restart_state is False
    gr = after.capability(GracefulRestartCap)
    assert gr.restart_state is True and all(f for _a, _s, f in gr.families)


def test_four_octet_asn_uses_as_trans_in_open():
    o = local_open(LocalSettings(asn=4200000001, router_id="10.0.0.1"))
    assert o.my_as == 23456 and o.asn == 4200000001


def test_send_hold_timer_closes_a_peer_that_stops_reading():
    a = make(hold=0)  # no hold timer, so only the send hold timer can fire
    b = make(asn=65002, rid="10.0.0.2", peer_asn=65001, passive=True)
    net = establish(a, b)
    conn = next(iter(a.conns))
    a.write_blocked(conn, net.now)
    out = []
    for t in range(1, 482, 30):
        out += a.timer(net.now + t)
    notes = [decode_notification(e.data[19:]) for e in out if isinstance(e, Send) and e.data[18] == 3]
    assert (8, 0) in [(n.code, n.subcode) for n in notes]


def test_password_hint_when_peer_never_answers():
    s = Session(LocalSettings(asn=65001, router_id="10.0.0.1", peer_asn=65002), password_set=True)
    s.start(0.0)
    s.connection_failed(5.0, "timed out")
    assert "TCP MD5 authentication is the likely cause" in s.last_error
