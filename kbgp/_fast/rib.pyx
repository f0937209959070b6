# cython: language_level=3
"""Adj-RIB-In and Loc-RIB of one address family in C memory.

A RouteTable holds, for every prefix, the path from each source (a small
integer the caller assigns) and the index of the best one.  Prefixes are the
packed keys of PrefixArray: IPv4 (address << 8) | length in a uint64, IPv6 the
(hi, lo, plen) of a Pfx6.

Layout: one open-addressing hash table (linear probing, power-of-two size, at
most 3/4 full, backward-shift deletion, no tombstones) whose slots hold an
8-byte Entry and the key (Slot4: 16 bytes, Slot6: 32), so a probe touches one
cache line.  A prefix with one path keeps it inline in its slot: an IPv4 route
then takes 21 to 43 bytes depending on the fill (33.6 at 1M routes).  A prefix with more paths points to a 32-byte PathList in a pool (2 MiB
blocks, so lists never move), which holds two paths inline and more on the
heap.

The decision process (RFC 4271 9.1.2.2, as kbgp.rib.table.Rib.prefer) reads
per-source facts (set_source) and per-attribute-set ranks (set_attr) from C
arrays, so it runs without touching a Python object.  Every batch call returns
one Changes: the prefixes whose best path changed, with old and new best.

The ranks of an attribute id and the facts of a source are read when a
decision runs; changing them later does not re-run earlier decisions.
"""
from libc.stdint cimport uint8_t, uint16_t, uint32_t, int32_t, int64_t, uint64_t
from libc.stdlib cimport malloc, calloc, realloc, free
from libc.string cimport memcpy, memmove, memset

from kbgp._fast.wire cimport PrefixArray, Pfx6, mask4, mask6

import ipaddress

cdef extern from *:
    """
    #include <stdint.h>
    #define KBGP_RIB_NO_ATTR ((uint32_t)0xFFFFFFFFu)  /* attr id of "no route" */
    #define KBGP_RIB_NO_LIST ((uint32_t)0xFFFFFFFFu)  /* end of the free list */
    static inline uint64_t kbgp_rib_mix(uint64_t x) {
        x ^= x >> 33;
        x *= 0xff51afd7ed558ccdULL;
        x ^= x >> 33;
        x *= 0xc4ceb9fe1a85ec53ULL;
        x ^= x >> 33;
        return x;
    }
    static inline uint64_t kbgp_rib_mix6(uint64_t hi, uint64_t lo, uint8_t plen) {
        return kbgp_rib_mix(hi ^ kbgp_rib_mix(lo ^ ((uint64_t)plen << 56) ^ 0x9e3779b97f4a7c15ULL));
    }
    #if defined(__linux__)
    #include <sys/mman.h>
    #endif
    #define KBGP_RIB_HUGE ((size_t)2 << 20)
    /* Ask for transparent huge pages on the 2 MiB-aligned interior of a big
       array: fewer page faults and TLB misses for random access. */
    static inline void kbgp_rib_hint_huge(void* p, size_t n) {
    #if defined(__linux__) && defined(MADV_HUGEPAGE)
        const uintptr_t H = KBGP_RIB_HUGE;
        uintptr_t a = ((uintptr_t)p + H - 1) & ~(H - 1);
        uintptr_t e = ((uintptr_t)p + n) & ~(H - 1);
        if (e > a)
            (void)madvise((void*)a, e - a, MADV_HUGEPAGE);
    #else
        (void)p; (void)n;
    #endif
    }
    /* Zeroed memory for a big array (n a multiple of 2 MiB), 2 MiB-aligned so
       all of it can be huge pages; free with kbgp_rib_huge_free(p, n). */
    static void* kbgp_rib_huge_alloc(size_t n) {
    #if defined(__linux__)
        const size_t H = KBGP_RIB_HUGE;
        char* p = (char*)mmap(NULL, n + H, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        uintptr_t a;
        size_t head;
        if (p == (char*)MAP_FAILED)
            return NULL;
        a = ((uintptr_t)p + H - 1) & ~(uintptr_t)(H - 1);
        head = (size_t)(a - (uintptr_t)p);
        if (head)
            munmap(p, head);
        if (H - head)
            munmap((char*)a + n, H - head);
        kbgp_rib_hint_huge((void*)a, n);
        return (void*)a;
    #else
        return calloc(1, n);
    #endif
    }
    static void kbgp_rib_huge_free(void* p, size_t n) {
        if (p == NULL)
            return;
    #if defined(__linux__)
        munmap(p, n);
    #else
        (void)n;
        free(p);
    #endif
    }
    #if defined(__GNUC__) || defined(__clang__)
    #define KBGP_RIB_PREFETCH(p) __builtin_prefetch((const void*)(p), 0, 3)
    #else
    #define KBGP_RIB_PREFETCH(p) ((void)0)
    #endif
    """
    const uint32_t NO_ATTR "KBGP_RIB_NO_ATTR"
    const uint32_t NO_LIST "KBGP_RIB_NO_LIST"
    uint64_t kbgp_rib_mix(uint64_t x) noexcept nogil
    uint64_t kbgp_rib_mix6(uint64_t hi, uint64_t lo, uint8_t plen) noexcept nogil
    void KBGP_RIB_PREFETCH(const void* p) noexcept nogil
    void kbgp_rib_hint_huge(void* p, size_t n) noexcept nogil
    void* kbgp_rib_huge_alloc(size_t n) noexcept nogil
    void kbgp_rib_huge_free(void* p, size_t n) noexcept nogil
    const size_t HUGE "KBGP_RIB_HUGE"

cdef enum:
    KIND_EMPTY = 0
    KIND_ONE = 1
    KIND_MANY = 2

# How many prefixes ahead the batch loops prefetch their hash slot.
cdef enum:
    PREFETCH_AHEAD = 16

# Multi-path lists live in blocks of POOL_BLOCK (2 MiB of PathList).
cdef enum:
    POOL_SHIFT = 16
    POOL_BLOCK = 65536

cdef enum:
    MAX_SOURCES = 65536
    MAX_PATHS = 65535


NO_SOURCE = -1
DEFAULT_LOCAL_PREF = 100

cdef uint64_t M64 = 0xFFFFFFFFFFFFFFFF


cdef inline Path* _lpaths(PathList* L) noexcept nogil:
    if L.ext != NULL:
        return L.ext
    return &L.inl[0]


cdef inline Entry* _ent(RouteTable t, size_t i) noexcept nogil:
    return <Entry*>(t.slots + (i << t.shift))


cdef inline PathList* _plist(RouteTable t, uint32_t li) noexcept nogil:
    return &t.blocks[li >> POOL_SHIFT][li & (POOL_BLOCK - 1)]


cdef inline uint64_t* _k4(RouteTable t, size_t i) noexcept nogil:
    return &(<Slot4*>t.slots)[i].key


cdef inline Pfx6* _k6(RouteTable t, size_t i) noexcept nogil:
    return &(<Slot6*>t.slots)[i].key


cdef inline void* _table_alloc(size_t nbytes) noexcept nogil:
    """Zeroed memory for a hash table: whole huge pages from 4 MiB up."""
    if nbytes >= 2 * HUGE:
        return kbgp_rib_huge_alloc(nbytes)
    return calloc(1, nbytes)


cdef inline void _table_free(void* p, size_t nbytes) noexcept nogil:
    if nbytes >= 2 * HUGE:
        kbgp_rib_huge_free(p, nbytes)
    else:
        free(p)


cdef inline uint32_t _ip4(object value) except? 0xFFFFFFFF:
    """An IPv4 address (int or dotted text) as a uint32."""
    if isinstance(value, str):
        return int(ipaddress.IPv4Address(value))
    return value


# ------------------------------------------------------------------ routes

