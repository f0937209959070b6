"""rtnetlink route messages, encoded and decoded in C (issue 6).

encode_routes() turns a whole PrefixArray into one buffer of RTM_NEWROUTE or
RTM_DELROUTE messages, reading the prefixes straight from the array's C
memory; the ack and dump scanners walk kernel replies without a Python object
per route.  Netlink headers and attributes are in host byte order, the
addresses in network byte order (man 7 netlink, man 7 rtnetlink).
"""
from libc.stdint cimport uint8_t, uint16_t, uint32_t, uint64_t, int32_t
from libc.string cimport memcpy, memset, memcmp
from libc.stdlib cimport malloc, calloc, realloc, free
from cpython.bytes cimport PyBytes_FromStringAndSize, PyBytes_AS_STRING

from kbgp._fast.wire cimport PrefixArray, Pfx6, mask4, mask6

import socket

# Message types and flags (linux/netlink.h, linux/rtnetlink.h).
NLMSG_NOOP = 1
NLMSG_ERROR = 2
NLMSG_DONE = 3
RTM_NEWROUTE = 24
RTM_DELROUTE = 25
RTM_GETROUTE = 26
NLM_F_REQUEST = 0x1
NLM_F_MULTI = 0x2
NLM_F_ACK = 0x4
NLM_F_REPLACE = 0x100
NLM_F_EXCL = 0x200
NLM_F_CREATE = 0x400
NLM_F_DUMP = 0x300
RTA_DST = 1
RTA_OIF = 4
RTA_GATEWAY = 5
RTA_TABLE = 15
RTA_NH_ID = 30
RT_TABLE_MAIN = 254
RT_SCOPE_UNIVERSE = 0
RTN_UNICAST = 1
NLMSG_HDRLEN = 16
RTMSG_LEN = 12

cdef enum:
    C_HDRLEN = 16
    C_RTMSG = 12
    C_NLMSG_ERROR = 2
    C_NLMSG_DONE = 3
    C_NEWROUTE = 24
    C_DELROUTE = 25
    C_F_REQUEST = 0x1
    C_F_ACK = 0x4
    C_F_REPLACE = 0x100
    C_F_EXCL = 0x200
    C_F_CREATE = 0x400
    C_RTA_DST = 1
    C_RTA_OIF = 4
    C_RTA_GATEWAY = 5
    C_RTA_TABLE = 15
    C_RTA_NH_ID = 30
    C_NLA_TYPE_MASK = 0x3fff
    C_RT_SCOPE_NOWHERE = 255


cdef inline Py_ssize_t align4(Py_ssize_t v) noexcept nogil:
    return (v + 3) & ~(<Py_ssize_t>3)


cdef inline void put16(uint8_t* p, uint16_t v) noexcept nogil:
    memcpy(p, &v, 2)


cdef inline void put32(uint8_t* p, uint32_t v) noexcept nogil:
    memcpy(p, &v, 4)


cdef inline uint16_t get16(const uint8_t* p) noexcept nogil:
    cdef uint16_t v
    memcpy(&v, p, 2)
    return v


cdef inline uint32_t get32(const uint8_t* p) noexcept nogil:
    cdef uint32_t v
    memcpy(&v, p, 4)
    return v


cdef inline void put_be64(uint8_t* p, uint64_t v) noexcept nogil:
    cdef int k
    for k in range(8):
        p[k] = <uint8_t>(v >> (56 - 8 * k))


cdef inline uint64_t get_be64(const uint8_t* p) noexcept nogil:
    cdef uint64_t v = 0
    cdef int k
    for k in range(8):
        v = (v << 8) | p[k]
    return v


cdef inline uint8_t* put_attr(uint8_t* p, uint16_t typ, const uint8_t* data,
                              Py_ssize_t dlen) noexcept nogil:
    """One rtattr (len, type, payload) padded with zeros to 4 bytes."""
    cdef Py_ssize_t total = 4 + dlen
    cdef Py_ssize_t padded = align4(total)
    put16(p, <uint16_t>total)
    put16(p + 2, typ)
    memcpy(p + 4, data, dlen)
    if padded > total:
        memset(p + total, 0, padded - total)
    return p + padded


cdef struct RunMarker:
    # Which message of a buffer being encoded closes a run (see split_chunks):
    # that one, and only that one, gets NLM_F_ACK.
    uint8_t* run_start
    uint8_t* last            # start of the previous message, or NULL
    Py_ssize_t count         # messages in the current run
    Py_ssize_t max_bytes     # 0: not marking
    Py_ssize_t max_msgs


cdef inline void _run_init(RunMarker* rm, uint8_t* p, Py_ssize_t max_bytes,
                           Py_ssize_t max_msgs) noexcept nogil:
    rm.run_start = p
    rm.last = NULL
    rm.count = 0
    rm.max_bytes = max_bytes
    rm.max_msgs = max_msgs


cdef inline void _ack_msg(uint8_t* msg) noexcept nogil:
    put16(msg + 6, get16(msg + 6) | C_F_ACK)


cdef inline void _run_before(RunMarker* rm, uint8_t* p, Py_ssize_t msg_len) noexcept nogil:
    """Called before a message of msg_len bytes is written at p: close the
    current run first if the message does not fit in it (the same greedy
    rule as split_chunks)."""
    if rm.count > 0 and ((p + msg_len) - rm.run_start > rm.max_bytes
                         or (rm.max_msgs > 0 and rm.count >= rm.max_msgs)):
        _ack_msg(rm.last)
        rm.run_start = p
        rm.count = 0


cdef inline void _run_after(RunMarker* rm, uint8_t* msg) noexcept nogil:
    rm.last = msg
    rm.count += 1


cdef inline void _run_finish(RunMarker* rm) noexcept nogil:
    if rm.count > 0 and rm.last != NULL:
        _ack_msg(rm.last)


cdef bytes _address(object value, int family, int alen):
    """A gateway given as text or packed bytes, as alen packed bytes."""
    cdef bytes raw
    if isinstance(value, str):
        try:
            raw = socket.inet_pton(family, value)
        except OSError:
            raise ValueError(f"{value!r} is not an IPv{4 if alen == 4 else 6} address") from None
    elif isinstance(value, (bytes, bytearray, memoryview)):
        raw = bytes(value)
        if len(raw) != alen:
            raise ValueError(f"a packed IPv{4 if alen == 4 else 6} address has {alen} bytes, "
                             f"not {len(raw)}")
    else:
        raise TypeError(f"a gateway is a str or bytes, not {type(value).__name__}")
    return raw


