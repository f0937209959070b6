# cython: language_level=3
"""UPDATE messages: path attributes (RFC 4271, 1997, 4360, 4456, 4760, 5701,
6793, 8092, 8950), RFC 7606 revised error handling, attribute interning and
packed encoding.

Decoding walks the attribute headers first (locating MP_REACH_NLRI and
MP_UNREACH_NLRI and catching framing faults), then, when an AttrTable is
given, looks the attribute bytes up in a cache keyed by those bytes: a repeated
attribute set costs one dictionary lookup and no value parsing.  Prefixes go
straight from the wire into PrefixArray C arrays.
"""
from libc.stdint cimport uint8_t, uint16_t, uint32_t, uint64_t
from libc.string cimport memcmp, memcpy, memmove, memset
from libc.stdlib cimport malloc, free
from cpython.bytes cimport PyBytes_FromStringAndSize, PyBytes_AS_STRING, PyBytes_GET_SIZE
from cpython.dict cimport PyDict_GetItem
from cpython.object cimport PyObject

from kbgp._fast.wire cimport PrefixArray, rd16, rd32, wr16, wr32, decode_nlri_into, ipv4_str, ipv6_str

import ipaddress

from kbgp.bgp.constants import (
    AS_TRANS, MAX_MESSAGE_LEN, WELL_KNOWN_COMMUNITIES, WELL_KNOWN_COMMUNITY_VALUES,
    AsPathSegment, AttrCode, ErrorCode, Handling, MsgType, UpdateError,
)
from kbgp.bgp.messages import family_name
from kbgp.errors import bgp_error
from kbgp._fast import wire as _wire

# Handling, as C ints (weakest first).
cdef enum:
    H_NONE = 0
    H_DISCARD = 1
    H_TAW = 2
    H_AFI_SAFI_DISABLE = 3
    H_RESET = 4

cdef enum:
    F_OPTIONAL = 0x80
    F_TRANSITIVE = 0x40
    F_PARTIAL = 0x20
    F_EXTLEN = 0x10

# Attribute codes used in C code paths.
cdef enum:
    A_ORIGIN = 1
    A_AS_PATH = 2
    A_NEXT_HOP = 3
    A_MED = 4
    A_LOCAL_PREF = 5
    A_ATOMIC_AGGREGATE = 6
    A_AGGREGATOR = 7
    A_COMMUNITIES = 8
    A_ORIGINATOR_ID = 9
    A_CLUSTER_LIST = 10
    A_MP_REACH = 14
    A_MP_UNREACH = 15
    A_EXT_COMMUNITIES = 16
    A_AS4_PATH = 17
    A_AS4_AGGREGATOR = 18
    A_IPV6_EXT_COMMUNITIES = 25
    A_LARGE_COMMUNITY = 32

# Subcodes (RFC 4271 section 6.3).
cdef enum:
    E_MALFORMED_ATTR_LIST = 1
    E_UNRECOGNIZED_WELL_KNOWN = 2
    E_MISSING_WELL_KNOWN = 3
    E_ATTR_FLAGS = 4
    E_ATTR_LENGTH = 5
    E_INVALID_ORIGIN = 6
    E_INVALID_NEXT_HOP = 8
    E_OPTIONAL_ATTR = 9
    E_INVALID_NETWORK = 10
    E_MALFORMED_AS_PATH = 11

DEF MAX_ERRORS = 16

_HANDLING = [Handling(i) for i in range(5)]
_ORIGIN_NAMES = ("igp", "egp", "incomplete")
_SEGMENT_NAMES = {1: "as-set", 2: "as-sequence", 3: "as-confed-sequence", 4: "as-confed-set"}
_ATTR_KEYS = {
    1: "origin", 2: "as_path", 3: "next_hop", 4: "med", 5: "local_pref", 6: "atomic_aggregate",
    7: "aggregator", 8: "communities", 9: "originator_id", 10: "cluster_list", 14: "mp_next_hop",
    16: "extended_communities", 17: "as4_path", 18: "as4_aggregator",
    25: "ipv6_extended_communities", 32: "large_communities",
}

# Expected Optional/Transitive bits of the attributes kbgp knows (RFC 4271 5, and each attribute's RFC).
cdef uint8_t[256] EXPECTED_FLAGS
cdef bint[256] KNOWN
memset(EXPECTED_FLAGS, 0, sizeof(EXPECTED_FLAGS))
memset(KNOWN, 0, sizeof(KNOWN))
for _c, _f in ((A_ORIGIN, F_TRANSITIVE), (A_AS_PATH, F_TRANSITIVE), (A_NEXT_HOP, F_TRANSITIVE),
               (A_MED, F_OPTIONAL), (A_LOCAL_PREF, F_TRANSITIVE), (A_ATOMIC_AGGREGATE, F_TRANSITIVE),
               (A_AGGREGATOR, F_OPTIONAL | F_TRANSITIVE), (A_COMMUNITIES, F_OPTIONAL | F_TRANSITIVE),
               (A_ORIGINATOR_ID, F_OPTIONAL), (A_CLUSTER_LIST, F_OPTIONAL), (A_MP_REACH, F_OPTIONAL),
               (A_MP_UNREACH, F_OPTIONAL), (A_EXT_COMMUNITIES, F_OPTIONAL | F_TRANSITIVE),
               (A_AS4_PATH, F_OPTIONAL | F_TRANSITIVE), (A_AS4_AGGREGATOR, F_OPTIONAL | F_TRANSITIVE),
               (A_IPV6_EXT_COMMUNITIES, F_OPTIONAL | F_TRANSITIVE),
               (A_LARGE_COMMUNITY, F_OPTIONAL | F_TRANSITIVE)):
    EXPECTED_FLAGS[_c] = _f
    KNOWN[_c] = True


# ------------------------------------------------------------------ context

cdef class DecodeContext:
    """What an UPDATE's meaning depends on: the session's negotiated
    capabilities and whether the peer is internal (RFC 7606 treats some
    attributes differently on iBGP)."""

    cdef public bint asn4
    cdef public bint ibgp
    cdef public bint ipv4
    cdef public bint ipv6
    cdef public int max_as_path

    def __init__(self, bint asn4=True, bint ibgp=False, bint ipv4=True, bint ipv6=True,
                 int max_as_path=1000):
        self.asn4 = asn4
        self.ibgp = ibgp
        self.ipv4 = ipv4
        self.ipv6 = ipv6
        self.max_as_path = max_as_path

    cdef inline int flags(self):
        return (self.asn4 | (self.ibgp << 1) | (self.ipv4 << 2) | (self.ipv6 << 3))

    def __repr__(self):
        return (f"DecodeContext(asn4={self.asn4}, ibgp={self.ibgp}, ipv4={self.ipv4}, "
                f"ipv6={self.ipv6}, max_as_path={self.max_as_path})")


# ---------------------------------------------------------- path attributes

