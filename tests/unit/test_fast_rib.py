"""Tests of kbgp._fast.rib.RouteTable: the C route table must choose the same
best paths as the Python reference kbgp.rib.table.Rib, report exactly the
best-path changes Rib.decide reports, and keep its hash table consistent
through growth, deletions and whole-source scans."""
from __future__ import annotations

import random

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from kbgp._fast.attrs import AttrTable, PathAttributes
from kbgp._fast.rib import Changes, RouteTable, Routes, export_diff
from kbgp._fast.wire import PrefixArray
from kbgp.rib.table import LOCAL, Rib, Source

LOCAL_IDX = 0


def pfx(*prefixes: str) -> PrefixArray:
    afi = 2 if prefixes and ":" in prefixes[0] else 1
    return PrefixArray.from_strings(list(prefixes), afi)


class Pair:
    """The same sources and attribute sets in a RouteTable and a Python Rib."""

    def __init__(self, afi: int = 1) -> None:
        self.afi = afi
        self.family = (afi, 1)
        self.attrs = AttrTable()
        self.rib = Rib(self.attrs)
        self.fast = RouteTable(afi)
        self.key_of: dict[int, str] = {}
        self.idx_of: dict[str, int] = {}
        self.source_specs: dict[int, dict] = {}

    def source(self, idx: int, *, local: bool = False, ibgp: bool = False,
               router_id: str = "0.0.0.0", address: str | None = None) -> int:
        self.source_specs[idx] = dict(local=local, ibgp=ibgp, router_id=router_id, address=address)
        if local:
            src = LOCAL
        else:
            address = address or f"10.0.0.{idx}"
            src = Source(address, router_id=router_id, ibgp=ibgp)
            self.rib.set_source(src)
        self.fast.set_source(idx, local=local, ibgp=ibgp, router_id=src.router_id,
                             address=src.address_value)
        self.key_of[idx] = src.key
        self.idx_of[src.key] = idx
        return idx

    def attr(self, **kwargs) -> int:
        return self.attr_pa(PathAttributes(**kwargs))

    def attr_pa(self, pa: PathAttributes) -> int:
        aid = self.attrs.intern(pa)
        self.fast.set_attr_from(aid, pa)
        return aid

    def fresh(self) -> Pair:
        """Empty tables with the same sources and attribute ids."""
        q = Pair(self.afi)
        for idx, spec in self.source_specs.items():
            q.source(idx, **spec)
        for aid in range(len(self.attrs)):
            assert q.attr_pa(self.attrs[aid]) == aid
        return q

    # ---- operations on both; each returns (fast changes, python changes) as dicts

    def _py_changes(self, changes) -> dict:
        def side(b):
            return (-1, -1) if b is None else (self.idx_of[b.source.key], b.attr_id)
        return {k: (side(old), side(new)) for k, old, new in changes}

    @staticmethod
    def fast_changes(ch: Changes) -> dict:
        keys = ch.prefixes.keys()
        out = dict(zip(keys, zip(zip(ch.old_sources(), ch.old_attrs()),
                                 zip(ch.new_sources(), ch.new_attrs()))))
        assert len(out) == len(ch), "a prefix reported twice in one Changes"
        return out

    def announce(self, idx: int, arr: PrefixArray, aid: int):
        touched = self.rib.announce(self.key_of[idx], self.family, arr.keys(), aid)
        py = self._py_changes(self.rib.decide(self.family, touched))
        return self.fast_changes(self.fast.update(idx, arr, aid, None)), py

    def withdraw(self, idx: int, arr: PrefixArray):
        touched = self.rib.withdraw(self.key_of[idx], self.family, arr.keys())
        py = self._py_changes(self.rib.decide(self.family, touched))
        return self.fast_changes(self.fast.update(idx, None, -1, arr)), py

    def update(self, idx: int, ann: PrefixArray, aid: int, wd: PrefixArray):
        announced = set(ann.keys())
        skey = self.key_of[idx]
        touched = self.rib.withdraw(skey, self.family, [k for k in wd.keys() if k not in announced])
        touched += self.rib.announce(skey, self.family, ann.keys(), aid)
        py = self._py_changes(self.rib.decide(self.family, touched))
        return self.fast_changes(self.fast.update(idx, ann, aid, wd)), py

    def drop(self, idx: int):
        keys = self.rib.drop_source(self.key_of[idx], self.family).get(self.family, [])
        py = self._py_changes(self.rib.decide(self.family, keys))
        return self.fast_changes(self.fast.drop_source(idx)), py

    def mark_stale(self, idx: int):
        return self.fast.mark_stale(idx), self.rib.mark_stale(self.key_of[idx], self.family)

    def sweep(self, idx: int):
        keys = self.rib.sweep_stale(self.key_of[idx], self.family).get(self.family, [])
        py = self._py_changes(self.rib.decide(self.family, keys))
        return self.fast_changes(self.fast.sweep_stale(idx)), py

    # ---- whole-state views

    def fast_loc(self) -> dict:
        arr, srcs, attrs = self.fast.best_routes()
        return dict(zip(arr.keys(), zip(srcs, attrs)))

    def py_loc(self) -> dict:
        return {k: (self.idx_of[b.source.key], b.attr_id)
                for k, b in self.rib.loc.get(self.family, {}).items()}

    def fast_adj_in(self, idx: int) -> dict:
        arr, attrs = self.fast.paths_of(idx)
        return dict(zip(arr.keys(), attrs))

    def py_adj_in(self, idx: int) -> dict:
        return dict(self.rib.adj_in.get(self.key_of[idx], {}).get(self.family, {}))

    def check_state(self) -> None:
        loc = self.fast_loc()
        assert loc == self.py_loc()
        assert len(self.fast) == len(loc)
        total = 0
        for idx, key in self.key_of.items():
            adj = self.fast_adj_in(idx)
            assert adj == self.py_adj_in(idx), f"Adj-RIB-In of source {idx}"
            assert self.fast.received(idx) == len(adj)
            stale = {k for k in adj if self.rib.is_stale(key, self.family, k)}
            assert self.fast.stale_count(idx) == len(stale)
            total += len(adj)
        assert self.fast.path_count() == total