cdef class Routes:
    """Routes of one family in C arrays: prefix i has source ``src[i]`` and
    attribute set ``attr[i]``.  Python sees the whole batch; the accessors that
    return lists make one object a route and are for tests and small exports."""

    def __cinit__(self, int afi=1):
        self.prefixes = PrefixArray(afi)
        self.n = 0
        self.cap = 0
        self.src = NULL
        self.attr = NULL

    def __dealloc__(self):
        free(self.src)
        free(self.attr)

    cdef int _grow(self, Py_ssize_t need) except -1:
        cdef Py_ssize_t newcap = self.cap * 2 if self.cap else 16
        cdef void* mem
        while newcap < need:
            newcap *= 2
        mem = realloc(self.src, newcap * sizeof(int32_t))
        if mem == NULL:
            raise MemoryError()
        self.src = <int32_t*>mem
        mem = realloc(self.attr, newcap * sizeof(uint32_t))
        if mem == NULL:
            raise MemoryError()
        self.attr = <uint32_t*>mem
        self.prefixes.reserve(newcap - self.prefixes.n)
        self.cap = newcap
        kbgp_rib_hint_huge(self.src, newcap * sizeof(int32_t))
        kbgp_rib_hint_huge(self.attr, newcap * sizeof(uint32_t))
        if self.prefixes.afi == 1:
            kbgp_rib_hint_huge(self.prefixes.v4, newcap * sizeof(uint64_t))
        else:
            kbgp_rib_hint_huge(self.prefixes.v6, newcap * sizeof(Pfx6))
        return 0

    @property
    def afi(self):
        return self.prefixes.afi

    def __len__(self):
        return self.n

    def __bool__(self):
        return self.n > 0

    def sources(self):
        return [self.src[i] for i in range(self.n)]

    def attrs(self):
        return [-1 if self.attr[i] == NO_ATTR else <int64_t>self.attr[i] for i in range(self.n)]

    def pairs(self):
        """The distinct (source, attr id) pairs, routes with no source left out."""
        cdef _PairMap seen = _PairMap()
        cdef Py_ssize_t i
        cdef uint64_t key
        cdef int64_t* slot
        out = []
        for i in range(self.n):
            if self.src[i] < 0:
                continue
            key = _pair_key(self.src[i], self.attr[i])
            slot = seen.find(key)
            if slot == NULL:
                seen.put(key, 0)
                out.append((self.src[i], <int64_t>self.attr[i]))
        return out

    def items(self):
        """[(prefix text, src, attr)]: one tuple a route, for tests and logs."""
        return [(self.prefixes.prefix(i), self.src[i],
                 -1 if self.attr[i] == NO_ATTR else <int64_t>self.attr[i]) for i in range(self.n)]

    def __repr__(self):
        return f"{type(self).__name__}(afi={self.prefixes.afi}, n={self.n})"


cdef class Changes(Routes):
    """Prefixes whose best path changed in one batch call, with the new best
    (``new_sources()``/``new_attrs()``; source -1: no route now) and the old one
    (``old_sources()``/``old_attrs()``; source -1: there was none).  Attribute
    ids of missing routes read as -1.  Each prefix appears at most once."""

    def __cinit__(self, int afi=1):
        self.old_src = NULL
        self.old_attr = NULL

    def __dealloc__(self):
        free(self.old_src)
        free(self.old_attr)

    cdef int _grow(self, Py_ssize_t need) except -1:
        cdef void* mem
        Routes._grow(self, need)
        mem = realloc(self.old_src, self.cap * sizeof(int32_t))
        if mem == NULL:
            raise MemoryError()
        self.old_src = <int32_t*>mem
        mem = realloc(self.old_attr, self.cap * sizeof(uint32_t))
        if mem == NULL:
            raise MemoryError()
        self.old_attr = <uint32_t*>mem
        kbgp_rib_hint_huge(self.old_src, self.cap * sizeof(int32_t))
        kbgp_rib_hint_huge(self.old_attr, self.cap * sizeof(uint32_t))
        return 0

    def new_sources(self):
        return self.sources()

    def new_attrs(self):
        return self.attrs()

    def old_sources(self):
        return [self.old_src[i] for i in range(self.n)]

    def old_attrs(self):
        return [-1 if self.old_attr[i] == NO_ATTR else <int64_t>self.old_attr[i] for i in range(self.n)]

    def items(self):
        """[(prefix text, (old src, old attr), (new src, new attr))]."""
        old_a = self.old_attrs()
        new_a = self.attrs()
        return [(self.prefixes.prefix(i), (self.old_src[i], old_a[i]), (self.src[i], new_a[i]))
                for i in range(self.n)]


# ------------------------------------------------- small uint64 -> int64 map

cdef inline uint64_t _pair_key(int32_t src, uint32_t attr) noexcept nogil:
    return (<uint64_t><uint32_t>src << 32) | attr


cdef class _PairMap:
    """Open-addressing map uint64 -> int64 for the few distinct (source, attr)
    pairs of a batch."""
    cdef uint64_t* keys
    cdef int64_t* vals
    cdef uint8_t* used
    cdef size_t cap
    cdef size_t n

    def __cinit__(self):
        self.cap = 0
        self.n = 0
        self.keys = NULL
        self.vals = NULL
        self.used = NULL
        self._resize(16)

    def __dealloc__(self):
        free(self.keys)
        free(self.vals)
        free(self.used)

    cdef int _resize(self, size_t newcap) except -1:
        cdef uint64_t* ok = self.keys
        cdef int64_t* ov = self.vals
        cdef uint8_t* ou = self.used
        cdef size_t oc = self.cap, i, j
        self.keys = <uint64_t*>malloc(newcap * sizeof(uint64_t))
        self.vals = <int64_t*>malloc(newcap * sizeof(int64_t))
        self.used = <uint8_t*>calloc(newcap, 1)
        if self.keys == NULL or self.vals == NULL or self.used == NULL:
            free(self.keys)
            free(self.vals)
            free(self.used)
            self.keys = ok
            self.vals = ov
            self.used = ou
            raise MemoryError()
        self.cap = newcap
        for i in range(oc):
            if ou[i]:
                j = kbgp_rib_mix(ok[i]) & (newcap - 1)
                while self.used[j]:
                    j = (j + 1) & (newcap - 1)
                self.used[j] = 1
                self.keys[j] = ok[i]
                self.vals[j] = ov[i]
        free(ok)
        free(ov)
        free(ou)
        return 0

    cdef inline int64_t* find(self, uint64_t key) noexcept:
        cdef size_t j = kbgp_rib_mix(key) & (self.cap - 1)
        while self.used[j]:
            if self.keys[j] == key:
                return &self.vals[j]
            j = (j + 1) & (self.cap - 1)
        return NULL

    cdef int put(self, uint64_t key, int64_t val) except -1:
        cdef size_t j
        if (self.n + 1) * 2 > self.cap:
            self._resize(self.cap * 2)
        j = kbgp_rib_mix(key) & (self.cap - 1)
        while self.used[j]:
            if self.keys[j] == key:
                self.vals[j] = val
                return 0
            j = (j + 1) & (self.cap - 1)
        self.used[j] = 1
        self.keys[j] = key
        self.vals[j] = val
        self.n += 1
        return 0


# ------------------------------------------------------------ route table

cdef void* _grow_zeroed(void* arr, uint32_t* n, uint32_t index, size_t item, uint32_t first) except NULL:
    """Grow a C array (doubling from first) until index fits; new items are zeroed."""
    cdef uint32_t newn = n[0] * 2 if n[0] else first
    cdef void* mem
    while newn <= index:
        newn *= 2
    mem = realloc(arr, newn * item)
    if mem == NULL:
        raise MemoryError()
    memset(<char*>mem + n[0] * item, 0, (newn - n[0]) * item)
    n[0] = newn
    return mem


