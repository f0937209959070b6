"""Throughput benchmarks of the kbgp UPDATE codec, with ExaBGP on the same bytes.

Run from the repository root after building the extension in place:

    python3 setup.py build_ext --inplace -q
    python3 -m pytest bench -p no:cacheprovider --benchmark-only

Every input is built once per module, outside the timed code.  The big
benchmarks use ``benchmark.pedantic(rounds=5, iterations=1, warmup_rounds=1)``;
the per-UPDATE attribute benchmarks are short, so they take more rounds.  Rates
are computed from the median round and stored in ``benchmark.extra_info`` and in
the session ``rates`` dict that bench/conftest.py prints at the end.

ExaBGP is only the comparison target: it is imported here, never by kbgp.
"""

import pytest

from kbgp._fast.attrs import (
    AttrTable,
    DecodeContext,
    PathAttributes,
    decode_update,
    encode_attributes,
    encode_updates,
    mp_next_hop_bytes,
)
from kbgp._fast.wire import Framer, PrefixArray

UPDATE = 2
MAX_SIZE = 4096

V4_COUNT = 1_000_000
V4_FIRST = "10.0.0.0/24"
V6_COUNT = 200_000
V6_FIRST = "2a00::/48"
ATTR_MSGS = 10_000
EXABGP_MSGS = 100  # fixed subset of the IPv4 messages decoded by ExaBGP

# The goals stated in the issue (reported, not asserted: they depend on the machine).
GOAL_DECODE_V4 = 100e6  # prefixes/s
GOAL_ENCODE_V4 = 50e6  # prefixes/s
GOAL_ATTR_NS = 1000.0  # ns per UPDATE, shared attribute set

BIG = dict(rounds=5, iterations=1, warmup_rounds=1)
SMALL = dict(rounds=20, iterations=1, warmup_rounds=2)


def simple_v4_attrs():
    """ORIGIN igp, AS_PATH [65001], NEXT_HOP 192.0.2.1."""
    return PathAttributes(origin=0, as_path=((2, (65001,)),), next_hop="192.0.2.1")


def typical_ebgp_attrs(med=100):
    """ORIGIN, AS_PATH of 3 ASNs, NEXT_HOP, MED, 2 COMMUNITIES, 1 LARGE_COMMUNITY."""
    return PathAttributes(
        origin=0,
        as_path=((2, (65001, 65002, 65003)),),
        next_hop="192.0.2.1",
        med=med,
        communities=("65001:100", "65001:200"),
        large_communities=("65001:1:1",),
    )


def update_bodies(stream):
    """Frame a byte stream once; every message must be an UPDATE."""
    msgs = Framer(MAX_SIZE).messages(stream)
    assert all(t == UPDATE for t, _ in msgs)
    return [body for _, body in msgs]


def median_seconds(benchmark):
    """Median wall time of one round, or None when benchmarking is disabled."""
    stats = getattr(benchmark, "stats", None)
    if stats is None:
        return None
    return stats.stats.median


def record_rate(benchmark, rates, key, count, goal=None):
    """Store count / median-round-time; returns the rate (None if not measured)."""
    med = median_seconds(benchmark)
    if med is None or med <= 0:
        return None
    rate = count / med
    benchmark.extra_info["prefixes"] = count
    benchmark.extra_info["prefixes_per_s"] = rate
    benchmark.extra_info["M_prefixes_per_s"] = round(rate / 1e6, 3)
    if goal is not None:
        benchmark.extra_info["goal_prefixes_per_s"] = goal
        benchmark.extra_info["goal_met"] = rate >= goal
    rates[key] = rate
    return rate


# ----------------------------------------------------------------------------- inputs


@pytest.fixture(scope="module")
def v4_prefixes():
    p = PrefixArray.sequence(V4_FIRST, V4_COUNT)
    assert len(p) == V4_COUNT
    return p


