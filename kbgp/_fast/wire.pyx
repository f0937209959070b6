# cython: language_level=3
"""BGP framing, prefixes in C arrays, and the codecs of OPEN, NOTIFICATION,
KEEPALIVE and ROUTE-REFRESH (RFC 4271, 4760, 5492, 6793, 4724, 7313, 8654,
9072, 9003).  UPDATE lives in attrs.pyx.

Every read of received bytes is preceded by an explicit length check against
the end of the enclosing field, so the module is compiled with
boundscheck=False; decoders raise only BgpError.
"""
from libc.stdint cimport uint8_t, uint16_t, uint32_t, uint64_t
from libc.stdlib cimport malloc, realloc, free
from libc.string cimport memcpy, memcmp, memset
from cpython.bytes cimport PyBytes_FromStringAndSize, PyBytes_AS_STRING, PyBytes_GET_SIZE

import ipaddress

from kbgp.bgp.constants import (
    AS_TRANS, BGP_VERSION, HEADER_LEN, MAX_MESSAGE_LEN, MAX_EXTENDED_MESSAGE_LEN,
    CapCode, CeaseSubcode, ErrorCode, Handling, HeaderError, MsgType, OpenError, OptParam,
    RouteRefreshErrorSubcode,
)
from kbgp.bgp.messages import (
    Capability, EnhancedRouteRefreshCap, ExtendedMessageCap, ExtendedNextHopCap, FourOctetAsCap,
    GracefulRestartCap, Keepalive, MultiprotocolCap, Notification, Open, RouteRefresh,
    RouteRefreshCap, UnknownCap,
)
from kbgp.errors import bgp_error

cdef int _SESSION_RESET = Handling.SESSION_RESET
cdef bytes MARKER = b"\xff" * 16

# Minimum length of each message type, header included (RFC 4271 section 4).
cdef Py_ssize_t[6] MIN_LEN
MIN_LEN[:] = [0, 29, 23, 21, 19, 23]


# ------------------------------------------------------------- byte helpers

cdef inline uint16_t rd16(const uint8_t* p) noexcept nogil:
    return (<uint16_t>p[0] << 8) | p[1]

cdef inline uint32_t rd32(const uint8_t* p) noexcept nogil:
    return (<uint32_t>p[0] << 24) | (<uint32_t>p[1] << 16) | (<uint32_t>p[2] << 8) | p[3]

cdef inline void wr16(uint8_t* p, uint16_t v) noexcept nogil:
    p[0] = v >> 8
    p[1] = v & 0xff

cdef inline void wr32(uint8_t* p, uint32_t v) noexcept nogil:
    p[0] = v >> 24
    p[1] = (v >> 16) & 0xff
    p[2] = (v >> 8) & 0xff
    p[3] = v & 0xff


cpdef str ipv4_str(uint32_t addr):
    return f"{addr >> 24}.{(addr >> 16) & 0xff}.{(addr >> 8) & 0xff}.{addr & 0xff}"


cpdef str ipv6_str(bytes packed16):
    """RFC 5952 text; IPv4-mapped addresses end in a dotted quad (section 5)."""
    if packed16[:12] == b"\x00" * 10 + b"\xff\xff":
        return "::ffff:" + ipv4_str(rd32(<const uint8_t*>PyBytes_AS_STRING(packed16) + 12))
    return str(ipaddress.IPv6Address(packed16))


# ----------------------------------------------------------------- prefixes