def two_sources(afi: int = 1, **b_kwargs) -> Pair:
    p = Pair(afi)
    p.source(1, address="10.0.0.1", router_id="1.1.1.1")
    p.source(2, address="10.0.0.2", router_id="2.2.2.2", **b_kwargs)
    return p


P1 = "10.1.0.0/24"
P6 = "2001:db8:1::/48"


# ============================================================ decision steps

def duel(p: Pair, a: tuple[int, int], b: tuple[int, int], prefix: str = P1) -> int:
    """Announce paths a and b (source, attr) for one prefix, in both orders, in
    fresh tables; both orders and the Python Rib must pick the same source."""
    winners = set()
    for order in ((a, b), (b, a)):
        q = p.fresh()
        for src, aid in order:
            fast, py = q.announce(src, pfx(prefix), aid)
            assert fast == py
        q.check_state()
        winners.add(q.fast.best(prefix)[0])
    assert len(winners) == 1, f"the order changed the winner: {winners}"
    return winners.pop()


def test_step_local_origination_first():
    p = two_sources()
    p.source(LOCAL_IDX, local=True)
    low = p.attr(origin=2, local_pref=10, as_path=((2, (1, 2, 3, 4)),))
    high = p.attr(origin=0, local_pref=500)
    assert duel(p, (LOCAL_IDX, low), (1, high)) == LOCAL_IDX


def test_step_higher_local_pref():
    p = two_sources()
    a = p.attr(local_pref=200, as_path=((2, (65001, 65002, 65003)),))
    b = p.attr(local_pref=150, as_path=((2, (65001,)),))
    assert duel(p, (2, a), (1, b)) == 2


def test_step_absent_local_pref_is_100():
    p = two_sources()
    a = p.attr(as_path=((2, (65001, 65002)),))  # no LOCAL_PREF: 100
    b = p.attr(local_pref=99, as_path=((2, (65001,)),))
    assert duel(p, (2, a), (1, b)) == 2


def test_step_shorter_as_path():
    p = two_sources()
    a = p.attr(as_path=((2, (65001,)), (1, (65010, 65011, 65012))))  # AS_SET counts 1: length 2
    b = p.attr(as_path=((2, (65001, 65002, 65003)),))
    assert p.fast.attr_rank(a)["as_path_len"] == 2
    assert duel(p, (2, a), (1, b)) == 2


def test_step_confederation_segments_do_not_count():
    p = two_sources()
    a = p.attr(as_path=((3, (64512, 64513, 64514)), (2, (65001,))))  # length 1
    b = p.attr(as_path=((2, (65001, 65002)),))
    assert duel(p, (2, a), (1, b)) == 2


def test_step_lower_origin():
    p = two_sources()
    a = p.attr(origin=1, as_path=((2, (65001,)),))
    b = p.attr(origin=2, as_path=((2, (65001,)),))
    assert duel(p, (2, a), (1, b)) == 2
    c = p.attr(as_path=((2, (65001,)),))  # no ORIGIN: ranks as incomplete
    assert p.fast.attr_rank(c)["origin"] == 2
    assert duel(p, (2, a), (1, c)) == 2