def encode_routes(int op, PrefixArray prefixes not None, gateways=None, int ifindex=0,
                  long long table=254, int protocol=17, uint32_t seq_start=1,
                  bint replace=True, Py_ssize_t ack_run_bytes=0, Py_ssize_t ack_run_msgs=0,
                  uint32_t nhid=0):
    """One rtnetlink route message per prefix, concatenated into one buffer.

    op is RTM_NEWROUTE (24) or RTM_DELROUTE (25).  gateways is None (no
    RTA_GATEWAY), one address (str, or packed bytes) used for every route, a
    list/tuple parallel to prefixes (entries str, packed bytes or None), or
    one bytes object of len(prefixes) packed addresses back to back.
    Message i has sequence number seq_start + i (modulo 2**32).  NEWROUTE
    carries NLM_F_CREATE with NLM_F_REPLACE when replace, else with
    NLM_F_EXCL (like ``ip route add``: an existing route gives EEXIST).

    ack_run_bytes 0: every message asks for an ack (NLM_F_ACK).  Otherwise
    only the last message of each run asks for one, the runs being those
    split_chunks(buf, ack_run_bytes, ack_run_msgs) returns: the kernel
    answers every failing message with its error anyway and handles a run in
    order, so the ack of a run's last message means the whole run is done
    (one reply per run instead of one per route: half the kernel time).

    nhid > 0: every route uses kernel nexthop object nhid (RTA_NH_ID, with
    neither gateways nor ifindex).
    """
    if op != C_NEWROUTE and op != C_DELROUTE:
        raise ValueError(f"op must be RTM_NEWROUTE (24) or RTM_DELROUTE (25), not {op}")
    if table < 1 or table > 0xFFFFFFFF:
        raise ValueError(f"table must be 1..4294967295, not {table}")
    if protocol < 0 or protocol > 255:
        raise ValueError(f"protocol must be 0..255, not {protocol}")
    if ifindex < 0:
        raise ValueError(f"ifindex must be >= 0, not {ifindex}")
    if nhid and (gateways is not None or ifindex):
        raise ValueError("nhid: a route over a nexthop object takes neither gateways nor ifindex")
    if ack_run_bytes < 0 or (0 < ack_run_bytes < C_HDRLEN):
        raise ValueError(f"ack_run_bytes must be 0 or at least {C_HDRLEN}, not {ack_run_bytes}")

    cdef int afi = prefixes.afi
    cdef int family = socket.AF_INET if afi == 1 else socket.AF_INET6
    cdef int alen = 4 if afi == 1 else 16
    cdef Py_ssize_t n = prefixes.n
    cdef Py_ssize_t i, k
    cdef bytes one = None
    cdef bytes packed = None
    cdef const uint8_t* gw_all = NULL      # n * alen packed gateways, or NULL
    cdef const uint8_t* gw_one = NULL      # one gateway for all, or NULL
    cdef uint8_t* gw_list = NULL           # from a list: n * alen bytes
    cdef uint8_t* gw_has = NULL            # from a list: n flags (entry was not None)
    cdef Py_ssize_t n_gw = 0               # messages carrying RTA_GATEWAY

    if gateways is None:
        pass
    elif isinstance(gateways, (str, bytes, bytearray, memoryview)):
        if not isinstance(gateways, str) and n > 1 and len(gateways) == n * alen:
            packed = bytes(gateways)
            gw_all = <const uint8_t*>PyBytes_AS_STRING(packed)
        else:
            one = _address(gateways, family, alen)
            gw_one = <const uint8_t*>PyBytes_AS_STRING(one)
        n_gw = n
    elif isinstance(gateways, (list, tuple)):
        if len(gateways) != n:
            raise ValueError(f"{len(gateways)} gateways for {n} prefixes")
    else:
        raise TypeError("gateways is None, an address, or a list parallel to the prefixes")

    cdef Py_ssize_t attr_addr = align4(4 + alen)
    cdef Py_ssize_t base = C_HDRLEN + C_RTMSG + attr_addr + 8 + (8 if ifindex else 0) \
        + (8 if nhid else 0)
    cdef Py_ssize_t total
    cdef bytes out
    cdef uint8_t* p
    cdef uint8_t* start
    cdef uint16_t flags = C_F_REQUEST | C_F_ACK
    cdef uint32_t tbl = <uint32_t>table
    cdef uint32_t oif = <uint32_t>ifindex
    cdef RunMarker rm
    cdef uint8_t dst[16]
    cdef uint64_t v
    cdef const uint8_t* gw
    cdef bytes raw

    if op == C_NEWROUTE:
        flags |= C_F_CREATE | (C_F_REPLACE if replace else C_F_EXCL)
    if ack_run_bytes > 0:
        flags &= ~C_F_ACK

    try:
        if isinstance(gateways, (list, tuple)) and n > 0:
            gw_list = <uint8_t*>malloc(n * alen)
            gw_has = <uint8_t*>malloc(n)
            if gw_list == NULL or gw_has == NULL:
                raise MemoryError()
            # The input itself holds one object per route; convert it once
            # so that the encoding loop below runs on C memory only.
            for i in range(n):
                item = gateways[i]
                if item is None:
                    gw_has[i] = 0
                else:
                    raw = _address(item, family, alen)
                    memcpy(gw_list + i * alen, PyBytes_AS_STRING(raw), alen)
                    gw_has[i] = 1
                    n_gw += 1

        total = n * base + n_gw * attr_addr
        out = PyBytes_FromStringAndSize(NULL, total)
        p = <uint8_t*>PyBytes_AS_STRING(out)
        _run_init(&rm, p, ack_run_bytes, ack_run_msgs)
        for i in range(n):
            if gw_one != NULL:
                gw = gw_one
            elif gw_all != NULL:
                gw = gw_all + i * alen
            elif gw_has != NULL and gw_has[i]:
                gw = gw_list + i * alen
            else:
                gw = NULL
            if rm.max_bytes > 0:
                _run_before(&rm, p, base + (attr_addr if gw != NULL else 0))
            start = p
            # rtmsg
            p[16] = <uint8_t>family
            if afi == 1:
                v = prefixes.v4[i]
                p[17] = <uint8_t>(v & 0xff)
                dst[0] = <uint8_t>(v >> 32)
                dst[1] = <uint8_t>(v >> 24)
                dst[2] = <uint8_t>(v >> 16)
                dst[3] = <uint8_t>(v >> 8)
            else:
                p[17] = prefixes.v6[i].plen
                put_be64(dst, prefixes.v6[i].hi)
                put_be64(dst + 8, prefixes.v6[i].lo)
            p[18] = 0                                   # src_len
            p[19] = 0                                   # tos
            p[20] = <uint8_t>(tbl if tbl < 256 else 0)  # RT_TABLE_UNSPEC: see RTA_TABLE
            p[21] = <uint8_t>protocol
            if op == C_NEWROUTE:
                p[22] = 0                               # RT_SCOPE_UNIVERSE
                p[23] = 1                               # RTN_UNICAST
            else:
                p[22] = C_RT_SCOPE_NOWHERE              # delete: any scope and type,
                p[23] = 0                               # as ``ip route del`` asks
            put32(p + 24, 0)                            # rtm_flags
            p += C_HDRLEN + C_RTMSG
            p = put_attr(p, C_RTA_DST, dst, alen)
            if gw != NULL:
                p = put_attr(p, C_RTA_GATEWAY, gw, alen)
            if oif:
                p = put_attr(p, C_RTA_OIF, <const uint8_t*>&oif, 4)
            if nhid:
                p = put_attr(p, C_RTA_NH_ID, <const uint8_t*>&nhid, 4)
            p = put_attr(p, C_RTA_TABLE, <const uint8_t*>&tbl, 4)
            # nlmsghdr, now that the length is known
            put32(start, <uint32_t>(p - start))
            put16(start + 4, <uint16_t>op)
            put16(start + 6, flags)
            put32(start + 8, <uint32_t>(seq_start + <uint32_t>i))
            put32(start + 12, 0)
            if rm.max_bytes > 0:
                _run_after(&rm, start)
        if rm.max_bytes > 0:
            _run_finish(&rm)
        return out
    finally:
        free(gw_list)
        free(gw_has)


cdef Py_ssize_t _walk_acks(const uint8_t* p, Py_ssize_t size, list out, dict errors,
                           uint32_t seq_lo, uint32_t count_span) except -1:
    """Walk netlink messages in p[:size]; count the NLMSG_ERROR replies whose
    sequence number lies in [seq_lo, seq_lo + count_span) (all when
    count_span is 0), append (seq, errno) to out and put failures in errors.
    """
    cdef Py_ssize_t off = 0
    cdef Py_ssize_t left
    cdef uint32_t mlen, seq
    cdef uint16_t mtype
    cdef int32_t err
    cdef Py_ssize_t count = 0
    while off < size:
        left = size - off
        if left < C_HDRLEN:
            raise ValueError(f"truncated netlink header at offset {off}: "
                             f"{left} of {C_HDRLEN} bytes")
        mlen = get32(p + off)
        if mlen < C_HDRLEN:
            raise ValueError(f"bad netlink message length {mlen} at offset {off}")
        if mlen > left:
            raise ValueError(f"truncated netlink message at offset {off}: "
                             f"length {mlen}, {left} bytes left")
        mtype = get16(p + off + 4)
        if mtype == C_NLMSG_ERROR:
            if mlen < C_HDRLEN + 4:
                raise ValueError(f"truncated NLMSG_ERROR at offset {off}: "
                                 f"length {mlen}, needs at least {C_HDRLEN + 4}")
            seq = get32(p + off + 8)
            if count_span == 0 or <uint32_t>(seq - seq_lo) < count_span:
                err = <int32_t>get32(p + off + 16)
                count += 1
                if out is not None:
                    out.append((seq, -err))
                if errors is not None and err != 0:
                    errors[seq] = -err
        off += align4(mlen)
    return count


def decode_acks(data):
    """The NLMSG_ERROR replies in data as a list of (seq, errno); errno 0 is
    an ack.  Other message types are skipped.  Raises ValueError on a
    truncated or malformed buffer (nothing past its end is read)."""
    cdef const uint8_t[::1] view = memoryview(data).cast("B")
    cdef list out = []
    if view.shape[0] > 0:
        _walk_acks(&view[0], view.shape[0], out, None, 0, 0)
    return out


def scan_acks(data, Py_ssize_t length, dict errors not None, uint32_t seq_lo,
              uint32_t count_span):
    """Count the acks in data[:length] for sequence numbers seq_lo ..
    seq_lo + count_span - 1; failures go into errors as seq -> errno.
    For RouteSocket's receive loop: no Python object per successful ack."""
    cdef const uint8_t[::1] view = memoryview(data).cast("B")
    if length < 0 or length > view.shape[0]:
        raise ValueError(f"length {length} outside a buffer of {view.shape[0]} bytes")
    if length == 0:
        return 0
    return _walk_acks(&view[0], length, None, errors, seq_lo, count_span)


def scan_run_acks(data, Py_ssize_t length, dict errors not None, uint32_t seq_lo,
                  uint32_t count_span, uint32_t last_seq):
    """For runs encoded with ack_run_bytes: put the failures in data[:length]
    with sequence numbers seq_lo .. seq_lo + count_span - 1 into errors
    (seq -> errno) and return True once the reply to last_seq (the run's
    acked last message, success or failure) has been seen."""
    cdef const uint8_t[::1] view = memoryview(data).cast("B")
    cdef const uint8_t* p
    cdef Py_ssize_t off = 0, left
    cdef uint32_t mlen, seq
    cdef int32_t err
    cdef bint seen = False
    if length < 0 or length > view.shape[0]:
        raise ValueError(f"length {length} outside a buffer of {view.shape[0]} bytes")
    if length == 0:
        return False
    p = &view[0]
    while off < length:
        left = length - off
        if left < C_HDRLEN:
            raise ValueError(f"truncated netlink header at offset {off}: "
                             f"{left} of {C_HDRLEN} bytes")
        mlen = get32(p + off)
        if mlen < C_HDRLEN or mlen > left:
            raise ValueError(f"bad netlink message length {mlen} at offset {off}")
        if get16(p + off + 4) == C_NLMSG_ERROR:
            if mlen < C_HDRLEN + 4:
                raise ValueError(f"truncated NLMSG_ERROR at offset {off}")
            seq = get32(p + off + 8)
            err = <int32_t>get32(p + off + 16)
            if <uint32_t>(seq - seq_lo) < count_span and err != 0:
                errors[seq] = -err
            if seq == last_seq:
                seen = True
        off += align4(mlen)
    return seen


def split_chunks(data, Py_ssize_t max_bytes, Py_ssize_t max_msgs=0):
    """Cut a buffer of netlink messages into runs of whole messages of at most
    max_bytes (and max_msgs messages when > 0) each: a list of
    (start, end, count).  A single message larger than max_bytes is a run of
    its own."""
    cdef const uint8_t[::1] view = memoryview(data).cast("B")
    cdef Py_ssize_t size = view.shape[0]
    cdef Py_ssize_t off = 0, run_start = 0, run_count = 0, left, step
    cdef uint32_t mlen
    cdef list runs = []
    if max_bytes < C_HDRLEN:
        raise ValueError(f"max_bytes must be at least {C_HDRLEN}")
    while off < size:
        left = size - off
        if left < C_HDRLEN:
            raise ValueError(f"truncated netlink header at offset {off}")
        mlen = get32(&view[off])
        if mlen < C_HDRLEN or mlen > left:
            raise ValueError(f"bad netlink message length {mlen} at offset {off}")
        step = align4(mlen)
        if step > left:
            step = left
        if run_count > 0 and (off + step - run_start > max_bytes
                              or (max_msgs > 0 and run_count >= max_msgs)):
            runs.append((run_start, off, run_count))
            run_start = off
            run_count = 0
        run_count += 1
        off += step
    if run_count > 0:
        runs.append((run_start, off, run_count))
    return runs