cdef class PathAttributes:
    """One decoded, immutable set of path attributes (everything but the NLRI).

    ``as_path`` is a tuple of (segment type, tuple of ASNs) with 4-octet ASNs
    (after the RFC 6793 merge); ``mp_next_hop`` is a tuple of address strings
    (global, then link-local).  Absent attributes are None (scalars) or empty
    tuples (lists).  Equal sets compare and hash equal, so they intern to one
    id in an AttrTable.
    """

    cdef readonly int origin
    cdef readonly object as_path
    cdef readonly object next_hop
    cdef readonly object med
    cdef readonly object local_pref
    cdef readonly bint atomic_aggregate
    cdef readonly object aggregator
    cdef readonly tuple communities
    cdef readonly object originator_id
    cdef readonly tuple cluster_list
    cdef readonly tuple mp_next_hop
    cdef readonly tuple extended_communities
    cdef readonly tuple ipv6_extended_communities
    cdef readonly tuple large_communities
    cdef readonly tuple unknown
    cdef object _key

    def __init__(self, origin=None, as_path=None, next_hop=None, med=None, local_pref=None,
                 atomic_aggregate=False, aggregator=None, communities=(), originator_id=None,
                 cluster_list=(), mp_next_hop=(), extended_communities=(),
                 ipv6_extended_communities=(), large_communities=(), unknown=()):
        self.origin = -1 if origin is None else int(origin)
        if self.origin > 2:
            raise ValueError(f"ORIGIN {origin} is not 0, 1 or 2")
        self.as_path = None if as_path is None else _canonical_path(
            [(int(t), tuple(int(a) for a in asns)) for t, asns in as_path])
        self.next_hop = None if next_hop is None else str(ipaddress.IPv4Address(next_hop))
        self.med = None if med is None else int(med)
        self.local_pref = None if local_pref is None else int(local_pref)
        self.atomic_aggregate = bool(atomic_aggregate)
        self.aggregator = None if aggregator is None else (
            int(aggregator[0]), str(ipaddress.IPv4Address(aggregator[1])))
        self.communities = tuple(parse_community(c) if isinstance(c, str) else int(c) for c in communities)
        self.originator_id = None if originator_id is None else str(ipaddress.IPv4Address(originator_id))
        self.cluster_list = tuple(str(ipaddress.IPv4Address(c)) for c in cluster_list)
        self.mp_next_hop = tuple(str(ipaddress.ip_address(a)) for a in mp_next_hop)
        self.extended_communities = tuple(bytes(e) for e in extended_communities)
        self.ipv6_extended_communities = tuple(bytes(e) for e in ipv6_extended_communities)
        self.large_communities = tuple(
            parse_large_community(c) if isinstance(c, str) else tuple(int(x) for x in c)
            for c in large_communities)
        self.unknown = tuple((int(f) & 0xe0, int(c), bytes(v)) for f, c, v in unknown)
        for f, c, _v in self.unknown:
            # Only optional transitive attributes are carried (non-transitive ones are dropped).
            if f & 0xc0 != 0xc0:
                raise ValueError(f"unknown attribute {c}: flags 0x{f:02x} are not optional transitive")
        for t, asns in self.as_path or ():
            if not asns or t < 1 or t > 4:
                raise ValueError(f"AS_PATH segment ({t}, {asns}) is empty or of an unknown type")
        self._key = None
        try:
            encode_attributes(self)  # validates every value fits its field
        except OverflowError as exc:
            raise ValueError(f"a path attribute value does not fit its field: {exc}") from None

    def replace(self, **changes):
        """A copy with some attributes changed (the policy engine's tool)."""
        fields = self.as_kwargs()
        fields.update(changes)
        return PathAttributes(**fields)

    def as_kwargs(self):
        return dict(
            origin=None if self.origin < 0 else self.origin, as_path=self.as_path,
            next_hop=self.next_hop, med=self.med, local_pref=self.local_pref,
            atomic_aggregate=self.atomic_aggregate, aggregator=self.aggregator,
            communities=self.communities, originator_id=self.originator_id,
            cluster_list=self.cluster_list, mp_next_hop=self.mp_next_hop,
            extended_communities=self.extended_communities,
            ipv6_extended_communities=self.ipv6_extended_communities,
            large_communities=self.large_communities, unknown=self.unknown)

    cpdef tuple key(self):
        """Every attribute's value in one tuple: equal sets have equal keys."""
        if self._key is None:
            self._key = (self.origin, self.as_path, self.next_hop, self.med, self.local_pref,
                         self.atomic_aggregate, self.aggregator, self.communities,
                         self.originator_id, self.cluster_list, self.mp_next_hop,
                         self.extended_communities, self.ipv6_extended_communities,
                         self.large_communities,
                         # The Partial bit is set whenever an unknown attribute is passed
                         # on, so it does not tell two sets apart.
                         tuple([(f | F_PARTIAL, c, v) for f, c, v in self.unknown])
                         if self.unknown else ())
        return self._key

    def __eq__(self, other):
        if not isinstance(other, PathAttributes):
            return NotImplemented
        return self.key() == (<PathAttributes>other).key()

    def __hash__(self):
        return hash(self.key())

    def __repr__(self):
        return f"PathAttributes({self.to_dict()})"

    def as_path_flat(self):
        """The AS path as one flat list of ASNs (sets flattened in order)."""
        out = []
        for _t, asns in (self.as_path or ()):
            out.extend(asns)
        return out

    def as_path_length(self):
        """RFC 4271 9.1.2.2 length: each AS_SET counts 1, confederation segments 0."""
        cdef int n = 0
        for t, asns in (self.as_path or ()):
            if t == AsPathSegment.AS_SEQUENCE:
                n += len(asns)
            elif t == AsPathSegment.AS_SET:
                n += 1
        return n

    def community_strings(self):
        return [community_str(c) for c in self.communities]

    def to_dict(self):
        d = {}
        if self.origin >= 0:
            d["origin"] = _ORIGIN_NAMES[self.origin]
        if self.as_path is not None:
            d["as_path"] = [{"type": _SEGMENT_NAMES.get(t, str(t)), "asns": list(a)} for t, a in self.as_path]
        if self.next_hop is not None:
            d["next_hop"] = self.next_hop
        if self.med is not None:
            d["med"] = self.med
        if self.local_pref is not None:
            d["local_pref"] = self.local_pref
        if self.atomic_aggregate:
            d["atomic_aggregate"] = True
        if self.aggregator is not None:
            d["aggregator"] = {"asn": self.aggregator[0], "address": self.aggregator[1]}
        if self.communities:
            d["communities"] = self.community_strings()
        if self.originator_id is not None:
            d["originator_id"] = self.originator_id
        if self.cluster_list:
            d["cluster_list"] = list(self.cluster_list)
        if self.mp_next_hop:
            d["mp_next_hop"] = list(self.mp_next_hop)
        if self.extended_communities:
            d["extended_communities"] = [e.hex() for e in self.extended_communities]
        if self.ipv6_extended_communities:
            d["ipv6_extended_communities"] = [e.hex() for e in self.ipv6_extended_communities]
        if self.large_communities:
            d["large_communities"] = [f"{a}:{b}:{c}" for a, b, c in self.large_communities]
        if self.unknown:
            d["unknown"] = [{"code": c, "flags": f, "hex": v.hex()} for f, c, v in self.unknown]
        return d


def community_str(uint32_t value):
    name = WELL_KNOWN_COMMUNITIES.get(value)
    if name is not None:
        return name
    return f"{value >> 16}:{value & 0xffff}"


def parse_community(str text):
    """'65000:1' or a well-known name ('no-export') -> the 32-bit value."""
    t = text.strip().lower()
    if t in WELL_KNOWN_COMMUNITY_VALUES:
        return WELL_KNOWN_COMMUNITY_VALUES[t]
    t = t.replace("_", "-")
    if t in WELL_KNOWN_COMMUNITY_VALUES:
        return WELL_KNOWN_COMMUNITY_VALUES[t]
    parts = t.split(":")
    if len(parts) == 2 and all(p.isdigit() for p in parts):
        hi, lo = int(parts[0]), int(parts[1])
        if hi <= 0xffff and lo <= 0xffff:
            return (hi << 16) | lo
    if t.isdigit() and int(t) <= 0xffffffff:
        return int(t)
    raise ValueError(f"bad community {text!r}: expected 'A:B' with A and B 0..65535, "
                     f"a 32-bit number, or a well-known name")


def parse_large_community(str text):
    """'a:b:c' (each 0..4294967295) -> (a, b, c)."""
    parts = text.strip().split(":")
    if len(parts) != 3 or not all(p.isdigit() and int(p) <= 0xffffffff for p in parts):
        raise ValueError(f"bad large community {text!r}: expected 'A:B:C' with 32-bit numbers")
    return tuple(int(p) for p in parts)


cdef bytes _mp_nh_bytes(nh):
    return b"".join([ipaddress.ip_address(a).packed for a in nh])


# ------------------------------------------------------------------ interning