def test_step_lower_med_same_neighbour_as():
    p = two_sources()
    a = p.attr(origin=0, as_path=((2, (65001, 65100)),), med=10)
    b = p.attr(origin=0, as_path=((2, (65001, 65200)),), med=20)
    assert duel(p, (2, a), (1, b)) == 2
    c = p.attr(origin=0, as_path=((2, (65001, 65200)),))  # no MED: 0
    assert duel(p, (2, a), (1, c)) == 1


def test_step_med_ignored_between_neighbour_ases():
    p = two_sources()
    a = p.attr(origin=0, as_path=((2, (65002, 65100)),), med=10)
    b = p.attr(origin=0, as_path=((2, (65001, 65100)),), med=20)
    # MED not compared: the lower router id (source 1, 1.1.1.1) wins.
    assert duel(p, (2, a), (1, b)) == 1


def test_step_ebgp_over_ibgp():
    p = two_sources()
    p.source(1, address="10.0.0.1", router_id="1.1.1.1", ibgp=True)
    a = p.attr(origin=0, as_path=((2, (65001,)),))
    assert duel(p, (2, a), (1, a)) == 2


def test_step_lower_router_id_or_originator_id():
    p = two_sources()
    a = p.attr(origin=0, as_path=((2, (65001,)),))
    assert duel(p, (2, a), (1, a)) == 1  # router id 1.1.1.1 < 2.2.2.2
    reflected = p.attr(origin=0, as_path=((2, (65001,)),), originator_id="0.0.0.9")
    assert p.fast.attr_rank(reflected)["originator_id"] == 9
    # ORIGINATOR_ID stands in for the router id of source 2.
    assert duel(p, (2, reflected), (1, a)) == 2


def test_step_shorter_cluster_list():
    p = two_sources()
    p.source(1, address="10.0.0.1", router_id="1.1.1.1", ibgp=True)
    p.source(2, address="10.0.0.2", router_id="2.2.2.2", ibgp=True)
    a = p.attr(origin=0, originator_id="9.9.9.9", cluster_list=["1.0.0.1"])
    b = p.attr(origin=0, originator_id="9.9.9.9", cluster_list=["1.0.0.1", "1.0.0.2"])
    assert duel(p, (2, a), (1, b)) == 2


def test_step_lower_neighbour_address():
    p = two_sources()
    p.source(1, address="10.0.0.9", router_id="7.7.7.7")
    p.source(2, address="10.0.0.3", router_id="7.7.7.7")
    a = p.attr(origin=0)
    assert duel(p, (2, a), (1, a)) == 2


def test_step_ipv6_neighbour_addresses_compare_as_128_bit():
    p = Pair(2)
    p.source(1, address="2001:db8::2", router_id="7.7.7.7")
    p.source(2, address="2001:db8::1:0", router_id="7.7.7.7")
    a = p.attr(origin=0)
    assert duel(p, (2, a), (1, a), prefix=P6) == 1


# ============================================================ batch calls

def test_announce_reports_new_best_and_identical_announce_changes_nothing():
    p = two_sources()
    a = p.attr(origin=0)
    fast, py = p.announce(1, pfx(P1, "10.2.0.0/16"), a)
    assert fast == py and len(fast) == 2
    ch = p.fast.update(1, pfx(P1, "10.2.0.0/16"), a)
    assert len(ch) == 0
    assert len(ch.prefixes) == 0 and ch.new_sources() == []


def test_implicit_withdraw_replaces_the_path():
    p = two_sources()
    a = p.attr(origin=0)
    b = p.attr(origin=1)
    p.announce(1, pfx(P1), a)
    ch = p.fast.update(1, pfx(P1), b)
    assert ch.items() == [(P1, (1, a), (1, b))]
    assert p.fast.lookup(P1) == [(1, b, False, True)]
    assert p.fast.path_count() == 1


def test_changes_accessors():
    p = two_sources()
    a = p.attr(origin=0)
    b = p.attr(origin=0, local_pref=300)
    p.fast.update(1, pfx(P1, "10.2.0.0/24"), a)
    ch = p.fast.update(2, pfx(P1), b)
    assert isinstance(ch, Changes) and isinstance(ch, Routes)
    assert len(ch) == 1
    assert ch.prefixes.to_strings() == [P1]
    assert (ch.new_sources(), ch.new_attrs(), ch.old_sources(), ch.old_attrs()) == ([2], [b], [1], [a])
    ch = p.fast.withdraw(2, pfx(P1))
    assert (ch.new_sources(), ch.new_attrs(), ch.old_sources(), ch.old_attrs()) == ([1], [a], [2], [b])
    ch = p.fast.withdraw(1, pfx(P1, "10.9.0.0/24"))
    assert ch.items() == [(P1, (1, a), (-1, -1))]
    assert len(p.fast) == 1