cdef uint32_t _dump_step(const uint8_t* p, Py_ssize_t off, Py_ssize_t length, uint32_t seq,
                         bint* done, bint* route) except 0:
    """One message of a route dump reply at p[off:length]: check its header,
    set *done at NLMSG_DONE (or a zero NLMSG_ERROR) of seq, raise OSError for
    a dump error of seq, and set *route when it is an RTM_NEWROUTE of seq.
    Returns the message's length (never 0)."""
    cdef Py_ssize_t left = length - off
    cdef uint32_t mlen
    cdef uint16_t mtype
    cdef int32_t err
    route[0] = False
    if left < C_HDRLEN:
        raise ValueError(f"truncated netlink header at offset {off}")
    mlen = get32(p + off)
    if mlen < C_HDRLEN or mlen > left:
        raise ValueError(f"bad netlink message length {mlen} at offset {off}")
    if get32(p + off + 8) != seq:
        return mlen
    mtype = get16(p + off + 4)
    if mtype == C_NLMSG_DONE:
        done[0] = True
    elif mtype == C_NLMSG_ERROR:
        if mlen < C_HDRLEN + 4:
            raise ValueError(f"truncated NLMSG_ERROR at offset {off}")
        err = <int32_t>get32(p + off + 16)
        if err != 0:
            raise OSError(-err, f"route dump failed: {__import__('os').strerror(-err)}")
        done[0] = True
    elif mtype == C_NEWROUTE:
        route[0] = True
    return mlen


def decode_dump(data, Py_ssize_t length, PrefixArray out not None, int protocol,
                long long table, uint32_t seq):
    """Add to out the destinations of the RTM_NEWROUTE messages in
    data[:length] of out's family with this protocol and table (-1: any
    protocol, 0: any table).  Returns True once NLMSG_DONE for seq is seen.
    An NLMSG_ERROR for seq raises OSError; malformed input raises ValueError.
    """
    cdef const uint8_t[::1] view = memoryview(data).cast("B")
    if length < 0 or length > view.shape[0]:
        raise ValueError(f"length {length} outside a buffer of {view.shape[0]} bytes")
    cdef const uint8_t* p = &view[0] if view.shape[0] > 0 else NULL
    cdef Py_ssize_t off = 0, ao, aend
    cdef uint32_t mlen, rtable
    cdef uint16_t alen_, atyp
    cdef int want_family = socket.AF_INET if out.afi == 1 else socket.AF_INET6
    cdef int alen = 4 if out.afi == 1 else 16
    cdef uint8_t dst[16]
    cdef int plen
    cdef bint done = False, route = False
    while off < length:
        mlen = _dump_step(p, off, length, seq, &done, &route)
        if route and mlen >= C_HDRLEN + C_RTMSG:
            if p[off + 16] == want_family and (protocol < 0 or p[off + 21] == protocol):
                plen = p[off + 17]
                rtable = p[off + 20]
                memset(dst, 0, 16)
                ao = off + C_HDRLEN + C_RTMSG
                aend = off + mlen
                while ao + 4 <= aend:
                    alen_ = get16(p + ao)
                    atyp = get16(p + ao + 2) & C_NLA_TYPE_MASK
                    if alen_ < 4 or ao + alen_ > aend:
                        raise ValueError(f"bad route attribute length {alen_} at offset {ao}")
                    if atyp == C_RTA_DST and alen_ == 4 + alen:
                        memcpy(dst, p + ao + 4, alen)
                    elif atyp == C_RTA_TABLE and alen_ == 8:
                        rtable = get32(p + ao + 4)
                    ao += align4(alen_)
                if (table == 0 or rtable == <uint32_t>table) and plen <= alen * 8:
                    if out.afi == 1:
                        out.push4((<uint32_t>dst[0] << 24) | (<uint32_t>dst[1] << 16)
                                  | (<uint32_t>dst[2] << 8) | dst[3], <uint8_t>plen)
                    else:
                        out.push6(get_be64(dst), get_be64(dst + 8), <uint8_t>plen)
        off += align4(mlen)
    return done


# ======================================================================
# Kernel route state (issue 6): what kbgp wants in one table of one family
# and what it believes the kernel holds, in C memory.
#
# Every prefix kbgp knows about has one slot: ``want`` (the id of the next
# hop its best route now uses, 0 = no route, NH_SKIP = a route the injection
# decision chose not to install) and ``have`` (the id of the next hop of
# kbgp's route in the kernel, 0 = none; the top 8 bits are flags).  A change
# of either pushes the prefix on the dirty list once; build() turns the dirty
# prefixes into route messages, updating ``have`` as if they succeed, and
# complete() undoes that for the routes the kernel refused.  Reconciling
# reads a dump of the kernel's routes of our protocol and table and fixes
# ``have`` (routes removed or changed by someone else); routes of our
# protocol nobody wants are adopted (kept, flag ADOPTED) until converge().
#
# Slots: open addressing, linear probing, power-of-two size, at most 3/4
# full, backward-shift deletion (no tombstones).  IPv4 slots are 16 bytes.
# Next hops are interned: an id per distinct (gateway, oif, prefsrc).
# ======================================================================

cdef extern from *:
    """
    static inline uint64_t kbgp_nl_mix(uint64_t x) {
        x ^= x >> 33;
        x *= 0xff51afd7ed558ccdULL;
        x ^= x >> 33;
        x *= 0xc4ceb9fe1a85ec53ULL;
        x ^= x >> 33;
        return x;
    }
    """
    uint64_t kbgp_nl_mix(uint64_t x) noexcept nogil

cdef enum:
    NH_MASK = 0xFFFFFF
    FL_DIRTY = 0x01       # on the dirty list
    FL_ADOPTED = 0x02     # found in the kernel, not (yet) wanted
    FL_SEEN = 0x04        # seen by the reconcile in progress
    FL_FAILED = 0x08      # the last write of this route failed
    FL_CONFLICT = 0x10    # ... with EEXIST: a route of another protocol holds the prefix
    OPK_ADD = 1           # RTM_NEWROUTE, NLM_F_CREATE | NLM_F_EXCL
    OPK_REPLACE = 2       # RTM_NEWROUTE, NLM_F_CREATE | NLM_F_REPLACE (our route is there)
    OPK_DEL = 3           # RTM_DELROUTE restricted to our protocol
    C_RTA_PREFSRC = 7
    C_RTA_MULTIPATH = 9
    C_RT_SCOPE_LINK = 253
    C_RTN_UNICAST = 1
    C_NEWLINK = 16
    C_DELLINK = 17
    C_NEWADDR = 20
    C_DELADDR = 21
    C_ESRCH = 3
    C_EEXIST = 17
    MAX_OIFS = 32         # interfaces remembered per state (more: every link counts)
    SCAN_MIN = 4096       # dirty prefixes from which build() walks the slots (hash order)

NH_NONE = 0
NH_SKIP = 1
OP_ADD = OPK_ADD
OP_REPLACE = OPK_REPLACE
OP_DEL = OPK_DEL
_OP_NAMES = {OPK_ADD: "add", OPK_REPLACE: "replace", OPK_DEL: "delete"}

cdef uint64_t EMPTY4 = 0xFFFFFFFFFFFFFFFF
cdef uint8_t EMPTY6 = 255


cdef struct Slot4:
    uint64_t key          # PrefixArray packing: (address << 8) | length
    uint32_t want
    uint32_t have         # next hop id (low 24 bits) | flags << 24


cdef struct Slot6:
    uint64_t hi
    uint64_t lo
    uint32_t want
    uint32_t have
    uint8_t plen          # EMPTY6: free slot


cdef struct Key:
    uint64_t hi           # IPv4: the packed key; IPv6: high 64 bits
    uint64_t lo
    uint8_t plen


cdef struct NextHop:
    uint8_t gw[16]
    uint8_t src[16]
    uint32_t oif
    uint32_t kid          # id of its kernel nexthop object (RTA_NH_ID), 0: none
    uint32_t drefs        # wanted routes using it
    uint32_t irefs        # installed routes using it
    uint8_t has_gw
    uint8_t has_src
    uint8_t skip          # wanted routes over it are not installed (set_skip)


cdef struct RouteMsg:
    Key key
    uint8_t gw[16]
    uint8_t src[16]
    uint32_t oif
    uint32_t nhid         # RTA_NH_ID: the route uses nexthop object nhid (0: none)
    uint32_t table
    uint8_t protocol
    uint8_t rtype
    uint8_t has_gw
    uint8_t has_src
    uint8_t multipath


cdef int _parse_route(const uint8_t* p, uint32_t mlen, int family, RouteMsg* m) except -1:
    """Parse the RTM_NEWROUTE/RTM_DELROUTE message at p (mlen bytes, header
    included).  Returns 1 when it is of this family, 0 when it is not (or
    too short to be a route); raises ValueError on a malformed attribute."""
    cdef int alen = 4 if family == socket.AF_INET else 16
    cdef uint32_t ao = C_HDRLEN + C_RTMSG
    cdef uint16_t alen_, atyp
    cdef uint8_t dst[16]
    cdef uint32_t addr
    cdef uint64_t hi, lo
    cdef int plen
    if mlen < C_HDRLEN + C_RTMSG or p[16] != family:
        return 0
    plen = p[17]
    if plen > alen * 8:
        return 0
    memset(dst, 0, 16)
    m.table = p[20]
    m.protocol = p[21]
    m.rtype = p[23]
    m.has_gw = 0
    m.has_src = 0
    m.multipath = 0
    m.oif = 0
    m.nhid = 0
    while ao + 4 <= mlen:
        alen_ = get16(p + ao)
        atyp = get16(p + ao + 2) & C_NLA_TYPE_MASK
        if alen_ < 4 or ao + alen_ > mlen:
            raise ValueError(f"bad route attribute length {alen_} at offset {ao}")
        if atyp == C_RTA_DST and alen_ == 4 + alen:
            memcpy(dst, p + ao + 4, alen)
        elif atyp == C_RTA_GATEWAY and alen_ == 4 + alen:
            memcpy(m.gw, p + ao + 4, alen)
            m.has_gw = 1
        elif atyp == C_RTA_PREFSRC and alen_ == 4 + alen:
            memcpy(m.src, p + ao + 4, alen)
            m.has_src = 1
        elif atyp == C_RTA_OIF and alen_ == 8:
            m.oif = get32(p + ao + 4)
        elif atyp == C_RTA_TABLE and alen_ == 8:
            m.table = get32(p + ao + 4)
        elif atyp == C_RTA_NH_ID and alen_ == 8:
            m.nhid = get32(p + ao + 4)
        elif atyp == C_RTA_MULTIPATH:
            m.multipath = 1
        ao += align4(alen_)
    if family == socket.AF_INET:
        addr = ((<uint32_t>dst[0] << 24) | (<uint32_t>dst[1] << 16)
                | (<uint32_t>dst[2] << 8) | dst[3]) & mask4(plen)
        m.key.hi = (<uint64_t>addr << 8) | <uint64_t>plen
        m.key.lo = 0
        m.key.plen = 0
    else:
        hi = get_be64(dst)
        lo = get_be64(dst + 8)
        mask6(&hi, &lo, plen)
        m.key.hi = hi
        m.key.lo = lo
        m.key.plen = <uint8_t>plen
    return 1


