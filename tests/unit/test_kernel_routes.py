"""kbgp.kernel.routes and kbgp._fast.netlink.RouteState: wanted versus
installed routes, the messages a diff produces, the kernel's answers, dumps
and notifications, all without a kernel.

Messages are read back with an independent parser (struct, linux/netlink.h
and linux/rtnetlink.h layouts), and dumps/notifications are built with it.
"""

from __future__ import annotations

import errno
import ipaddress
import random
import socket
import struct

import pytest
from kbgp._fast.netlink import NH_SKIP, RouteState, scan_events
from kbgp._fast.wire import PrefixArray

from kbgp.kernel.routes import KernelRoutes, RouteFailure, validate_update

RTM_NEWROUTE, RTM_DELROUTE, RTM_NEWLINK = 24, 25, 16
NLMSG_ERROR, NLMSG_DONE = 2, 3
F_REQUEST, F_MULTI, F_ACK = 0x1, 0x2, 0x4
F_REPLACE, F_EXCL, F_CREATE = 0x100, 0x200, 0x400
RTA_DST, RTA_OIF, RTA_GATEWAY, RTA_PREFSRC, RTA_TABLE = 1, 4, 5, 7, 15
RTA_NH_ID = 30
RT_SCOPE_UNIVERSE, RT_SCOPE_LINK, RT_SCOPE_NOWHERE = 0, 253, 255


# ----------------------------------------------------------------- an independent codec

def parse(buf: bytes) -> list[dict]:
    """Every netlink route message in buf as a dict."""
    out, off = [], 0
    while off < len(buf):
        length, mtype, flags, seq, _pid = struct.unpack_from("=IHHII", buf, off)
        fam, dlen, _slen, _tos, table, proto, scope, rtype, _rflags = struct.unpack_from(
            "=BBBBBBBBI", buf, off + 16)
        attrs, ao = {}, off + 28
        while ao < off + length:
            alen, atype = struct.unpack_from("=HH", buf, ao)
            attrs[atype] = buf[ao + 4:ao + alen]
            ao += (alen + 3) & ~3
        alen_ = 4 if fam == socket.AF_INET else 16
        addr = {t: socket.inet_ntop(fam, attrs[t][:alen_]) if t in attrs else None
                for t in (RTA_DST, RTA_GATEWAY, RTA_PREFSRC)}
        out.append({
            "type": mtype, "flags": flags, "seq": seq, "family": fam, "dst_len": dlen,
            "table_byte": table, "protocol": proto, "scope": scope, "rtype": rtype,
            "dst": addr[RTA_DST], "gateway": addr[RTA_GATEWAY], "src": addr[RTA_PREFSRC],
            "oif": struct.unpack("=I", attrs[RTA_OIF])[0] if RTA_OIF in attrs else None,
            "table": struct.unpack("=I", attrs[RTA_TABLE])[0] if RTA_TABLE in attrs else None,
            "nhid": struct.unpack("=I", attrs[RTA_NH_ID])[0] if RTA_NH_ID in attrs else None,
            "len": length,
        })
        off += (length + 3) & ~3
    return out


def route_msg(prefix: str, *, gateway=None, oif=0, src=None, protocol=17, table=254,
              mtype=RTM_NEWROUTE, flags=F_MULTI, seq=1, pid=0, nhid=0) -> bytes:
    """A route message as the kernel sends it in a dump or a notification."""
    net = prefix.split("/")
    fam = socket.AF_INET6 if ":" in net[0] else socket.AF_INET
    plen = int(net[1])

    def rta(t, payload):
        raw = struct.pack("=HH", 4 + len(payload), t) + payload
        return raw + b"\0" * (-len(raw) % 4)
    body = struct.pack("=BBBBBBBBI", fam, plen, 0, 0, table if table < 256 else 0, protocol,
                       RT_SCOPE_UNIVERSE, 1, 0)
    body += rta(RTA_TABLE, struct.pack("=I", table))
    body += rta(RTA_DST, socket.inet_pton(fam, net[0]))
    if gateway:
        body += rta(RTA_GATEWAY, socket.inet_pton(fam, gateway))
    if oif:
        body += rta(RTA_OIF, struct.pack("=I", oif))
    if src:
        body += rta(RTA_PREFSRC, socket.inet_pton(fam, src))
    if nhid:
        body += rta(RTA_NH_ID, struct.pack("=I", nhid))
    return struct.pack("=IHHII", 16 + len(body), mtype, flags, seq, pid) + body