def test_losing_path_changes_nothing_and_withdrawing_it_neither():
    p = two_sources()
    good = p.attr(origin=0, local_pref=200)
    bad = p.attr(origin=0)
    p.announce(1, pfx(P1), good)
    fast, py = p.announce(2, pfx(P1), bad)
    assert fast == py == {}
    fast, py = p.withdraw(2, pfx(P1))
    assert fast == py == {}
    assert p.fast.lookup(P1) == [(1, good, False, True)]


def test_update_with_prefix_in_both_lists_keeps_it_announced():
    p = two_sources()
    a = p.attr(origin=0)
    b = p.attr(origin=1)
    p.fast.update(1, pfx(P1, "10.2.0.0/24"), a)
    ch = p.fast.update(1, pfx(P1), b, pfx(P1, "10.2.0.0/24"))
    assert sorted(ch.items()) == [(P1, (1, a), (1, b)), ("10.2.0.0/24", (1, a), (-1, -1))]
    assert p.fast.best(P1) == (1, b)
    # Same attr in both lists: nothing changes at all.
    assert len(p.fast.update(1, pfx(P1), b, pfx(P1))) == 0


def test_drop_source_falls_back_to_the_other_source():
    p = two_sources()
    good = p.attr(origin=0, local_pref=200)
    bad = p.attr(origin=0)
    p.announce(1, pfx(P1, "10.2.0.0/24"), bad)
    p.announce(2, pfx(P1, "10.3.0.0/24"), good)
    fast, py = p.drop(2)
    assert fast == py
    assert len(p.fast.drop_source(2)) == 0
    assert p.fast.best(P1) == (1, bad) and p.fast.best("10.3.0.0/24") is None
    p.check_state()


def test_stale_marking_and_sweep():
    p = two_sources()
    a = p.attr(origin=0)
    b = p.attr(origin=1)
    p.announce(1, pfx(P1, "10.2.0.0/24", "10.3.0.0/24"), a)
    p.announce(2, pfx(P1), b)
    assert p.mark_stale(1) == (3, 3)
    assert p.fast.lookup(P1) == [(1, a, True, True), (2, b, False, False)]
    assert p.fast.stale_count(1) == 3
    # Re-announcing clears the mark (identical path: no best change).
    fast, py = p.announce(1, pfx("10.2.0.0/24"), a)
    assert fast == py == {}
    assert p.fast.lookup("10.2.0.0/24") == [(1, a, False, True)]
    fast, py = p.sweep(1)
    assert fast == py
    assert sorted(p.fast.sweep_stale(1).items()) == []
    assert p.fast.best(P1) == (2, b)
    assert p.fast.best("10.2.0.0/24") == (1, a)
    assert p.fast.best("10.3.0.0/24") is None
    assert p.fast.stale_count(1) == 0
    p.check_state()


def test_lookup_best_routes_and_paths_of():
    p = two_sources()
    a = p.attr(origin=0)
    b = p.attr(origin=0, local_pref=300)
    p.fast.update(1, pfx(P1, "10.2.0.0/24"), a)
    p.fast.update(2, pfx(P1), b)
    assert p.fast.lookup(P1) == [(1, a, False, False), (2, b, False, True)]
    assert p.fast.lookup("10.1.0.77/24") == p.fast.lookup(P1)  # host bits ignored
    assert p.fast.lookup("10.99.0.0/24") == []
    arr, srcs, attrs = p.fast.best_routes()
    assert sorted(zip(arr.to_strings(), srcs, attrs)) == [(P1, 2, b), ("10.2.0.0/24", 1, a)]
    arr, attrs = p.fast.paths_of(1)
    assert sorted(zip(arr.to_strings(), attrs)) == [(P1, a), ("10.2.0.0/24", a)]
    r = p.fast.export_best()
    assert isinstance(r, Routes) and len(r) == 2
    assert sorted(r.items()) == [(P1, 2, b), ("10.2.0.0/24", 1, a)]
    assert sorted(p.fast.export_paths(2).items()) == [(P1, 2, b)]
    assert len(p.fast) == 2 and p.fast.path_count() == 3


def test_many_sources_on_one_prefix():
    p = Pair()
    aids = [p.attr(origin=0, med=m, as_path=((2, (65001,)),)) for m in range(40)]
    for i in range(1, 41):
        p.source(i, router_id=f"1.1.1.{i}")
    order = list(range(1, 41))
    random.Random(7).shuffle(order)
    for i in order:
        fast, py = p.announce(i, pfx(P1), aids[40 - i])  # source 40 gets MED 0
        assert fast == py
    assert p.fast.best(P1) == (40, aids[0])
    assert len(p.fast.lookup(P1)) == 40
    for i in order[:38]:
        fast, py = p.withdraw(i, pfx(P1))
        assert fast == py
    p.check_state()
    assert len(p.fast.lookup(P1)) == 2