cdef class RouteBatch:
    """One write: route messages for up to max_ops dirty prefixes, and what
    each message was (to undo the optimistic state of the refused ones).
    ``buf`` holds the messages (sequence numbers seq0 ..), ``runs`` the
    (start, end, count) runs to send, each acked by its last message."""

    cdef readonly bytes buf
    cdef readonly list runs
    cdef readonly uint32_t seq0
    cdef readonly Py_ssize_t n
    cdef readonly Py_ssize_t adds, replaces, deletes
    cdef PrefixArray pfx
    cdef uint8_t* kind
    cdef uint32_t* new_nh
    cdef uint32_t* old_nh
    cdef Py_ssize_t cap

    def __cinit__(self):
        self.pfx = None
        self.kind = NULL
        self.new_nh = NULL
        self.old_nh = NULL
        self.cap = 0
        self.n = 0

    def __dealloc__(self):
        free(self.kind)
        free(self.new_nh)
        free(self.old_nh)

    cdef int _reserve(self, Py_ssize_t cap) except -1:
        self.kind = <uint8_t*>malloc(cap)
        self.new_nh = <uint32_t*>malloc(cap * sizeof(uint32_t))
        self.old_nh = <uint32_t*>malloc(cap * sizeof(uint32_t))
        if self.kind == NULL or self.new_nh == NULL or self.old_nh == NULL:
            raise MemoryError()
        self.cap = cap
        return 0

    @property
    def prefixes(self):
        """The prefixes of the messages, in order (a PrefixArray)."""
        return self.pfx

    def op(self, Py_ssize_t i):
        """(kind name, prefix text, new next hop id, old next hop id) of message i."""
        if i < 0 or i >= self.n:
            raise IndexError(i)
        return (_OP_NAMES[self.kind[i]], self.pfx.prefix(i), self.new_nh[i], self.old_nh[i])

    def __repr__(self):
        return (f"RouteBatch(n={self.n}, adds={self.adds}, replaces={self.replaces}, "
                f"deletes={self.deletes}, seq0={self.seq0})")