cdef class AttrTable:
    """Interns attribute sets: each distinct PathAttributes gets a small
    integer id, and decoded wire bytes map straight to (id, outcome) so a
    repeated set is never parsed twice."""

    cdef list by_id
    cdef dict ids
    cdef dict raw
    cdef bytes last_key
    cdef tuple last_hit
    cdef public Py_ssize_t raw_limit

    def __init__(self, Py_ssize_t raw_limit=200000):
        self.by_id = []
        self.ids = {}
        self.raw = {}
        self.raw_limit = raw_limit

    cpdef int intern(self, PathAttributes attrs):
        cdef object i = self.ids.get(attrs)
        if i is None:
            i = len(self.by_id)
            self.by_id.append(attrs)
            self.ids[attrs] = i
        return i

    def __getitem__(self, int attr_id):
        return self.by_id[attr_id]

    def __len__(self):
        return len(self.by_id)

    @property
    def cached_encodings(self):
        return len(self.raw)


# ------------------------------------------------------------------- UPDATE

cdef class Update:
    """One decoded UPDATE.  Prefixes stay in PrefixArray C arrays.

    ``handling`` is the strongest RFC 7606 outcome among ``errors`` (each a
    tuple (code, subcode, handling, attribute code or 0, reason)).  With
    treat-as-withdraw, ``announced`` prefixes must be handled as withdrawn
    (``withdrawn_all()`` already includes them).
    """

    cdef readonly PrefixArray withdrawn
    cdef readonly PrefixArray nlri
    cdef readonly PrefixArray mp_withdrawn
    cdef readonly PrefixArray mp_nlri
    cdef readonly int mp_reach_safi
    cdef readonly int mp_unreach_safi
    cdef readonly PathAttributes attrs
    cdef readonly int attr_id
    cdef readonly int handling
    cdef readonly tuple errors
    cdef readonly object end_of_rib

    @property
    def treat_as_withdraw(self):
        return self.handling >= H_TAW

    def announced_count(self):
        return len(self.nlri) + (len(self.mp_nlri) if self.mp_nlri is not None else 0)

    def withdrawn_count(self):
        return len(self.withdrawn) + (len(self.mp_withdrawn) if self.mp_withdrawn is not None else 0)

    def announced(self):
        """Announced prefixes as strings, IPv4 NLRI then MP_REACH."""
        out = self.nlri.to_strings()
        if self.mp_nlri is not None:
            out += self.mp_nlri.to_strings()
        return out

    def withdrawn_prefixes(self):
        """Withdrawn prefixes as strings, IPv4 withdrawn routes then MP_UNREACH."""
        out = self.withdrawn.to_strings()
        if self.mp_withdrawn is not None:
            out += self.mp_withdrawn.to_strings()
        return out

    @property
    def error(self):
        """The strongest error (the first one of the strongest handling), or None."""
        best = None
        for e in self.errors:
            if best is None or e[2] > best[2]:
                best = e
        return best

    def to_dict(self):
        d = {"withdrawn": self.withdrawn_prefixes(), "announced": self.announced()}
        if self.attrs is not None:
            ad = self.attrs.to_dict()
            if ad:
                d["attributes"] = ad
        if self.end_of_rib is not None:
            d["end_of_rib"] = family_name(*self.end_of_rib)
        if self.errors:
            d["error"] = error_dict(self.error)
            d["errors"] = [error_dict(e) for e in self.errors]
        return d


def error_dict(e):
    code, subcode, handling, attr, reason = e
    d = {"code": code, "subcode": subcode, "handling": _HANDLING[handling].label, "reason": reason}
    if attr:
        d["attribute"] = attr
    return d


cdef struct Walk:
    # Where the MP attributes are, found by the header walk.
    Py_ssize_t reach_start      # value start, -1 when absent
    Py_ssize_t reach_end
    Py_ssize_t reach_nlri       # first NLRI byte inside MP_REACH
    Py_ssize_t reach_nh         # next hop start
    int reach_nh_len
    int reach_afi
    int reach_safi
    bint reach_ignored          # family not negotiated or not unicast: never parsed
    Py_ssize_t unreach_start
    Py_ssize_t unreach_end
    int unreach_afi
    int unreach_safi
    bint unreach_ignored
    Py_ssize_t walk_end         # where the header walk stopped (aend unless a framing fault)
    int nattrs


cdef class _Errors:
    # Collected RFC 7606 outcomes of one message.
    cdef list items
    cdef int strongest

    def __cinit__(self):
        self.items = None  # made on the first error: most UPDATEs have none
        self.strongest = H_NONE

    cdef void add(self, int subcode, int handling, int attr, str reason):
        item = (ErrorCode.UPDATE_MESSAGE, subcode, handling, attr, reason)
        if self.items is None:
            self.items = []
        if len(self.items) < MAX_ERRORS:
            self.items.append(item)
        elif handling > self.strongest:
            self.items[MAX_ERRORS - 1] = item  # the list is capped, the strongest stays in it
        if handling > self.strongest:
            self.strongest = handling


cdef inline object _reset(int subcode, str reason, bytes data=b""):
    return bgp_error(ErrorCode.UPDATE_MESSAGE, subcode, data, H_RESET, reason)


cdef int _walk(const uint8_t* p, Py_ssize_t astart, Py_ssize_t aend, DecodeContext ctx,
               Walk* w, _Errors errs, bytes body) except -1:
    """Walk attribute headers: locate MP attributes, catch framing faults."""
    cdef Py_ssize_t pos = astart, vstart, vlen
    cdef int flags, code, nhlen, afi, safi
    w.reach_start = -1
    w.unreach_start = -1
    w.reach_ignored = False
    w.unreach_ignored = False
    w.nattrs = 0
    while pos < aend:
        if aend - pos < 3:
            errs.add(E_MALFORMED_ATTR_LIST, H_TAW, 0,
                     f"{aend - pos} bytes left at offset {pos}: too few for an attribute header")
            break
        flags = p[pos]
        code = p[pos + 1]
        if flags & F_EXTLEN:
            if aend - pos < 4:
                errs.add(E_MALFORMED_ATTR_LIST, H_TAW, code,
                         f"attribute {code}: extended-length header cut at the end of the attributes")
                break
            vlen = rd16(p + pos + 2)
            vstart = pos + 4
        else:
            vlen = p[pos + 2]
            vstart = pos + 3
        if vstart + vlen > aend:
            errs.add(E_MALFORMED_ATTR_LIST, H_TAW, code,
                     f"attribute {code} of length {vlen} runs {vstart + vlen - aend} bytes past the attributes")
            break
        w.nattrs += 1
        if (code == A_MP_REACH or code == A_MP_UNREACH) and (flags & (F_OPTIONAL | F_TRANSITIVE | F_PARTIAL)) != F_OPTIONAL:
            # RFC 7606 3c: flags that contradict the definition (optional,
            # non-transitive) make the attribute malformed; its NLRI can still
            # be located, so treat-as-withdraw (RFC 7606 5.3 needs no reset).
            errs.add(E_ATTR_FLAGS, H_TAW, code, f"attribute {code} flags 0x{flags:02x} conflict")
        if code == A_MP_REACH:
            if w.reach_start >= 0:
                raise _reset(E_MALFORMED_ATTR_LIST, "MP_REACH_NLRI appears more than once (RFC 7606 3g)")
            w.reach_start = vstart
            w.reach_end = vstart + vlen
            if vlen < 5:
                raise _reset(E_OPTIONAL_ATTR, f"MP_REACH_NLRI of length {vlen} is too short",
                             body[pos:vstart + vlen])
            afi = rd16(p + vstart)
            safi = p[vstart + 2]
            nhlen = p[vstart + 3]
            w.reach_afi = afi
            w.reach_safi = safi
            if safi != 1 or not ((afi == 1 and ctx.ipv4) or (afi == 2 and ctx.ipv6)):
                w.reach_ignored = True   # AFI/SAFI not negotiated: ignored, never parsed
            else:
                if vstart + 4 + nhlen + 1 > vstart + vlen:
                    raise _reset(E_OPTIONAL_ATTR,
                                 f"MP_REACH_NLRI next hop length {nhlen} runs past the attribute",
                                 body[pos:vstart + vlen])
                if not ((afi == 2 and (nhlen == 16 or nhlen == 32))
                        or (afi == 1 and (nhlen == 4 or nhlen == 16 or nhlen == 32))):
                    raise _reset(E_OPTIONAL_ATTR,
                                 f"MP_REACH_NLRI next hop length {nhlen} is not valid for AFI {afi}",
                                 body[pos:vstart + vlen])
                w.reach_nh = vstart + 4
                w.reach_nh_len = nhlen
                w.reach_nlri = vstart + 4 + nhlen + 1
        elif code == A_MP_UNREACH:
            if w.unreach_start >= 0:
                raise _reset(E_MALFORMED_ATTR_LIST, "MP_UNREACH_NLRI appears more than once (RFC 7606 3g)")
            w.unreach_start = vstart
            w.unreach_end = vstart + vlen
            if vlen < 3:
                raise _reset(E_OPTIONAL_ATTR, f"MP_UNREACH_NLRI of length {vlen} is too short",
                             body[pos:vstart + vlen])
            w.unreach_afi = rd16(p + vstart)
            w.unreach_safi = p[vstart + 2]
            if w.unreach_safi != 1 or not ((w.unreach_afi == 1 and ctx.ipv4) or (w.unreach_afi == 2 and ctx.ipv6)):
                w.unreach_ignored = True
        pos = vstart + vlen
    w.walk_end = pos
    return 0