def done_msg(seq=1) -> bytes:
    return struct.pack("=IHHIIi", 20, NLMSG_DONE, F_MULTI, seq, 0, 0)


def dump(state: RouteState, *msgs: bytes, seq=1):
    """Feed one dump (msgs then NLMSG_DONE) to state; returns reconcile_end()."""
    state.reconcile_begin()
    data = b"".join(msgs) + done_msg(seq)
    assert state.reconcile_feed(data, len(data), seq) is True
    return state.reconcile_end()


def pa(*prefixes):
    return PrefixArray.from_strings(list(prefixes))


def write(state: RouteState, seq0=100, errors=None, max_ops=1_000_000):
    """build() + complete(): the messages sent and the failures."""
    b = state.build(max_ops, seq0)
    if b is None:
        return [], []
    failures = state.complete(b, errors or {})
    return parse(b.buf), failures


# ----------------------------------------------------------------- basic diff

def test_install_change_withdraw_messages():
    st = RouteState(1, 17, 254)
    gw1, gw2 = st.nexthop("10.80.0.2"), st.nexthop("10.80.0.3")
    assert st.announce(pa("10.1.0.0/24", "10.2.0.0/24"), gw1) == 2
    msgs, failures = write(st)
    assert failures == []
    assert [(m["type"], m["dst"], m["dst_len"], m["gateway"]) for m in msgs] == [
        (RTM_NEWROUTE, "10.1.0.0", 24, "10.80.0.2"), (RTM_NEWROUTE, "10.2.0.0", 24, "10.80.0.2")]
    for m in msgs:
        # a prefix kbgp has no route for: create, never replace (EEXIST if
        # another protocol's route is there)
        assert m["flags"] & (F_CREATE | F_EXCL | F_REPLACE) == F_CREATE | F_EXCL
        assert (m["protocol"], m["table"], m["table_byte"], m["scope"], m["rtype"]) == (
            17, 254, 254, RT_SCOPE_UNIVERSE, 1)
    # one run: only its last message asks for an ack
    assert [bool(m["flags"] & F_ACK) for m in msgs] == [False, True]
    assert [m["seq"] for m in msgs] == [100, 101]
    assert st.counts()["installed"] == 2

    # same next hop again: nothing to write
    assert st.announce(pa("10.1.0.0/24"), gw1) == 0
    assert st.build(10, 1) is None

    # next hop change: replace
    st.announce(pa("10.1.0.0/24"), gw2)
    msgs, _ = write(st)
    assert [(m["type"], m["dst"], m["gateway"]) for m in msgs] == [
        (RTM_NEWROUTE, "10.1.0.0", "10.80.0.3")]
    assert msgs[0]["flags"] == F_REQUEST | F_ACK | F_CREATE | F_REPLACE

    # withdraw: delete restricted to our protocol, any scope
    st.withdraw(pa("10.2.0.0/24", "10.9.0.0/24"))          # 10.9/24: unknown, ignored
    msgs, _ = write(st)
    assert [(m["type"], m["dst"], m["gateway"], m["protocol"], m["scope"]) for m in msgs] == [
        (RTM_DELROUTE, "10.2.0.0", None, 17, RT_SCOPE_NOWHERE)]
    assert msgs[0]["flags"] == F_REQUEST | F_ACK
    assert st.installed().to_strings() == ["10.1.0.0/24"]
    assert st.lookup("10.2.0.0/24") is None and len(st) == 1


def test_device_route_with_source_and_table_above_255():
    st = RouteState(1, 17, 1000)
    nh = st.nexthop(None, oif=7, src="10.80.0.1")
    st.announce(pa("10.5.0.0/24"), nh)
    (m,), _ = write(st)
    assert (m["gateway"], m["oif"], m["src"], m["scope"]) == (None, 7, "10.80.0.1", RT_SCOPE_LINK)
    assert (m["table_byte"], m["table"]) == (0, 1000)   # RT_TABLE_UNSPEC + RTA_TABLE


