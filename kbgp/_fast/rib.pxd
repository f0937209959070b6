# C-level pieces of the route table (rib.pyx), for modules that cimport it
# (the export encoder, a compiled speaker loop).
cimport cython
from libc.stdint cimport uint8_t, uint16_t, uint32_t, int32_t, int64_t, uint64_t
from kbgp._fast.wire cimport PrefixArray, Pfx6

# One path of a prefix: who sent it, with which attribute set.
cdef struct Path:
    uint32_t attr
    uint16_t src
    uint8_t stale
    uint8_t unused

# The state of one hash-table slot (8 bytes, followed by the key).
#   kind 0: empty
#   kind 1: exactly one path, held inline (a = attr id, src, stale)
#   kind 2: two or more paths, a = index of a PathList in the pool
cdef struct Entry:
    uint32_t a
    uint16_t src
    uint8_t stale
    uint8_t kind

cdef struct Slot4:       # 16 bytes
    Entry e
    uint64_t key         # (address << 8) | length

cdef struct Slot6:       # 32 bytes
    Entry e
    Pfx6 key

# The paths of a prefix with more than one: two inline, more on the heap.
cdef struct PathList:
    Path* ext        # heap array when more than two paths, else NULL
    uint16_t n
    uint16_t cap     # capacity of ext (0 while inline)
    uint16_t best    # index of the best path
    uint16_t unused
    Path inl[2]

cdef struct SourceInfo:
    uint64_t addr_hi
    uint64_t addr_lo
    uint64_t paths   # paths held from this source
    uint64_t stale   # of which marked stale
    uint32_t router_id
    uint8_t defined
    uint8_t local
    uint8_t ibgp
    uint8_t rr_client

# What the decision process needs of an attribute set, by attr id.
cdef struct AttrRank:
    uint32_t local_pref
    uint32_t med
    uint32_t neighbor_as
    uint32_t originator_id
    int32_t as_path_len
    int32_t origin
    int32_t cluster_len
    int32_t defined


# Routes of one family: prefixes[i] has source src[i] and attribute set attr[i]
# (src -1: no route, attr NO_ATTR).  prefixes.n == n always.
cdef class Routes:
    cdef readonly PrefixArray prefixes
    cdef Py_ssize_t n
    cdef Py_ssize_t cap
    cdef int32_t* src
    cdef uint32_t* attr
    cdef int _grow(self, Py_ssize_t need) except -1


# Best-path changes: Routes holds the new best; old_src/old_attr the previous one.
cdef class Changes(Routes):
    cdef int32_t* old_src
    cdef uint32_t* old_attr


@cython.final
cdef class RouteTable:
    cdef readonly int afi
    # open-addressing hash table (linear probing, backward-shift deletion)
    cdef size_t cap
    cdef size_t mask
    cdef size_t count        # prefixes held
    cdef size_t max_load
    cdef size_t npaths       # paths held
    cdef char* slots         # cap Slot4 (IPv4) or Slot6 (IPv6)
    cdef int shift           # log2 of the slot size
    # multi-path lists
    cdef PathList** blocks   # list li is blocks[li >> 16][li & 0xffff]
    cdef uint32_t nblocks
    cdef uint32_t pool_n     # lists ever handed out (the free list reuses them)
    cdef uint32_t pool_cap
    cdef uint32_t pool_free
    cdef uint32_t pool_used
    cdef size_t ext_bytes
    # decision inputs
    cdef SourceInfo* srcs
    cdef uint32_t nsrcs
    cdef AttrRank* ranks
    cdef uint32_t nranks

    # The cdef API for compiled consumers.  Every call returns one batch;
    # read Routes.n / prefixes / src / attr (and Changes.old_src / old_attr).
    cdef bint _prefer(self, Path a, Path b) noexcept nogil
    cdef Changes update_c(self, int src, PrefixArray announce, uint32_t attr_id, PrefixArray withdraw)
    cdef Changes drop_source_c(self, int src)
    cdef Changes sweep_stale_c(self, int src)
    cdef Routes best_c(self)
    cdef Routes paths_c(self, int src)

    # internals
    cdef uint16_t _best_index(self, Path* p, uint16_t n) noexcept nogil
    cdef int _check_source(self, int src) except -1
    cdef int _check_attr(self, int64_t attr_id) except -1
    cdef size_t _home(self, size_t slot) noexcept nogil
    cdef size_t _find4(self, uint64_t key) noexcept nogil
    cdef size_t _find6(self, uint64_t hi, uint64_t lo, uint8_t plen) noexcept nogil
    cdef void _move(self, size_t dst, size_t src) noexcept nogil
    cdef void _erase(self, size_t i) noexcept nogil
    cdef int _resize(self, size_t newcap) except -1
    cdef int _grow_for(self, size_t extra) except -1
    cdef int64_t _list_new(self) except -1
    cdef void _list_free(self, uint32_t li) noexcept nogil
    cdef void _pool_trim(self) noexcept nogil
    cdef int _pool_grow(self) except -1
    cdef void _pool_release(self) noexcept nogil
    cdef void _prefetch_list(self, size_t slot) noexcept nogil
    cdef int _list_append(self, PathList* L, Path p) except -1
    cdef void _list_remove(self, PathList* L, uint16_t j) noexcept nogil
    cdef int _record(self, Changes ch, size_t slot, int32_t ns, uint32_t na,
                     int32_t os, uint32_t oa) except -1
    cdef int _announce_at(self, size_t slot, uint16_t src, uint32_t attr, Changes ch) except -1
    cdef int _remove_at(self, size_t slot, uint16_t src, bint only_stale, bint shift,
                        Changes ch) except -1
    cdef int _scan_remove(self, uint16_t src, bint only_stale, Changes ch) except -1
    cdef int _announce4(self, uint16_t src, uint32_t attr, PrefixArray ann, Changes ch) except -1
    cdef int _announce6(self, uint16_t src, uint32_t attr, PrefixArray ann, Changes ch) except -1
    cdef int _withdraw(self, uint16_t src, PrefixArray wd, PrefixArray skip, Changes ch) except -1
    cdef int _index_only(self, PrefixArray keys) except -1
    cdef int _push_slot(self, Routes out, size_t slot, int32_t src, uint32_t attr) except -1
    cdef size_t _find_text(self, object prefix) except? 0xFFFFFFFFFFFFFFFF