cdef class PrefixArray:
    """A growable array of prefixes of one family, held in C memory.

    Python sees the array as a whole (len, equality, conversion to strings);
    the codec and the RIB work on the packed integers directly.
    """

    def __cinit__(self, int afi=1, Py_ssize_t capacity=0):
        if afi != 1 and afi != 2:
            raise ValueError(f"afi must be 1 (IPv4) or 2 (IPv6), not {afi}")
        self.afi = afi
        self.n = 0
        self.cap = 0
        self.v4 = NULL
        self.v6 = NULL
        if capacity > 0:
            self.reserve(capacity)

    def __dealloc__(self):
        free(self.v4)
        free(self.v6)

    cdef int reserve(self, Py_ssize_t extra) except -1:
        cdef Py_ssize_t need = self.n + extra
        cdef Py_ssize_t newcap
        cdef void* mem
        if need <= self.cap:
            return 0
        newcap = self.cap * 2 if self.cap else 16
        while newcap < need:
            newcap *= 2
        if self.afi == 1:
            mem = realloc(self.v4, newcap * sizeof(uint64_t))
            if mem == NULL:
                raise MemoryError()
            self.v4 = <uint64_t*>mem
        else:
            mem = realloc(self.v6, newcap * sizeof(Pfx6))
            if mem == NULL:
                raise MemoryError()
            self.v6 = <Pfx6*>mem
        self.cap = newcap
        return 0

    cdef inline int push4(self, uint32_t addr, uint8_t plen) except -1:
        if self.n == self.cap:
            self.reserve(1)
        self.v4[self.n] = (<uint64_t>(addr & mask4(plen)) << 8) | plen
        self.n += 1
        return 0

    cdef inline int push6(self, uint64_t hi, uint64_t lo, uint8_t plen) except -1:
        if self.n == self.cap:
            self.reserve(1)
        mask6(&hi, &lo, plen)
        self.v6[self.n].hi = hi
        self.v6[self.n].lo = lo
        self.v6[self.n].plen = plen
        self.n += 1
        return 0

    cdef int extend(self, PrefixArray other) except -1:
        if other.afi != self.afi:
            raise ValueError("cannot mix address families in one PrefixArray")
        self.reserve(other.n)
        if self.afi == 1:
            memcpy(&self.v4[self.n], other.v4, other.n * sizeof(uint64_t))
        else:
            memcpy(&self.v6[self.n], other.v6, other.n * sizeof(Pfx6))
        self.n += other.n
        return 0

    cdef inline Py_ssize_t wire_size(self, Py_ssize_t i):
        """Bytes prefix i takes in an NLRI field."""
        cdef int plen
        if self.afi == 1:
            plen = self.v4[i] & 0xff
        else:
            plen = self.v6[i].plen
        return 1 + ((plen + 7) >> 3)

    cdef inline Py_ssize_t write_prefix(self, Py_ssize_t i, uint8_t* out):
        """Write prefix i in NLRI encoding at out; return the bytes written."""
        cdef int plen, nbytes, k
        cdef uint32_t addr
        cdef uint64_t hi, lo
        if self.afi == 1:
            plen = self.v4[i] & 0xff
            addr = <uint32_t>(self.v4[i] >> 8)
            nbytes = (plen + 7) >> 3
            out[0] = plen
            for k in range(nbytes):
                out[1 + k] = (addr >> (24 - 8 * k)) & 0xff
            return 1 + nbytes
        plen = self.v6[i].plen
        hi = self.v6[i].hi
        lo = self.v6[i].lo
        nbytes = (plen + 7) >> 3
        out[0] = plen
        for k in range(nbytes):
            if k < 8:
                out[1 + k] = (hi >> (56 - 8 * k)) & 0xff
            else:
                out[1 + k] = (lo >> (56 - 8 * (k - 8))) & 0xff
        return 1 + nbytes

    def __len__(self):
        return self.n

    def __bool__(self):
        return self.n > 0

    def __eq__(self, other):
        cdef PrefixArray o
        if not isinstance(other, PrefixArray):
            return NotImplemented
        o = <PrefixArray>other
        if o.afi != self.afi or o.n != self.n:
            return False
        if self.n == 0:
            return True
        if self.afi == 1:
            return memcmp(self.v4, o.v4, self.n * sizeof(uint64_t)) == 0
        for k in range(self.n):
            if (self.v6[k].hi != o.v6[k].hi or self.v6[k].lo != o.v6[k].lo
                    or self.v6[k].plen != o.v6[k].plen):
                return False
        return True

    def __repr__(self):
        shown = ", ".join(self.to_strings(0, 4))
        more = ", ..." if self.n > 4 else ""
        return f"PrefixArray(afi={self.afi}, n={self.n}, [{shown}{more}])"

    def prefix(self, Py_ssize_t i):
        """Prefix i as text, e.g. '10.1.0.0/24'."""
        cdef bytes raw
        if i < 0:
            i += self.n
        if i < 0 or i >= self.n:
            raise IndexError(i)
        if self.afi == 1:
            return f"{ipv4_str(<uint32_t>(self.v4[i] >> 8))}/{self.v4[i] & 0xff}"
        raw = (self.v6[i].hi).to_bytes(8, "big") + (self.v6[i].lo).to_bytes(8, "big")
        return f"{ipv6_str(raw)}/{self.v6[i].plen}"

    def to_strings(self, Py_ssize_t start=0, Py_ssize_t stop=-1):
        """The prefixes as text (one Python object each: not for hot paths)."""
        if stop < 0 or stop > self.n:
            stop = self.n
        return [self.prefix(i) for i in range(start, stop)]

    def __iter__(self):
        return iter(self.to_strings())

    def keys(self):
        """The prefixes as integers: IPv4 (address << 8) | length, IPv6
        (address << 8) | length with the 128-bit address.  One Python int per
        prefix: for the RIB's Python tables and tests, not the codec's loops."""
        if self.afi == 1:
            return [self.v4[i] for i in range(self.n)]
        return [((<object>self.v6[i].hi << 72) | (<object>self.v6[i].lo << 8) | self.v6[i].plen)
                for i in range(self.n)]

    @staticmethod
    def from_keys(int afi, keys):
        """The inverse of keys()."""
        cdef PrefixArray arr = PrefixArray(afi, len(keys))
        for k in keys:
            if afi == 1:
                arr.push4(<uint32_t>(k >> 8), k & 0xff)
            else:
                arr.push6(<uint64_t>((k >> 72) & 0xffffffffffffffff), <uint64_t>((k >> 8) & 0xffffffffffffffff),
                          k & 0xff)
        return arr

    def append(self, prefix):
        """Append a prefix given as text or an ipaddress network."""
        net = ipaddress.ip_network(prefix, strict=False)
        cdef int afi = 1 if net.version == 4 else 2
        if afi != self.afi:
            raise ValueError(f"{prefix} is not of this array's family (afi {self.afi})")
        if afi == 1:
            self.push4(int(net.network_address), net.prefixlen)
        else:
            v = int(net.network_address)
            self.push6(v >> 64, v & 0xffffffffffffffff, net.prefixlen)

    @staticmethod
    def from_strings(prefixes, int afi=0):
        """Build an array from prefix strings; afi 0 takes the first prefix's family."""
        items = list(prefixes)
        if afi == 0:
            afi = 2 if (items and ":" in str(items[0])) else 1
        cdef PrefixArray arr = PrefixArray(afi, len(items))
        for p in items:
            arr.append(p)
        return arr

    @staticmethod
    def sequence(str first, Py_ssize_t count):
        """count consecutive prefixes of first's length starting at first.

        Used by benchmarks and the demo to make large unique route sets
        without a Python object per prefix.
        """
        net = ipaddress.ip_network(first, strict=False)
        cdef int plen = net.prefixlen
        cdef PrefixArray arr = PrefixArray(1 if net.version == 4 else 2, count)
        cdef uint32_t a4, step4
        cdef uint64_t hi, lo, step
        cdef Py_ssize_t k
        if net.version == 4:
            if plen == 0 or int(net.network_address) + count * (1 << (32 - plen)) > (1 << 32):
                raise ValueError(f"{count} prefixes of length {plen} from {first} run past 255.255.255.255")
            a4 = int(net.network_address)
            step4 = <uint32_t>1 << (32 - plen)
            for k in range(count):
                arr.push4(a4, plen)
                a4 += step4
        else:
            v = int(net.network_address)
            hi = v >> 64
            lo = v & 0xffffffffffffffff
            if plen == 0 or plen > 64:
                raise ValueError("IPv6 sequences take prefix lengths 1..64")
            if (v >> (128 - net.prefixlen)) + count > (1 << net.prefixlen):  # Python ints: no overflow
                raise ValueError(f"{count} prefixes of length {plen} from {first} run past the address space")
            step = (<uint64_t>1) << (64 - plen)
            for k in range(count):
                arr.push6(hi, 0, plen)
                hi += step
        return arr

    def concat(self, PrefixArray other):
        """A new array holding this one's prefixes, then other's."""
        cdef PrefixArray out = PrefixArray(self.afi, self.n + other.n)
        out.extend(self)
        out.extend(other)
        return out

    def nlri_bytes(self):
        """The whole array in NLRI encoding (RFC 4271 section 4.3)."""
        cdef Py_ssize_t total = 0, i, pos = 0
        for i in range(self.n):
            total += self.wire_size(i)
        cdef bytes out = PyBytes_FromStringAndSize(NULL, total)
        cdef uint8_t* p = <uint8_t*>PyBytes_AS_STRING(out)
        for i in range(self.n):
            pos += self.write_prefix(i, p + pos)
        return out