cdef class RouteState:
    """Wanted and installed kernel routes of one family in one table, keyed
    by prefix, with next hops interned.  Not thread-safe: one owner (the
    syncer's event loop) calls every method."""

    cdef readonly int afi
    cdef readonly int protocol
    cdef readonly uint32_t table
    cdef readonly bint converged
    cdef int family
    cdef int alen
    cdef Slot4* s4
    cdef Slot6* s6
    cdef size_t cap
    cdef size_t used
    cdef NextHop* nhs
    cdef uint32_t n_nh
    cdef uint32_t cap_nh
    cdef uint32_t* nh_index
    cdef uint32_t nh_index_cap
    # nexthop object id -> next hop id (set_kid): pairs (kid, idx), open
    # addressing, kid 0 = free; for routes dumped with RTA_NH_ID
    cdef uint32_t* kid_tab
    cdef uint32_t kid_cap
    cdef PrefixArray dirty
    cdef Py_ssize_t dirty_pos
    cdef Py_ssize_t stat_missing, stat_changed, stat_unknown
    # The interfaces kbgp's routes went out of at the last reconcile: only
    # changes of these links and their addresses can remove our routes.
    cdef uint32_t oifs[MAX_OIFS]
    cdef int n_oifs
    cdef bint oifs_overflow
    # build() in hash order: a walk over the slots in progress
    cdef bint scanning
    cdef size_t scan_pos

    def __cinit__(self, int afi=1, int protocol=17, long long table=254):
        if afi != 1 and afi != 2:
            raise ValueError(f"afi must be 1 (IPv4) or 2 (IPv6), not {afi}")
        if protocol < 1 or protocol > 255:
            raise ValueError(f"route protocol must be 1..255, not {protocol}")
        if table < 1 or table > 0xFFFFFFFF:
            raise ValueError(f"route table must be 1..4294967295, not {table}")
        self.afi = afi
        self.family = socket.AF_INET if afi == 1 else socket.AF_INET6
        self.alen = 4 if afi == 1 else 16
        self.protocol = protocol
        self.table = <uint32_t>table
        self.converged = False
        self.s4 = NULL
        self.s6 = NULL
        self.cap = 0
        self.used = 0
        self.nhs = NULL
        self.n_nh = 0
        self.cap_nh = 0
        self.nh_index = NULL
        self.nh_index_cap = 0
        self.kid_tab = NULL
        self.kid_cap = 0
        self.dirty = PrefixArray(afi)
        self.dirty_pos = 0
        self.n_oifs = 0
        self.oifs_overflow = False
        self.scanning = False
        self.scan_pos = 0
        self._alloc_slots(64)
        self._grow_nh()
        # ids 0 (no route) and 1 (NH_SKIP) are reserved: no spec, never interned
        memset(&self.nhs[0], 0, 2 * sizeof(NextHop))
        self.n_nh = 2

    def __dealloc__(self):
        free(self.s4)
        free(self.s6)
        free(self.nhs)
        free(self.nh_index)
        free(self.kid_tab)

    # ------------------------------------------------------------ slots
    cdef int _alloc_slots(self, size_t cap) except -1:
        cdef size_t i
        if self.afi == 1:
            self.s4 = <Slot4*>malloc(cap * sizeof(Slot4))
            if self.s4 == NULL:
                raise MemoryError()
            for i in range(cap):
                self.s4[i].key = EMPTY4
        else:
            self.s6 = <Slot6*>malloc(cap * sizeof(Slot6))
            if self.s6 == NULL:
                raise MemoryError()
            for i in range(cap):
                self.s6[i].plen = EMPTY6
        self.cap = cap
        self.used = 0
        return 0

    cdef inline size_t _home(self, const Key* k) noexcept nogil:
        if self.afi == 1:
            return <size_t>kbgp_nl_mix(k.hi) & (self.cap - 1)
        return <size_t>kbgp_nl_mix(k.hi ^ kbgp_nl_mix(k.lo ^ (<uint64_t>k.plen << 56)
                                                      ^ 0x9e3779b97f4a7c15ULL)) & (self.cap - 1)

    cdef inline bint _empty(self, size_t i) noexcept nogil:
        if self.afi == 1:
            return self.s4[i].key == EMPTY4
        return self.s6[i].plen == EMPTY6

    cdef inline bint _is(self, size_t i, const Key* k) noexcept nogil:
        if self.afi == 1:
            return self.s4[i].key == k.hi
        return self.s6[i].plen == k.plen and self.s6[i].hi == k.hi and self.s6[i].lo == k.lo

    cdef inline void _key_of(self, size_t i, Key* k) noexcept nogil:
        if self.afi == 1:
            k.hi = self.s4[i].key
            k.lo = 0
            k.plen = 0
        else:
            k.hi = self.s6[i].hi
            k.lo = self.s6[i].lo
            k.plen = self.s6[i].plen

    cdef inline uint32_t* _wh(self, size_t i) noexcept nogil:
        """want at [0], have at [1]."""
        if self.afi == 1:
            return &self.s4[i].want
        return &self.s6[i].want

    cdef inline void _arr_key(self, PrefixArray arr, Py_ssize_t j, Key* k) noexcept nogil:
        if self.afi == 1:
            k.hi = arr.v4[j]
            k.lo = 0
            k.plen = 0
        else:
            k.hi = arr.v6[j].hi
            k.lo = arr.v6[j].lo
            k.plen = arr.v6[j].plen

    cdef int _push_key(self, PrefixArray arr, const Key* k) except -1:
        arr.reserve(1)
        if self.afi == 1:
            arr.v4[arr.n] = k.hi
        else:
            arr.v6[arr.n].hi = k.hi
            arr.v6[arr.n].lo = k.lo
            arr.v6[arr.n].plen = k.plen
        arr.n += 1
        return 0

    cdef Py_ssize_t _find(self, const Key* k) noexcept nogil:
        cdef size_t mask = self.cap - 1
        cdef size_t i = self._home(k)
        while True:
            if self._empty(i):
                return -1
            if self._is(i, k):
                return <Py_ssize_t>i
            i = (i + 1) & mask

    cdef int _grow(self) except -1:
        cdef Slot4* o4 = self.s4
        cdef Slot6* o6 = self.s6
        cdef size_t ocap = self.cap, i, j, mask
        cdef Key k
        self.s4 = NULL
        self.s6 = NULL
        try:
            self._alloc_slots(ocap * 2)
        except MemoryError:
            self.s4 = o4
            self.s6 = o6
            self.cap = ocap
            raise
        mask = self.cap - 1
        for i in range(ocap):
            if self.afi == 1:
                if o4[i].key == EMPTY4:
                    continue
                k.hi = o4[i].key
                j = self._home(&k)
                while self.s4[j].key != EMPTY4:
                    j = (j + 1) & mask
                self.s4[j] = o4[i]
            else:
                if o6[i].plen == EMPTY6:
                    continue
                k.hi = o6[i].hi
                k.lo = o6[i].lo
                k.plen = o6[i].plen
                j = self._home(&k)
                while self.s6[j].plen != EMPTY6:
                    j = (j + 1) & mask
                self.s6[j] = o6[i]
            self.used += 1
        free(o4)
        free(o6)
        return 0

    cdef Py_ssize_t _slot(self, const Key* k) except -1:
        """The slot of k, made (want 0, have 0) when missing."""
        cdef size_t mask, i
        if (self.used + 1) * 4 > self.cap * 3:
            self._grow()
        mask = self.cap - 1
        i = self._home(k)
        while True:
            if self._empty(i):
                if self.afi == 1:
                    self.s4[i].key = k.hi
                    self.s4[i].want = 0
                    self.s4[i].have = 0
                else:
                    self.s6[i].hi = k.hi
                    self.s6[i].lo = k.lo
                    self.s6[i].plen = k.plen
                    self.s6[i].want = 0
                    self.s6[i].have = 0
                self.used += 1
                return <Py_ssize_t>i
            if self._is(i, k):
                return <Py_ssize_t>i
            i = (i + 1) & mask

    cdef void _remove(self, size_t i) noexcept nogil:
        """Free slot i, shifting later members of its probe run back."""
        cdef size_t mask = self.cap - 1
        cdef size_t j = i, h
        cdef Key k
        while True:
            j = (j + 1) & mask
            if self._empty(j):
                break
            self._key_of(j, &k)
            h = self._home(&k)
            if i <= j:
                if i < h and h <= j:
                    continue
            elif i < h or h <= j:
                continue
            if self.afi == 1:
                self.s4[i] = self.s4[j]
            else:
                self.s6[i] = self.s6[j]
            i = j
        if self.afi == 1:
            self.s4[i].key = EMPTY4
        else:
            self.s6[i].plen = EMPTY6
        self.used -= 1

    # ------------------------------------------------------------ want / have
    cdef inline void _set_want(self, uint32_t* wh, uint32_t nh) noexcept nogil:
        cdef uint32_t old = wh[0]
        if old == nh:
            return
        if old > 1:
            self.nhs[old].drefs -= 1
        if nh > 1:
            self.nhs[nh].drefs += 1
        wh[0] = nh

    cdef inline void _set_have(self, uint32_t* wh, uint32_t nh) noexcept nogil:
        cdef uint32_t old = wh[1] & NH_MASK
        if old == nh:
            return
        if old > 1:
            self.nhs[old].irefs -= 1
        if nh > 1:
            self.nhs[nh].irefs += 1
        wh[1] = (wh[1] & ~(<uint32_t>NH_MASK)) | nh

    cdef inline uint32_t _flags(self, const uint32_t* wh) noexcept nogil:
        return wh[1] >> 24

    cdef inline void _set_flags(self, uint32_t* wh, uint32_t fl) noexcept nogil:
        wh[1] = (wh[1] & NH_MASK) | (fl << 24)

    cdef inline uint32_t _eff(self, uint32_t w) noexcept nogil:
        """The next hop a wanted route is installed with: 0 for none, for
        NH_SKIP and for next hops marked skip."""
        if w == 1 or self.nhs[w].skip:
            return 0
        return w

    cdef inline bint _needs_work(self, const uint32_t* wh) noexcept nogil:
        cdef uint32_t w = self._eff(wh[0])
        cdef uint32_t h = wh[1] & NH_MASK
        if w == h:
            return False
        if w == 0 and (wh[1] >> 24) & FL_ADOPTED and not self.converged:
            return False                 # adopted: kept until converge()
        return True

    cdef int _mark(self, size_t i) except -1:
        """Put slot i on the dirty list (once)."""
        cdef uint32_t* wh = self._wh(i)
        cdef Key k
        if self._flags(wh) & FL_DIRTY:
            return 0
        self._set_flags(wh, self._flags(wh) | FL_DIRTY)
        self._key_of(i, &k)
        self._push_key(self.dirty, &k)
        return 0

    # ------------------------------------------------------------ next hops
    cdef int _grow_nh(self) except -1:
        cdef uint32_t newcap = self.cap_nh * 2 if self.cap_nh else 16
        cdef void* mem
        if newcap > NH_MASK:
            raise OverflowError(f"more than {NH_MASK} distinct next hops")
        mem = realloc(self.nhs, newcap * sizeof(NextHop))
        if mem == NULL:
            raise MemoryError()
        self.nhs = <NextHop*>mem
        self.cap_nh = newcap
        # the index: open addressing over ids, at most half full
        free(self.nh_index)
        self.nh_index = <uint32_t*>calloc(newcap * 2, sizeof(uint32_t))
        if self.nh_index == NULL:
            raise MemoryError()
        self.nh_index_cap = newcap * 2
        cdef uint32_t idx
        for idx in range(2, self.n_nh):
            self._index_put(idx)
        return 0

    cdef inline uint64_t _nh_hash(self, const NextHop* h) noexcept nogil:
        cdef uint64_t v = h.oif ^ (<uint64_t>h.has_gw << 40) ^ (<uint64_t>h.has_src << 41)
        cdef uint64_t a
        cdef int k
        for k in range(0, 16, 8):
            memcpy(&a, h.gw + k, 8)
            v = kbgp_nl_mix(v ^ a)
            memcpy(&a, h.src + k, 8)
            v = kbgp_nl_mix(v ^ a)
        return v

    cdef inline bint _nh_same(self, const NextHop* a, const NextHop* b) noexcept nogil:
        return (a.oif == b.oif and a.has_gw == b.has_gw and a.has_src == b.has_src
                and memcmp(a.gw, b.gw, 16) == 0 and memcmp(a.src, b.src, 16) == 0)

    cdef void _index_put(self, uint32_t idx) noexcept nogil:
        cdef uint32_t mask = self.nh_index_cap - 1
        cdef uint32_t i = <uint32_t>(self._nh_hash(&self.nhs[idx]) & mask)
        while self.nh_index[i] != 0:
            i = (i + 1) & mask
        self.nh_index[i] = idx

    cdef uint32_t _intern(self, const uint8_t* gw, uint32_t oif, const uint8_t* src) except 0:
        """The id of the next hop (gateway or NULL, oif, prefsrc or NULL)."""
        cdef NextHop probe
        cdef uint32_t mask, i, idx
        memset(&probe, 0, sizeof(NextHop))
        if gw != NULL:
            memcpy(probe.gw, gw, self.alen)
            probe.has_gw = 1
        if src != NULL:
            memcpy(probe.src, src, self.alen)
            probe.has_src = 1
        probe.oif = oif
        mask = self.nh_index_cap - 1
        i = <uint32_t>(self._nh_hash(&probe) & mask)
        while True:
            idx = self.nh_index[i]
            if idx == 0:
                break
            if self._nh_same(&self.nhs[idx], &probe):
                return idx
            i = (i + 1) & mask
        if self.n_nh >= self.cap_nh:
            self._grow_nh()
        idx = self.n_nh
        self.nhs[idx] = probe
        self.n_nh += 1
        self._index_put(idx)
        return idx

    # ------------------------------------------------------------ nexthop objects
    cdef int _kid_rebuild(self) except -1:
        cdef uint32_t idx, count = 0, cap = 16, mask, i
        cdef uint32_t* tab
        for idx in range(2, self.n_nh):
            count += self.nhs[idx].kid != 0
        while cap < count * 2 + 2:
            cap *= 2
        tab = <uint32_t*>calloc(cap * 2, sizeof(uint32_t))
        if tab == NULL:
            raise MemoryError()
        mask = cap - 1
        for idx in range(2, self.n_nh):
            if self.nhs[idx].kid == 0:
                continue
            i = <uint32_t>(kbgp_nl_mix(self.nhs[idx].kid) & mask)
            while tab[2 * i] != 0:
                i = (i + 1) & mask
            tab[2 * i] = self.nhs[idx].kid
            tab[2 * i + 1] = idx
        free(self.kid_tab)
        self.kid_tab = tab
        self.kid_cap = cap
        return 0

    cdef uint32_t _kid_find(self, uint32_t kid) noexcept nogil:
        """The next hop whose nexthop object is kid, 0 when none is."""
        cdef uint32_t mask, i
        if kid == 0 or self.kid_cap == 0:
            return 0
        mask = self.kid_cap - 1
        i = <uint32_t>(kbgp_nl_mix(kid) & mask)
        while self.kid_tab[2 * i] != 0:
            if self.kid_tab[2 * i] == kid:
                return self.kid_tab[2 * i + 1]
            i = (i + 1) & mask
        return 0

    def set_kid(self, uint32_t idx, uint32_t kid):
        """Next hop idx is kernel nexthop object kid (0: none, routes over
        it are written with RTA_GATEWAY/RTA_OIF again).  Routes written from
        now on carry RTA_NH_ID kid; a route in the kernel counts as having
        next hop idx in either form (nothing is rewritten for the form
        alone: no churn at a restart).  A kid held by another next hop is
        taken from it."""
        cdef uint32_t other
        if idx <= 1 or idx >= self.n_nh:
            raise ValueError(f"unknown next hop id {idx}")
        if self.nhs[idx].kid == kid:
            return
        if kid != 0:
            other = self._kid_find(kid)
            if other != 0:
                self.nhs[other].kid = 0
        self.nhs[idx].kid = kid
        self._kid_rebuild()

    def kid_of(self, uint32_t idx):
        """The nexthop object id of next hop idx (0: none)."""
        if idx <= 1 or idx >= self.n_nh:
            return 0
        return self.nhs[idx].kid

    def nexthop_of_kid(self, uint32_t kid):
        """The next hop id whose nexthop object is kid (0: none)."""
        return self._kid_find(kid)

    cdef uint32_t _intern_route(self, const RouteMsg* m) except 0:
        """The next hop of a route read from the kernel, as kbgp would have
        asked for it: the next hop of its nexthop object (RTA_NH_ID), via a
        gateway (with its interface only for an IPv6 link-local gateway),
        else out of an interface with its source."""
        cdef uint32_t idx
        if m.nhid != 0:
            idx = self._kid_find(m.nhid)
            if idx != 0:
                return idx
            return self._intern(NULL, 0, NULL)       # someone else's object
        if m.multipath or (not m.has_gw and m.oif == 0):
            return self._intern(NULL, 0, NULL)       # matches nothing kbgp asks for
        if m.has_gw:
            if self.afi == 2 and m.gw[0] == 0xfe and (m.gw[1] & 0xc0) == 0x80:
                return self._intern(m.gw, m.oif, NULL)
            return self._intern(m.gw, 0, NULL)
        if m.has_src:
            return self._intern(NULL, m.oif, m.src)
        return self._intern(NULL, m.oif, NULL)

    cdef bint _nh_matches(self, uint32_t idx, const RouteMsg* m) noexcept nogil:
        """Does the kernel route m have next hop idx (as kbgp writes it)?"""
        cdef const NextHop* h
        if idx <= 1 or idx >= self.n_nh:
            return False
        h = &self.nhs[idx]
        if m.nhid != 0:
            return h.kid == m.nhid
        if m.multipath:
            return False
        if h.has_gw:
            return (m.has_gw and memcmp(h.gw, m.gw, self.alen) == 0
                    and (h.oif == 0 or h.oif == m.oif))
        if m.has_gw or h.oif == 0 or h.oif != m.oif:
            return False
        return not h.has_src or (m.has_src and memcmp(h.src, m.src, self.alen) == 0)

    def nexthop(self, gateway=None, Py_ssize_t oif=0, src=None):
        """The id of a next hop: via ``gateway`` (text or packed), and/or out
        of interface ``oif`` with source address ``src``.  Ids are >= 2 and
        stable for the life of this object."""
        cdef bytes g = None
        cdef bytes s = None
        if gateway is None and oif == 0:
            raise ValueError("a next hop needs a gateway or an interface (oif)")
        if oif < 0 or oif > 0xFFFFFFFF:
            raise ValueError(f"oif must be 0..4294967295, not {oif}")
        if gateway is not None:
            g = _address(gateway, self.family, self.alen)
        if src is not None:
            s = _address(src, self.family, self.alen)
        return self._intern(<const uint8_t*>PyBytes_AS_STRING(g) if g is not None else NULL,
                            <uint32_t>oif,
                            <const uint8_t*>PyBytes_AS_STRING(s) if s is not None else NULL)

    def nexthop_info(self, uint32_t idx):
        """{"gateway": text or None, "oif": int, "src": text or None}."""
        cdef const NextHop* h
        if idx <= 1 or idx >= self.n_nh:
            return {"gateway": None, "oif": 0, "kid": 0, "src": None, "skip": idx == 1}
        h = &self.nhs[idx]
        return {
            "gateway": socket.inet_ntop(self.family, h.gw[:self.alen]) if h.has_gw else None,
            "oif": h.oif,
            "kid": h.kid,
            "src": socket.inet_ntop(self.family, h.src[:self.alen]) if h.has_src else None,
            "skip": bool(h.skip),
        }

    def set_skip(self, uint32_t idx, bint skip):
        """Mark next hop idx as not to be installed (the injection decision
        said so, or its tunnel could not be made): routes over it are
        deleted from the kernel but stay wanted; clearing the mark installs
        them again.  Returns how many routes need a write."""
        cdef size_t i
        cdef uint32_t* wh
        cdef Py_ssize_t count = 0
        if idx <= 1 or idx >= self.n_nh:
            raise ValueError(f"unknown next hop id {idx}")
        if self.nhs[idx].skip == skip:
            return 0
        self.nhs[idx].skip = skip
        if self.nhs[idx].drefs == 0 and self.nhs[idx].irefs == 0:
            return 0
        for i in range(self.cap):
            if self._empty(i):
                continue
            wh = self._wh(i)
            if (wh[0] == idx or (wh[1] & NH_MASK) == idx) and self._needs_work(wh):
                self._mark(i)
                count += 1
        return count

    def nexthop_refs(self, uint32_t idx):
        """(wanted routes, installed routes) using next hop idx."""
        if idx <= 1 or idx >= self.n_nh:
            return (0, 0)
        return (self.nhs[idx].drefs, self.nhs[idx].irefs)

    def nexthops(self):
        """Ids of the next hops some wanted or installed route uses."""
        cdef uint32_t idx
        return [idx for idx in range(2, self.n_nh)
                if self.nhs[idx].drefs or self.nhs[idx].irefs]

    # ------------------------------------------------------------ changes from the RIB
    def announce(self, PrefixArray arr not None, uint32_t nh):
        """These prefixes' best routes now use next hop nh (an id from
        nexthop(), or NH_SKIP).  Returns how many need a kernel write."""
        cdef Py_ssize_t j, i
        cdef Key k
        cdef uint32_t* wh
        cdef Py_ssize_t work = 0
        if arr.afi != self.afi:
            raise ValueError(f"prefixes of afi {arr.afi} for the afi {self.afi} route state")
        if nh < 1 or nh >= self.n_nh:
            raise ValueError(f"unknown next hop id {nh}")
        for j in range(arr.n):
            self._arr_key(arr, j, &k)
            i = self._slot(&k)
            wh = self._wh(i)
            self._set_want(wh, nh)
            self._set_flags(wh, self._flags(wh) & ~(<uint32_t>FL_ADOPTED))
            if self._needs_work(wh):
                self._mark(i)
                work += 1
        return work

    def withdraw(self, PrefixArray arr not None):
        """These prefixes have no best route any more: their kernel routes go
        (at once, adopted or not).  Returns how many need a kernel write."""
        cdef Py_ssize_t j, i
        cdef Key k
        cdef uint32_t* wh
        cdef Py_ssize_t work = 0
        if arr.afi != self.afi:
            raise ValueError(f"prefixes of afi {arr.afi} for the afi {self.afi} route state")
        for j in range(arr.n):
            self._arr_key(arr, j, &k)
            i = self._find(&k)
            if i < 0:
                continue
            wh = self._wh(i)
            self._set_want(wh, 0)
            self._set_flags(wh, self._flags(wh) & ~(<uint32_t>FL_ADOPTED))
            if (wh[1] & NH_MASK) == 0:
                if not (self._flags(wh) & FL_DIRTY):
                    self._remove(i)
            elif self._needs_work(wh):
                self._mark(i)
                work += 1
        return work

    def remap(self, uint32_t old, uint32_t new):
        """Every prefix wanting next hop old now wants new (a tunnel was
        re-created with another interface).  Returns how many."""
        cdef size_t i
        cdef uint32_t* wh
        cdef Py_ssize_t count = 0
        if new < 1 or new >= self.n_nh:
            raise ValueError(f"unknown next hop id {new}")
        for i in range(self.cap):
            if self._empty(i):
                continue
            wh = self._wh(i)
            if wh[0] == old:
                self._set_want(wh, new)
                count += 1
                if self._needs_work(wh):
                    self._mark(i)
        return count

    def converge(self):
        """The RIB has re-learned its routes: adopted routes nobody wants are
        deleted by the next builds.  Returns how many."""
        cdef size_t i
        cdef uint32_t* wh
        cdef Py_ssize_t count = 0
        self.converged = True
        for i in range(self.cap):
            if self._empty(i):
                continue
            wh = self._wh(i)
            if self._needs_work(wh):
                self._mark(i)
                count += 1
        return count

    @property
    def pending(self):
        """Dirty prefixes not yet turned into messages (an upper bound)."""
        return self.dirty.n - self.dirty_pos

    # ------------------------------------------------------------ writing
    def build(self, Py_ssize_t max_ops, uint32_t seq0, Py_ssize_t run_bytes=65536,
              Py_ssize_t run_msgs=0):
        """Route messages for up to max_ops dirty prefixes (None when there
        is nothing to write).  ``have`` is updated as if every message
        succeeds; pass the kernel's answers to complete().

        Order: a few dirty prefixes go in the order they changed; from
        SCAN_MIN on, the slots are walked instead, which is hash order.  The
        kernel's FIB trie takes writes in scattered order far better than in
        address order (fewer node resizes and RCU waits: deleting 1M
        consecutive /32s took 5.7 s in address order, 2.8 s shuffled)."""
        cdef RouteBatch b
        cdef Key k
        cdef Py_ssize_t slot, n = 0
        cdef uint32_t* wh
        cdef Py_ssize_t total = 0
        if max_ops < 1:
            raise ValueError(f"max_ops must be at least 1, not {max_ops}")
        if run_bytes < 128:
            raise ValueError(f"run_bytes must be at least 128, not {run_bytes}")
        b = RouteBatch()
        b.pfx = PrefixArray(self.afi)
        b._reserve(min(max_ops, max(self.dirty.n - self.dirty_pos, 1)))
        b.seq0 = seq0
        # Invariant: every slot marked dirty has its key on the list at or
        # after dirty_pos.  The walk only reorders: what it misses (slots
        # moved by a growth or a removal meanwhile) the list still has, and
        # the list's entries the walk already wrote are no-ops afterwards.
        if not self.scanning and self.dirty.n - self.dirty_pos >= SCAN_MIN:
            self.scanning = True
            self.scan_pos = 0
        if self.scanning:
            while self.scan_pos < self.cap and n < max_ops and n < b.cap:
                slot = <Py_ssize_t>self.scan_pos
                if self._empty(slot) or not (self._flags(self._wh(slot)) & FL_DIRTY):
                    self.scan_pos += 1
                    continue
                self._key_of(slot, &k)
                if self._take(slot, &k, b, n, &total):
                    n += 1
                    self.scan_pos += 1
                elif not self._empty(slot) and not self._is(slot, &k):
                    pass        # freed, and a later slot moved here: look again
                else:
                    self.scan_pos += 1
            if self.scan_pos >= self.cap:
                self.scanning = False
                self.scan_pos = 0
        while not self.scanning and self.dirty_pos < self.dirty.n and n < max_ops and n < b.cap:
            self._arr_key(self.dirty, self.dirty_pos, &k)
            self.dirty_pos += 1
            slot = self._find(&k)
            if slot < 0:
                continue
            if self._take(slot, &k, b, n, &total):
                n += 1
        if not self.scanning and self.dirty_pos >= self.dirty.n:
            self.dirty.n = 0
            self.dirty_pos = 0
        if n == 0:
            return None
        b.n = n
        b.buf = self._encode(b, total, run_bytes, run_msgs)
        b.runs = split_chunks(b.buf, run_bytes, run_msgs)
        return b

    cdef bint _take(self, Py_ssize_t slot, const Key* k, RouteBatch b, Py_ssize_t n,
                    Py_ssize_t* total) except -1:
        """Clear slot's dirty mark and, if its route needs a write, record
        it as message n of b (have set as if it succeeds).  May free the
        slot (nothing wanted, nothing installed)."""
        cdef uint32_t* wh = self._wh(slot)
        cdef uint32_t fl = self._flags(wh) & ~(<uint32_t>FL_DIRTY)
        cdef uint32_t w, h
        cdef uint8_t kind
        cdef const NextHop* nh
        cdef Py_ssize_t attr_addr = align4(4 + self.alen)
        cdef Py_ssize_t msg_len
        self._set_flags(wh, fl)
        if not self._needs_work(wh):
            if wh[0] == 0 and (wh[1] & NH_MASK) == 0:
                self._remove(slot)
            return False
        w = self._eff(wh[0])
        h = wh[1] & NH_MASK
        if w != 0:
            kind = OPK_REPLACE if h != 0 else OPK_ADD
            self._set_have(wh, w)
            b.adds += kind == OPK_ADD
            b.replaces += kind == OPK_REPLACE
        else:
            kind = OPK_DEL
            self._set_have(wh, 0)
            b.deletes += 1
        self._set_flags(wh, fl & ~(<uint32_t>(FL_FAILED | FL_CONFLICT)))
        b.kind[n] = kind
        b.new_nh[n] = w
        b.old_nh[n] = h
        self._push_key(b.pfx, k)
        msg_len = C_HDRLEN + C_RTMSG + attr_addr + 8
        if kind != OPK_DEL:
            msg_len += self._nh_attrs_len(&self.nhs[w], attr_addr)
        total[0] += msg_len
        return True

    cdef inline Py_ssize_t _nh_attrs_len(self, const NextHop* nh,
                                         Py_ssize_t attr_addr) noexcept nogil:
        """Bytes of the next hop attributes of a route over nh."""
        if nh.kid:
            return 8                                    # RTA_NH_ID
        return (attr_addr if nh.has_gw else 0) + (8 if nh.oif else 0) \
            + (attr_addr if nh.has_src else 0)

    cdef bytes _encode(self, RouteBatch b, Py_ssize_t total, Py_ssize_t run_bytes,
                       Py_ssize_t run_msgs):
        cdef bytes out = PyBytes_FromStringAndSize(NULL, total)
        cdef uint8_t* p = <uint8_t*>PyBytes_AS_STRING(out)
        cdef uint8_t* start
        cdef Py_ssize_t i
        cdef Py_ssize_t attr_addr = align4(4 + self.alen)
        cdef const NextHop* nh
        cdef uint8_t dst[16]
        cdef uint64_t v
        cdef uint32_t tbl = self.table
        cdef uint16_t flags
        cdef uint8_t kind
        cdef RunMarker rm
        cdef Py_ssize_t msg_len
        _run_init(&rm, p, run_bytes, run_msgs)
        for i in range(b.n):
            kind = b.kind[i]
            nh = &self.nhs[b.new_nh[i]] if kind != OPK_DEL else NULL
            msg_len = C_HDRLEN + C_RTMSG + attr_addr + 8
            if nh != NULL:
                msg_len += self._nh_attrs_len(nh, attr_addr)
            _run_before(&rm, p, msg_len)
            start = p
            p[16] = <uint8_t>self.family
            if self.afi == 1:
                v = b.pfx.v4[i]
                p[17] = <uint8_t>(v & 0xff)
                dst[0] = <uint8_t>(v >> 32)
                dst[1] = <uint8_t>(v >> 24)
                dst[2] = <uint8_t>(v >> 16)
                dst[3] = <uint8_t>(v >> 8)
            else:
                p[17] = b.pfx.v6[i].plen
                put_be64(dst, b.pfx.v6[i].hi)
                put_be64(dst + 8, b.pfx.v6[i].lo)
            p[18] = 0                                   # src_len
            p[19] = 0                                   # tos
            p[20] = <uint8_t>(tbl if tbl < 256 else 0)  # RT_TABLE_UNSPEC: see RTA_TABLE
            p[21] = <uint8_t>self.protocol
            if kind == OPK_DEL:
                # Any scope and type; the protocol restricts the delete to
                # our route (net/ipv4/fib_trie.c fib_table_delete, and
                # ip6_route_del) and leaves another daemon's alone.
                p[22] = C_RT_SCOPE_NOWHERE
                p[23] = 0
                flags = C_F_REQUEST
            else:
                p[22] = 0 if (nh.has_gw or nh.kid) else C_RT_SCOPE_LINK
                p[23] = C_RTN_UNICAST
                flags = C_F_REQUEST | C_F_CREATE | (C_F_REPLACE if kind == OPK_REPLACE else C_F_EXCL)
            put32(p + 24, 0)                            # rtm_flags
            p += C_HDRLEN + C_RTMSG
            p = put_attr(p, C_RTA_DST, dst, self.alen)
            if nh != NULL and nh.kid:
                # the nexthop object holds gateway and device (one lookup
                # per next hop in the kernel, not per route)
                p = put_attr(p, C_RTA_NH_ID, <const uint8_t*>&nh.kid, 4)
            elif nh != NULL:
                if nh.has_gw:
                    p = put_attr(p, C_RTA_GATEWAY, nh.gw, self.alen)
                if nh.oif:
                    p = put_attr(p, C_RTA_OIF, <const uint8_t*>&nh.oif, 4)
                if nh.has_src:
                    p = put_attr(p, C_RTA_PREFSRC, nh.src, self.alen)
            p = put_attr(p, C_RTA_TABLE, <const uint8_t*>&tbl, 4)
            put32(start, <uint32_t>(p - start))
            put16(start + 4, C_DELROUTE if kind == OPK_DEL else C_NEWROUTE)
            put16(start + 6, flags)
            put32(start + 8, <uint32_t>(b.seq0 + <uint32_t>i))
            put32(start + 12, 0)
            _run_after(&rm, start)
        _run_finish(&rm)
        return out

    def complete(self, RouteBatch b not None, dict errors not None):
        """Apply the kernel's answers to a batch of build(): errors maps a
        sequence number to its errno.  A refused add leaves the route out, a
        refused replace leaves the old one; a delete of a route already gone
        (ESRCH) is no failure.  Returns the failures as a list of
        (op, prefix text, next hop id, errno)."""
        cdef list failures = []
        cdef Py_ssize_t i, slot
        cdef uint32_t* wh
        cdef uint32_t fl
        cdef int err
        cdef uint8_t kind
        cdef Key k
        if b.pfx is None or b.pfx.afi != self.afi:
            raise ValueError("this batch was not built by this route state")
        for seq, e in errors.items():
            i = <Py_ssize_t>(<uint32_t>(<uint32_t>seq - b.seq0))
            if i >= b.n:
                continue
            err = e
            kind = b.kind[i]
            if kind == OPK_DEL and err == C_ESRCH:
                continue
            self._arr_key(b.pfx, i, &k)
            slot = self._find(&k)
            if slot >= 0:
                wh = self._wh(slot)
                # Undo the optimistic state, unless an event moved it since.
                if (wh[1] & NH_MASK) == b.new_nh[i]:
                    self._set_have(wh, 0 if kind == OPK_ADD else b.old_nh[i])
                fl = self._flags(wh) | FL_FAILED
                if err == C_EEXIST:
                    fl |= FL_CONFLICT
                self._set_flags(wh, fl)
            failures.append((_OP_NAMES[kind], b.pfx.prefix(i),
                             b.new_nh[i] if kind != OPK_DEL else b.old_nh[i], err))
        for i in range(b.n):
            if b.kind[i] != OPK_DEL:
                continue
            self._arr_key(b.pfx, i, &k)
            slot = self._find(&k)
            if slot >= 0:
                wh = self._wh(slot)
                if wh[0] == 0 and (wh[1] & NH_MASK) == 0 and not (self._flags(wh) & FL_DIRTY):
                    self._remove(slot)
        return failures

    # ------------------------------------------------------------ reading the kernel
    def reconcile_begin(self):
        """Start reading a dump of the kernel's routes (reconcile_feed)."""
        cdef size_t i
        cdef uint32_t* wh
        for i in range(self.cap):
            if not self._empty(i):
                wh = self._wh(i)
                self._set_flags(wh, self._flags(wh) & ~(<uint32_t>FL_SEEN))
        self.stat_missing = 0
        self.stat_changed = 0
        self.stat_unknown = 0
        self.n_oifs = 0
        self.oifs_overflow = False

    cdef void _note_oif(self, uint32_t oif) noexcept nogil:
        cdef int k
        if oif == 0 or self.oifs_overflow:
            return
        for k in range(self.n_oifs):
            if self.oifs[k] == oif:
                return
        if self.n_oifs >= MAX_OIFS:
            self.oifs_overflow = True
            return
        self.oifs[self.n_oifs] = oif
        self.n_oifs += 1

    cdef bint _uses_link(self, uint32_t ifindex) noexcept nogil:
        """Could a change of link ifindex (or of its addresses) have removed
        one of our routes?  Unknown (no reconcile saw our routes' links yet,
        or too many links): yes, when we have routes at all."""
        cdef int k
        cdef uint32_t idx
        if self.used == 0:
            return False
        if self.oifs_overflow or self.n_oifs == 0:
            return True
        for k in range(self.n_oifs):
            if self.oifs[k] == ifindex:
                return True
        for idx in range(2, self.n_nh):
            k = idx
            if self.nhs[k].oif == ifindex and (self.nhs[k].drefs or self.nhs[k].irefs):
                return True
        return False

    def uses_link(self, uint32_t ifindex):
        return self._uses_link(ifindex)

    cdef int _feed_route(self, const RouteMsg* m) except -1:
        cdef Py_ssize_t slot = self._find(&m.key)
        cdef uint32_t* wh
        cdef uint32_t h
        self._note_oif(m.oif)
        if slot < 0:
            slot = self._slot(&m.key)
            wh = self._wh(slot)
            self._set_have(wh, self._intern_route(m))
            self._set_flags(wh, FL_ADOPTED | FL_SEEN)
            self.stat_unknown += 1
        else:
            wh = self._wh(slot)
            self._set_flags(wh, self._flags(wh) | FL_SEEN)
            h = wh[1] & NH_MASK
            if h == 0 or not self._nh_matches(h, m):
                if h != 0:
                    self.stat_changed += 1
                self._set_have(wh, self._intern_route(m))
        if self._needs_work(wh):
            self._mark(slot)
        return 0

    def reconcile_feed(self, data, Py_ssize_t length, uint32_t seq):
        """Read one buffer of a route dump (request sequence number seq).
        Returns True at its end (NLMSG_DONE).  Routes of our protocol and
        table nobody wants are adopted; a route whose next hop differs from
        what kbgp installed is recorded as it is (and rewritten by build())."""
        cdef const uint8_t[::1] view = memoryview(data).cast("B")
        cdef const uint8_t* p
        cdef Py_ssize_t off = 0
        cdef uint32_t mlen
        cdef RouteMsg m
        cdef bint done = False, route = False
        if length < 0 or length > view.shape[0]:
            raise ValueError(f"length {length} outside a buffer of {view.shape[0]} bytes")
        if length == 0:
            return False
        p = &view[0]
        while off < length:
            mlen = _dump_step(p, off, length, seq, &done, &route)
            if route and _parse_route(p + off, mlen, self.family, &m):
                if m.table == self.table and m.protocol == self.protocol:
                    self._feed_route(&m)
            off += align4(mlen)
        return done

    def reconcile_end(self):
        """Finish a dump: kbgp's routes the dump lacked were removed by
        someone else and are written again; failed writes are retried.
        Returns {"missing", "changed", "unknown"} counts."""
        cdef size_t i
        cdef uint32_t* wh
        cdef PrefixArray dead = PrefixArray(self.afi)
        cdef Key k
        cdef Py_ssize_t j, slot
        for i in range(self.cap):
            if self._empty(i):
                continue
            wh = self._wh(i)
            if (wh[1] & NH_MASK) != 0 and not (self._flags(wh) & FL_SEEN):
                self._set_have(wh, 0)
                self.stat_missing += 1
            if wh[0] == 0 and (wh[1] & NH_MASK) == 0:
                if not (self._flags(wh) & FL_DIRTY):
                    self._key_of(i, &k)
                    self._push_key(dead, &k)
            elif self._needs_work(wh):
                self._mark(i)
        for j in range(dead.n):
            self._arr_key(dead, j, &k)
            slot = self._find(&k)
            if slot >= 0:
                self._remove(slot)
        return {"missing": self.stat_missing, "changed": self.stat_changed,
                "unknown": self.stat_unknown}

    cdef int _event(self, uint16_t mtype, uint16_t nlflags, const RouteMsg* m,
                    Py_ssize_t* stats) except -1:
        """One route notification from someone else (stats: repaired,
        adopted/changed, reconcile wanted)."""
        cdef Py_ssize_t slot
        cdef uint32_t* wh
        cdef uint32_t h
        if m.table != self.table:
            return 0
        slot = self._find(&m.key)
        if m.protocol == self.protocol:
            if mtype == C_DELROUTE:
                if slot < 0:
                    return 0
                wh = self._wh(slot)
                h = wh[1] & NH_MASK
                if h == 0:
                    return 0
                self._set_have(wh, 0)
                stats[0] += 1
                if wh[0] == 0:
                    if not (self._flags(wh) & FL_DIRTY):
                        self._remove(slot)
                elif self._needs_work(wh):
                    self._mark(slot)
                return 0
            # RTM_NEWROUTE of our protocol written by another program
            if slot < 0:
                slot = self._slot(&m.key)
                wh = self._wh(slot)
                self._set_have(wh, self._intern_route(m))
                self._set_flags(wh, FL_ADOPTED)
                stats[1] += 1
            else:
                wh = self._wh(slot)
                h = wh[1] & NH_MASK
                if h != 0 and not (nlflags & C_F_REPLACE):
                    stats[2] += 1        # a second route of ours: let a dump sort it out
                    return 0
                if h == 0 or not self._nh_matches(h, m):
                    self._set_have(wh, self._intern_route(m))
                    stats[1] += 1
            if self._needs_work(wh):
                self._mark(slot)
            return 0
        # another protocol replaced a route at a prefix where ours is
        if mtype == C_NEWROUTE and (nlflags & C_F_REPLACE) and slot >= 0:
            if (self._wh(slot)[1] & NH_MASK) != 0:
                stats[2] += 1
        return 0

    # ------------------------------------------------------------ inspection
    def counts(self):
        """{"wanted", "skipped", "installed", "adopted", "failed",
        "conflicts", "pending" (list entries), "dirty" (prefixes marked),
        "nexthops"}: a walk of the whole table."""
        cdef size_t i
        cdef uint32_t* wh
        cdef uint32_t fl
        cdef Py_ssize_t wanted = 0, skipped = 0, installed = 0, adopted = 0
        cdef Py_ssize_t failed = 0, conflicts = 0, dirty = 0
        for i in range(self.cap):
            if self._empty(i):
                continue
            wh = self._wh(i)
            fl = self._flags(wh)
            wanted += wh[0] > 1
            skipped += wh[0] != 0 and self._eff(wh[0]) == 0
            installed += (wh[1] & NH_MASK) != 0
            adopted += (fl & FL_ADOPTED) != 0
            failed += (fl & FL_FAILED) != 0
            conflicts += (fl & FL_CONFLICT) != 0
            dirty += (fl & FL_DIRTY) != 0
        return {"wanted": wanted, "skipped": skipped, "installed": installed,
                "adopted": adopted, "failed": failed, "conflicts": conflicts,
                "pending": self.dirty.n - self.dirty_pos, "dirty": dirty,
                "nexthops": self.n_nh - 2}

    def __len__(self):
        return self.used

    def lookup(self, prefix):
        """(want, have, flags) of one prefix (text), or None."""
        cdef PrefixArray one = PrefixArray(self.afi)
        cdef Key k
        cdef Py_ssize_t slot
        cdef uint32_t* wh
        one.append(prefix)
        self._arr_key(one, 0, &k)
        slot = self._find(&k)
        if slot < 0:
            return None
        wh = self._wh(slot)
        return (wh[0], wh[1] & NH_MASK, self._flags(wh))

    def installed(self):
        """The prefixes kbgp believes it has in the kernel (a PrefixArray)."""
        cdef PrefixArray out = PrefixArray(self.afi)
        cdef size_t i
        cdef Key k
        for i in range(self.cap):
            if not self._empty(i) and (self._wh(i)[1] & NH_MASK) != 0:
                self._key_of(i, &k)
                self._push_key(out, &k)
        return out

    def failed(self, Py_ssize_t limit=20):
        """Up to limit (prefix text, wanted next hop id, conflict) of the
        routes whose last write failed."""
        cdef list out = []
        cdef size_t i
        cdef uint32_t* wh
        cdef PrefixArray one
        cdef Key k
        for i in range(self.cap):
            if len(out) >= limit:
                break
            if self._empty(i):
                continue
            wh = self._wh(i)
            if self._flags(wh) & FL_FAILED:
                one = PrefixArray(self.afi)
                self._key_of(i, &k)
                self._push_key(one, &k)
                out.append((one.prefix(0), wh[0], bool(self._flags(wh) & FL_CONFLICT)))
        return out


