"""rtnetlink route messages, encoded and decoded in C (issue 6).

encode_routes() turns a whole PrefixArray into one buffer of RTM_NEWROUTE or
RTM_DELROUTE messages, reading the prefixes straight from the array's C
memory; the ack and dump scanners walk kernel replies without a Python object
per route.  Netlink headers and attributes are in host byte order, the
addresses in network byte order (man 7 netlink, man 7 rtnetlink).
"""
from libc.stdint cimport uint8_t, uint16_t, uint32_t, uint64_t, int32_t
from libc.string cimport memcpy, memset
from libc.stdlib cimport malloc, free
from cpython.bytes cimport PyBytes_FromStringAndSize, PyBytes_AS_STRING

from kbgp._fast.wire cimport PrefixArray, Pfx6

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
    C_NLA_TYPE_MASK = 0x3fff


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
                  bint replace=True):
    """One rtnetlink route message per prefix, concatenated into one buffer.

    op is RTM_NEWROUTE (24) or RTM_DELROUTE (25).  gateways is None (no
    RTA_GATEWAY), one address (str, or packed bytes) used for every route, a
    list/tuple parallel to prefixes (entries str, packed bytes or None), or
    one bytes object of len(prefixes) packed addresses back to back.
    Message i has sequence number seq_start + i (modulo 2**32).  NEWROUTE
    carries NLM_F_CREATE with NLM_F_REPLACE when replace, else with
    NLM_F_EXCL (like ``ip route add``: an existing route gives EEXIST).
    """
    if op != C_NEWROUTE and op != C_DELROUTE:
        raise ValueError(f"op must be RTM_NEWROUTE (24) or RTM_DELROUTE (25), not {op}")
    if table < 1 or table > 0xFFFFFFFF:
        raise ValueError(f"table must be 1..4294967295, not {table}")
    if protocol < 0 or protocol > 255:
        raise ValueError(f"protocol must be 0..255, not {protocol}")
    if ifindex < 0:
        raise ValueError(f"ifindex must be >= 0, not {ifindex}")

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
    cdef Py_ssize_t base = C_HDRLEN + C_RTMSG + attr_addr + 8 + (8 if ifindex else 0)
    cdef Py_ssize_t total
    cdef bytes out
    cdef uint8_t* p
    cdef uint8_t* start
    cdef uint16_t flags = C_F_REQUEST | C_F_ACK
    cdef uint32_t tbl = <uint32_t>table
    cdef uint32_t oif = <uint32_t>ifindex
    cdef uint8_t dst[16]
    cdef uint64_t v
    cdef const uint8_t* gw
    cdef bytes raw

    if op == C_NEWROUTE:
        flags |= C_F_CREATE | (C_F_REPLACE if replace else C_F_EXCL)

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
        for i in range(n):
            if gw_one != NULL:
                gw = gw_one
            elif gw_all != NULL:
                gw = gw_all + i * alen
            elif gw_has != NULL and gw_has[i]:
                gw = gw_list + i * alen
            else:
                gw = NULL
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
            p[22] = 0                                   # RT_SCOPE_UNIVERSE
            p[23] = 1                                   # RTN_UNICAST
            put32(p + 24, 0)                            # rtm_flags
            p += C_HDRLEN + C_RTMSG
            p = put_attr(p, C_RTA_DST, dst, alen)
            if gw != NULL:
                p = put_attr(p, C_RTA_GATEWAY, gw, alen)
            if oif:
                p = put_attr(p, C_RTA_OIF, <const uint8_t*>&oif, 4)
            p = put_attr(p, C_RTA_TABLE, <const uint8_t*>&tbl, 4)
            # nlmsghdr, now that the length is known
            put32(start, <uint32_t>(p - start))
            put16(start + 4, <uint16_t>op)
            put16(start + 6, flags)
            put32(start + 8, <uint32_t>(seq_start + <uint32_t>i))
            put32(start + 12, 0)
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
    cdef Py_ssize_t off = 0, left, ao, aend
    cdef uint32_t mlen, rtable
    cdef uint16_t mtype, alen_, atyp
    cdef int32_t err
    cdef int want_family = socket.AF_INET if out.afi == 1 else socket.AF_INET6
    cdef int alen = 4 if out.afi == 1 else 16
    cdef uint8_t dst[16]
    cdef int plen
    cdef bint done = False
    while off < length:
        left = length - off
        if left < C_HDRLEN:
            raise ValueError(f"truncated netlink header at offset {off}")
        mlen = get32(p + off)
        if mlen < C_HDRLEN or mlen > left:
            raise ValueError(f"bad netlink message length {mlen} at offset {off}")
        mtype = get16(p + off + 4)
        if get32(p + off + 8) == seq:
            if mtype == C_NLMSG_DONE:
                done = True
            elif mtype == C_NLMSG_ERROR:
                if mlen < C_HDRLEN + 4:
                    raise ValueError(f"truncated NLMSG_ERROR at offset {off}")
                err = <int32_t>get32(p + off + 16)
                if err != 0:
                    raise OSError(-err, f"route dump failed: {__import__('os').strerror(-err)}")
                done = True
            elif mtype == C_NEWROUTE and mlen >= C_HDRLEN + C_RTMSG:
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