cdef int decode_nlri_into(const uint8_t* buf, Py_ssize_t start, Py_ssize_t end,
                          PrefixArray out, Py_ssize_t* bad_at) except -2:
    cdef Py_ssize_t pos = start
    cdef int plen, nbytes, k, maxlen
    cdef uint32_t addr
    cdef uint64_t hi, lo
    cdef const uint8_t* q
    maxlen = 32 if out.afi == 1 else 128
    if out.afi == 1:
        # Reserve for the densest case (a /0 is one byte) to keep the loop free of growth checks.
        out.reserve(end - start)
        while pos < end:
            plen = buf[pos]
            nbytes = (plen + 7) >> 3
            if plen > 32 or pos + 1 + nbytes > end:
                bad_at[0] = pos
                return -1
            q = buf + pos + 1
            if nbytes == 3:
                addr = (<uint32_t>q[0] << 24) | (<uint32_t>q[1] << 16) | (<uint32_t>q[2] << 8)
            elif nbytes == 4:
                addr = rd32(q)
            elif nbytes == 2:
                addr = (<uint32_t>q[0] << 24) | (<uint32_t>q[1] << 16)
            elif nbytes == 1:
                addr = <uint32_t>q[0] << 24
            else:
                addr = 0
            out.v4[out.n] = (<uint64_t>(addr & mask4(plen)) << 8) | plen
            out.n += 1
            pos += 1 + nbytes
        return 0
    while pos < end:
        plen = buf[pos]
        nbytes = (plen + 7) >> 3
        if plen > maxlen or pos + 1 + nbytes > end:
            bad_at[0] = pos
            return -1
        q = buf + pos + 1
        hi = 0
        lo = 0
        for k in range(nbytes):
            if k < 8:
                hi |= (<uint64_t>q[k]) << (56 - 8 * k)
            else:
                lo |= (<uint64_t>q[k]) << (56 - 8 * (k - 8))
        out.push6(hi, lo, plen)
        pos += 1 + nbytes
    return 0