def test_errors():
    t = RouteTable(1)
    with pytest.raises(ValueError):
        RouteTable(3)
    with pytest.raises(ValueError):
        t.set_source(70000)
    t.set_source(1)
    with pytest.raises(ValueError, match="set_source"):
        t.update(2, pfx(P1), 0)
    with pytest.raises(ValueError, match="set_attr"):
        t.update(1, pfx(P1), 0)
    t.set_attr(0)
    with pytest.raises(ValueError, match="afi"):
        t.update(1, pfx(P6), 0)
    with pytest.raises(ValueError):
        t.lookup(P6)
    assert len(t.update(1, pfx(P1), 0)) == 1


def test_set_attr_from_ranks():
    t = RouteTable(1)
    pa = PathAttributes(origin=1, as_path=((2, (65010, 65020)), (1, (1, 2))), med=7, local_pref=250,
                        originator_id="1.2.3.4", cluster_list=["5.5.5.5", "6.6.6.6"])
    t.set_attr_from(3, pa)
    assert t.attr_rank(3) == dict(local_pref=250, as_path_len=3, origin=1, med=7, neighbor_as=65010,
                                  originator_id=0x01020304, cluster_len=2)
    t.set_attr_from(4, PathAttributes())
    assert t.attr_rank(4) == dict(local_pref=100, as_path_len=0, origin=2, med=0, neighbor_as=0,
                                  originator_id=0, cluster_len=0)
    t.set_attr_from(5, PathAttributes(as_path=((1, (9,)), (2, (65030,)))))
    assert t.attr_rank(5)["neighbor_as"] == 65030  # the first AS_SEQUENCE


# ============================================================ export_diff

class Resolver:
    """A resolve callable from a dict, counting its calls."""

    def __init__(self, table):
        self.table = table
        self.calls = []

    def __call__(self, src, aid, cls):
        self.calls.append((src, aid, cls))
        return self.table.get((src, aid, cls), self.table.get((src, aid)))


def test_export_diff_full_table_groups_by_out_attr():
    p = two_sources()
    a = p.attr(origin=0)
    b = p.attr(origin=1)
    c = p.attr(origin=0, local_pref=300)
    arr = PrefixArray.sequence("10.0.0.0/24", 1000)
    p.fast.update(1, arr, a)
    p.fast.update(2, PrefixArray.sequence("11.0.0.0/24", 500), b)
    p.fast.update(2, PrefixArray.sequence("12.0.0.0/24", 300), c)
    routes = p.fast.export_best()
    assert sorted(routes.pairs()) == [(1, a), (2, b), (2, c)]
    r = Resolver({(1, a): 100, (2, b): None, (2, c): 100})
    groups, withdrawals, added = export_diff(routes, r)
    assert sorted(r.calls) == [(1, a, 0), (2, b, 0), (2, c, 0)]   # once per distinct pair
    assert set(groups) == {100} and len(withdrawals) == 0 and added == 1300
    assert set(groups[100].to_strings()) == set(arr.to_strings()) | set(
        PrefixArray.sequence("12.0.0.0/24", 300).to_strings())
    # Split horizon: source 1's routes are not exported to source 1.
    groups, withdrawals, added = export_diff(routes, r, exclude=1)
    assert len(groups[100]) == 300 and added == 300


def test_export_diff_of_changes_sends_only_differences():
    p = two_sources()
    a = p.attr(origin=0)
    a2 = p.attr(origin=0, local_pref=200)
    b = p.attr(origin=0, local_pref=300)
    p.fast.update(1, pfx(P1, "10.2.0.0/24", "10.3.0.0/24"), a)
    out = {(1, a): 7, (2, a2): 7, (2, b): 9}
    # Source 2 sends a better path for P1 with the same outgoing attributes: nothing to send.
    ch = p.fast.update(2, pfx(P1), a2)
    assert len(ch) == 1
    groups, wd, added = export_diff(ch, Resolver(out))
    assert groups == {} and len(wd) == 0 and added == 0
    # ... and with other outgoing attributes: an implicit replace (not added).
    ch = p.fast.update(2, pfx("10.2.0.0/24"), b)
    groups, wd, added = export_diff(ch, Resolver(out))
    assert groups[9].to_strings() == ["10.2.0.0/24"] and added == 0
    # The neighbour that sent it is excluded: it gets a withdraw of what it held.
    groups, wd, added = export_diff(ch, Resolver(out), exclude=2)
    assert groups == {} and wd.to_strings() == ["10.2.0.0/24"]
    # No route any more: a withdraw, only if something was exported.
    ch = p.fast.update(1, None, -1, pfx("10.3.0.0/24"))
    groups, wd, added = export_diff(ch, Resolver(out))
    assert wd.to_strings() == ["10.3.0.0/24"]
    groups, wd, added = export_diff(ch, Resolver({(1, a): None}))
    assert len(wd) == 0


