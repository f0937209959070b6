# Shared C-level pieces of the wire codec, cimported by attrs (and later rib).
from libc.stdint cimport uint8_t, uint16_t, uint32_t, uint64_t

cdef struct Pfx6:
    uint64_t hi
    uint64_t lo
    uint8_t plen


cdef class PrefixArray:
    # Prefixes of one address family as packed integers in C memory.
    # IPv4: (address << 8) | prefix length, in a uint64_t array.
    # IPv6: Pfx6 structs (high and low 64 bits, prefix length).
    # Host bits past the prefix length are always zero.
    cdef readonly int afi
    cdef Py_ssize_t n
    cdef Py_ssize_t cap
    cdef uint64_t* v4
    cdef Pfx6* v6

    cdef int reserve(self, Py_ssize_t extra) except -1
    cdef int push4(self, uint32_t addr, uint8_t plen) except -1
    cdef int push6(self, uint64_t hi, uint64_t lo, uint8_t plen) except -1
    cdef int extend(self, PrefixArray other) except -1
    cdef Py_ssize_t wire_size(self, Py_ssize_t i)
    cdef Py_ssize_t write_prefix(self, Py_ssize_t i, uint8_t* out)


cdef uint16_t rd16(const uint8_t* p) noexcept nogil
cdef uint32_t rd32(const uint8_t* p) noexcept nogil
cdef void wr16(uint8_t* p, uint16_t v) noexcept nogil
cdef void wr32(uint8_t* p, uint32_t v) noexcept nogil

# Decode a run of NLRI (RFC 4271 section 4.3 / RFC 4760) from buf[start:end]
# into out.  Returns 0, or -1 with the byte offset of the bad prefix in
# *bad_at (the caller chooses the NOTIFICATION code for its context).
cdef int decode_nlri_into(const uint8_t* buf, Py_ssize_t start, Py_ssize_t end,
                          PrefixArray out, Py_ssize_t* bad_at) except -2

cpdef str ipv4_str(uint32_t addr)
cpdef str ipv6_str(bytes packed16)


# Prefix masks, shared by every module that packs prefixes (a .pxd inline).
cdef inline uint32_t mask4(int plen) noexcept nogil:
    if plen <= 0:
        return 0
    if plen >= 32:
        return 0xFFFFFFFF
    return (<uint32_t>0xFFFFFFFF) << (32 - plen)


cdef inline void mask6(uint64_t* hi, uint64_t* lo, int plen) noexcept nogil:
    """Clear the bits of hi:lo past plen."""
    if plen <= 0:
        hi[0] = 0
        lo[0] = 0
    elif plen < 64:
        hi[0] &= (~(<uint64_t>0)) << (64 - plen)
        lo[0] = 0
    elif plen == 64:
        lo[0] = 0
    elif plen < 128:
        lo[0] &= (~(<uint64_t>0)) << (128 - plen)