cdef class RouteTable:
    """Every path of every prefix of one address family, and the best of each.

    ``RouteTable(1)`` for IPv4, ``RouteTable(2)`` for IPv6.  Declare sources
    with set_source() and attribute ranks with set_attr()/set_attr_from()
    before using their indexes in update().
    """

    def __cinit__(self, int afi=1):
        if afi != 1 and afi != 2:
            raise ValueError(f"afi must be 1 (IPv4) or 2 (IPv6), not {afi}")
        self.afi = afi
        self.cap = 0
        self.mask = 0
        self.count = 0
        self.max_load = 0
        self.npaths = 0
        self.slots = NULL
        self.shift = 4 if afi == 1 else 5
        self.blocks = NULL
        self.nblocks = 0
        self.pool_n = 0
        self.pool_cap = 0
        self.pool_free = NO_LIST
        self.pool_used = 0
        self.ext_bytes = 0
        self.srcs = NULL
        self.nsrcs = 0
        self.ranks = NULL
        self.nranks = 0
        self._resize(16)

    def __dealloc__(self):
        cdef uint32_t i
        self._pool_release()
        _table_free(self.slots, self.cap << self.shift)
        free(self.srcs)
        free(self.ranks)

    # ------------------------------------------------------ decision inputs

    def set_source(self, int idx, *, bint local=False, bint ibgp=False, object router_id=0,
                   object address=0, bint rr_client=False):
        """Declare source idx (0..65535).  router_id: the BGP Identifier (int
        or dotted text); address: the neighbour's address as an int (or text),
        the last tie-break; local: originated routes, preferred to all others."""
        cdef SourceInfo* s
        if idx < 0 or idx >= MAX_SOURCES:
            raise ValueError(f"source index {idx} out of range 0..{MAX_SOURCES - 1}")
        if not isinstance(address, int):
            address = int(ipaddress.ip_address(address))
        if address < 0 or address >= (1 << 128):
            raise ValueError(f"address {address} is not a 128-bit unsigned int")
        if <uint32_t>idx >= self.nsrcs:
            self.srcs = <SourceInfo*>_grow_zeroed(self.srcs, &self.nsrcs, idx, sizeof(SourceInfo), 16)
        s = &self.srcs[idx]
        s.router_id = _ip4(router_id)
        s.addr_hi = <uint64_t>((address >> 64) & M64)
        s.addr_lo = <uint64_t>(address & M64)
        s.local = local
        s.ibgp = ibgp
        s.rr_client = rr_client
        s.defined = 1

    def set_attr(self, int attr_id, *, unsigned int local_pref=DEFAULT_LOCAL_PREF, int as_path_len=0,
                 int origin=0, unsigned int med=0, unsigned int neighbor_as=0,
                 object originator_id=0, int cluster_len=0):
        """Declare the ranks of attribute set attr_id (an AttrTable id)."""
        cdef AttrRank* r
        if attr_id < 0 or attr_id >= 0x7FFFFFFF:
            raise ValueError(f"attr id {attr_id} out of range")
        if <uint32_t>attr_id >= self.nranks:
            self.ranks = <AttrRank*>_grow_zeroed(self.ranks, &self.nranks, attr_id, sizeof(AttrRank), 64)
        r = &self.ranks[attr_id]
        r.local_pref = local_pref
        r.as_path_len = as_path_len
        r.origin = origin
        r.med = med
        r.neighbor_as = neighbor_as
        r.originator_id = _ip4(originator_id)
        r.cluster_len = cluster_len
        r.defined = 1

    def set_attr_from(self, int attr_id, pa):
        """Declare the ranks of attr_id from its PathAttributes."""
        neighbor_as = 0
        for seg_type, asns in (pa.as_path or ()):
            if seg_type == 2 and asns:  # AS_SEQUENCE
                neighbor_as = asns[0]
                break
        self.set_attr(
            attr_id,
            local_pref=DEFAULT_LOCAL_PREF if pa.local_pref is None else pa.local_pref,
            as_path_len=pa.as_path_length(),
            origin=pa.origin if pa.origin >= 0 else 2,
            med=0 if pa.med is None else pa.med,
            neighbor_as=neighbor_as,
            originator_id=0 if pa.originator_id is None else pa.originator_id,
            cluster_len=len(pa.cluster_list),
        )

    def attr_rank(self, int attr_id):
        """The ranks declared for attr_id, as a dict (tests, ``kbgp rib``)."""
        cdef AttrRank* r
        self._check_attr(attr_id)
        r = &self.ranks[attr_id]
        return dict(local_pref=r.local_pref, as_path_len=r.as_path_len, origin=r.origin, med=r.med,
                    neighbor_as=r.neighbor_as, originator_id=r.originator_id, cluster_len=r.cluster_len)

    def source_info(self, int idx):
        """What set_source() declared for idx, as a dict."""
        cdef SourceInfo* s
        self._check_source(idx)
        s = &self.srcs[idx]
        return dict(local=bool(s.local), ibgp=bool(s.ibgp), router_id=s.router_id,
                    address=(<object>s.addr_hi << 64) | s.addr_lo, rr_client=bool(s.rr_client),
                    paths=s.paths, stale=s.stale)

    cdef bint _prefer(self, Path a, Path b) noexcept nogil:
        """True when a beats b (RFC 4271 9.1.2.2; RFC 4456 9 for reflected routes)."""
        cdef SourceInfo* sa = &self.srcs[a.src]
        cdef SourceInfo* sb = &self.srcs[b.src]
        cdef AttrRank* ra = &self.ranks[a.attr]
        cdef AttrRank* rb = &self.ranks[b.attr]
        cdef uint32_t ida, idb
        if sa.local != sb.local:
            return sa.local
        if ra.local_pref != rb.local_pref:
            return ra.local_pref > rb.local_pref
        if ra.as_path_len != rb.as_path_len:
            return ra.as_path_len < rb.as_path_len
        if ra.origin != rb.origin:
            return ra.origin < rb.origin
        if ra.neighbor_as == rb.neighbor_as and ra.med != rb.med:
            return ra.med < rb.med
        if sa.ibgp != sb.ibgp:
            return not sa.ibgp
        ida = ra.originator_id if ra.originator_id else sa.router_id
        idb = rb.originator_id if rb.originator_id else sb.router_id
        if ida != idb:
            return ida < idb
        if ra.cluster_len != rb.cluster_len:
            return ra.cluster_len < rb.cluster_len
        if sa.addr_hi != sb.addr_hi:
            return sa.addr_hi < sb.addr_hi
        return sa.addr_lo < sb.addr_lo

    cdef uint16_t _best_index(self, Path* p, uint16_t n) noexcept nogil:
        cdef uint16_t best = 0, j
        for j in range(1, n):
            if self._prefer(p[j], p[best]):
                best = j
        return best

    cdef int _check_source(self, int src) except -1:
        if src < 0 or <uint32_t>src >= self.nsrcs or not self.srcs[src].defined:
            raise ValueError(f"source {src} was not declared with set_source()")
        return 0

    cdef int _check_attr(self, int64_t attr_id) except -1:
        if attr_id < 0 or attr_id >= self.nranks or not self.ranks[attr_id].defined:
            raise ValueError(f"attr id {attr_id} was not declared with set_attr()")
        return 0

    # ---------------------------------------------------------- hash table

    cdef size_t _home(self, size_t slot) noexcept nogil:
        cdef Pfx6* k
        if self.afi == 1:
            return kbgp_rib_mix(_k4(self, slot)[0]) & self.mask
        k = _k6(self, slot)
        return kbgp_rib_mix6(k.hi, k.lo, k.plen) & self.mask

    cdef size_t _find4(self, uint64_t key) noexcept nogil:
        """The slot holding key, or the empty slot where it goes."""
        cdef size_t i = kbgp_rib_mix(key) & self.mask
        cdef Slot4* s = <Slot4*>self.slots
        while s[i].e.kind != KIND_EMPTY and s[i].key != key:
            i = (i + 1) & self.mask
        return i

    cdef size_t _find6(self, uint64_t hi, uint64_t lo, uint8_t plen) noexcept nogil:
        cdef size_t i = kbgp_rib_mix6(hi, lo, plen) & self.mask
        cdef Slot6* s = <Slot6*>self.slots
        while s[i].e.kind != KIND_EMPTY and not (
                s[i].key.hi == hi and s[i].key.lo == lo and s[i].key.plen == plen):
            i = (i + 1) & self.mask
        return i

    cdef void _move(self, size_t dst, size_t src) noexcept nogil:
        memcpy(self.slots + (dst << self.shift), self.slots + (src << self.shift), <size_t>1 << self.shift)
        _ent(self, src).kind = KIND_EMPTY

    cdef void _erase(self, size_t i) noexcept nogil:
        """Empty slot i and shift the rest of its cluster back (no tombstones)."""
        cdef size_t j = i, h
        _ent(self, i).kind = KIND_EMPTY
        self.count -= 1
        while True:
            j = (j + 1) & self.mask
            if _ent(self, j).kind == KIND_EMPTY:
                return
            h = self._home(j)
            # The entry at j may fill the hole at i unless its home lies in (i, j].
            if (i < j and (h <= i or h > j)) or (j < i and h <= i and h > j):
                self._move(i, j)
                i = j

    cdef int _resize(self, size_t newcap) except -1:
        cdef char* old = self.slots
        cdef size_t ocap = self.cap, i, j, mask = newcap - 1, h
        cdef size_t size = <size_t>1 << self.shift
        cdef char* new = <char*>_table_alloc(newcap * size)   # zeroed: kind 0, empty
        cdef Entry* e
        if new == NULL:
            raise MemoryError()
        for i in range(ocap):
            e = <Entry*>(old + i * size)
            if e.kind == KIND_EMPTY:
                continue
            if self.afi == 1:
                h = kbgp_rib_mix((<Slot4*>e).key)
            else:
                h = kbgp_rib_mix6((<Slot6*>e).key.hi, (<Slot6*>e).key.lo, (<Slot6*>e).key.plen)
            j = h & mask
            while (<Entry*>(new + j * size)).kind != KIND_EMPTY:
                j = (j + 1) & mask
            memcpy(new + j * size, e, size)
        _table_free(old, ocap * size)
        self.slots = new
        self.cap = newcap
        self.mask = mask
        self.max_load = newcap - (newcap >> 2)
        return 0

    cdef int _grow_for(self, size_t extra) except -1:
        """Make room for at least one more prefix; when the batch still holds
        more new-looking prefixes than the table has, size for all of them at
        once (a first full table costs one rehash, not twenty)."""
        cdef size_t need = self.count + 1
        cdef size_t newcap = self.cap * 2
        if extra > self.count:
            need = self.count + extra
        while newcap - (newcap >> 2) < need:
            newcap *= 2
        return self._resize(newcap)

    # ------------------------------------------------------ multi-path lists

    cdef int64_t _list_new(self) except -1:
        cdef uint32_t li
        cdef PathList* L
        if self.pool_free != NO_LIST:
            li = self.pool_free
            self.pool_free = _plist(self, li).inl[0].attr
        else:
            if self.pool_n == self.pool_cap:
                self._pool_grow()
            li = self.pool_n
            self.pool_n += 1
        L = _plist(self, li)
        memset(L, 0, sizeof(PathList))
        self.pool_used += 1
        return li

    cdef int _pool_grow(self) except -1:
        """Block 0 doubles up to POOL_BLOCK lists; after it, whole 2 MiB
        blocks are added, so no list ever moves."""
        cdef void* mem
        cdef uint32_t newcap
        if self.nblocks == 1 and self.pool_cap < POOL_BLOCK:
            newcap = self.pool_cap * 2
            mem = realloc(self.blocks[0], newcap * sizeof(PathList))
            if mem == NULL:
                raise MemoryError()
            self.blocks[0] = <PathList*>mem
            self.pool_cap = newcap
            return 0
        if <uint64_t>self.pool_cap + POOL_BLOCK >= NO_LIST:
            raise MemoryError("too many multi-path prefixes")
        mem = realloc(self.blocks, (self.nblocks + 1) * sizeof(PathList*))
        if mem == NULL:
            raise MemoryError()
        self.blocks = <PathList**>mem
        newcap = 64 if self.nblocks == 0 else POOL_BLOCK
        if newcap == POOL_BLOCK:
            mem = kbgp_rib_huge_alloc(POOL_BLOCK * sizeof(PathList))
        else:
            mem = malloc(newcap * sizeof(PathList))
        if mem == NULL:
            raise MemoryError()
        self.blocks[self.nblocks] = <PathList*>mem
        self.nblocks += 1
        self.pool_cap += newcap
        return 0

    cdef void _pool_release(self) noexcept nogil:
        """Free every list and block."""
        cdef uint32_t i
        for i in range(self.pool_n):
            free(_plist(self, i).ext)
        if self.nblocks:
            free(self.blocks[0])            # block 0 grows by realloc
            for i in range(1, self.nblocks):
                kbgp_rib_huge_free(self.blocks[i], POOL_BLOCK * sizeof(PathList))
        free(self.blocks)
        self.blocks = NULL
        self.nblocks = 0
        self.pool_n = 0
        self.pool_cap = 0
        self.pool_free = NO_LIST
        self.pool_used = 0
        self.ext_bytes = 0

    cdef void _pool_trim(self) noexcept nogil:
        """Give the pool back once no prefix has more than one path."""
        if self.pool_used == 0 and self.pool_cap > 64:
            self._pool_release()

    cdef void _list_free(self, uint32_t li) noexcept nogil:
        cdef PathList* L = _plist(self, li)
        if L.ext != NULL:
            self.ext_bytes -= L.cap * sizeof(Path)
            free(L.ext)
            L.ext = NULL
        L.n = 0
        L.cap = 0
        L.inl[0].attr = self.pool_free
        self.pool_free = li
        self.pool_used -= 1

    cdef int _list_append(self, PathList* L, Path p) except -1:
        cdef Path* mem
        cdef uint32_t newcap
        if L.ext == NULL:
            if L.n < 2:
                L.inl[L.n] = p
                L.n += 1
                return 0
            mem = <Path*>malloc(4 * sizeof(Path))
            if mem == NULL:
                raise MemoryError()
            memcpy(mem, &L.inl[0], 2 * sizeof(Path))
            L.ext = mem
            L.cap = 4
            self.ext_bytes += 4 * sizeof(Path)
        elif L.n == L.cap:
            if L.n >= MAX_PATHS:
                raise OverflowError("too many paths for one prefix")
            newcap = <uint32_t>L.cap * 2
            if newcap > MAX_PATHS:
                newcap = MAX_PATHS
            mem = <Path*>realloc(L.ext, newcap * sizeof(Path))
            if mem == NULL:
                raise MemoryError()
            L.ext = mem
            self.ext_bytes += (newcap - L.cap) * sizeof(Path)
            L.cap = <uint16_t>newcap
        L.ext[L.n] = p
        L.n += 1
        return 0

    cdef void _list_remove(self, PathList* L, uint16_t j) noexcept nogil:
        cdef Path* p = _lpaths(L)
        memmove(&p[j], &p[j + 1], (L.n - j - 1) * sizeof(Path))
        L.n -= 1
        if L.ext != NULL and L.n <= 2:
            memcpy(&L.inl[0], L.ext, L.n * sizeof(Path))
            self.ext_bytes -= L.cap * sizeof(Path)
            free(L.ext)
            L.ext = NULL
            L.cap = 0

    # ------------------------------------------------- per-slot operations

    cdef int _record(self, Changes ch, size_t slot, int32_t ns, uint32_t na,
                     int32_t os, uint32_t oa) except -1:
        cdef Py_ssize_t k = ch.n
        if k == ch.cap:
            ch._grow(k + 1)
        if self.afi == 1:
            ch.prefixes.v4[k] = _k4(self, slot)[0]
        else:
            ch.prefixes.v6[k] = _k6(self, slot)[0]
        ch.src[k] = ns
        ch.attr[k] = na
        ch.old_src[k] = os
        ch.old_attr[k] = oa
        ch.n = k + 1
        ch.prefixes.n = k + 1
        return 0

    cdef int _announce_at(self, size_t slot, uint16_t src, uint32_t attr, Changes ch) except -1:
        """src announces attr for the prefix at slot (the key is already
        stored there when the slot was empty)."""
        cdef Entry* e = _ent(self, slot)
        cdef SourceInfo* si = &self.srcs[src]
        cdef PathList* L
        cdef Path* p
        cdef Path np, old
        cdef uint32_t li, oa
        cdef uint16_t j, n
        if e.kind == KIND_EMPTY:
            e.kind = KIND_ONE
            e.src = src
            e.a = attr
            e.stale = 0
            self.count += 1
            self.npaths += 1
            si.paths += 1
            return self._record(ch, slot, src, attr, -1, NO_ATTR)
        if e.kind == KIND_ONE:
            if e.src == src:
                if e.stale:
                    e.stale = 0
                    si.stale -= 1
                if e.a == attr:
                    return 0
                oa = e.a
                e.a = attr
                return self._record(ch, slot, src, attr, src, oa)
            # A second source: move both paths to a list.
            old.attr = e.a
            old.src = e.src
            old.stale = e.stale
            old.unused = 0
            li = <uint32_t>self._list_new()
            e = _ent(self, slot)
            L = _plist(self, li)
            L.inl[0] = old
            L.inl[1].attr = attr
            L.inl[1].src = src
            L.inl[1].stale = 0
            L.inl[1].unused = 0
            L.n = 2
            L.best = 1 if self._prefer(L.inl[1], L.inl[0]) else 0
            e.kind = KIND_MANY
            e.a = li
            self.npaths += 1
            si.paths += 1
            if L.best == 1:
                return self._record(ch, slot, src, attr, old.src, old.attr)
            return 0
        L = _plist(self, e.a)
        p = _lpaths(L)
        n = L.n
        old = p[L.best]
        for j in range(n):
            if p[j].src == src:
                if p[j].stale:
                    p[j].stale = 0
                    si.stale -= 1
                if p[j].attr == attr:
                    return 0
                p[j].attr = attr
                break
        else:
            np.attr = attr
            np.src = src
            np.stale = 0
            np.unused = 0
            self._list_append(L, np)
            self.npaths += 1
            si.paths += 1
            p = _lpaths(L)
        L.best = self._best_index(p, L.n)
        if p[L.best].src != old.src or p[L.best].attr != old.attr:
            return self._record(ch, slot, p[L.best].src, p[L.best].attr, old.src, old.attr)
        return 0

    cdef int _remove_at(self, size_t slot, uint16_t src, bint only_stale, bint shift,
                        Changes ch) except -1:
        """Remove src's path (only if stale, when only_stale) from the prefix
        at slot.  Returns 1 when the slot was emptied.  shift: close the hole
        by backward shift (single deletions); else the caller compacts."""
        cdef Entry* e = _ent(self, slot)
        cdef SourceInfo* si = &self.srcs[src]
        cdef PathList* L
        cdef Path* p
        cdef Path old, nb
        cdef uint16_t j, n
        if e.kind == KIND_EMPTY:
            return 0
        if e.kind == KIND_ONE:
            if e.src != src or (only_stale and not e.stale):
                return 0
            if e.stale:
                si.stale -= 1
            si.paths -= 1
            self.npaths -= 1
            self._record(ch, slot, -1, NO_ATTR, src, e.a)
            if shift:
                self._erase(slot)
            else:
                e.kind = KIND_EMPTY
                self.count -= 1
            return 1
        L = _plist(self, e.a)
        p = _lpaths(L)
        n = L.n
        for j in range(n):
            if p[j].src == src:
                break
        else:
            return 0
        if only_stale and not p[j].stale:
            return 0
        if p[j].stale:
            si.stale -= 1
        si.paths -= 1
        self.npaths -= 1
        old = p[L.best]
        self._list_remove(L, j)
        p = _lpaths(L)
        if L.n == 1:
            nb = p[0]
            self._list_free(e.a)
            e.kind = KIND_ONE
            e.a = nb.attr
            e.src = nb.src
            e.stale = nb.stale
        else:
            L.best = self._best_index(p, L.n)
            nb = p[L.best]
        if nb.src != old.src or nb.attr != old.attr:
            self._record(ch, slot, nb.src, nb.attr, old.src, old.attr)
        return 0

    cdef void _prefetch_list(self, size_t slot) noexcept nogil:
        cdef Entry* e = _ent(self, slot)
        if e.kind == KIND_MANY:
            KBGP_RIB_PREFETCH(_plist(self, e.a))

    cdef int _scan_remove(self, uint16_t src, bint only_stale, Changes ch) except -1:
        """Remove src's paths (the stale ones, when only_stale) from every
        prefix in one pass over the table.  Emptied slots are closed up as the
        scan goes: the scan starts after a slot that was empty before it, so
        every entry's home comes earlier in scan order than the entry, and an
        entry is moved to the first hole between its home and itself."""
        cdef size_t s = 0, p, q, step
        cdef bint deleted = False
        while _ent(self, s)[0].kind != KIND_EMPTY:
            s += 1
        p = s
        for step in range(self.cap):
            p = (p + 1) & self.mask
            self._prefetch_list((p + PREFETCH_AHEAD) & self.mask)
            if _ent(self, p)[0].kind == KIND_EMPTY:
                continue
            if self._remove_at(p, src, only_stale, False, ch):
                deleted = True
                continue
            if deleted:
                q = self._home(p)
                while q != p and _ent(self, q)[0].kind != KIND_EMPTY:
                    q = (q + 1) & self.mask
                if q != p:
                    self._move(q, p)
        return 0

    # --------------------------------------------------------- batch calls

    cdef int _announce4(self, uint16_t src, uint32_t attr, PrefixArray ann, Changes ch) except -1:
        cdef Py_ssize_t i, k, n = ann.n
        cdef const uint64_t* keys = ann.v4
        cdef uint64_t key
        cdef size_t slot, added = 0
        cdef Slot4* s4
        cdef Entry* e
        for i in range(n):
            if i + PREFETCH_AHEAD < n:
                KBGP_RIB_PREFETCH(_k4(self, kbgp_rib_mix(keys[i + PREFETCH_AHEAD]) & self.mask))
            key = keys[i]
            slot = self._find4(key)
            s4 = &(<Slot4*>self.slots)[slot]
            e = &s4.e
            if e.kind == KIND_EMPTY:
                # A new prefix: store it and record the change here, inline.
                if self.count + 1 > self.max_load:
                    self._grow_for(<size_t>(n - i))
                    slot = self._find4(key)
                    s4 = &(<Slot4*>self.slots)[slot]
                    e = &s4.e
                s4.key = key
                e.kind = KIND_ONE
                e.src = src
                e.a = attr
                e.stale = 0
                self.count += 1
                added += 1
                k = ch.n
                if k == ch.cap:
                    ch._grow(k + 1)
                ch.prefixes.v4[k] = key
                ch.src[k] = src
                ch.attr[k] = attr
                ch.old_src[k] = -1
                ch.old_attr[k] = NO_ATTR
                ch.n = k + 1
            elif e.kind == KIND_ONE and e.src == src and e.a == attr and not e.stale:
                continue
            else:
                self._announce_at(slot, src, attr, ch)
        ch.prefixes.n = ch.n
        self.npaths += added
        self.srcs[src].paths += added
        return 0

    cdef int _announce6(self, uint16_t src, uint32_t attr, PrefixArray ann, Changes ch) except -1:
        cdef Py_ssize_t i, n = ann.n
        cdef const Pfx6* keys = ann.v6
        cdef size_t slot, h
        for i in range(n):
            if i + PREFETCH_AHEAD < n:
                h = kbgp_rib_mix6(keys[i + PREFETCH_AHEAD].hi, keys[i + PREFETCH_AHEAD].lo,
                                  keys[i + PREFETCH_AHEAD].plen) & self.mask
                KBGP_RIB_PREFETCH(_ent(self, h))
            slot = self._find6(keys[i].hi, keys[i].lo, keys[i].plen)
            if _ent(self, slot)[0].kind == KIND_EMPTY:
                if self.count + 1 > self.max_load:
                    self._grow_for(<size_t>(n - i))
                    slot = self._find6(keys[i].hi, keys[i].lo, keys[i].plen)
                _k6(self, slot)[0] = keys[i]
            self._announce_at(slot, src, attr, ch)
        return 0

    cdef int _withdraw(self, uint16_t src, PrefixArray wd, PrefixArray skip, Changes ch) except -1:
        """Withdraw src's path for each prefix of wd, except those in skip
        (announced by the same call: RFC 4271 3.1 says the NLRI wins)."""
        cdef Py_ssize_t i, n = wd.n
        cdef size_t slot, h
        cdef RouteTable skipset = None
        if skip is not None and skip.n > 0:
            skipset = RouteTable(self.afi)
            skipset._index_only(skip)
        for i in range(n):
            if self.afi == 1:
                if i + PREFETCH_AHEAD < n:
                    h = kbgp_rib_mix(wd.v4[i + PREFETCH_AHEAD]) & self.mask
                    KBGP_RIB_PREFETCH(_ent(self, h))
                if skipset is not None and _ent(skipset, skipset._find4(wd.v4[i])).kind != KIND_EMPTY:
                    continue
                slot = self._find4(wd.v4[i])
            else:
                if skipset is not None and _ent(skipset, skipset._find6(
                        wd.v6[i].hi, wd.v6[i].lo, wd.v6[i].plen)).kind != KIND_EMPTY:
                    continue
                slot = self._find6(wd.v6[i].hi, wd.v6[i].lo, wd.v6[i].plen)
            self._remove_at(slot, src, False, True, ch)
        return 0

    cdef int _index_only(self, PrefixArray keys) except -1:
        """Fill the hash with keys (one dummy path each): a prefix set for
        membership tests, decision inputs untouched."""
        cdef Py_ssize_t i
        cdef size_t slot
        for i in range(keys.n):
            if self.count + 1 > self.max_load:
                self._grow_for(<size_t>(keys.n - i))
            if self.afi == 1:
                slot = self._find4(keys.v4[i])
                _k4(self, slot)[0] = keys.v4[i]
            else:
                slot = self._find6(keys.v6[i].hi, keys.v6[i].lo, keys.v6[i].plen)
                _k6(self, slot)[0] = keys.v6[i]
            if _ent(self, slot)[0].kind == KIND_EMPTY:
                _ent(self, slot)[0].kind = KIND_ONE
                self.count += 1
        return 0

    cdef Changes update_c(self, int src, PrefixArray announce, uint32_t attr_id, PrefixArray withdraw):
        cdef Changes ch = Changes(self.afi)
        cdef Py_ssize_t most = 0
        self._check_source(src)
        if announce is not None and announce.n > 0:
            if announce.afi != self.afi:
                raise ValueError(f"announce is afi {announce.afi}, the table afi {self.afi}")
            self._check_attr(attr_id)
            most += announce.n
        if withdraw is not None and withdraw.n > 0:
            if withdraw.afi != self.afi:
                raise ValueError(f"withdraw is afi {withdraw.afi}, the table afi {self.afi}")
            most += withdraw.n
        # Room for the worst case up front (untouched pages cost nothing).
        if most:
            ch._grow(most)
        if withdraw is not None and withdraw.n > 0:
            self._withdraw(<uint16_t>src, withdraw, announce, ch)
            self._pool_trim()
        if announce is not None and announce.n > 0:
            if self.afi == 1:
                self._announce4(<uint16_t>src, attr_id, announce, ch)
            else:
                self._announce6(<uint16_t>src, attr_id, announce, ch)
        return ch

    def update(self, int src, PrefixArray announce=None, int64_t attr_id=-1, PrefixArray withdraw=None):
        """src announces announce with attr_id (replacing its earlier path for
        each prefix) and withdraws withdraw; a prefix in both stays announced.
        Returns the Changes of best paths."""
        if attr_id < 0 or attr_id >= NO_ATTR:
            attr_id = NO_ATTR  # rejected by update_c when there is something to announce
        return self.update_c(src, announce, <uint32_t>attr_id, withdraw)

    def announce(self, int src, PrefixArray prefixes, int64_t attr_id):
        return self.update(src, prefixes, attr_id, None)

    def withdraw(self, int src, PrefixArray prefixes):
        return self.update(src, None, -1, prefixes)

    cdef Changes drop_source_c(self, int src):
        cdef Changes ch = Changes(self.afi)
        self._check_source(src)
        if self.srcs[src].paths:
            ch._grow(<Py_ssize_t>self.srcs[src].paths)
            self._scan_remove(<uint16_t>src, False, ch)
            self._pool_trim()
        return ch

    def drop_source(self, int src):
        """Remove every path of src (session down without graceful restart, or
        the neighbour de-configured)."""
        return self.drop_source_c(src)

    def mark_stale(self, int src):
        """Mark every path of src stale (RFC 4724 helper, RFC 7313 BoRR);
        returns how many.  Re-announcing a prefix clears its mark."""
        cdef size_t i
        cdef uint16_t j, s
        cdef PathList* L
        cdef Path* p
        cdef SourceInfo* si
        self._check_source(src)
        si = &self.srcs[src]
        if si.paths == 0:
            return 0
        s = <uint16_t>src
        for i in range(self.cap):
            if _ent(self, i)[0].kind == KIND_ONE:
                if _ent(self, i)[0].src == s:
                    _ent(self, i)[0].stale = 1
            elif _ent(self, i)[0].kind == KIND_MANY:
                L = _plist(self, _ent(self, i)[0].a)
                p = _lpaths(L)
                for j in range(L.n):
                    if p[j].src == s:
                        p[j].stale = 1
                        break
        si.stale = si.paths
        return si.paths

    cdef Changes sweep_stale_c(self, int src):
        cdef Changes ch = Changes(self.afi)
        self._check_source(src)
        if self.srcs[src].stale:
            ch._grow(<Py_ssize_t>self.srcs[src].stale)
            self._scan_remove(<uint16_t>src, True, ch)
            self._pool_trim()
        return ch

    def sweep_stale(self, int src):
        """Remove src's paths that are still stale (End-of-RIB came, or the
        restart timer ran out)."""
        return self.sweep_stale_c(src)

    # -------------------------------------------------------------- exports

    cdef int _push_slot(self, Routes out, size_t slot, int32_t src, uint32_t attr) except -1:
        cdef Py_ssize_t k = out.n
        if k == out.cap:
            out._grow(k + 1)
        if self.afi == 1:
            out.prefixes.v4[k] = _k4(self, slot)[0]
        else:
            out.prefixes.v6[k] = _k6(self, slot)[0]
        out.src[k] = src
        out.attr[k] = attr
        out.n = k + 1
        out.prefixes.n = k + 1
        return 0

    cdef Routes best_c(self):
        """Every prefix with its best path (table order)."""
        cdef Routes out = Routes(self.afi)
        cdef size_t i
        cdef PathList* L
        cdef Path* p
        if self.count:
            out._grow(<Py_ssize_t>self.count)
        for i in range(self.cap):
            if _ent(self, i)[0].kind == KIND_ONE:
                self._push_slot(out, i, _ent(self, i)[0].src, _ent(self, i)[0].a)
            elif _ent(self, i)[0].kind == KIND_MANY:
                L = _plist(self, _ent(self, i)[0].a)
                p = _lpaths(L)
                self._push_slot(out, i, p[L.best].src, p[L.best].attr)
        return out

    cdef Routes paths_c(self, int src):
        """Every prefix src has a path for, with that path's attr id."""
        cdef Routes out = Routes(self.afi)
        cdef size_t i
        cdef uint16_t j, s
        cdef PathList* L
        cdef Path* p
        self._check_source(src)
        s = <uint16_t>src
        if self.srcs[src].paths:
            out._grow(<Py_ssize_t>self.srcs[src].paths)
        else:
            return out
        for i in range(self.cap):
            if _ent(self, i)[0].kind == KIND_ONE:
                if _ent(self, i)[0].src == s:
                    self._push_slot(out, i, s, _ent(self, i)[0].a)
            elif _ent(self, i)[0].kind == KIND_MANY:
                L = _plist(self, _ent(self, i)[0].a)
                p = _lpaths(L)
                for j in range(L.n):
                    if p[j].src == s:
                        self._push_slot(out, i, s, p[j].attr)
                        break
        return out

    def export_best(self):
        """Routes: every prefix and its best path, in C arrays."""
        return self.best_c()

    def export_paths(self, int src):
        """Routes: every path of src, in C arrays."""
        return self.paths_c(src)

    def best_routes(self):
        """(PrefixArray, [src], [attr id]) of every best path."""
        cdef Routes r = self.best_c()
        return r.prefixes, r.sources(), r.attrs()

    def paths_of(self, int src):
        """(PrefixArray, [attr id]) of every path of src (Adj-RIB-In)."""
        cdef Routes r = self.paths_c(src)
        return r.prefixes, r.attrs()

    cdef size_t _find_text(self, object prefix) except? 0xFFFFFFFFFFFFFFFF:
        net = ipaddress.ip_network(prefix, strict=False)
        cdef int afi = 1 if net.version == 4 else 2
        cdef object v
        if afi != self.afi:
            raise ValueError(f"{prefix} is not of this table's family (afi {self.afi})")
        v = int(net.network_address)
        if afi == 1:
            return self._find4((<uint64_t>v << 8) | net.prefixlen)
        return self._find6(<uint64_t>(v >> 64), <uint64_t>(v & M64), net.prefixlen)

    def lookup(self, prefix):
        """[(src, attr id, stale, is_best)] of the paths of prefix (text)."""
        cdef size_t slot = self._find_text(prefix)
        cdef Entry* e = _ent(self, slot)
        cdef PathList* L
        cdef Path* p
        cdef uint16_t j
        if e.kind == KIND_EMPTY:
            return []
        if e.kind == KIND_ONE:
            return [(e.src, e.a, bool(e.stale), True)]
        L = _plist(self, e.a)
        p = _lpaths(L)
        return [(p[j].src, p[j].attr, bool(p[j].stale), j == L.best) for j in range(L.n)]

    def best(self, prefix):
        """(src, attr id) of the best path of prefix, or None."""
        for src, attr, _stale, is_best in self.lookup(prefix):
            if is_best:
                return src, attr
        return None

    # ---------------------------------------------------------------- sizes

    def __len__(self):
        return self.count

    def path_count(self):
        return self.npaths

    def received(self, int src):
        """Paths held from src."""
        self._check_source(src)
        return self.srcs[src].paths

    def stale_count(self, int src):
        self._check_source(src)
        return self.srcs[src].stale

    def memory_bytes(self):
        """C memory held: hash table, path lists, source and rank arrays."""
        return ((self.cap << self.shift)
                + self.pool_cap * sizeof(PathList) + self.nblocks * sizeof(PathList*) + self.ext_bytes
                + self.nsrcs * sizeof(SourceInfo) + self.nranks * sizeof(AttrRank))

    def capacity(self):
        """Hash slots allocated."""
        return self.cap

    def __repr__(self):
        return (f"RouteTable(afi={self.afi}, prefixes={self.count}, paths={self.npaths}, "
                f"bytes={self.memory_bytes()})")


