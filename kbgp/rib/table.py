"""Adj-RIB-In, Loc-RIB and the RFC 4271 9.1 decision process.

Prefixes are integer keys (PrefixArray.keys()), attribute sets are AttrTable
ids, so a route is two small ints.  The decision process runs only for the
prefixes an UPDATE touched.

This is the Python shape of the tables; the Cython prefix tables of
kbgp/_fast/rib (issue 4) take the same calls.
"""
from __future__ import annotations

import ipaddress
from collections.abc import Iterable
from dataclasses import dataclass, field

from kbgp._fast.attrs import AttrTable, PathAttributes
from kbgp.bgp.messages import Family

DEFAULT_LOCAL_PREF = 100


@dataclass(frozen=True, slots=True)
class Source:
    """Where a route came from, as the decision process needs it."""

    key: str  # the neighbour's address, or "local" for originated routes
    asn: int = 0
    router_id: str = "0.0.0.0"
    ibgp: bool = False
    rr_client: bool = False
    local: bool = False

    @property
    def address_value(self) -> int:
        try:
            return int(ipaddress.ip_address(self.key))
        except ValueError:
            return 0


LOCAL = Source("local", local=True)


@dataclass(slots=True)
class Best:
    source: Source
    attr_id: int


def _ip_value(text: str | None) -> int:
    return int(ipaddress.IPv4Address(text)) if text else 0