@pytest.fixture(scope="module")
def v4_stream(v4_prefixes):
    """1,000,000 /24s of one attribute set, packed into 4096-byte UPDATEs."""
    return encode_updates(
        announce=v4_prefixes, attrs=encode_attributes(simple_v4_attrs()), max_size=MAX_SIZE
    )


@pytest.fixture(scope="module")
def v4_bodies(v4_stream):
    return update_bodies(v4_stream)


@pytest.fixture(scope="module")
def v6_bodies():
    """200,000 /48s in MP_REACH_NLRI, 4096-byte UPDATEs."""
    prefixes = PrefixArray.sequence(V6_FIRST, V6_COUNT)
    assert len(prefixes) == V6_COUNT
    attrs = PathAttributes(origin=0, as_path=((2, (65001,)),), mp_next_hop=("2001:db8::1",))
    stream = encode_updates(
        announce=prefixes,
        attrs=encode_attributes(attrs),
        mp_next_hop=mp_next_hop_bytes(["2001:db8::1"]),
        max_size=MAX_SIZE,
    )
    return update_bodies(stream)


def one_prefix_bodies(attrs_for):
    """ATTR_MSGS UPDATE bodies, one distinct /24 each; attrs_for(i) -> attribute bytes."""
    prefixes = PrefixArray.sequence(V4_FIRST, ATTR_MSGS)
    bodies = []
    for i in range(ATTR_MSGS):
        one = PrefixArray.from_strings([prefixes.prefix(i)])
        (body,) = update_bodies(encode_updates(announce=one, attrs=attrs_for(i)))
        bodies.append(body)
    assert len(set(bodies)) == ATTR_MSGS
    return bodies


@pytest.fixture(scope="module")
def shared_attr_bodies():
    shared = encode_attributes(typical_ebgp_attrs())
    return one_prefix_bodies(lambda i: shared)


@pytest.fixture(scope="module")
def distinct_attr_bodies():
    return one_prefix_bodies(lambda i: encode_attributes(typical_ebgp_attrs(med=i)))


# ----------------------------------------------------------------------------- ExaBGP


def exabgp_negotiated():
    """A Negotiated for an eBGP IPv4/IPv6 unicast session, 4-octet AS on both sides.

    Built the way ExaBGP builds one for a live peer: two OPENs whose
    capabilities come from ``Capabilities().new(neighbor, ...)``, given to
    ``Negotiated.sent`` and ``Negotiated.received``.  Extended messages are off so
    the negotiated message size is 4096, as for the kbgp side.
    """
    from exabgp.bgp.message import Open
    from exabgp.bgp.message.open import ASN, HoldTime, RouterID, Version
    from exabgp.bgp.message.open.capability import Capabilities, Negotiated
    from exabgp.bgp.neighbor import Neighbor
    from exabgp.environment import getenv
    from exabgp.logger import log
    from exabgp.protocol.family import AFI, SAFI

    # The daemon's default logging set-up: INFO level, 'parser' and 'routes'
    # debugging off, so the log.debug calls on the decode path return early.
    log.init(getenv())

    local_as, peer_as = 65000, 65001
    neighbor = Neighbor()
    neighbor["local-as"] = ASN(local_as)
    neighbor["peer-as"] = ASN(peer_as)
    neighbor["router-id"] = RouterID("192.0.2.254")
    neighbor["capability"]["asn4"] = True
    neighbor["capability"]["extended-message"] = False
    neighbor._families = [(AFI.ipv4, SAFI.unicast), (AFI.ipv6, SAFI.unicast)]

    def open_from(asn, router_id):
        capabilities = Capabilities().new(neighbor, False, local_as=asn)
        return Open(Version(4), ASN(asn), HoldTime(180), RouterID(router_id), capabilities)

    negotiated = Negotiated(neighbor)
    negotiated.sent(open_from(local_as, "192.0.2.254"))
    negotiated.received(open_from(peer_as, "192.0.2.1"))
    assert negotiated.asn4
    assert negotiated.local_as != negotiated.peer_as
    assert (AFI.ipv4, SAFI.unicast) in negotiated.families
    assert negotiated.msg_size == MAX_SIZE
    return negotiated