# ----------------------------------------------------------------- export

cdef inline int _push_route(PrefixArray out, PrefixArray src, Py_ssize_t i) except -1:
    if out.n == out.cap:
        out.reserve(1)
    if src.afi == 1:
        out.v4[out.n] = src.v4[i]
    else:
        out.v6[out.n] = src.v6[i]
    out.n += 1
    return 0


# ------------------------------------------------------------- prefix sets
#
# Policy matching without a Python object per prefix: a PrefixSet holds its
# ranges (prefix, ge, le) as C structs sorted by (length, key); matching a
# prefix of length p masks it to each distinct range length L <= p and binary-
# searches the ranges of that length.  classify() turns a batch into one small
# class id per prefix (class = the set of PrefixSets it matches), so policy is
# evaluated in Python once per class, never per prefix.

cdef struct Range:
    uint64_t hi       # IPv4: 0
    uint64_t lo       # IPv4: the address masked to len
    uint8_t len
    uint8_t ge
    uint8_t le


cdef inline int _range_cmp(uint8_t len_a, uint64_t hi_a, uint64_t lo_a, Range* b) noexcept nogil:
    if len_a != b.len:
        return -1 if len_a < b.len else 1
    if hi_a != b.hi:
        return -1 if hi_a < b.hi else 1
    if lo_a != b.lo:
        return -1 if lo_a < b.lo else 1
    return 0