def test_ipv6():
    st = RouteState(2, 17, 254)
    nh = st.nexthop("fd00:80::2")
    st.announce(pa("fd00:99::/64", "fd00:98::1/128"), nh)
    msgs, _ = write(st)
    assert [(m["family"], m["dst"], m["dst_len"], m["gateway"]) for m in msgs] == [
        (socket.AF_INET6, "fd00:99::", 64, "fd00:80::2"),
        (socket.AF_INET6, "fd00:98::1", 128, "fd00:80::2")]
    with pytest.raises(ValueError, match="not an IPv6 address"):
        st.nexthop("10.0.0.1")
    with pytest.raises(ValueError, match="afi 1"):
        st.announce(pa("10.0.0.0/8"), nh)


def test_batches_are_capped_and_runs_acked_by_their_last_message():
    st = RouteState(1, 17, 254)
    nh = st.nexthop("10.80.0.2")
    st.announce(PrefixArray.sequence("10.0.0.0/32", 10_000), nh)
    b1 = st.build(6000, 1, 4096)
    b2 = st.build(6000, 6001, 4096)
    assert (b1.n, b2.n, st.build(6000, 1)) == (6000, 4000, None)
    msgs = parse(b1.buf)
    assert len(msgs) == 6000
    acked = [i for i, m in enumerate(msgs) if m["flags"] & F_ACK]
    assert len(acked) == len(b1.runs)
    # each run: whole messages, at most 4096 bytes, acked exactly at its end
    off = 0
    for (start, end, count), last in zip(b1.runs, acked):
        assert start == off and end - start <= 4096
        off = end
    assert off == len(b1.buf)
    ends = []
    n = 0
    for start, end, count in b1.runs:
        n += count
        ends.append(n - 1)
    assert ends == acked


# ----------------------------------------------------------------- the kernel's answers

def test_failures_are_per_route_and_undone():
    kr = KernelRoutes(17, 254)
    good = kr.nexthop(1, "10.80.0.2")
    bad = kr.nexthop(1, "10.81.0.2")
    kr.apply(1, {good: pa("10.1.0.0/24", "10.3.0.0/24"), bad: pa("10.2.0.0/24")}, None)
    b = kr.build(1, 100, 500)
    msgs = parse(b.buf)
    seq_of = {m["dst"]: m["seq"] for m in msgs}
    failures = kr.complete(1, b, {seq_of["10.2.0.0"]: errno.ENETUNREACH,
                                  seq_of["10.3.0.0"]: errno.EEXIST})
    assert sorted(failures, key=lambda f: f.prefix) == [
        RouteFailure("add", "10.2.0.0/24", "10.81.0.2", errno.ENETUNREACH),
        RouteFailure("add", "10.3.0.0/24", "10.80.0.2", errno.EEXIST)]
    assert failures[0].reason == "Network is unreachable" or failures[1].reason
    st = kr.states[1]
    assert st.installed().to_strings() == ["10.1.0.0/24"]
    c = st.counts()
    assert (c["failed"], c["conflicts"], c["wanted"]) == (2, 1, 3)
    # not retried by the next build: only a reconcile (or a new change) does
    assert kr.build(1, 100, 600) is None
    dump(st, route_msg("10.1.0.0/24", gateway="10.80.0.2", oif=2))
    retry = parse(kr.build(1, 100, 700).buf)
    assert sorted(m["dst"] for m in retry) == ["10.2.0.0", "10.3.0.0"]
    assert all(m["flags"] & F_EXCL for m in retry)


def test_failed_replace_keeps_the_old_route_and_missing_delete_is_fine():
    st = RouteState(1, 17, 254)
    a, b = st.nexthop("10.80.0.2"), st.nexthop("10.80.0.3")
    st.announce(pa("10.1.0.0/24", "10.2.0.0/24"), a)
    write(st)
    st.announce(pa("10.1.0.0/24"), b)
    st.withdraw(pa("10.2.0.0/24"))
    batch = st.build(10, 50)
    kinds = {m["dst"]: m for m in parse(batch.buf)}
    fails = st.complete(batch, {kinds["10.1.0.0"]["seq"]: errno.ENETUNREACH,
                                kinds["10.2.0.0"]["seq"]: errno.ESRCH})
    assert fails == [("replace", "10.1.0.0/24", b, errno.ENETUNREACH)]
    assert st.lookup("10.1.0.0/24")[:2] == (b, a)    # wants b, the kernel keeps a
    assert st.lookup("10.2.0.0/24") is None          # already gone: fine