def test_export_diff_policy_change_and_classes():
    from kbgp._fast.rib import PrefixSet, classify
    p = two_sources()
    a = p.attr(origin=0)
    p.fast.update(1, pfx(P1, "10.2.0.0/24", "10.3.0.0/24"), a)
    routes = p.fast.export_best()
    pods = PrefixSet(1, [("10.2.0.0/24", 24, 24)])
    classes = classify(routes.prefixes, [pods])
    in_pods = classes.masks.index(1)
    old = Resolver({(1, a): 7})                        # everything was exported
    new = Resolver({(1, a, in_pods): 7})               # now only the pods set
    groups, wd, added = export_diff(routes, new, old, classes=classes)
    assert groups == {} and sorted(wd.to_strings()) == [P1, "10.3.0.0/24"] and added == 0
    groups, wd, added = export_diff(routes, new, new, classes=classes, announce_all=True)
    assert groups[7].to_strings() == ["10.2.0.0/24"] and len(wd) == 0 and added == 0
    with pytest.raises(ValueError):
        export_diff(routes, new, classes=classify(pfx(P1), [pods]))


def test_batch_sources():
    from kbgp._fast.rib import batch_sources
    p = two_sources()
    a = p.attr(origin=0)
    better = p.attr(origin=0, local_pref=200)
    p.fast.update(1, pfx(P1), a)
    ch = p.fast.update(2, pfx(P1, "10.9.0.0/24"), better)
    assert batch_sources(ch) == {1, 2}          # old best from 1, new from 2
    ch = p.fast.update(1, None, -1, pfx(P1))    # a losing path: no change
    assert batch_sources(ch) == set()


# ============================================================ IPv6

def test_ipv6_table():
    p = two_sources(afi=2)
    a = p.attr(origin=0, mp_next_hop=["2001:db8::1"])
    b = p.attr(origin=0, local_pref=200, mp_next_hop=["2001:db8::2"])
    prefixes = pfx(P6, "2001:db8:2::/64", "::/0", "2001:db8:3::1/128")
    fast, py = p.announce(1, prefixes, a)
    assert fast == py and len(fast) == 4
    fast, py = p.announce(2, pfx(P6, "::/0"), b)
    assert fast == py and len(fast) == 2
    assert p.fast.lookup(P6) == [(1, a, False, False), (2, b, False, True)]
    assert p.fast.best("2001:db8:3::1/128") == (1, a)
    assert p.mark_stale(2) == (2, 2)
    fast, py = p.sweep(2)
    assert fast == py and len(fast) == 2
    fast, py = p.drop(1)
    assert fast == py and len(fast) == 4
    assert len(p.fast) == 0
    p.check_state()


def test_ipv6_growth_and_deletion():
    t = RouteTable(2)
    t.set_source(1)
    t.set_attr(0)
    arr = PrefixArray.sequence("2a00::/48", 20000)
    assert len(t.update(1, arr, 0)) == 20000
    half = PrefixArray.sequence("2a00::/48", 10000)
    assert len(t.update(1, None, -1, half)) == 10000
    assert len(t) == 10000
    arr2, attrs = t.paths_of(1)
    assert set(arr2.to_strings()) == set(arr.to_strings()[10000:])
    assert len(t.drop_source(1)) == 10000 and len(t) == 0


# ============================================================ the hash table

def test_memory_per_route():
    t = RouteTable(1)
    t.set_source(1)
    t.set_attr(0)
    n = 300_000
    t.update(1, PrefixArray.sequence("20.0.0.0/24", n), 0)
    assert len(t) == n
    per_route = t.memory_bytes() / n
    assert per_route <= 43, per_route  # 16-byte slots, at least 3/8 full


@pytest.mark.parametrize("afi", [1, 2])
def test_backward_shift_deletion_in_full_small_tables(afi):
    """A new table has 16 slots and holds 12 prefixes before growing: at that
    fill clusters often wrap past the last slot.  Withdraw one prefix at a time
    and check every other one is still found."""
    rnd = random.Random(99)
    for _ in range(300):
        t = RouteTable(afi)
        t.set_source(1)
        t.set_attr(0)
        if afi == 1:
            prefixes = {f"{rnd.randint(1, 223)}.{rnd.randint(0, 255)}.0.0/16" for _ in range(12)}
        else:
            prefixes = {f"2001:db8:{rnd.randint(0, 65535):x}::/48" for _ in range(12)}
        prefixes = sorted(prefixes)
        t.update(1, PrefixArray.from_strings(prefixes, afi), 0)
        assert t.capacity() == 16 and len(t) == len(prefixes)
        left = set(prefixes)
        for victim in rnd.sample(prefixes, len(prefixes)):
            assert len(t.withdraw(1, PrefixArray.from_strings([victim], afi))) == 1
            left.discard(victim)
            assert t.lookup(victim) == []
            for other in left:
                assert t.lookup(other) == [(1, 0, False, True)], other
        assert len(t) == 0