# ----------------------------------------------------------------------------- 1. decode


@pytest.mark.benchmark(group="decode-ipv4")
def test_decode_v4_kbgp(benchmark, v4_bodies, rates):
    """decode_update over every pre-framed body, one DecodeContext and AttrTable."""
    ctx = DecodeContext()
    table = AttrTable()

    def run():
        total = 0
        for body in v4_bodies:
            total += len(decode_update(body, ctx, table).nlri)
        return total

    assert benchmark.pedantic(run, **BIG) == V4_COUNT
    assert len(table) == 1
    benchmark.extra_info["messages"] = len(v4_bodies)
    record_rate(benchmark, rates, "decode_v4_kbgp", V4_COUNT, GOAL_DECODE_V4)


@pytest.mark.benchmark(group="decode-ipv4")
def test_decode_v4_framed_kbgp(benchmark, v4_stream, rates):
    """Framer over the whole byte stream, then decode_update of each UPDATE."""
    ctx = DecodeContext()
    table = AttrTable()

    def run():
        framer = Framer(MAX_SIZE)
        framer.feed(v4_stream)
        total = 0
        while True:
            msg = framer.next_message()
            if msg is None:
                break
            total += len(decode_update(msg[1], ctx, table).nlri)
        assert framer.buffered == 0
        return total

    assert benchmark.pedantic(run, **BIG) == V4_COUNT
    benchmark.extra_info["stream_bytes"] = len(v4_stream)
    record_rate(benchmark, rates, "decode_v4_framed_kbgp", V4_COUNT, GOAL_DECODE_V4)


# ----------------------------------------------------------------------------- 2. ExaBGP


@pytest.mark.benchmark(group="decode-ipv4")
def test_decode_v4_exabgp(benchmark, v4_bodies, rates):
    """ExaBGP's Update.unpack_message on the first EXABGP_MSGS of the same bodies."""
    from exabgp.bgp.message import Update
    from exabgp.bgp.message.direction import Direction

    negotiated = exabgp_negotiated()
    subset = v4_bodies[:EXABGP_MSGS]
    expected = sum(len(decode_update(body).nlri) for body in subset)

    # Once, untimed: ExaBGP reads the same routes as kbgp from these bytes.
    first = Update.unpack_message(subset[0], Direction.IN, negotiated)
    last = Update.unpack_message(subset[-1], Direction.IN, negotiated)
    assert first.nlris[0].cidr.prefix() == decode_update(subset[0]).nlri.prefix(0)
    last_kbgp = decode_update(subset[-1]).nlri
    assert last.nlris[-1].cidr.prefix() == last_kbgp.prefix(len(last_kbgp) - 1)
    assert str(first.nlris[0].nexthop) == "192.0.2.1"

    def run():
        total = 0
        for body in subset:
            total += len(Update.unpack_message(body, Direction.IN, negotiated).nlris)
        return total

    assert benchmark.pedantic(run, **BIG) == expected
    benchmark.extra_info["messages"] = len(subset)
    exa = record_rate(benchmark, rates, "decode_v4_exabgp", expected)
    kbgp = rates.get("decode_v4_kbgp")
    if exa and kbgp:
        benchmark.extra_info["kbgp_prefixes_per_s"] = kbgp
        benchmark.extra_info["ratio_kbgp_over_exabgp"] = kbgp / exa


# ----------------------------------------------------------------------------- 3. encode