cdef inline bint _martian4(uint32_t a):
    # 0.0.0.0/8, 127.0.0.0/8, 224.0.0.0/4 (multicast), 240.0.0.0/4 (reserved and broadcast).
    cdef uint32_t top = a >> 24
    return top == 0 or top == 127 or top >= 224


cdef object _decode_as_path(const uint8_t* p, Py_ssize_t start, Py_ssize_t end, int width,
                            bint allow_confed, int max_len):
    """AS_PATH / AS4_PATH value -> tuple of segments, or a str saying what is wrong."""
    cdef Py_ssize_t pos = start
    cdef int stype, count, k, total = 0
    cdef uint32_t asn
    segs = []
    while pos < end:
        if end - pos < 2:
            return "segment header cut short"
        stype = p[pos]
        count = p[pos + 1]
        pos += 2
        if stype < 1 or stype > 4:
            return f"segment type {stype}"
        if stype > 2 and not allow_confed:
            return "confederation segment"
        if count == 0:
            return "segment of length 0"
        if pos + count * width > end:
            return f"segment of {count} ASNs runs past the attribute"
        asns = []
        for k in range(count):
            asn = rd32(p + pos) if width == 4 else rd16(p + pos)
            if asn == 0:
                return "AS 0 (RFC 7607)"
            asns.append(asn)
            pos += width
        total += count
        if total > max_len:
            return f"more than {max_len} ASNs"
        segs.append((stype, asns))
    return _canonical_path(segs)


cdef tuple _canonical_path(list segs):
    """Join consecutive AS_SEQUENCE (or AS_CONFED_SEQUENCE) segments: the wire
    splits runs longer than 255 ASNs, the meaning is one sequence."""
    # (wraparound is off in this module: no negative indexes.)
    cdef list out = []
    cdef Py_ssize_t last
    for t, asns in segs:
        last = len(out) - 1
        if last >= 0 and t == out[last][0] and (t == 2 or t == 3):
            out[last] = (t, out[last][1] + tuple(asns))
        else:
            out.append((t, tuple(asns)))
    return tuple(out)


cdef int _path_count(tuple path):
    # RFC 6793 4.2.3: AS_SET counts 1, confederation segments 0.
    cdef int n = 0
    for t, asns in path:
        if t == 2:
            n += len(asns)
        elif t == 1:
            n += 1
    return n


cdef tuple _merge_as4(tuple as_path, tuple as4_path):
    """RFC 6793 4.2.3: keep the leading (|AS_PATH| - |AS4_PATH|) ASNs, then AS4_PATH."""
    cdef int keep = _path_count(as_path) - _path_count(as4_path)
    if keep < 0:
        return as_path
    out = []
    for t, asns in as_path:
        if keep <= 0:
            break
        if t == 2:
            if len(asns) <= keep:
                out.append((t, asns))
                keep -= len(asns)
            else:
                out.append((t, asns[:keep]))
                keep = 0
        elif t == 1:
            out.append((t, asns))
            keep -= 1
        else:
            out.append((t, asns))
    out.extend(as4_path)
    return _canonical_path(out)