def test_stress_against_reference():
    """Random batches over a few thousand prefixes from three sources: growth,
    backward-shift deletion and whole-table scans, checked against Rib."""
    rnd = random.Random(1234)
    p = Pair()
    for i in (1, 2, 3):
        p.source(i, router_id=f"9.9.9.{10 - i}", ibgp=(i == 3))
    aids = [p.attr(origin=rnd.choice([0, 1, 2]), local_pref=rnd.choice([100, 200]),
                   as_path=((2, (65001,) + tuple(range(rnd.randint(0, 2)))),), med=rnd.randint(0, 3))
            for _ in range(8)]
    pool = [f"{rnd.randint(1, 223)}.{rnd.randint(0, 255)}.{rnd.randint(0, 255)}.0/{rnd.choice([16, 20, 24])}"
            for _ in range(4000)]
    for step in range(120):
        src = rnd.choice((1, 2, 3))
        what = rnd.random()
        if what < 0.55:
            fast, py = p.announce(src, pfx(*rnd.sample(pool, rnd.randint(1, 800))), rnd.choice(aids))
        elif what < 0.8:
            fast, py = p.withdraw(src, pfx(*rnd.sample(pool, rnd.randint(1, 800))))
        elif what < 0.87:
            fast, py = p.drop(src)
        elif what < 0.94:
            a, b = p.mark_stale(src)
            assert a == b
            fast, py = {}, {}
        else:
            fast, py = p.sweep(src)
        assert fast == py, step
    p.check_state()


# ============================================================ properties

V4_POOL = ["0.0.0.0/0", "10.0.0.0/8", "10.0.0.0/16", "10.0.0.0/24", "10.0.1.0/24", "10.1.0.0/16",
           "192.0.2.0/24", "192.0.2.128/25", "198.51.100.7/32", "203.0.113.0/24"]
V6_POOL = ["::/0", "2001:db8::/32", "2001:db8::/48", "2001:db8:1::/48", "2001:db8:1::/64",
           "2001:db8:2::1/128", "fd00::/8", "fd00:1::/64", "2a00::/16", "2a00:1::/48"]
SOURCES = (0, 1, 2, 3, 4)

# Attribute sets whose AS_PATHs all begin with AS 65001 (or are empty, which
# gives length 0): MED is then always comparable, so preference is a total
# order and the best path does not depend on the order paths are compared in.
attr_strategy = st.fixed_dictionaries({
    "origin": st.sampled_from([None, 0, 1, 2]),
    "local_pref": st.sampled_from([None, 50, 100, 200]),
    "as_path": st.one_of(st.none(), st.lists(st.integers(65002, 65005), max_size=2).map(
        lambda tail: ((2, (65001, *tail)),))),
    "med": st.sampled_from([None, 0, 5, 10]),
    "originator_id": st.sampled_from([None, "1.1.1.1", "9.9.9.9"]),
    "cluster_list": st.lists(st.sampled_from(["1.0.0.1", "1.0.0.2"]), max_size=2),
})


def make_pair(afi: int, attr_specs: list[dict]) -> tuple[Pair, list[int]]:
    p = Pair(afi)
    p.source(0, local=True)
    p.source(1, router_id="1.1.1.1")
    p.source(2, router_id="2.2.2.2", ibgp=True)
    p.source(3, router_id="1.1.1.1", ibgp=True)
    p.source(4, router_id="0.0.0.1")
    return p, [p.attr(**spec) for spec in attr_specs]


prefix_sets = st.lists(st.integers(0, len(V4_POOL) - 1), max_size=6)
op_strategy = st.one_of(
    st.tuples(st.just("announce"), st.sampled_from(SOURCES), prefix_sets, st.integers(0, 5)),
    st.tuples(st.just("withdraw"), st.sampled_from(SOURCES), prefix_sets),
    st.tuples(st.just("update"), st.sampled_from(SOURCES), prefix_sets, st.integers(0, 5), prefix_sets),
    st.tuples(st.just("drop"), st.sampled_from(SOURCES)),
    st.tuples(st.just("stale"), st.sampled_from(SOURCES)),
    st.tuples(st.just("sweep"), st.sampled_from(SOURCES)),
)


@pytest.mark.parametrize("afi", [1, 2])
@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(attr_specs=st.lists(attr_strategy, min_size=6, max_size=6),
       ops=st.lists(op_strategy, max_size=40))