def decode_nlri(int afi, data):
    """Decode an NLRI field (bytes) into a PrefixArray; BgpError 3/10 when malformed."""
    cdef bytes b = bytes(data)
    cdef PrefixArray out = PrefixArray(afi)
    cdef Py_ssize_t bad = 0
    if decode_nlri_into(<const uint8_t*>PyBytes_AS_STRING(b), 0, PyBytes_GET_SIZE(b), out, &bad) < 0:
        raise bgp_error(ErrorCode.UPDATE_MESSAGE, 10, b"", _SESSION_RESET,
                        f"NLRI prefix at offset {bad} has a bad length or runs past the field")
    return out


# ------------------------------------------------------------------ framing

def header(int msg_type, Py_ssize_t body_len):
    """The 19-byte message header for a body of body_len bytes."""
    cdef bytes out = PyBytes_FromStringAndSize(NULL, 19)
    cdef uint8_t* p = <uint8_t*>PyBytes_AS_STRING(out)
    memset(p, 0xff, 16)
    wr16(p + 16, <uint16_t>(19 + body_len))
    p[18] = msg_type
    return out


cdef class Framer:
    """Cuts BGP messages out of a byte stream fed in arbitrary chunks.

    next_message() returns (type, body) for each complete message, or None
    when more bytes are needed.  Header errors raise BgpError with the exact
    RFC 4271 section 6.1 code, subcode and data.  A wrong type or a per-type
    length error consumes the message, so the next call goes on with the
    following one; a bad marker or an out-of-range length loses framing, and
    every later call raises the same error (the ``synchronized`` property
    turns False).
    """

    cdef bytes data
    cdef Py_ssize_t pos
    cdef public Py_ssize_t max_size
    cdef object broken

    def __cinit__(self, Py_ssize_t max_size=MAX_MESSAGE_LEN):
        self.data = b""
        self.pos = 0
        self.max_size = max_size
        self.broken = None

    @property
    def buffered(self):
        return PyBytes_GET_SIZE(self.data) - self.pos

    @property
    def synchronized(self):
        return self.broken is None

    def feed(self, data):
        # Unread bytes stay in one bytes object; bodies are cut from it with a
        # single copy each.
        if self.pos >= PyBytes_GET_SIZE(self.data):
            self.data = bytes(data)
        else:
            self.data = self.data[self.pos:] + bytes(data)
        self.pos = 0

    def next_message(self):
        cdef Py_ssize_t avail, length
        cdef int mtype
        cdef const uint8_t* p
        if self.broken is not None:
            raise self.broken
        avail = PyBytes_GET_SIZE(self.data) - self.pos
        if avail < 19:
            return None
        p = (<const uint8_t*>PyBytes_AS_STRING(self.data)) + self.pos
        if memcmp(p, <const char*>MARKER, 16) != 0:
            self.broken = bgp_error(ErrorCode.MESSAGE_HEADER, HeaderError.CONNECTION_NOT_SYNCHRONIZED,
                                    b"", _SESSION_RESET, "message header marker is not all ones")
            raise self.broken
        length = rd16(p + 16)
        mtype = p[18]
        if length < 19 or length > self.max_size:
            self.broken = bgp_error(ErrorCode.MESSAGE_HEADER, HeaderError.BAD_MESSAGE_LENGTH,
                                    PyBytes_FromStringAndSize(<const char*>p + 16, 2), _SESSION_RESET,
                                    f"message length {length} outside 19..{self.max_size}")
            raise self.broken
        if avail < length:
            return None
        body = PyBytes_FromStringAndSize(<const char*>p + 19, length - 19)
        self.pos += length
        check_header(mtype, length)
        return (mtype, body)

    def messages(self, data=b""):
        """Feed data and return every complete message as a list of (type, body)."""
        if data:
            self.feed(data)
        out = []
        while True:
            m = self.next_message()
            if m is None:
                return out
            out.append(m)