def scan_events(data, Py_ssize_t length, uint32_t own_pid, RouteState v4, RouteState v6):
    """Apply route notifications read from an RTNLGRP_IPV4_ROUTE /
    RTNLGRP_IPV6_ROUTE socket to the two states (either may be None).
    Messages sent on behalf of kbgp's own writer (nlmsg_pid == own_pid) are
    skipped.  Returns (repaired, adopted_or_changed, reconcile_wanted,
    link_or_address_events): a route of ours deleted by someone else is
    marked missing (the next build() adds it again); a route of our protocol
    written by someone else is recorded as it is (and rewritten or, once
    converged, deleted if nobody wants it); anything that needs a full view
    (another protocol replacing a prefix we hold, a second route of ours)
    asks for a reconcile; changes of the links kbgp's routes use and of
    their addresses are counted (routes over a link that went down vanish
    without a notification in IPv4); other links (pods' veths) are not."""
    cdef const uint8_t[::1] view = memoryview(data).cast("B")
    cdef const uint8_t* p
    cdef Py_ssize_t off = 0, left
    cdef uint32_t mlen
    cdef uint16_t mtype, nlflags
    cdef RouteMsg m
    cdef Py_ssize_t stats[3]
    cdef Py_ssize_t links = 0
    cdef uint32_t ifindex
    stats[0] = 0
    stats[1] = 0
    stats[2] = 0
    if length < 0 or length > view.shape[0]:
        raise ValueError(f"length {length} outside a buffer of {view.shape[0]} bytes")
    if length == 0:
        return (0, 0, 0, 0)
    p = &view[0]
    while off < length:
        left = length - off
        if left < C_HDRLEN:
            raise ValueError(f"truncated netlink header at offset {off}")
        mlen = get32(p + off)
        if mlen < C_HDRLEN or mlen > left:
            raise ValueError(f"bad netlink message length {mlen} at offset {off}")
        mtype = get16(p + off + 4)
        nlflags = get16(p + off + 6)
        if get32(p + off + 12) != own_pid or own_pid == 0:
            if mtype == C_NEWROUTE or mtype == C_DELROUTE:
                if v4 is not None and _parse_route(p + off, mlen, socket.AF_INET, &m):
                    v4._event(mtype, nlflags, &m, stats)
                elif v6 is not None and _parse_route(p + off, mlen, socket.AF_INET6, &m):
                    v6._event(mtype, nlflags, &m, stats)
            elif (mtype == C_NEWLINK or mtype == C_DELLINK or mtype == C_NEWADDR
                    or mtype == C_DELADDR) and mlen >= C_HDRLEN + 8:
                # ifinfomsg.ifi_index and ifaddrmsg.ifa_index are both at offset 4
                ifindex = get32(p + off + C_HDRLEN + 4)
                if (v4 is not None and v4._uses_link(ifindex)) or \
                        (v6 is not None and v6._uses_link(ifindex)):
                    links += 1
        off += align4(mlen)
    return (stats[0], stats[1], stats[2], links)