@pytest.mark.benchmark(group="encode-ipv4")
def test_encode_v4_kbgp(benchmark, v4_prefixes, rates):
    """encode_attributes + encode_updates of 1,000,000 /24s into 4096-byte UPDATEs."""
    attrs = simple_v4_attrs()

    def run():
        return encode_updates(announce=v4_prefixes, attrs=encode_attributes(attrs),
                              max_size=MAX_SIZE)

    out = benchmark.pedantic(run, **BIG)

    # Once, untimed: the output frames and decodes back to the same prefixes.
    decoded = None
    total = 0
    for body in update_bodies(out):
        u = decode_update(body)
        assert u.attrs == attrs and not u.errors
        total += len(u.nlri)
        decoded = u.nlri if decoded is None else decoded.concat(u.nlri)
    assert total == V4_COUNT
    assert decoded == v4_prefixes
    benchmark.extra_info["bytes_out"] = len(out)
    record_rate(benchmark, rates, "encode_v4_kbgp", V4_COUNT, GOAL_ENCODE_V4)


# ----------------------------------------------------------------------------- 4. attributes


def attr_benchmark(benchmark, bodies, rates, key, expect_sets):
    """decode_update of ATTR_MSGS one-prefix UPDATEs, fresh AttrTable each round."""

    # Once, untimed: check the interning outcome the benchmark is meant to measure.
    table = AttrTable()
    ids = [decode_update(body, DecodeContext(), table).attr_id for body in bodies]
    assert len(table) == expect_sets and len(set(ids)) == expect_sets and min(ids) >= 0

    def fresh():
        return (DecodeContext(), AttrTable()), {}

    def run(ctx, table):
        n = 0
        for body in bodies:
            n += len(decode_update(body, ctx, table).nlri)
        return n

    assert benchmark.pedantic(run, setup=fresh, **SMALL) == ATTR_MSGS
    med = median_seconds(benchmark)
    if med:
        ns = med / ATTR_MSGS * 1e9
        benchmark.extra_info["updates"] = ATTR_MSGS
        benchmark.extra_info["attribute_sets"] = expect_sets
        benchmark.extra_info["ns_per_update"] = ns
        benchmark.extra_info["goal_ns_per_update"] = GOAL_ATTR_NS
        benchmark.extra_info["goal_met"] = ns < GOAL_ATTR_NS
        rates[key] = ns


@pytest.mark.benchmark(group="attributes-per-update")
def test_attrs_shared_set_kbgp(benchmark, shared_attr_bodies, rates):
    """10,000 UPDATEs, one typical eBGP attribute set: interning hits after the first."""
    attr_benchmark(benchmark, shared_attr_bodies, rates, "attrs_hot_ns", 1)


@pytest.mark.benchmark(group="attributes-per-update")
def test_attrs_distinct_sets_kbgp(benchmark, distinct_attr_bodies, rates):
    """10,000 UPDATEs, a different MED each: every UPDATE misses the interning cache."""
    attr_benchmark(benchmark, distinct_attr_bodies, rates, "attrs_cold_ns", ATTR_MSGS)


# ----------------------------------------------------------------------------- 5. IPv6


@pytest.mark.benchmark(group="decode-ipv6")
def test_decode_v6_kbgp(benchmark, v6_bodies, rates):
    """decode_update of 200,000 /48s carried in MP_REACH_NLRI."""
    ctx = DecodeContext()
    table = AttrTable()

    def run():
        total = 0
        for body in v6_bodies:
            total += len(decode_update(body, ctx, table).mp_nlri)
        return total

    assert benchmark.pedantic(run, **BIG) == V6_COUNT
    first = decode_update(v6_bodies[0]).mp_nlri
    last = decode_update(v6_bodies[-1]).mp_nlri
    assert first.prefix(0) == V6_FIRST
    assert last.prefix(len(last) - 1) == PrefixArray.sequence(V6_FIRST, V6_COUNT).prefix(
        V6_COUNT - 1)
    benchmark.extra_info["messages"] = len(v6_bodies)
    record_rate(benchmark, rates, "decode_v6_kbgp", V6_COUNT)