cdef PathAttributes _decode_values(const uint8_t* p, bytes body, Py_ssize_t astart, Py_ssize_t aend,
                                   DecodeContext ctx, Walk* w, _Errors errs, bint has_nlri4,
                                   bint announces):
    """Full decode of every attribute value, with RFC 7606 outcomes."""
    cdef Py_ssize_t pos = astart, vstart, vlen, k
    cdef int flags, code, expected, width = 4 if ctx.asn4 else 2
    cdef uint8_t[32] seen
    cdef PathAttributes a = PathAttributes.__new__(PathAttributes)
    cdef tuple as4_path = None
    cdef object as4_aggr = None
    cdef uint32_t v32
    cdef bint bad_flags
    memset(seen, 0, 32)
    a.origin = -1
    a.as_path = None
    a.next_hop = None
    a.med = None
    a.local_pref = None
    a.atomic_aggregate = False
    a.aggregator = None
    a.communities = ()
    a.originator_id = None
    a.cluster_list = ()
    a.mp_next_hop = ()
    a.extended_communities = ()
    a.ipv6_extended_communities = ()
    a.large_communities = ()
    a.unknown = ()
    a._key = None
    unknown = []
    while pos < w.walk_end:
        flags = p[pos]
        code = p[pos + 1]
        if flags & F_EXTLEN:
            vlen = rd16(p + pos + 2)
            vstart = pos + 4
        else:
            vlen = p[pos + 2]
            vstart = pos + 3
        pos = vstart + vlen
        if code == A_MP_REACH or code == A_MP_UNREACH:
            continue  # handled by the walk
        if seen[code >> 3] & (1 << (code & 7)):
            errs.add(E_MALFORMED_ATTR_LIST, H_DISCARD, code,
                     f"attribute {code} repeated; the first is kept (RFC 7606 3g)")
            continue
        seen[code >> 3] |= (1 << (code & 7))
        if not KNOWN[code]:
            if not flags & F_OPTIONAL:
                raise _reset(E_UNRECOGNIZED_WELL_KNOWN, f"unrecognized well-known attribute {code}",
                             body[vstart - (4 if flags & F_EXTLEN else 3):pos])
            if flags & F_TRANSITIVE:
                unknown.append((flags & 0xe0, code, body[vstart:pos]))
            continue
        expected = EXPECTED_FLAGS[code]
        bad_flags = (flags & (F_OPTIONAL | F_TRANSITIVE)) != expected or (
            (flags & F_PARTIAL) and not (expected & F_OPTIONAL and expected & F_TRANSITIVE))
        # Attributes with their own rule come first: RFC 7606 7.5, 7.9, 7.10 (eBGP discard).
        if not ctx.ibgp and (code == A_LOCAL_PREF or code == A_ORIGINATOR_ID or code == A_CLUSTER_LIST):
            errs.add(E_OPTIONAL_ATTR, H_DISCARD, code,
                     f"{_ATTR_KEYS[code]} from an external peer is discarded (RFC 7606)")
            continue
        if code == A_AS4_PATH or code == A_AS4_AGGREGATOR:
            if ctx.asn4:
                errs.add(E_OPTIONAL_ATTR, H_DISCARD, code,
                         f"{_ATTR_KEYS[code]} between 4-octet AS speakers is discarded (RFC 6793)")
                continue
        if bad_flags:
            if code == A_ATOMIC_AGGREGATE or code == A_AGGREGATOR or code == A_AS4_PATH or code == A_AS4_AGGREGATOR:
                errs.add(E_ATTR_FLAGS, H_DISCARD, code, f"attribute {code} flags 0x{flags:02x} conflict")
            elif code == A_NEXT_HOP and not has_nlri4:
                errs.add(E_ATTR_FLAGS, H_DISCARD, code, f"NEXT_HOP flags 0x{flags:02x} conflict")
            else:
                errs.add(E_ATTR_FLAGS, H_TAW, code, f"attribute {code} flags 0x{flags:02x} conflict")
            continue
        if code == A_ORIGIN:
            if vlen != 1:
                errs.add(E_ATTR_LENGTH, H_TAW, code, f"ORIGIN of length {vlen}")
            elif p[vstart] > 2:
                errs.add(E_INVALID_ORIGIN, H_TAW, code, f"ORIGIN value {p[vstart]}")
            else:
                a.origin = p[vstart]
        elif code == A_AS_PATH:
            path = _decode_as_path(p, vstart, pos, width, ctx.ibgp, ctx.max_as_path)
            if type(path) is str:
                errs.add(E_MALFORMED_AS_PATH, H_TAW, code, f"AS_PATH malformed: {path}")
            else:
                a.as_path = path
        elif code == A_NEXT_HOP:
            if vlen != 4:
                errs.add(E_ATTR_LENGTH, H_TAW if has_nlri4 else H_DISCARD, code, f"NEXT_HOP of length {vlen}")
            elif _martian4(rd32(p + vstart)):
                errs.add(E_INVALID_NEXT_HOP, H_TAW if has_nlri4 else H_DISCARD, code,
                         f"NEXT_HOP {ipv4_str(rd32(p + vstart))} is not a unicast address")
            else:
                a.next_hop = ipv4_str(rd32(p + vstart))
        elif code == A_MED:
            if vlen != 4:
                errs.add(E_ATTR_LENGTH, H_TAW, code, f"MULTI_EXIT_DISC of length {vlen}")
            else:
                a.med = rd32(p + vstart)
        elif code == A_LOCAL_PREF:
            if vlen != 4:
                errs.add(E_ATTR_LENGTH, H_TAW, code, f"LOCAL_PREF of length {vlen}")
            else:
                a.local_pref = rd32(p + vstart)
        elif code == A_ATOMIC_AGGREGATE:
            if vlen != 0:
                errs.add(E_ATTR_LENGTH, H_DISCARD, code, f"ATOMIC_AGGREGATE of length {vlen}")
            else:
                a.atomic_aggregate = True
        elif code == A_AGGREGATOR:
            if vlen != 4 + width:
                errs.add(E_ATTR_LENGTH, H_DISCARD, code, f"AGGREGATOR of length {vlen}, not {4 + width}")
            else:
                v32 = rd32(p + vstart) if width == 4 else rd16(p + vstart)
                if v32 == 0:
                    errs.add(E_OPTIONAL_ATTR, H_DISCARD, code, "AGGREGATOR with AS 0 (RFC 7607)")
                else:
                    a.aggregator = (v32, ipv4_str(rd32(p + vstart + width)))
        elif code == A_COMMUNITIES:
            if vlen == 0 or vlen % 4:
                errs.add(E_OPTIONAL_ATTR, H_TAW, code, f"COMMUNITIES of length {vlen}")
            else:
                a.communities = tuple([rd32(p + k) for k in range(vstart, pos, 4)])
        elif code == A_ORIGINATOR_ID:
            if vlen != 4:
                errs.add(E_ATTR_LENGTH, H_TAW, code, f"ORIGINATOR_ID of length {vlen}")
            else:
                a.originator_id = ipv4_str(rd32(p + vstart))
        elif code == A_CLUSTER_LIST:
            if vlen == 0 or vlen % 4:
                errs.add(E_ATTR_LENGTH, H_TAW, code, f"CLUSTER_LIST of length {vlen}")
            else:
                a.cluster_list = tuple([ipv4_str(rd32(p + k)) for k in range(vstart, pos, 4)])
        elif code == A_EXT_COMMUNITIES:
            if vlen == 0 or vlen % 8:
                errs.add(E_OPTIONAL_ATTR, H_TAW, code, f"EXTENDED_COMMUNITIES of length {vlen}")
            else:
                a.extended_communities = tuple([body[k:k + 8] for k in range(vstart, pos, 8)])
        elif code == A_IPV6_EXT_COMMUNITIES:
            if vlen == 0 or vlen % 20:
                errs.add(E_OPTIONAL_ATTR, H_TAW, code, f"IPv6 extended communities of length {vlen}")
            else:
                a.ipv6_extended_communities = tuple([body[k:k + 20] for k in range(vstart, pos, 20)])
        elif code == A_LARGE_COMMUNITY:
            if vlen == 0 or vlen % 12:
                errs.add(E_OPTIONAL_ATTR, H_TAW, code, f"LARGE_COMMUNITY of length {vlen}")
            else:
                a.large_communities = tuple([(rd32(p + k), rd32(p + k + 4), rd32(p + k + 8))
                                             for k in range(vstart, pos, 12)])
        elif code == A_AS4_PATH:
            path = _decode_as_path(p, vstart, pos, 4, False, ctx.max_as_path)
            if type(path) is str:
                errs.add(E_OPTIONAL_ATTR, H_DISCARD, code, f"AS4_PATH malformed: {path}")
            else:
                as4_path = path
        elif code == A_AS4_AGGREGATOR:
            if vlen != 8 or rd32(p + vstart) == 0:
                errs.add(E_OPTIONAL_ATTR, H_DISCARD, code, f"AS4_AGGREGATOR of length {vlen} or AS 0")
            else:
                as4_aggr = (rd32(p + vstart), ipv4_str(rd32(p + vstart + 4)))
    if unknown:
        a.unknown = tuple(unknown)
    # RFC 6793 4.2.3: rebuild the path from an OLD speaker's AS_PATH and AS4_PATH.
    if not ctx.asn4:
        if as4_aggr is not None and a.aggregator is not None and a.aggregator[0] != AS_TRANS:
            # RFC 6793 4.2.3: AS4_AGGREGATOR with an AGGREGATOR that is not AS_TRANS
            # (a 2-octet speaker aggregated): AS4_AGGREGATOR and AS4_PATH are ignored.
            pass
        else:
            if as4_aggr is not None:
                a.aggregator = as4_aggr
            if as4_path is not None and a.as_path is not None:
                a.as_path = _merge_as4(a.as_path, as4_path)
    # Missing well-known mandatory attributes (RFC 7606 3d), only when routes are announced.
    if announces:
        missing = []
        if a.origin < 0 and not seen[A_ORIGIN >> 3] & (1 << (A_ORIGIN & 7)):
            missing.append("ORIGIN")
        if a.as_path is None and not seen[A_AS_PATH >> 3] & (1 << (A_AS_PATH & 7)):
            missing.append("AS_PATH")
        if has_nlri4 and a.next_hop is None and not seen[A_NEXT_HOP >> 3] & (1 << (A_NEXT_HOP & 7)):
            missing.append("NEXT_HOP")
        if ctx.ibgp and a.local_pref is None and not seen[A_LOCAL_PREF >> 3] & (1 << (A_LOCAL_PREF & 7)):
            missing.append("LOCAL_PREF")
        if missing:
            errs.add(E_MISSING_WELL_KNOWN, H_TAW, 0, "missing well-known attribute " + ", ".join(missing))
    return a


cdef tuple _mp_next_hop(const uint8_t* p, Walk* w):
    cdef int n = w.reach_nh_len
    cdef Py_ssize_t s = w.reach_nh
    if n == 4:
        return (ipv4_str(rd32(p + s)),)
    nh = (ipv6_str(PyBytes_FromStringAndSize(<char*>p + s, 16)),)
    if n == 32:
        ll = PyBytes_FromStringAndSize(<char*>p + s + 16, 16)
        if ll != bytes(16):
            nh += (ipv6_str(ll),)
    return nh


cdef bint _mp_next_hop_martian(const uint8_t* p, Walk* w):
    """The global next hop is unspecified, multicast, or (IPv4) a martian."""
    cdef const uint8_t* nh = p + w.reach_nh
    cdef int k
    if w.reach_nh_len == 4:
        return _martian4(rd32(nh))
    if nh[0] == 0xff:
        return True  # ff00::/8 multicast
    for k in range(16):
        if nh[k]:
            return False
    return True  # ::