cdef class PrefixSet:
    """Prefix ranges of one family: ``PrefixSet(afi, [(prefix, ge, le), ...])``.

    A prefix P/p matches a range N/n ge g le l when its first n bits are N's
    and g <= p <= l.  An exact entry is (N/n, n, n); "or longer" is (N/n, n,
    32 or 128).  ``match(prefixes)`` gives one byte a prefix (1: in the set).
    """
    cdef readonly int afi
    cdef Range* r
    cdef Py_ssize_t n
    cdef uint8_t lens[130]     # the distinct range lengths, ascending
    cdef int nlens
    cdef Py_ssize_t start[130] # index of the first range of each length in lens
    cdef Py_ssize_t stop[130]

    def __cinit__(self, int afi, entries=()):
        cdef PrefixArray pa
        cdef Py_ssize_t i, j
        cdef int maxlen = 32 if afi == 1 else 128
        if afi not in (1, 2):
            raise ValueError(f"afi must be 1 or 2, not {afi}")
        self.afi = afi
        self.r = NULL
        self.n = 0
        self.nlens = 0
        items = list(entries)
        pa = PrefixArray.from_strings([e[0] for e in items], afi)
        self.r = <Range*>calloc(max(1, len(items)), sizeof(Range))
        if self.r == NULL:
            raise MemoryError()
        for i in range(pa.n):
            ge, le = int(items[i][1]), int(items[i][2])
            if afi == 1:
                self.r[i].hi = 0
                self.r[i].lo = pa.v4[i] >> 8
                self.r[i].len = pa.v4[i] & 0xFF
            else:
                self.r[i].hi = pa.v6[i].hi
                self.r[i].lo = pa.v6[i].lo
                self.r[i].len = pa.v6[i].plen
            if not (self.r[i].len <= ge <= le <= maxlen):
                raise ValueError(f"{items[i][0]}: range {ge}..{le} must lie within {self.r[i].len}..{maxlen}")
            self.r[i].ge = ge
            self.r[i].le = le
        self.n = pa.n
        order = sorted(range(self.n), key=lambda k: (self.r[k].len, self.r[k].hi, self.r[k].lo))
        tmp_list = [self.r[k] for k in order]
        for i in range(self.n):
            self.r[i] = tmp_list[i]
        i = 0
        while i < self.n:
            j = i
            while j < self.n and self.r[j].len == self.r[i].len:
                j += 1
            self.lens[self.nlens] = self.r[i].len
            self.start[self.nlens] = i
            self.stop[self.nlens] = j
            self.nlens += 1
            i = j

    def __dealloc__(self):
        free(self.r)

    def __len__(self):
        return self.n

    cdef bint contains(self, uint64_t hi, uint64_t lo, uint8_t plen) noexcept nogil:
        cdef int k
        cdef uint8_t L
        cdef uint64_t mh, ml
        cdef Py_ssize_t a, b, m, j
        cdef int c
        for k in range(self.nlens):
            L = self.lens[k]
            if L > plen:
                break
            if self.afi == 1:
                mh = 0
                ml = lo & mask4(L)
            else:
                mh = hi
                ml = lo
                mask6(&mh, &ml, L)
            a = self.start[k]
            b = self.stop[k]
            while a < b:              # first range >= (L, mh, ml)
                m = (a + b) >> 1
                if _range_cmp(L, mh, ml, &self.r[m]) > 0:
                    a = m + 1
                else:
                    b = m
            j = a
            while j < self.stop[k] and _range_cmp(L, mh, ml, &self.r[j]) == 0:
                if self.r[j].ge <= plen <= self.r[j].le:
                    return True
                j += 1
        return False

    cdef inline bint contains_at(self, PrefixArray p, Py_ssize_t i) noexcept nogil:
        if p.afi == 1:
            return self.contains(0, p.v4[i] >> 8, p.v4[i] & 0xFF)
        return self.contains(p.v6[i].hi, p.v6[i].lo, p.v6[i].plen)

    def match(self, PrefixArray prefixes not None):
        """One byte a prefix: 1 when it is in the set."""
        cdef bytearray out = bytearray(prefixes.n)
        cdef Py_ssize_t i
        if prefixes.afi != self.afi:
            return bytes(out)
        for i in range(prefixes.n):
            out[i] = self.contains_at(prefixes, i)
        return bytes(out)

    def __contains__(self, prefix):
        return bool(self.match(PrefixArray.from_strings([prefix], self.afi))[0])