cpdef check_header(int mtype, Py_ssize_t length):
    """The per-type checks of RFC 4271 section 6.1 for a message whose length is in range."""
    if mtype < 1 or mtype > 5:
        raise bgp_error(ErrorCode.MESSAGE_HEADER, HeaderError.BAD_MESSAGE_TYPE, bytes([mtype]),
                        _SESSION_RESET, f"unknown message type {mtype}")
    if (length < MIN_LEN[mtype] or (mtype == MsgType.KEEPALIVE and length != 19)
            or ((mtype == MsgType.OPEN or mtype == MsgType.KEEPALIVE) and length > MAX_MESSAGE_LEN)):
        raise bgp_error(ErrorCode.MESSAGE_HEADER, HeaderError.BAD_MESSAGE_LENGTH,
                        length.to_bytes(2, "big"), _SESSION_RESET,
                        f"length {length} is not valid for a {MsgType(mtype).name} message")


def split_message(data, Py_ssize_t max_size=MAX_EXTENDED_MESSAGE_LEN):
    """One whole message (header included) -> (type, body), with every header check."""
    cdef Framer f = Framer(max_size)
    cdef bytes b = bytes(data)
    f.feed(b)
    m = f.next_message()
    if m is None:
        if len(b) >= 19 and rd16(<const uint8_t*>PyBytes_AS_STRING(b) + 16) > len(b):
            raise bgp_error(ErrorCode.MESSAGE_HEADER, HeaderError.BAD_MESSAGE_LENGTH,
                            b[16:18], _SESSION_RESET,
                            f"length field {rd16(<const uint8_t*>PyBytes_AS_STRING(b) + 16)} is past the "
                            f"{len(b)} bytes given")
        raise bgp_error(ErrorCode.MESSAGE_HEADER, HeaderError.BAD_MESSAGE_LENGTH, b"", _SESSION_RESET,
                        f"{len(b)} bytes are too few for a BGP message header")
    if f.buffered:
        raise bgp_error(ErrorCode.MESSAGE_HEADER, HeaderError.BAD_MESSAGE_LENGTH, b[16:18], _SESSION_RESET,
                        f"{f.buffered} bytes follow the message's length field")
    return m