def decode_update(body, DecodeContext ctx=None, AttrTable table=None):
    """UPDATE body (after the header) -> Update.

    Session-reset faults raise BgpError; weaker RFC 7606 outcomes are in the
    Update's ``errors`` and ``handling``.  With ``table``, the attribute set is
    interned and ``attr_id`` set; repeated sets are found by their bytes.
    """
    cdef bytes b = body if type(body) is bytes else bytes(body)
    cdef const uint8_t* p = <const uint8_t*>PyBytes_AS_STRING(b)
    cdef Py_ssize_t n = PyBytes_GET_SIZE(b), wlen, alen, astart, aend, bad = 0
    cdef Walk w
    cdef _Errors errs = _Errors()
    cdef Update u = Update.__new__(Update)
    cdef bint has_nlri4, announces, cacheable
    cdef bytes key = None
    cdef KeyRanges kr
    cdef PathAttributes attrs
    if ctx is None:
        ctx = DecodeContext()
    if n < 4:
        raise _reset(E_MALFORMED_ATTR_LIST, "UPDATE body shorter than 4 bytes")
    wlen = rd16(p)
    if 2 + wlen + 2 > n:
        raise _reset(E_MALFORMED_ATTR_LIST, f"withdrawn routes length {wlen} runs past the message")
    alen = rd16(p + 2 + wlen)
    astart = 4 + wlen
    aend = astart + alen
    if aend > n:
        raise _reset(E_MALFORMED_ATTR_LIST, f"total path attribute length {alen} runs past the message")
    u.withdrawn = PrefixArray.__new__(PrefixArray)  # IPv4 (the default); no argument parsing
    if decode_nlri_into(p, 2, 2 + wlen, u.withdrawn, &bad) < 0:
        raise _reset(E_INVALID_NETWORK, f"withdrawn route at offset {bad} is malformed")
    u.nlri = PrefixArray.__new__(PrefixArray)
    if decode_nlri_into(p, aend, n, u.nlri, &bad) < 0:
        raise _reset(E_INVALID_NETWORK, f"NLRI prefix at offset {bad} is malformed")
    u.mp_withdrawn = None
    u.mp_nlri = None
    u.mp_reach_safi = 0
    u.mp_unreach_safi = 0
    u.attrs = None
    u.attr_id = -1
    u.end_of_rib = None
    _walk(p, astart, aend, ctx, &w, errs, b)
    # MP NLRI: a fault here cannot be contained (RFC 7606 5.3, 7.11): session reset.
    if w.unreach_start >= 0 and not w.unreach_ignored:
        u.mp_withdrawn = PrefixArray(w.unreach_afi)
        u.mp_unreach_safi = w.unreach_safi
        if decode_nlri_into(p, w.unreach_start + 3, w.unreach_end, u.mp_withdrawn, &bad) < 0:
            raise _reset(E_OPTIONAL_ATTR, f"MP_UNREACH_NLRI prefix at offset {bad} is malformed")
    if w.reach_start >= 0 and not w.reach_ignored:
        u.mp_nlri = PrefixArray(w.reach_afi)
        u.mp_reach_safi = w.reach_safi
        if decode_nlri_into(p, w.reach_nlri, w.reach_end, u.mp_nlri, &bad) < 0:
            raise _reset(E_OPTIONAL_ATTR, f"MP_REACH_NLRI prefix at offset {bad} is malformed")
    has_nlri4 = u.nlri.n > 0
    announces = has_nlri4 or (u.mp_nlri is not None and u.mp_nlri.n > 0)
    # End-of-RIB (RFC 4724 2): an empty UPDATE, or one holding only an empty MP_UNREACH.
    if n == 4:
        u.end_of_rib = (1, 1)
    elif (w.nattrs == 1 and errs.strongest == H_NONE and wlen == 0 and not has_nlri4
          and w.unreach_start >= 0 and w.unreach_end == w.unreach_start + 3):
        u.end_of_rib = (w.unreach_afi, w.unreach_safi)
    if alen == 0 and not announces:
        u.handling = H_NONE
        u.errors = ()
        return u
    cacheable = table is not None and errs.strongest == H_NONE
    if cacheable:
        _key_ranges(astart, aend, &w, ctx, has_nlri4, announces, &kr)
        hit = None
        # A table dump sends runs of UPDATEs with one attribute set: compare
        # with the previous key before building and hashing a new one.
        if table.last_key is not None and _key_matches(p, &kr, table.last_key):
            hit = table.last_hit
        else:
            key = _key_bytes(p, &kr)
            cached = PyDict_GetItem(table.raw, key)
            if cached is not NULL:
                hit = <tuple>cached
                table.last_key = key
                table.last_hit = hit
        if hit is not None:
            u.attr_id = hit[0]
            u.attrs = hit[1]
            u.errors = hit[2]
            u.handling = hit[3]
            if u.handling >= H_TAW:
                u.attr_id = -1
            return u
    attrs = _decode_values(p, b, astart, aend, ctx, &w, errs, has_nlri4, announces)
    if w.reach_start >= 0 and not w.reach_ignored:
        attrs.mp_next_hop = _mp_next_hop(p, &w)
        if u.mp_nlri is not None and u.mp_nlri.n and _mp_next_hop_martian(p, &w):
            errs.add(E_INVALID_NEXT_HOP, H_TAW, A_MP_REACH,
                     f"MP_REACH_NLRI next hop {attrs.mp_next_hop[0]} is not a unicast address")
    if not announces and errs.strongest >= H_TAW and w.nattrs > (1 if w.unreach_start >= 0 else 0):
        # RFC 7606 5.2: attributes but no reachable NLRI: only attribute discard
        # may soften an error, anything stronger resets the session.
        worst = max(errs.items, key=lambda e: e[2])
        raise _reset(worst[1], f"{worst[4]}, in an UPDATE without reachable NLRI (RFC 7606 5.2)")
    u.attrs = attrs
    u.errors = tuple(errs.items) if errs.items else ()
    u.handling = errs.strongest
    if table is not None:
        u.attr_id = table.intern(attrs)
        if cacheable:
            if len(table.raw) >= table.raw_limit:
                table.raw.clear()
                table.last_key = None
            if key is None:
                key = _key_bytes(p, &kr)
            table.raw[key] = (u.attr_id, attrs, u.errors, u.handling)
            table.last_key = key
            table.last_hit = table.raw[key]
        if u.handling >= H_TAW:
            u.attr_id = -1
    return u


cdef struct KeyRanges:
    # The attribute bytes that make up a cache key: [astart, s1) + [e1, s2) + [e2, aend).
    uint8_t flags
    uint16_t max_as_path
    Py_ssize_t astart, aend, s1, e1, s2, e2, total


cdef void _key_ranges(Py_ssize_t astart, Py_ssize_t aend, Walk* w, DecodeContext ctx,
                      bint has_nlri4, bint announces, KeyRanges* k):
    """The attribute bytes without the NLRI carried inside MP attributes,
    prefixed by what their meaning depends on."""
    k.flags = <uint8_t>(ctx.flags() | (has_nlri4 << 4) | (announces << 5))
    k.max_as_path = <uint16_t>ctx.max_as_path
    k.astart = astart
    k.aend = aend
    # Cut ranges: from each MP attribute keep nothing of MP_UNREACH and only the
    # next-hop part of MP_REACH (its NLRI is not part of the attribute set).
    k.s1 = k.e1 = k.s2 = k.e2 = aend
    if w.reach_start >= 0:
        k.s1 = w.reach_nlri if not w.reach_ignored else w.reach_start
        k.e1 = w.reach_end
    if w.unreach_start >= 0:
        k.s2 = w.unreach_start
        k.e2 = w.unreach_end
    if k.s2 < k.s1:
        k.s1, k.e1, k.s2, k.e2 = k.s2, k.e2, k.s1, k.e1
    k.total = 3 + (aend - astart) - (k.e1 - k.s1) - (k.e2 - k.s2)