class Rib:
    def __init__(self, table: AttrTable) -> None:
        self.table = table
        self.sources: dict[str, Source] = {"local": LOCAL}
        # adj_in[source key][family][prefix key] = attribute id
        self.adj_in: dict[str, dict[Family, dict[int, int]]] = {}
        self.loc: dict[Family, dict[int, Best]] = {}
        self.stale: dict[str, dict[Family, set[int]]] = {}

    # ------------------------------------------------------------ Adj-RIB-In

    def set_source(self, source: Source) -> None:
        self.sources[source.key] = source

    def announce(self, source: str, family: Family, keys: Iterable[int], attr_id: int) -> list[int]:
        table = self.adj_in.setdefault(source, {}).setdefault(family, {})
        stale = self.stale.get(source, {}).get(family)
        touched = []
        for k in keys:
            if table.get(k) != attr_id or (stale and k in stale):
                table[k] = attr_id
                touched.append(k)
            if stale:
                stale.discard(k)
        return touched

    def withdraw(self, source: str, family: Family, keys: Iterable[int]) -> list[int]:
        table = self.adj_in.get(source, {}).get(family)
        if not table:
            return []
        stale = self.stale.get(source, {}).get(family)
        touched = []
        for k in keys:
            if table.pop(k, None) is not None:
                touched.append(k)
                if stale:
                    stale.discard(k)
        return touched

    def drop_source(self, source: str, family: Family | None = None) -> dict[Family, list[int]]:
        """Every route of a source (or one family of it) removed; touched keys by family."""
        fams = self.adj_in.get(source, {})
        out = {}
        for fam in list(fams):
            if family is not None and fam != family:
                continue
            out[fam] = list(fams.pop(fam))
            self.stale.get(source, {}).pop(fam, None)
        return out

    def received(self, source: str, family: Family) -> int:
        return len(self.adj_in.get(source, {}).get(family, {}))

    # ------------------------------------------------- graceful restart

    def mark_stale(self, source: str, family: Family | None = None) -> int:
        """Keep the source's routes (one family or all), marked stale: RFC 4724
        helper, or RFC 7313 BoRR."""
        fams = self.adj_in.get(source, {})
        marks = self.stale.setdefault(source, {})
        n = 0
        for fam, table in fams.items():
            if family is not None and fam != family:
                continue
            marks[fam] = set(table)
            n += len(table)
        return n

    def sweep_stale(self, source: str, family: Family | None = None) -> dict[Family, list[int]]:
        """Remove what is still stale (End-of-RIB arrived, or the restart timer ran out)."""
        marks = self.stale.get(source, {})
        out: dict[Family, list[int]] = {}
        for fam in list(marks):
            if family is not None and fam != family:
                continue
            keys = marks.pop(fam)
            if keys:
                out[fam] = self.withdraw(source, fam, keys)
        return out

    def is_stale(self, source: str, family: Family, key: int) -> bool:
        return key in self.stale.get(source, {}).get(family, ())

    # ------------------------------------------------- decision process

    def decide(self, family: Family, keys: Iterable[int]) -> list[tuple[int, Best | None, Best | None]]:
        """Re-run best-path selection for keys; return (key, old, new) where the best changed."""
        loc = self.loc.setdefault(family, {})
        changes = []
        for k in keys:
            old = loc.get(k)
            new = self._best(family, k)
            if new is None:
                if old is not None:
                    del loc[k]
                    changes.append((k, old, None))
            elif old is None or old.source.key != new.source.key or old.attr_id != new.attr_id:
                loc[k] = new
                changes.append((k, old, new))
        return changes

    def _best(self, family: Family, key: int) -> Best | None:
        best: Best | None = None
        for skey, fams in self.adj_in.items():
            aid = fams.get(family, {}).get(key)
            if aid is None:
                continue
            cand = Best(self.sources[skey], aid)
            if best is None or self.prefer(cand, best):
                best = cand
        return best

    def prefer(self, a: Best, b: Best) -> bool:
        """True when a beats b (RFC 4271 9.1.2.2, with RFC 4456 9 for reflected routes)."""
        pa: PathAttributes = self.table[a.attr_id]
        pb: PathAttributes = self.table[b.attr_id]
        # Originated routes first (the usual local "weight").
        if a.source.local != b.source.local:
            return a.source.local
        lpa = pa.local_pref if pa.local_pref is not None else DEFAULT_LOCAL_PREF
        lpb = pb.local_pref if pb.local_pref is not None else DEFAULT_LOCAL_PREF
        if lpa != lpb:
            return lpa > lpb
        la, lb = pa.as_path_length(), pb.as_path_length()
        if la != lb:
            return la < lb
        oa = pa.origin if pa.origin >= 0 else 2
        ob = pb.origin if pb.origin >= 0 else 2
        if oa != ob:
            return oa < ob
        # MED only between routes from the same neighbouring AS.
        if _neighbour_as(pa) == _neighbour_as(pb):
            ma = pa.med if pa.med is not None else 0
            mb = pb.med if pb.med is not None else 0
            if ma != mb:
                return ma < mb
        if a.source.ibgp != b.source.ibgp:
            return not a.source.ibgp
        ida = _ip_value(pa.originator_id or a.source.router_id)
        idb = _ip_value(pb.originator_id or b.source.router_id)
        if ida != idb:
            return ida < idb
        ca, cb = len(pa.cluster_list), len(pb.cluster_list)
        if ca != cb:
            return ca < cb
        return a.source.address_value < b.source.address_value

    def best(self, family: Family, key: int) -> Best | None:
        return self.loc.get(family, {}).get(key)


def _neighbour_as(pa: PathAttributes) -> int:
    for t, asns in pa.as_path or ():
        if t == 2 and asns:
            return asns[0]
    return 0


@dataclass(slots=True)
class AdjOut:
    """What one neighbour was told: family -> prefix key -> attribute id."""

    routes: dict[Family, dict[int, int]] = field(default_factory=dict)

    def diff(self, family: Family, desired: dict[int, int | None]) -> tuple[dict[int, list[int]], list[int]]:
        """Apply desired (None = withdraw) and return (announce by attr id, withdraw keys)."""
        told = self.routes.setdefault(family, {})
        announce: dict[int, list[int]] = {}
        withdraw = []
        for k, aid in desired.items():
            old = told.get(k)
            if aid is None:
                if old is not None:
                    del told[k]
                    withdraw.append(k)
            elif old != aid:
                told[k] = aid
                announce.setdefault(aid, []).append(k)
        return announce, withdraw

    def count(self) -> int:
        return sum(len(t) for t in self.routes.values())