# ----------------------------------------------------------------- reconcile and adoption

def test_adoption_and_converge_remove_only_unwanted():
    st = RouteState(1, 17, 254)
    stats = dump(st,
                 route_msg("10.1.0.0/24", gateway="10.80.0.2", oif=2),
                 route_msg("10.2.0.0/24", gateway="10.80.0.2", oif=2),
                 route_msg("10.3.0.0/24", gateway="10.80.0.2", oif=2),
                 route_msg("10.4.0.0/24", gateway="10.80.0.2", oif=2, protocol=4),   # static
                 route_msg("10.5.0.0/24", gateway="10.80.0.2", oif=2, table=77))     # other table
    assert stats == {"missing": 0, "changed": 0, "unknown": 3}
    assert st.counts()["adopted"] == 3 and st.counts()["installed"] == 3
    assert st.build(100, 1) is None                  # adopted routes are kept
    same, other = st.nexthop("10.80.0.2"), st.nexthop("10.80.0.9")
    st.announce(pa("10.1.0.0/24"), same)             # re-learned, same next hop: nothing
    st.announce(pa("10.2.0.0/24"), other)            # re-learned, new next hop: replace
    msgs, _ = write(st)
    assert [(m["dst"], m["gateway"], bool(m["flags"] & F_REPLACE)) for m in msgs] == [
        ("10.2.0.0", "10.80.0.9", True)]
    # still not converged: 10.3/24 (wanted by nobody) stays
    assert st.build(100, 1) is None
    assert st.converge() == 1
    msgs, _ = write(st)
    assert [(m["type"], m["dst"]) for m in msgs] == [(RTM_DELROUTE, "10.3.0.0")]
    assert sorted(st.installed().to_strings()) == ["10.1.0.0/24", "10.2.0.0/24"]


def test_withdraw_deletes_adopted_route_before_converge():
    st = RouteState(1, 17, 254)
    dump(st, route_msg("10.1.0.0/24", gateway="10.80.0.2", oif=2))
    st.withdraw(pa("10.1.0.0/24"))
    msgs, _ = write(st)
    assert [(m["type"], m["dst"]) for m in msgs] == [(RTM_DELROUTE, "10.1.0.0")]


def test_reconcile_repairs_missing_and_changed_routes():
    st = RouteState(1, 17, 254)
    nh = st.nexthop("10.80.0.2")
    st.announce(pa("10.1.0.0/24", "10.2.0.0/24", "10.3.0.0/24"), nh)
    write(st)
    stats = dump(st,
                 route_msg("10.1.0.0/24", gateway="10.80.0.2", oif=2),     # as written
                 route_msg("10.2.0.0/24", gateway="10.80.0.7", oif=2))     # changed by someone
    # 10.3/24 missing: deleted by someone
    assert stats == {"missing": 1, "changed": 1, "unknown": 0}
    msgs, _ = write(st)
    assert sorted((m["dst"], m["gateway"], bool(m["flags"] & F_REPLACE)) for m in msgs) == [
        ("10.2.0.0", "10.80.0.2", True), ("10.3.0.0", "10.80.0.2", False)]


# ----------------------------------------------------------------- nexthop objects

NHID_A, NHID_B = 0x6B620001, 0x6B620002


def test_routes_over_a_nexthop_object_carry_rta_nh_id_only():
    st = RouteState(1, 17, 254)
    a = st.nexthop("10.80.0.2")
    st.set_kid(a, NHID_A)
    assert st.kid_of(a) == NHID_A and st.nexthop_of_kid(NHID_A) == a
    st.announce(pa("10.1.0.0/24", "10.2.0.0/24"), a)
    msgs, failures = write(st)
    assert failures == []
    assert [(m["dst"], m["nhid"], m["gateway"], m["oif"], m["scope"]) for m in msgs] == [
        ("10.1.0.0", NHID_A, None, None, RT_SCOPE_UNIVERSE),
        ("10.2.0.0", NHID_A, None, None, RT_SCOPE_UNIVERSE)]
    assert all(m["len"] == 16 + 12 + 8 + 8 + 8 for m in msgs)
    # the object dropped (kernel without it, gateway off-link): the gateway form again
    st.set_kid(a, 0)
    assert st.nexthop_of_kid(NHID_A) == 0
    st.announce(pa("10.3.0.0/24"), a)
    msgs, _ = write(st)
    assert [(m["dst"], m["nhid"], m["gateway"]) for m in msgs] == [
        ("10.3.0.0", None, "10.80.0.2")]