cdef bytes _key_bytes(const uint8_t* p, KeyRanges* k):
    cdef bytes key = PyBytes_FromStringAndSize(NULL, k.total)
    cdef uint8_t* out = <uint8_t*>PyBytes_AS_STRING(key)
    cdef Py_ssize_t pos = 3
    out[0] = k.flags
    wr16(out + 1, k.max_as_path)
    memcpy(out + pos, p + k.astart, k.s1 - k.astart)
    pos += k.s1 - k.astart
    memcpy(out + pos, p + k.e1, k.s2 - k.e1)
    pos += k.s2 - k.e1
    memcpy(out + pos, p + k.e2, k.aend - k.e2)
    return key


cdef bint _key_matches(const uint8_t* p, KeyRanges* k, bytes key):
    """Would _key_bytes give exactly key?  (No allocation, no hashing.)"""
    cdef const uint8_t* q = <const uint8_t*>PyBytes_AS_STRING(key)
    cdef Py_ssize_t pos = 3
    if PyBytes_GET_SIZE(key) != k.total or q[0] != k.flags or rd16(q + 1) != k.max_as_path:
        return False
    if memcmp(q + pos, p + k.astart, k.s1 - k.astart):
        return False
    pos += k.s1 - k.astart
    if memcmp(q + pos, p + k.e1, k.s2 - k.e1):
        return False
    pos += k.s2 - k.e1
    return memcmp(q + pos, p + k.e2, k.aend - k.e2) == 0


# ----------------------------------------------------------------- encoding

cdef inline void _attr_header(bytearray out, int flags, int code, Py_ssize_t length):
    if length > 255:
        out += bytes([flags | F_EXTLEN, code, length >> 8, length & 0xff])
    else:
        out += bytes([flags & ~F_EXTLEN, code, length])


cdef bytes _as_path_bytes(object path, int width):
    cdef bytearray out = bytearray()
    for t, asns in path:
        # Segments hold at most 255 ASNs; longer runs split into several segments.
        for start in range(0, max(len(asns), 1), 255):
            chunk = asns[start:start + 255]
            out += bytes([t, len(chunk)])
            for asn in chunk:
                if width == 2:
                    out += (asn if asn <= 0xffff else AS_TRANS).to_bytes(2, "big")
                else:
                    out += asn.to_bytes(4, "big")
    return bytes(out)


def encode_attributes(PathAttributes a, bint asn4=True):
    """The path attributes in wire encoding, in type-code order, without
    MP_REACH_NLRI (which carries NLRI, so it is built per UPDATE).  Toward a
    2-octet AS speaker (asn4 False) ASNs above 65535 become AS_TRANS and
    AS4_PATH / AS4_AGGREGATOR carry the real ones (RFC 6793 4.2.2).  Unknown
    transitive attributes are passed on byte-exact with the Partial bit set."""
    cdef bytearray out = bytearray()
    cdef bytes v
    cdef bint need_as4 = False
    if a.origin >= 0:
        out += bytes([F_TRANSITIVE, A_ORIGIN, 1, a.origin])
    if a.as_path is not None:
        v = _as_path_bytes(a.as_path, 4 if asn4 else 2)
        _attr_header(out, F_TRANSITIVE, A_AS_PATH, len(v))
        out += v
        if not asn4:
            need_as4 = any(x > 0xffff for _t, asns in a.as_path for x in asns)
    if a.next_hop is not None:
        out += bytes([F_TRANSITIVE, A_NEXT_HOP, 4]) + ipaddress.IPv4Address(a.next_hop).packed
    if a.med is not None:
        out += bytes([F_OPTIONAL, A_MED, 4]) + int(a.med).to_bytes(4, "big")
    if a.local_pref is not None:
        out += bytes([F_TRANSITIVE, A_LOCAL_PREF, 4]) + int(a.local_pref).to_bytes(4, "big")
    if a.atomic_aggregate:
        out += bytes([F_TRANSITIVE, A_ATOMIC_AGGREGATE, 0])
    if a.aggregator is not None:
        asn, addr = a.aggregator
        if asn4:
            out += bytes([F_OPTIONAL | F_TRANSITIVE, A_AGGREGATOR, 8]) + asn.to_bytes(4, "big")
        else:
            out += bytes([F_OPTIONAL | F_TRANSITIVE, A_AGGREGATOR, 6]) + (
                asn if asn <= 0xffff else AS_TRANS).to_bytes(2, "big")
        out += ipaddress.IPv4Address(addr).packed
    if a.communities:
        v = b"".join([c.to_bytes(4, "big") for c in a.communities])
        _attr_header(out, F_OPTIONAL | F_TRANSITIVE, A_COMMUNITIES, len(v))
        out += v
    if a.originator_id is not None:
        out += bytes([F_OPTIONAL, A_ORIGINATOR_ID, 4]) + ipaddress.IPv4Address(a.originator_id).packed
    if a.cluster_list:
        v = b"".join([ipaddress.IPv4Address(c).packed for c in a.cluster_list])
        _attr_header(out, F_OPTIONAL, A_CLUSTER_LIST, len(v))
        out += v
    if a.extended_communities:
        v = b"".join(a.extended_communities)
        if len(v) % 8:
            raise ValueError("extended communities are 8 bytes each")
        _attr_header(out, F_OPTIONAL | F_TRANSITIVE, A_EXT_COMMUNITIES, len(v))
        out += v
    if need_as4:
        v = _as_path_bytes([(t, x) for t, x in a.as_path if t <= 2], 4)
        _attr_header(out, F_OPTIONAL | F_TRANSITIVE, A_AS4_PATH, len(v))
        out += v
    if not asn4 and a.aggregator is not None and a.aggregator[0] > 0xffff:
        out += bytes([F_OPTIONAL | F_TRANSITIVE, A_AS4_AGGREGATOR, 8]) + a.aggregator[0].to_bytes(4, "big")
        out += ipaddress.IPv4Address(a.aggregator[1]).packed
    if a.ipv6_extended_communities:
        v = b"".join(a.ipv6_extended_communities)
        if len(v) % 20:
            raise ValueError("IPv6 extended communities are 20 bytes each")
        _attr_header(out, F_OPTIONAL | F_TRANSITIVE, A_IPV6_EXT_COMMUNITIES, len(v))
        out += v
    if a.large_communities:
        v = b"".join([x.to_bytes(4, "big") + y.to_bytes(4, "big") + z.to_bytes(4, "big")
                      for x, y, z in a.large_communities])
        _attr_header(out, F_OPTIONAL | F_TRANSITIVE, A_LARGE_COMMUNITY, len(v))
        out += v
    for flags, code, value in a.unknown:
        _attr_header(out, (flags & 0xc0) | F_PARTIAL, code, len(value))
        out += value
    if len(out) > 65535:
        raise ValueError(f"path attributes of {len(out)} bytes do not fit a BGP message")
    return bytes(out)


def mp_next_hop_bytes(next_hops):
    """Addresses (global[, link-local]) -> the MP_REACH next hop field."""
    return _mp_nh_bytes(tuple(next_hops))


cdef Py_ssize_t _nlri_total(PrefixArray arr):
    cdef Py_ssize_t total = 0, i
    if arr is None:
        return 0
    if arr.afi == 1:
        for i in range(arr.n):
            total += 1 + (((arr.v4[i] & 0xff) + 7) >> 3)
    else:
        for i in range(arr.n):
            total += 1 + ((arr.v6[i].plen + 7) >> 3)
    return total


cdef Py_ssize_t _fill(PrefixArray arr, Py_ssize_t i, uint8_t* q, Py_ssize_t* pos, Py_ssize_t room) noexcept:
    """Write prefixes from i on at q + pos while they fit in room bytes; return the next i."""
    cdef Py_ssize_t at = pos[0], end = pos[0] + room, n = arr.n
    cdef uint64_t key
    cdef uint32_t addr
    cdef int plen, nb
    if arr.afi == 1:
        while i < n:
            key = arr.v4[i]
            plen = key & 0xff
            nb = (plen + 7) >> 3
            if at + 1 + nb > end:
                break
            addr = <uint32_t>(key >> 8)
            q[at] = plen
            # Write all four address bytes (the buffer has slack); only nb count.
            q[at + 1] = addr >> 24
            q[at + 2] = (addr >> 16) & 0xff
            q[at + 3] = (addr >> 8) & 0xff
            q[at + 4] = addr & 0xff
            at += 1 + nb
            i += 1
    else:
        while i < n and at + arr.wire_size(i) <= end:
            at += arr.write_prefix(i, q + at)
            i += 1
    pos[0] = at
    return i


