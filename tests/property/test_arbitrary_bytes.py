"""Decoding arbitrary bytes raises only BgpError.

Never IndexError, struct.error, ValueError, MemoryError, OverflowError or a
crash: random streams through the Framer, random bodies through every
decoder (UPDATE under every DecodeContext, with and without an AttrTable),
and valid messages with bytes flipped, inserted and deleted.  Sized to run
in well under 60 s on two cores.
"""
from __future__ import annotations

import itertools

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from kbgp.bgp.constants import Handling
from kbgp.bgp.messages import (
    ExtendedNextHopCap,
    FourOctetAsCap,
    GracefulRestartCap,
    MultiprotocolCap,
    Open,
    RouteRefreshCap,
    UnknownCap,
)
from kbgp.errors import BgpError
from kbgp._fast.attrs import (
    AttrTable,
    DecodeContext,
    PathAttributes,
    decode_message,
    decode_update,
    encode_attributes,
    encode_end_of_rib,
    encode_updates,
    mp_next_hop_bytes,
)
from kbgp._fast.wire import (
    KEEPALIVE,
    Framer,
    PrefixArray,
    decode_keepalive,
    decode_nlri,
    decode_notification,
    decode_open,
    decode_route_refresh,
    encode_notification,
    encode_open,
    encode_route_refresh,
    shutdown_communication,
    split_message,
)

COMMON = dict(database=None, deadline=None,
              suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])

CONTEXTS = [DecodeContext(asn4=a, ibgp=i, ipv4=v4, ipv6=v6)
            for a, i, v4, v6 in itertools.product([True, False], repeat=4)]


def check_error(exc: BgpError) -> None:
    assert isinstance(exc, BgpError)
    assert 1 <= exc.code <= 8
    assert 0 <= exc.subcode <= 255
    assert isinstance(exc.data, bytes)
    assert isinstance(exc.handling, Handling)
    str(exc)


def check_update(u, table=None) -> None:
    """What must hold of every Update the decoder returns."""
    strongest = max((e[2] for e in u.errors), default=0)
    assert u.handling == strongest, (u.handling, u.errors)
    if u.errors:
        assert u.error is not None and u.error[2] == u.handling
    else:
        assert u.error is None
    assert u.treat_as_withdraw == (u.handling >= Handling.TREAT_AS_WITHDRAW)
    for code, subcode, handling, attr, reason in u.errors:
        assert code == 3 and 0 <= subcode <= 11
        assert Handling.NONE < handling < Handling.SESSION_RESET
        assert 0 <= attr <= 255 and isinstance(reason, str)
    assert u.announced_count() == len(u.announced())
    assert u.withdrawn_count() == len(u.withdrawn_prefixes())
    u.to_dict()
    if u.attrs is not None:
        u.attrs.to_dict()
        hash(u.attrs)
        assert u.attrs == u.attrs
    if table is not None and u.attr_id >= 0:
        assert table[u.attr_id] == u.attrs
        assert u.handling < Handling.TREAT_AS_WITHDRAW


def decode_any(mtype: int, body: bytes, ctx=None, table=None):
    try:
        value = decode_message(mtype, body, ctx, table)
    except BgpError as exc:
        check_error(exc)
        return None
    if mtype == 2:
        check_update(value, table)
    elif value is not None:
        value.to_dict()
    return value


# ----------------------------------------------------------------- streams

def header_like(draw_len, draw_type):
    return st.builds(lambda n, t, rest: b"\xff" * 16 + n.to_bytes(2, "big") + bytes([t]) + rest,
                     draw_len, draw_type, st.binary(max_size=120))


STREAM_PIECES = st.one_of(
    st.binary(max_size=64),
    header_like(st.integers(0, 0xFFFF), st.integers(0, 255)),
    header_like(st.integers(19, 140), st.integers(1, 5)),
    st.just(KEEPALIVE),
)


@settings(**COMMON, max_examples=700)
@given(pieces=st.lists(STREAM_PIECES, max_size=8), max_size=st.sampled_from([4096, 65535]),
       data=st.data())
def test_framer_random_stream(pieces, max_size, data):
    stream = b"".join(pieces)
    cuts = sorted(set(data.draw(st.lists(st.integers(0, len(stream)), max_size=6))))
    framer = Framer(max_size)
    last = 0
    for c in cuts + [len(stream)]:
        framer.feed(stream[last:c])
        last = c
        while True:
            try:
                m = framer.next_message()
            except BgpError as exc:
                check_error(exc)
                assert exc.code == 1
                if not framer.synchronized:
                    # Framing lost: every later call repeats the error.
                    try:
                        framer.next_message()
                    except BgpError as again:
                        assert (again.code, again.subcode) == (exc.code, exc.subcode)
                    else:
                        raise AssertionError("an unsynchronized Framer returned a message")
                    return
                continue
            if m is None:
                break
            mtype, body = m
            assert 1 <= mtype <= 5
            decode_any(mtype, body)
    assert framer.buffered >= 0