def test_ipv6_route_over_a_nexthop_object():
    st = RouteState(2, 17, 254)
    a = st.nexthop("fd00:80::2")
    st.set_kid(a, NHID_B)
    st.announce(pa("fd00:100::/64"), a)
    msgs, _ = write(st)
    assert [(m["dst"], m["dst_len"], m["nhid"], m["gateway"]) for m in msgs] == [
        ("fd00:100::", 64, NHID_B, None)]


def test_dumped_routes_with_nh_id_are_recognised():
    st = RouteState(1, 17, 254)
    a, b = st.nexthop("10.80.0.2"), st.nexthop("10.80.0.3")
    st.set_kid(a, NHID_A)
    st.set_kid(b, NHID_B)
    st.announce(pa("10.1.0.0/24", "10.2.0.0/24", "10.3.0.0/24", "10.4.0.0/24"), a)
    write(st)
    stats = dump(st,
                 # as written (the kernel adds gateway and device: compat mode)
                 route_msg("10.1.0.0/24", nhid=NHID_A, gateway="10.80.0.2", oif=2),
                 route_msg("10.2.0.0/24", nhid=NHID_B, gateway="10.80.0.3", oif=2),  # moved
                 route_msg("10.3.0.0/24", gateway="10.80.0.2", oif=2),   # gateway form: fine
                 route_msg("10.4.0.0/24", nhid=77, gateway="10.80.0.2", oif=2))  # not ours
    assert stats == {"missing": 0, "changed": 2, "unknown": 0}
    msgs, _ = write(st)
    assert sorted((m["dst"], m["nhid"], bool(m["flags"] & F_REPLACE)) for m in msgs) == [
        ("10.2.0.0", NHID_A, True), ("10.4.0.0", NHID_A, True)]


def test_adopted_routes_with_nh_id_and_a_restart():
    """A new state learns the objects first (set_kid), then the dump: the
    routes are installed over the right next hop and nothing is written."""
    st = RouteState(1, 17, 254)
    a = st.nexthop("10.80.0.2")
    st.set_kid(a, NHID_A)
    assert dump(st, route_msg("10.1.0.0/24", nhid=NHID_A, gateway="10.80.0.2", oif=2),
                route_msg("10.9.0.0/24", nhid=NHID_B, gateway="10.80.0.9", oif=2)) == {
        "missing": 0, "changed": 0, "unknown": 2}
    assert st.lookup("10.1.0.0/24")[1] == a
    assert st.nexthop_refs(a) == (0, 1)
    st.announce(pa("10.1.0.0/24"), a)
    assert write(st) == ([], [])
    st.converge()
    msgs, _ = write(st)
    assert [(m["type"], m["dst"]) for m in msgs] == [(RTM_DELROUTE, "10.9.0.0")]


def test_events_with_nh_id():
    st = RouteState(1, 17, 254)
    a, b = st.nexthop("10.80.0.2"), st.nexthop("10.80.0.3")
    st.set_kid(a, NHID_A)
    st.set_kid(b, NHID_B)
    st.announce(pa("10.1.0.0/24"), a)
    write(st)
    # our object replaced: the kernel re-announces the route, same id: nothing to do
    ev = route_msg("10.1.0.0/24", nhid=NHID_A, flags=F_REPLACE, pid=99)
    assert scan_events(ev, len(ev), 5, st, None) == (0, 0, 0, 0)
    # someone moved it to another object: written back
    ev = route_msg("10.1.0.0/24", nhid=NHID_B, flags=F_REPLACE, pid=99)
    assert scan_events(ev, len(ev), 5, st, None) == (0, 1, 0, 0)
    msgs, _ = write(st)
    assert [(m["dst"], m["nhid"]) for m in msgs] == [("10.1.0.0", NHID_A)]