cdef inline void _put_header(uint8_t* p, Py_ssize_t length, int mtype) noexcept:
    memset(p, 0xff, 16)
    wr16(p + 16, <uint16_t>length)
    p[18] = mtype


def encode_updates(PrefixArray announce=None, bytes attrs=b"", PrefixArray withdraw=None,
                   bytes mp_next_hop=b"", Py_ssize_t max_size=MAX_MESSAGE_LEN, int safi=1):
    """Pack announcements and withdrawals into as few UPDATEs as fit max_size.

    Returns the messages concatenated (ready to write to every member of an
    update group).  IPv4 prefixes with an empty ``mp_next_hop`` go in the
    NLRI field (``attrs`` must then hold NEXT_HOP); IPv6 prefixes, and IPv4
    ones with an IPv6 next hop (RFC 8950), go in MP_REACH_NLRI, placed first
    among the attributes (RFC 7606 5.1).  Withdrawals come first: IPv4 in the
    withdrawn routes field, IPv6 in MP_UNREACH_NLRI.
    """
    cdef Py_ssize_t total, pos, bufsize, per_msg, room_min
    cdef uint8_t* q
    cdef Py_ssize_t alen = len(attrs), nhlen = len(mp_next_hop)
    cdef const uint8_t* ap = <const uint8_t*>PyBytes_AS_STRING(attrs)
    cdef const uint8_t* nhp = <const uint8_t*>PyBytes_AS_STRING(mp_next_hop)
    total = _nlri_total(announce) + _nlri_total(withdraw)
    # Every message but the last of each kind is full to within one prefix
    # (17 bytes), so the message count is bounded by total / (room - 17).
    per_msg = 23 + 9 + nhlen + alen
    room_min = max_size - per_msg - 17
    if room_min < 1:
        room_min = 1
    bufsize = total + 8 + (total // room_min + 4) * per_msg
    q = <uint8_t*>malloc(bufsize)
    if q == NULL:
        raise MemoryError()
    try:
        pos = _encode_into(q, announce, ap, alen, withdraw, nhp, nhlen, max_size, safi)
        return PyBytes_FromStringAndSize(<char*>q, pos)
    finally:
        free(q)


cdef Py_ssize_t _encode_into(uint8_t* q, PrefixArray announce, const uint8_t* ap, Py_ssize_t alen,
                             PrefixArray withdraw, const uint8_t* nhp, Py_ssize_t nhlen,
                             Py_ssize_t max_size, int safi) except -1:
    cdef Py_ssize_t i, start, count, room, pos, msg_start, hdr_len, afi
    cdef bint mp
    pos = 0
    # ---- withdrawals
    if withdraw is not None and withdraw.n:
        mp = withdraw.afi == 2
        hdr_len = 19 + 2 + 2 + (7 if mp else 0)   # MP_UNREACH: flags, code, 2-byte length, afi, safi
        i = 0
        while i < withdraw.n:
            msg_start = pos
            # IPv4 prefixes go right after the withdrawn-length field; the
            # attribute length (0) follows them.  IPv6 ones close MP_UNREACH.
            pos += hdr_len if mp else 21
            room = max_size - hdr_len
            start = i
            i = _fill(withdraw, i, q, &pos, room)
            if i == start:
                raise ValueError("a withdrawal does not fit in a message")
            if mp:
                count = pos - msg_start - hdr_len
                wr16(q + msg_start + 19, 0)
                wr16(q + msg_start + 21, <uint16_t>(count + 7))
                q[msg_start + 23] = F_OPTIONAL | F_EXTLEN
                q[msg_start + 24] = A_MP_UNREACH
                wr16(q + msg_start + 25, <uint16_t>(count + 3))
                wr16(q + msg_start + 27, 2)
                q[msg_start + 29] = safi
            else:
                count = pos - msg_start - 21
                wr16(q + msg_start + 19, <uint16_t>count)
                wr16(q + pos, 0)
                pos += 2
            _put_header(q + msg_start, pos - msg_start, MsgType.UPDATE)
    # ---- announcements
    if announce is not None and announce.n:
        mp = announce.afi == 2 or nhlen > 0
        if announce.afi == 1 and nhlen == 0:
            hdr_len = 19 + 2 + 2 + alen
        else:
            hdr_len = 19 + 2 + 2 + 4 + 5 + nhlen + alen
        if hdr_len >= max_size:
            raise ValueError(f"path attributes of {alen} bytes leave no room for NLRI in {max_size}-byte messages")
        afi = announce.afi
        i = 0
        while i < announce.n:
            msg_start = pos
            pos += hdr_len
            room = max_size - hdr_len
            start = i
            i = _fill(announce, i, q, &pos, room)
            if i == start:
                raise ValueError("a prefix does not fit in a message")
            count = pos - msg_start - hdr_len
            _put_header(q + msg_start, pos - msg_start, MsgType.UPDATE)
            wr16(q + msg_start + 19, 0)
            if not mp:
                wr16(q + msg_start + 21, <uint16_t>alen)
                memcpy(q + msg_start + 23, ap, alen)
            else:
                wr16(q + msg_start + 21, <uint16_t>(alen + 4 + 5 + nhlen + count))
                q[msg_start + 23] = F_OPTIONAL | F_EXTLEN
                q[msg_start + 24] = A_MP_REACH
                wr16(q + msg_start + 25, <uint16_t>(5 + nhlen + count))
                wr16(q + msg_start + 27, <uint16_t>afi)
                q[msg_start + 29] = safi
                q[msg_start + 30] = <uint8_t>nhlen
                memcpy(q + msg_start + 31, nhp, nhlen)
                q[msg_start + 31 + nhlen] = 0
                # MP_REACH's NLRI must directly follow its header: move the
                # prefixes there and put the other attributes after them.
                _mp_layout(q, msg_start, hdr_len, alen, nhlen, count, ap)
    return pos


cdef void _mp_layout(uint8_t* q, Py_ssize_t msg_start, Py_ssize_t hdr_len, Py_ssize_t alen,
                     Py_ssize_t nhlen, Py_ssize_t count, const uint8_t* ap) noexcept:
    # On entry the prefixes sit at msg_start + hdr_len (after room for attrs);
    # the MP_REACH header ends at msg_start + 32 + nhlen.  Move the prefixes
    # down to follow it, then copy the other attributes after them.
    cdef Py_ssize_t mp_end = msg_start + 32 + nhlen
    memmove(q + mp_end, q + msg_start + hdr_len, count)
    memcpy(q + mp_end + count, ap, alen)


def encode_end_of_rib(int afi=1, int safi=1):
    """End-of-RIB (RFC 4724 2): an empty UPDATE for IPv4 unicast, an empty MP_UNREACH otherwise."""
    if afi == 1 and safi == 1:
        return _wire.header(MsgType.UPDATE, 4) + b"\x00\x00\x00\x00"
    body = b"\x00\x00\x00\x06" + bytes([F_OPTIONAL, A_MP_UNREACH, 3]) + afi.to_bytes(2, "big") + bytes([safi])
    return _wire.header(MsgType.UPDATE, len(body)) + body


# ------------------------------------------------------------- all messages

def decode_message(int mtype, body, DecodeContext ctx=None, AttrTable table=None):
    """Decode one message body of the given type into its value."""
    if mtype == MsgType.UPDATE:
        return decode_update(body, ctx, table)
    if mtype == MsgType.OPEN:
        return _wire.decode_open(body)
    if mtype == MsgType.KEEPALIVE:
        return _wire.decode_keepalive(body)
    if mtype == MsgType.NOTIFICATION:
        return _wire.decode_notification(body)
    if mtype == MsgType.ROUTE_REFRESH:
        return _wire.decode_route_refresh(body)
    _wire.check_header(mtype, 19 + len(body))