@settings(**COMMON, max_examples=500)
@given(raw=st.binary(max_size=200), max_size=st.sampled_from([4096, 65535]))
def test_split_message_random(raw, max_size):
    try:
        mtype, body = split_message(raw, max_size)
    except BgpError as exc:
        check_error(exc)
        return
    assert 1 <= mtype <= 5 and 19 + len(body) == len(raw)


# ---------------------------------------------------------------- decoders

@settings(**COMMON, max_examples=700)
@given(body=st.one_of(
    st.binary(max_size=120),
    # Plausible fixed part (version 4, non-zero AS and id), random parameters.
    st.builds(lambda asn, hold, rest: b"\x04" + asn.to_bytes(2, "big") + hold.to_bytes(2, "big")
              + b"\xc0\x00\x02\x01" + rest,
              st.integers(0, 0xFFFF), st.integers(0, 0xFFFF), st.binary(max_size=120)),
    st.builds(lambda rest, n: b"\x04\xfd\xe9\x00\x5a\xc0\x00\x02\x01" + bytes([n]) + rest,
              st.binary(max_size=120), st.sampled_from([255, 0, 2, 6])),
))
def test_decode_open_random(body):
    try:
        msg = decode_open(body)
    except BgpError as exc:
        check_error(exc)
        return
    msg.to_dict()
    assert msg.version == 4


@settings(**COMMON, max_examples=500)
@given(body=st.one_of(st.binary(max_size=80),
                      st.builds(lambda sub, rest: bytes([6, sub]) + rest, st.integers(0, 10),
                                st.binary(max_size=80))))
def test_decode_notification_random(body):
    try:
        msg = decode_notification(body)
    except BgpError as exc:
        check_error(exc)
        assert len(body) < 2
        return
    msg.to_dict()
    assert msg.data == body[2:]


@settings(**COMMON, max_examples=300)
@given(body=st.binary(max_size=12))
def test_decode_route_refresh_and_keepalive_random(body):
    for decoder in (decode_route_refresh, decode_keepalive):
        try:
            decoder(body).to_dict()
        except BgpError as exc:
            check_error(exc)


@settings(**COMMON, max_examples=500)
@given(afi=st.sampled_from([1, 2]), data=st.binary(max_size=100))
def test_decode_nlri_random(afi, data):
    try:
        arr = decode_nlri(afi, data)
    except BgpError as exc:
        check_error(exc)
        assert (exc.code, exc.subcode) == (3, 10)
        return
    assert arr.afi == afi
    assert arr.to_strings() == decode_nlri(afi, arr.nlri_bytes()).to_strings()


def attribute(flags, code, value):
    if flags & 0x10:
        return bytes([flags, code]) + len(value).to_bytes(2, "big") + value
    return bytes([flags, code, len(value) & 0xFF]) + value


ATTR_CODES = st.one_of(st.integers(0, 255), st.sampled_from([1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 14, 15,
                                                            16, 17, 18, 25, 32]))
RANDOM_ATTRIBUTE = st.builds(attribute, st.integers(0, 255), ATTR_CODES, st.binary(max_size=40))
# UPDATE bodies whose outer lengths are right, filled with random attributes and NLRI.
STRUCTURED_UPDATE = st.builds(
    lambda wd, attrs, nlri: (len(wd).to_bytes(2, "big") + wd
                             + len(attrs).to_bytes(2, "big") + attrs + nlri),
    st.binary(max_size=20),
    st.lists(RANDOM_ATTRIBUTE, max_size=6).map(b"".join),
    st.binary(max_size=20),
)


@settings(**COMMON, max_examples=500)
@given(body=st.one_of(st.binary(max_size=120), STRUCTURED_UPDATE))
def test_decode_update_random_every_context(body):
    for ctx in CONTEXTS:
        for table in (None, AttrTable()):
            try:
                u = decode_update(body, ctx, table)
            except BgpError as exc:
                check_error(exc)
                assert exc.code in (1, 3)
                continue
            check_update(u, table)
            if table is not None:
                # The second decode of the same bytes may come from the cache: same outcome.
                again = decode_update(body, ctx, table)
                assert again.errors == u.errors and again.handling == u.handling
                assert again.attrs == u.attrs and again.attr_id == u.attr_id


@settings(**COMMON, max_examples=400)
@given(mtype=st.integers(0, 255), body=st.binary(max_size=60))
def test_decode_message_any_type(mtype, body):
    decode_any(mtype, body)


# ------------------------------------------------------------------ mutants