def test_a_kid_moves_between_next_hops():
    st = RouteState(1, 17, 254)
    a, b = st.nexthop("10.80.0.2"), st.nexthop("10.80.0.3")
    st.set_kid(a, NHID_A)
    st.set_kid(b, NHID_A)
    assert (st.kid_of(a), st.kid_of(b), st.nexthop_of_kid(NHID_A)) == (0, NHID_A, b)
    with pytest.raises(ValueError, match="unknown next hop id 99"):
        st.set_kid(99, 1)


def test_withdrawn_route_never_comes_back():
    """kube-router #1738: its sync re-added withdrawn routes from a stale
    cache.  Here the wanted state is the RIB's: a withdrawn prefix is
    deleted, and a dump that still shows it (before the delete) or no longer
    shows it never brings it back."""
    st = RouteState(1, 17, 254)
    st.converge()
    nh = st.nexthop("10.80.0.2")
    st.announce(pa("10.1.0.0/24", "10.2.0.0/24"), nh)
    write(st)
    st.withdraw(pa("10.1.0.0/24"))
    dump(st, route_msg("10.1.0.0/24", gateway="10.80.0.2", oif=2),
         route_msg("10.2.0.0/24", gateway="10.80.0.2", oif=2))
    msgs, _ = write(st)
    assert [(m["type"], m["dst"]) for m in msgs] == [(RTM_DELROUTE, "10.1.0.0")]
    for _ in range(3):
        dump(st, route_msg("10.2.0.0/24", gateway="10.80.0.2", oif=2))
        assert st.build(100, 1) is None
    assert st.installed().to_strings() == ["10.2.0.0/24"]


def test_device_route_matching():
    st = RouteState(1, 17, 254)
    tun = st.nexthop(None, oif=9, src="10.80.0.1")
    st.announce(pa("10.7.0.0/24"), tun)
    write(st)
    # the kernel reports dev routes with their oif and prefsrc: a match
    assert dump(st, route_msg("10.7.0.0/24", oif=9, src="10.80.0.1"))["changed"] == 0
    assert st.build(10, 1) is None
    # another source address: rewritten
    assert dump(st, route_msg("10.7.0.0/24", oif=9, src="10.80.0.5"))["changed"] == 1
    assert parse(st.build(10, 1).buf)[0]["src"] == "10.80.0.1"


# ----------------------------------------------------------------- notifications

def test_events_repair_and_skip_own_writes():
    v4, v6 = RouteState(1, 17, 254), RouteState(2, 17, 254)
    nh = v4.nexthop("10.80.0.2")
    v4.announce(pa("10.1.0.0/24", "10.2.0.0/24"), nh)
    write(v4)
    own = 4242
    data = (route_msg("10.1.0.0/24", gateway="10.80.0.2", mtype=RTM_DELROUTE, flags=0, pid=own)
            + route_msg("10.2.0.0/24", gateway="10.80.0.2", mtype=RTM_DELROUTE, flags=0, pid=99))
    assert scan_events(data, len(data), own, v4, v6) == (1, 0, 0, 0)
    msgs, _ = write(v4)
    assert [(m["dst"], m["gateway"]) for m in msgs] == [("10.2.0.0", "10.80.0.2")]

    # someone replaces our route with another gateway, same protocol: restored
    data = route_msg("10.1.0.0/24", gateway="10.80.0.66", flags=F_REPLACE | F_CREATE, pid=99)
    assert scan_events(data, len(data), own, v4, v6) == (0, 1, 0, 0)
    msgs, _ = write(v4)
    assert [(m["dst"], m["gateway"], bool(m["flags"] & F_REPLACE)) for m in msgs] == [
        ("10.1.0.0", "10.80.0.2", True)]

    # another protocol replacing one of our prefixes asks for a reconcile;
    # unrelated prefixes and link changes are counted, nothing is written
    link = struct.pack("=IHHII", 32, RTM_NEWLINK, 0, 0, 99) + b"\0" * 16
    data = (route_msg("10.1.0.0/24", gateway="10.80.0.5", protocol=4, flags=F_REPLACE, pid=99)
            + route_msg("10.77.0.0/24", gateway="10.80.0.5", protocol=4, pid=99) + link)
    assert scan_events(data, len(data), own, v4, v6) == (0, 0, 1, 1)
    assert v4.build(10, 1) is None

    # a foreign route of our protocol nobody wants: adopted, deleted once converged
    data = route_msg("10.8.0.0/24", gateway="10.80.0.2", flags=F_CREATE | F_EXCL, pid=99)
    assert scan_events(data, len(data), own, v4, v6) == (0, 1, 0, 0)
    assert v4.build(10, 1) is None
    v4.converge()
    msgs, _ = write(v4)
    assert [(m["type"], m["dst"]) for m in msgs] == [(RTM_DELROUTE, "10.8.0.0")]