# --------------------------------------------------------------------- OPEN

cdef object _open_error(int subcode, str reason, bytes data=b""):
    return bgp_error(ErrorCode.OPEN_MESSAGE, subcode, data, _SESSION_RESET, reason)


cdef object _decode_capability(int code, bytes value):
    cdef Py_ssize_t n = len(value)
    cdef const uint8_t* p = <const uint8_t*>PyBytes_AS_STRING(value)
    cdef Py_ssize_t i
    if code == CapCode.MULTIPROTOCOL:
        if n != 4:
            raise _open_error(OpenError.UNSPECIFIC, f"multiprotocol capability of length {n}, not 4")
        return MultiprotocolCap(rd16(p), p[3])
    if code == CapCode.ROUTE_REFRESH or code == CapCode.ENHANCED_ROUTE_REFRESH or code == CapCode.EXTENDED_MESSAGE:
        if n != 0:
            raise _open_error(OpenError.UNSPECIFIC, f"{CapCode(code).name} capability of length {n}, not 0")
        if code == CapCode.ROUTE_REFRESH:
            return RouteRefreshCap()
        if code == CapCode.ENHANCED_ROUTE_REFRESH:
            return EnhancedRouteRefreshCap()
        return ExtendedMessageCap()
    if code == CapCode.FOUR_OCTET_AS:
        if n != 4:
            raise _open_error(OpenError.UNSPECIFIC, f"4-octet AS capability of length {n}, not 4")
        if rd32(p) == 0:
            raise _open_error(OpenError.BAD_PEER_AS, "4-octet AS capability carries AS 0 (RFC 7607)")
        return FourOctetAsCap(rd32(p))
    if code == CapCode.GRACEFUL_RESTART:
        if n < 2 or (n - 2) % 4:
            raise _open_error(OpenError.UNSPECIFIC,
                              f"graceful restart capability of length {n} (2 + 4 per family expected)")
        fams = []
        for i in range(2, n, 4):
            fams.append((rd16(p + i), p[i + 2], bool(p[i + 3] & 0x80)))
        return GracefulRestartCap(bool(p[0] & 0x80), bool(p[0] & 0x40), rd16(p) & 0x0fff, tuple(fams))
    if code == CapCode.EXTENDED_NEXT_HOP:
        if n == 0 or n % 6:
            raise _open_error(OpenError.UNSPECIFIC, f"extended next hop capability of length {n}")
        fams = []
        for i in range(0, n, 6):
            fams.append((rd16(p + i), rd16(p + i + 2), rd16(p + i + 4)))
        return ExtendedNextHopCap(tuple(fams))
    return UnknownCap(code, value)