cdef class Classes:
    """A class id (uint16) for each prefix of a batch, and for each class the
    bit mask of the PrefixSets its prefixes match (bit k: sets[k])."""
    cdef uint16_t* ids
    cdef Py_ssize_t n
    cdef readonly list masks

    def __cinit__(self):
        self.ids = NULL
        self.n = 0
        self.masks = []

    def __dealloc__(self):
        free(self.ids)

    def __len__(self):
        return self.n

    def class_ids(self):
        return [self.ids[i] for i in range(self.n)]


def classify(PrefixArray prefixes not None, sets):
    """Classes of ``prefixes`` against up to 64 PrefixSets (other families'
    sets never match)."""
    cdef list ps = list(sets)
    cdef Classes out = Classes()
    cdef Py_ssize_t i, k, nsets = len(ps)
    cdef PrefixSet s
    cdef uint64_t bit
    cdef uint64_t* masks
    cdef int64_t* hit
    cdef _PairMap seen = _PairMap()
    if nsets > 64:
        raise ValueError("at most 64 prefix sets can be matched at once")
    out.ids = <uint16_t*>malloc(max(1, prefixes.n) * sizeof(uint16_t))
    masks = <uint64_t*>calloc(max(1, prefixes.n), sizeof(uint64_t))
    if out.ids == NULL or masks == NULL:
        free(masks)
        raise MemoryError()
    out.n = prefixes.n
    try:
        for k in range(nsets):
            s = <PrefixSet?>ps[k]
            if s.afi != prefixes.afi or s.n == 0:
                continue
            bit = (<uint64_t>1) << k
            for i in range(prefixes.n):
                if s.contains_at(prefixes, i):
                    masks[i] |= bit
        for i in range(prefixes.n):
            hit = seen.find(masks[i])
            if hit == NULL:
                if len(out.masks) >= 65535:
                    raise ValueError("too many distinct prefix classes in one batch")
                seen.put(masks[i], len(out.masks))
                out.ids[i] = len(out.masks)
                out.masks.append(masks[i])
            else:
                out.ids[i] = <uint16_t>hit[0]
    finally:
        free(masks)
    return out