def test_only_changes_of_our_links_ask_for_a_reconcile():
    v4, v6 = RouteState(1), RouteState(2)

    def link(ifindex, mtype=RTM_NEWLINK):
        return struct.pack("=IHHIIBBHiII", 32, mtype, 0, 0, 9, 0, 0, 0, ifindex, 1, 1)
    data = link(2) + link(5)
    assert scan_events(data, len(data), 1, v4, v6)[3] == 0       # no routes: nothing to lose
    v4.announce(pa("10.1.0.0/24"), v4.nexthop("10.80.0.2"))
    write(v4)
    assert scan_events(data, len(data), 1, v4, v6)[3] == 2       # links not known yet: all count
    dump(v4, route_msg("10.1.0.0/24", gateway="10.80.0.2", oif=2))
    assert scan_events(data, len(data), 1, v4, v6)[3] == 1       # only kv0-like ifindex 2
    assert v4.uses_link(2) and not v4.uses_link(5)
    tun = v4.nexthop(None, oif=5, src="10.80.0.1")
    v4.announce(pa("10.2.0.0/24"), tun)
    assert v4.uses_link(5)                                       # a tunnel's own link


def test_events_ipv6_and_malformed():
    v4, v6 = RouteState(1), RouteState(2)
    nh = v6.nexthop("fd00:80::2")
    v6.announce(pa("fd00:99::/64"), nh)
    write(v6)
    data = route_msg("fd00:99::/64", gateway="fd00:80::2", mtype=RTM_DELROUTE, flags=0, pid=7)
    assert scan_events(data, len(data), 1, v4, v6) == (1, 0, 0, 0)
    assert [m["dst"] for m in parse(v6.build(10, 1).buf)] == ["fd00:99::"]
    bad = bytearray(data)
    struct.pack_into("=H", bad, 28, 200)        # an attribute longer than the message
    with pytest.raises(ValueError, match="attribute length"):
        scan_events(bytes(bad), len(bad), 1, v4, v6)
    with pytest.raises(ValueError, match="length"):
        scan_events(data[:20], 20, 1, v4, v6)


# ----------------------------------------------------------------- next hop marks

def test_skip_and_remap():
    st = RouteState(1, 17, 254)
    direct = st.nexthop("10.90.0.1")
    st.announce(pa("10.1.0.0/24", "10.2.0.0/24"), direct)
    write(st)
    # the injection decision says "no route" for this next hop: deleted, still wanted
    assert st.set_skip(direct, True) == 2
    msgs, _ = write(st)
    assert {m["type"] for m in msgs} == {RTM_DELROUTE}
    assert st.counts()["skipped"] == 2 and st.counts()["installed"] == 0
    # a tunnel appears for it: remap to a device next hop
    tun = st.nexthop(None, oif=12, src="10.80.0.1")
    assert st.remap(direct, tun) == 2
    msgs, _ = write(st)
    assert sorted((m["dst"], m["oif"]) for m in msgs) == [("10.1.0.0", 12), ("10.2.0.0", 12)]
    assert st.nexthop_refs(tun) == (2, 2) and st.nexthop_refs(direct) == (0, 0)
    # NH_SKIP: wanted, never installed
    st.announce(pa("10.3.0.0/24"), NH_SKIP)
    assert st.build(10, 1) is None