def decode_open(body):
    """OPEN body (after the header) -> Open, with the context-free checks of
    RFC 4271 section 6.2 (version, AS 0 per RFC 7607, hold time, BGP
    identifier) and RFC 9072 extended optional parameters."""
    cdef bytes b = bytes(body)
    cdef Py_ssize_t n = len(b), pos, end, plen, clen, cend
    cdef const uint8_t* p = <const uint8_t*>PyBytes_AS_STRING(b)
    cdef int version, ptype, ccode
    cdef uint32_t my_as, hold, bgp_id
    cdef bint extended = False
    if n < 10:
        raise bgp_error(ErrorCode.MESSAGE_HEADER, HeaderError.BAD_MESSAGE_LENGTH,
                        (n + 19).to_bytes(2, "big"), _SESSION_RESET, "OPEN shorter than 29 bytes")
    version = p[0]
    my_as = rd16(p + 1)
    hold = rd16(p + 3)
    bgp_id = rd32(p + 5)
    if version != BGP_VERSION:
        raise _open_error(OpenError.UNSUPPORTED_VERSION_NUMBER, f"version {version} is not supported",
                          BGP_VERSION.to_bytes(2, "big"))
    if my_as == 0:
        raise _open_error(OpenError.BAD_PEER_AS, "My Autonomous System is 0 (RFC 7607)")
    if hold == 1 or hold == 2:
        raise _open_error(OpenError.UNACCEPTABLE_HOLD_TIME, f"hold time {hold} (must be 0 or at least 3)")
    if bgp_id == 0:
        raise _open_error(OpenError.BAD_BGP_IDENTIFIER, "BGP identifier 0.0.0.0")
    plen = p[9]
    pos = 10
    if plen == 255 and n >= 11 and p[10] == OptParam.EXTENDED_LENGTH:
        # RFC 9072: Non-Ext OP Type 255, then a 2-octet length; parameters carry 2-octet lengths.
        if n < 13:
            raise _open_error(OpenError.UNSPECIFIC, "OPEN ends inside the RFC 9072 extended length")
        extended = True
        plen = rd16(p + 11)
        pos = 13
    if pos + plen != n:
        raise _open_error(OpenError.UNSPECIFIC,
                          f"optional parameters length {plen} does not match the {n - pos} bytes present")
    end = n
    caps = []
    while pos < end:
        if end - pos < (3 if extended else 2):
            raise _open_error(OpenError.UNSPECIFIC, "OPEN ends inside an optional parameter header")
        ptype = p[pos]
        if extended:
            clen = rd16(p + pos + 1)
            pos += 3
        else:
            clen = p[pos + 1]
            pos += 2
        if pos + clen > end:
            raise _open_error(OpenError.UNSPECIFIC,
                              f"optional parameter {ptype} of length {clen} runs past the OPEN")
        if ptype != OptParam.CAPABILITIES:
            raise _open_error(OpenError.UNSUPPORTED_OPTIONAL_PARAMETER,
                              f"optional parameter type {ptype} is not supported", bytes([ptype]))
        cend = pos + clen
        while pos < cend:
            if cend - pos < 2:
                raise _open_error(OpenError.UNSPECIFIC, "capability header runs past its parameter")
            ccode = p[pos]
            clen = p[pos + 1]
            pos += 2
            if pos + clen > cend:
                raise _open_error(OpenError.UNSPECIFIC,
                                  f"capability {ccode} of length {clen} runs past its parameter")
            caps.append(_decode_capability(ccode, b[pos:pos + clen]))
            pos += clen
    msg = Open(my_as, hold, ipv4_str(bgp_id), tuple(caps), version)
    asn4 = msg.asn
    if asn4 != my_as and not (asn4 > 0xffff and my_as == AS_TRANS):
        raise _open_error(OpenError.BAD_PEER_AS,
                          f"My AS {my_as} does not match the 4-octet AS capability's {asn4} "
                          f"(expected {AS_TRANS if asn4 > 0xffff else asn4})")
    return msg


cdef bytes _encode_capability(object cap):
    cdef bytes value
    code = cap.code
    if isinstance(cap, MultiprotocolCap):
        value = cap.afi.to_bytes(2, "big") + bytes([0, cap.safi])
    elif isinstance(cap, FourOctetAsCap):
        value = cap.asn.to_bytes(4, "big")
    elif isinstance(cap, GracefulRestartCap):
        flags = (0x80 if cap.restart_state else 0) | (0x40 if cap.notification else 0)
        value = ((flags << 8) | (cap.restart_time & 0x0fff)).to_bytes(2, "big") + b"".join(
            afi.to_bytes(2, "big") + bytes([safi, 0x80 if fwd else 0]) for afi, safi, fwd in cap.families)
    elif isinstance(cap, ExtendedNextHopCap):
        value = b"".join(a.to_bytes(2, "big") + s.to_bytes(2, "big") + h.to_bytes(2, "big")
                         for a, s, h in cap.families)
    elif isinstance(cap, UnknownCap):
        value = bytes(cap.data)
    else:
        value = b""
    if len(value) > 255:
        raise ValueError(f"capability {code} value of {len(value)} bytes does not fit")
    return bytes([code, len(value)]) + value