def test_property_matches_python_rib(afi, attr_specs, ops):
    pool = V4_POOL if afi == 1 else V6_POOL
    p, aids = make_pair(afi, attr_specs)

    def arr(indexes):
        return PrefixArray.from_strings([pool[i] for i in indexes], afi)

    for op in ops:
        kind, src = op[0], op[1]
        if kind == "announce":
            fast, py = p.announce(src, arr(op[2]), aids[op[3]])
        elif kind == "withdraw":
            fast, py = p.withdraw(src, arr(op[2]))
        elif kind == "update":
            fast, py = p.update(src, arr(op[2]), aids[op[3]], arr(op[4]))
        elif kind == "drop":
            fast, py = p.drop(src)
        elif kind == "stale":
            a, b = p.mark_stale(src)
            assert a == b
            continue
        else:
            fast, py = p.sweep(src)
        assert fast == py, op
    p.check_state()


@pytest.mark.parametrize("afi", [1, 2])
@settings(max_examples=150, deadline=None)
@given(attr_specs=st.lists(attr_strategy, min_size=6, max_size=6),
       routes=st.lists(st.tuples(st.sampled_from(SOURCES), st.integers(0, 9), st.integers(0, 5)),
                       max_size=40, unique_by=lambda r: (r[0], r[1])),
       data=st.data())
def test_property_order_of_announcements_does_not_matter(afi, attr_specs, routes, data):
    pool = V4_POOL if afi == 1 else V6_POOL
    shuffled = data.draw(st.permutations(routes))
    states = []
    for order in (routes, shuffled):
        p, aids = make_pair(afi, attr_specs)
        for src, i, a in order:
            fast, py = p.announce(src, PrefixArray.from_strings([pool[i]], afi), aids[a])
            assert fast == py
        p.check_state()
        states.append(p.fast_loc())
    # One batch per (source, attr): the same again.
    p, aids = make_pair(afi, attr_specs)
    batches: dict[tuple[int, int], list[str]] = {}
    for src, i, a in shuffled:
        batches.setdefault((src, a), []).append(pool[i])
    for (src, a), prefixes in batches.items():
        p.fast.update(src, PrefixArray.from_strings(prefixes, afi), aids[a])
    states.append(p.fast_loc())
    assert states[0] == states[1] == states[2]


def neighbour_view(view: dict, diff, pool_afi: int) -> None:
    """Apply one export_diff to what the neighbour holds, as a BGP receiver would."""
    groups, withdrawals, added = diff
    before = len(view)
    for p in withdrawals.to_strings():
        assert p in view, f"withdrawal of {p}, which the neighbour never got"
        del view[p]
    for aid, arr in groups.items():
        for p in arr.to_strings():
            view[p] = aid
    assert len(view) - before == added - len(withdrawals)


@pytest.mark.parametrize("afi", [1, 2])
@settings(max_examples=150, deadline=None)
@given(attr_specs=st.lists(attr_strategy, min_size=6, max_size=6),
       routes=st.lists(st.tuples(st.sampled_from(SOURCES), st.integers(0, 9), st.integers(0, 5)),
                       max_size=40, unique_by=lambda r: (r[0], r[1])),
       withdrawn=st.sets(st.integers(0, 39)),
       data=st.data())
def test_property_adj_rib_out_does_not_depend_on_order(afi, attr_specs, routes, withdrawn, data):
    """The same announcements in any order, interleaved with withdraws (each
    after its announcement), give the same Loc-RIB and the same Adj-RIB-Out:
    what the neighbour holds after every incremental export_diff equals the
    full export of the final Loc-RIB.  The neighbour is source 3 (split
    horizon) and its export policy refuses source 4's routes."""
    pool = V4_POOL if afi == 1 else V6_POOL
    events = [("a", r) for r in routes] + [("w", routes[i]) for i in sorted(withdrawn) if i < len(routes)]
    order = data.draw(st.permutations(events))
    # A withdraw must come after its announcement: move each announcement first.
    fixed, seen = [], set()
    for kind, r in order:
        if kind == "w" and r not in seen:
            fixed.append(("a", r))
            seen.add(r)
        if kind == "a" and r in seen:
            continue
        fixed.append((kind, r))
        seen.add(r)
    finals = []
    for events_in_order in (events, fixed):
        p, aids = make_pair(afi, attr_specs)

        def resolve(src, aid, cls):
            return None if src == 4 else 1000 + aid
        view: dict[str, int] = {}
        for kind, (src, i, a) in events_in_order:
            one = PrefixArray.from_strings([pool[i]], afi)
            ch = p.fast.update(src, one, aids[a], None) if kind == "a" else p.fast.update(src, None, -1, one)
            neighbour_view(view, export_diff(ch, resolve, exclude=3), afi)
        full: dict[str, int] = {}
        neighbour_view(full, export_diff(p.fast.export_best(), resolve, exclude=3), afi)
        assert view == full
        finals.append((p.fast_loc(), view))
    assert finals[0] == finals[1]