def test_validate_update_names_the_bad_element():
    ok = pa("10.0.0.0/8")
    assert validate_update(1, {"10.0.0.1": ok}, pa("10.1.0.0/16")) == 2
    with pytest.raises(ValueError, match="afi must be 1"):
        validate_update(3, {}, None)
    with pytest.raises(TypeError, match=r"announce\['10.0.0.1'\] must be a PrefixArray"):
        validate_update(1, {"10.0.0.1": ["10.0.0.0/8"]}, None)
    with pytest.raises(ValueError, match=r"announce\['fd00::1'\] holds afi 1"):
        validate_update(2, {"fd00::1": ok}, None)
    with pytest.raises(TypeError, match="withdraw must be a PrefixArray"):
        validate_update(1, {}, ["10.0.0.0/8"])
    with pytest.raises(ValueError):
        RouteState(1, 0, 254)
    with pytest.raises(ValueError, match="gateway or an interface"):
        RouteState(1).nexthop()


# ----------------------------------------------------------------- the C table against a model

@pytest.mark.parametrize("afi, space_size, burst, steps", [
    (1, 600, 40, 300), (2, 600, 40, 300),           # few changes: written in change order
    (1, 30_000, 9_000, 12), (2, 30_000, 9_000, 12),  # many: written in hash order
])
def test_state_matches_a_model_under_random_churn(afi, space_size, burst, steps):
    """Random announces, withdrawals, kernel answers and dumps over a prefix
    space (collisions, deletions, table growth, and more changes arriving
    between the batches of one write): the state always agrees with a dict
    model."""
    rnd = random.Random(6)
    st = RouteState(afi, 17, 254)
    gws = ([f"10.80.0.{i}" for i in range(2, 6)] if afi == 1
           else [f"fd00:80::{i:x}" for i in range(2, 6)])
    ids = {gw: st.nexthop(gw) for gw in gws}
    space = ([f"10.{i >> 8}.{i & 255}.0/24" for i in range(space_size)] if afi == 1
             else [str(ipaddress.ip_network(f"fd00:{i:x}::/64")) for i in range(space_size)])
    want: dict[str, str] = {}
    kernel: dict[str, str] = {}
    seq = 1

    def churn(count):
        for _ in range(count):
            p = rnd.choice(space)
            if rnd.random() < 0.3:
                st.withdraw(pa(p))
                want.pop(p, None)
            else:
                gw = rnd.choice(gws)
                st.announce(pa(p), ids[gw])
                want[p] = gw

    for step in range(steps):
        churn(rnd.randrange(1, burst))
        b = st.build(rnd.randrange(1, burst), seq)
        while b is not None:
            errors = {}
            for m in parse(b.buf):
                p = f"{m['dst']}/{m['dst_len']}"
                if m["type"] == RTM_DELROUTE:
                    kernel.pop(p, None)
                elif rnd.random() < 0.05:
                    errors[m["seq"]] = errno.ENETUNREACH
                else:
                    kernel[p] = m["gateway"]
            st.complete(b, errors)
            seq += b.n
            if rnd.random() < 0.3:
                churn(rnd.randrange(1, burst))      # changes between two batches
            b = st.build(rnd.randrange(1, burst), seq)
        # drained: no prefix is left marked (none fell off the dirty list)
        assert (st.pending, st.counts()["dirty"]) == (0, 0)
        if step % 25 == 0 or (steps < 50 and step % 4 == 0):
            # someone deletes a few of our routes; a dump shows it
            for p in rnd.sample(sorted(kernel), min(3, len(kernel))):
                del kernel[p]
            dump(st, *[route_msg(p, gateway=g, oif=2) for p, g in kernel.items()])
            continue
        assert sorted(st.installed().to_strings()) == sorted(kernel)
    # after a final reconcile and write, the kernel holds exactly what is wanted
    dump(st, *[route_msg(p, gateway=g, oif=2) for p, g in kernel.items()])
    b = st.build(100_000, seq)
    if b is not None:
        for m in parse(b.buf):
            p = f"{m['dst']}/{m['dst_len']}"
            if m["type"] == RTM_DELROUTE:
                kernel.pop(p, None)
            else:
                kernel[p] = m["gateway"]
        st.complete(b, {})
    assert kernel == want
    assert st.counts()["wanted"] == len(want)
    assert sum(st.nexthop_refs(i)[0] for i in ids.values()) == len(want)
    assert sum(st.nexthop_refs(i)[1] for i in ids.values()) == len(kernel)