def partition(PrefixArray prefixes not None, Classes classes not None):
    """The prefixes of each class: a list of PrefixArray, indexed by class id."""
    cdef Py_ssize_t i
    if classes.n != prefixes.n:
        raise ValueError("classes and prefixes differ in length")
    parts = [PrefixArray(prefixes.afi) for _ in classes.masks]
    for i in range(prefixes.n):
        _push_route(<PrefixArray>parts[classes.ids[i]], prefixes, i)
    return parts


# ------------------------------------------------------------ export diff

cdef inline int64_t _resolve(_PairMap cache, object fn, int32_t src, uint32_t attr,
                             uint16_t cls) except -2:
    cdef uint64_t key = (<uint64_t>cls << 48) | (<uint64_t>(<uint32_t>src & 0xFFFF) << 32) | attr
    cdef int64_t* hit = cache.find(key)
    cdef int64_t v
    if hit != NULL:
        return hit[0]
    out = fn(src, <int64_t>attr, cls)
    v = -1 if out is None else <int64_t>out
    cache.put(key, v)
    return v


def export_diff(Routes routes not None, resolve, old_resolve=None, Classes classes=None,
                int exclude=-1, bint announce_all=False):
    """What a neighbour (or an update group) must be sent for a batch of routes.

    ``resolve(src, attr_id, cls)`` gives the attribute id the neighbour gets
    for a route, or None (not exported); it is called once per distinct
    (src, attr_id, cls).  cls is the route's class id in ``classes`` (0
    without).  For a Changes, the old best goes through ``old_resolve`` (or
    ``resolve``); for plain Routes, through ``old_resolve`` when given (a
    policy change), else nothing was exported before (a full table).  Routes
    from source ``exclude`` are never exported (split horizon).

    A route is announced when its export differs from the old one (or with
    announce_all), withdrawn when it was exported and no longer is.  Returns
    ({out attr id: PrefixArray}, PrefixArray of withdrawals, added): added
    counts the announced routes that were not exported before, so the
    caller can keep "routes advertised" without a table.

    This is how kbgp keeps no Adj-RIB-Out: what a neighbour holds is a pure
    function of the Loc-RIB and its export policy, so the old best path and
    the policy say what it held (BIRD derives exports the same way).
    """
    cdef int afi = routes.prefixes.afi
    cdef PrefixArray withdrawals = PrefixArray(afi)
    cdef PrefixArray prefixes = routes.prefixes
    cdef dict groups = {}
    cdef _PairMap new_cache = _PairMap(), old_cache = _PairMap()
    cdef bint is_changes = isinstance(routes, Changes)
    cdef Changes ch = <Changes>routes if is_changes else None
    cdef object oldfn = old_resolve if old_resolve is not None else resolve
    cdef bint have_old = is_changes or old_resolve is not None
    cdef Py_ssize_t i
    cdef int32_t s, os
    cdef uint32_t oa
    cdef uint16_t cls
    cdef int64_t new_out, old_out, last_out = -2
    cdef PrefixArray cur = None
    cdef Py_ssize_t added = 0
    if classes is not None and classes.n != routes.n:
        raise ValueError("classes and routes differ in length")
    for i in range(routes.n):
        cls = classes.ids[i] if classes is not None else 0
        s = routes.src[i]
        if s < 0 or s == exclude:
            new_out = -1
        else:
            new_out = _resolve(new_cache, resolve, s, routes.attr[i], cls)
        old_out = -1
        if have_old:
            if is_changes:
                os = ch.old_src[i]
                oa = ch.old_attr[i]
            else:
                os = s
                oa = routes.attr[i]
            if os >= 0 and os != exclude:
                old_out = _resolve(old_cache, oldfn, os, oa, cls)
        if new_out < 0:
            if old_out >= 0:
                _push_route(withdrawals, prefixes, i)
            continue
        if new_out == old_out and not announce_all:
            continue
        if old_out < 0:
            added += 1
        if new_out != last_out:
            cur = groups.get(new_out)
            if cur is None:
                cur = PrefixArray(afi)
                groups[new_out] = cur
            last_out = new_out
        _push_route(cur, prefixes, i)
    return groups, withdrawals, added


def batch_sources(Routes routes not None):
    """The sources (old and new) that appear in a batch, as a set."""
    cdef uint8_t* seen = <uint8_t*>calloc(65536, 1)
    cdef Py_ssize_t i
    cdef int32_t s
    cdef bint is_changes = isinstance(routes, Changes)
    cdef Changes ch = <Changes>routes if is_changes else None
    if seen == NULL:
        raise MemoryError()
    out = set()
    try:
        for i in range(routes.n):
            s = routes.src[i]
            if 0 <= s < 65536 and not seen[s]:
                seen[s] = 1
                out.add(s)
            if is_changes:
                s = ch.old_src[i]
                if 0 <= s < 65536 and not seen[s]:
                    seen[s] = 1
                    out.add(s)
    finally:
        free(seen)
    return out