def _seed_messages() -> list[bytes]:
    pa = PathAttributes(
        origin=0, as_path=((2, (65001, 4200000000)), (1, (7, 8))), next_hop="192.0.2.1", med=10,
        local_pref=100, atomic_aggregate=True, aggregator=(4200000000, "192.0.2.9"),
        communities=("65000:1", "no-export"), originator_id="192.0.2.2",
        cluster_list=("192.0.2.3",),
        extended_communities=(bytes(range(8)),), ipv6_extended_communities=(bytes(range(20)),),
        large_communities=((4200000000, 1, 2),), unknown=((0xC0, 200, b"opaque"),))
    v4 = PrefixArray.from_strings(["10.0.0.0/8", "192.0.2.0/24", "0.0.0.0/0", "198.51.100.7/32"])
    v6 = PrefixArray.from_strings(["2001:db8::/32", "::/0", "2001:db8:1::1/128"])
    seeds = [
        KEEPALIVE,
        encode_route_refresh(1, 1), encode_route_refresh(2, 1, 2),
        encode_notification(6, 2, shutdown_communication("maintenance")),
        encode_notification(3, 1, b"\x01\x02"),
        encode_open(Open(65001, 90, "192.0.2.1", (
            MultiprotocolCap(1, 1), MultiprotocolCap(2, 1), RouteRefreshCap(),
            FourOctetAsCap(65001),
            GracefulRestartCap(True, True, 120, ((1, 1, True),)),
            ExtendedNextHopCap(((1, 1, 2),)), UnknownCap(99, b"x")))),
        encode_open(Open(23456, 0, "192.0.2.1",
                         tuple(UnknownCap(200 + k % 50, bytes(20)) for k in range(15))
                         + (FourOctetAsCap(4200000000),))),
        encode_updates(v4, encode_attributes(pa)),
        encode_updates(v4, encode_attributes(pa, asn4=False)),
        encode_updates(v6, encode_attributes(pa.replace(next_hop=None)), withdraw=v6,
                       mp_next_hop=mp_next_hop_bytes(["2001:db8::1", "fe80::1"])),
        encode_updates(v4, encode_attributes(pa.replace(next_hop=None)),
                       mp_next_hop=mp_next_hop_bytes(["2001:db8::1"])),
        encode_updates(withdraw=v4),
        encode_end_of_rib(1, 1), encode_end_of_rib(2, 1),
    ]
    return seeds


SEEDS = _seed_messages()

MUTATION = st.tuples(st.sampled_from(["flip", "set", "insert", "delete", "truncate"]),
                     st.integers(0, 1 << 16), st.integers(0, 255))


def mutate(msg: bytes, ops) -> bytes:
    b = bytearray(msg)
    for op, where, value in ops:
        if op == "insert":
            b.insert(where % (len(b) + 1), value)
            continue
        if not b:
            continue
        i = where % len(b)
        if op == "flip":
            b[i] ^= 1 << (value % 8)
        elif op == "set":
            b[i] = value
        elif op == "delete":
            del b[i]
        else:
            del b[i:]
    return bytes(b)


@st.composite
def generated_updates(draw):
    """Valid UPDATEs built from hypothesis-chosen values, for mutation."""
    asn = st.integers(1, 0xFFFFFFFF)
    pa = PathAttributes(
        origin=draw(st.integers(0, 2)),
        as_path=tuple(draw(st.lists(st.tuples(st.sampled_from([1, 2]),
                                              st.lists(asn, min_size=1, max_size=5).map(tuple)),
                                    max_size=3))),
        next_hop="192.0.2.1",
        med=draw(st.none() | st.integers(0, 0xFFFFFFFF)),
        communities=tuple(draw(st.lists(st.integers(0, 0xFFFFFFFF), max_size=3))),
        aggregator=draw(st.none() | st.tuples(asn, st.just("192.0.2.5"))),
        large_communities=tuple(draw(st.lists(st.tuples(asn, asn, asn), max_size=2))),
        unknown=tuple(draw(st.lists(
            st.tuples(st.just(0xC0), st.integers(100, 120), st.binary(max_size=8)),
            max_size=2, unique_by=lambda t: t[1]))),
    )
    v4 = PrefixArray.from_strings(draw(st.lists(st.sampled_from(
        ["10.0.0.0/8", "10.1.0.0/16", "192.0.2.0/24", "0.0.0.0/0", "203.0.113.9/32"]),
        min_size=1, max_size=5)))
    return encode_updates(v4, encode_attributes(pa, asn4=draw(st.booleans())))


@settings(**COMMON, max_examples=1000)
@given(msg=st.one_of(st.sampled_from(SEEDS), generated_updates()),
       ops=st.lists(MUTATION, min_size=1, max_size=5), ctx=st.sampled_from(CONTEXTS),
       use_table=st.booleans())
def test_mutated_bodies(msg, ops, ctx, use_table):
    # Keep the header, mutate the body, decode as the original type.
    mtype = msg[18]
    body = mutate(msg[19:], ops)
    decode_any(mtype, body, ctx, AttrTable() if use_table else None)


@settings(**COMMON, max_examples=800)
@given(msgs=st.lists(st.sampled_from(SEEDS), min_size=1, max_size=4),
       ops=st.lists(MUTATION, min_size=1, max_size=4), ctx=st.sampled_from(CONTEXTS))
def test_mutated_streams(msgs, ops, ctx):
    # Mutations anywhere, header included, through the Framer.
    framer = Framer(65535)
    framer.feed(mutate(b"".join(msgs), ops))
    table = AttrTable()
    while True:
        try:
            m = framer.next_message()
        except BgpError as exc:
            check_error(exc)
            if not framer.synchronized:
                return
            continue
        if m is None:
            return
        decode_any(m[0], m[1], ctx, table)