def encode_open(msg):
    """Open -> whole message bytes.  Capabilities go in one optional parameter;
    the RFC 9072 extended form is used only when it exceeds 255 bytes."""
    caps = b"".join([_encode_capability(c) for c in msg.capabilities])
    if len(caps) + 2 <= 255:
        params = bytes([OptParam.CAPABILITIES, len(caps)]) + caps if caps else b""
        tail = bytes([len(params)]) + params
    else:
        params = bytes([OptParam.CAPABILITIES]) + len(caps).to_bytes(2, "big") + caps
        tail = bytes([255, OptParam.EXTENDED_LENGTH]) + len(params).to_bytes(2, "big") + params
    my_as = msg.my_as
    rid = int(ipaddress.IPv4Address(msg.router_id))
    body = (bytes([msg.version]) + my_as.to_bytes(2, "big") + msg.hold_time.to_bytes(2, "big")
            + rid.to_bytes(4, "big") + tail)
    if 19 + len(body) > MAX_MESSAGE_LEN:
        raise ValueError("OPEN exceeds 4096 bytes")
    return header(MsgType.OPEN, len(body)) + body


# ------------------------------------------------------ NOTIFICATION et al.

KEEPALIVE = b"\xff" * 16 + b"\x00\x13\x04"


def encode_keepalive():
    return KEEPALIVE


def decode_keepalive(body):
    if len(body):
        raise bgp_error(ErrorCode.MESSAGE_HEADER, HeaderError.BAD_MESSAGE_LENGTH,
                        (19 + len(body)).to_bytes(2, "big"), _SESSION_RESET, "KEEPALIVE with a body")
    return Keepalive()


def decode_notification(body):
    """NOTIFICATION body -> Notification.  RFC 9003 shutdown communication of
    Cease subcodes 2 and 4 is decoded defensively: a length byte past the
    data yields the bytes that are there, a bad UTF-8 byte a replacement
    character; neither is an error (we never answer a NOTIFICATION)."""
    cdef bytes b = bytes(body)
    if len(b) < 2:
        raise bgp_error(ErrorCode.MESSAGE_HEADER, HeaderError.BAD_MESSAGE_LENGTH,
                        (19 + len(b)).to_bytes(2, "big"), _SESSION_RESET, "NOTIFICATION shorter than 21 bytes")
    code = b[0]
    subcode = b[1]
    data = b[2:]
    text = None
    if (code == ErrorCode.CEASE and subcode in (CeaseSubcode.ADMINISTRATIVE_SHUTDOWN,
                                                CeaseSubcode.ADMINISTRATIVE_RESET) and data):
        n = data[0]
        raw = data[1:1 + n]
        text = raw.decode("utf-8", errors="replace")
        if len(raw) < n:
            text += " [truncated]"
    return Notification(code, subcode, data, text)


def encode_notification(int code, int subcode=0, data=b""):
    cdef bytes d = bytes(data)
    return header(MsgType.NOTIFICATION, 2 + len(d)) + bytes([code, subcode]) + d


def shutdown_communication(str message):
    """RFC 9003 data for Cease 2/4: a length byte and at most 255 bytes of UTF-8,
    cut at a character boundary."""
    raw = message.encode("utf-8")
    if len(raw) > 255:
        raw = raw[:255].decode("utf-8", errors="ignore").encode("utf-8")
    return bytes([len(raw)]) + raw


def decode_route_refresh(body):
    """ROUTE-REFRESH body -> RouteRefresh.  kbgp does not negotiate ORF (RFC
    5291), so any body length other than 4 is 7/1 (RFC 7313 section 5)."""
    cdef bytes b = bytes(body)
    if len(b) != 4:
        # RFC 7313 section 5: the data is the complete ROUTE-REFRESH message.
        raise bgp_error(ErrorCode.ROUTE_REFRESH, RouteRefreshErrorSubcode.INVALID_MESSAGE_LENGTH,
                        header(MsgType.ROUTE_REFRESH, len(b)) + b, _SESSION_RESET,
                        f"ROUTE-REFRESH body of {len(b)} bytes, not 4")
    return RouteRefresh(int.from_bytes(b[0:2], "big"), b[3], b[2])


def encode_route_refresh(int afi, int safi, int subtype=0):
    return header(MsgType.ROUTE_REFRESH, 4) + afi.to_bytes(2, "big") + bytes([subtype, safi])
