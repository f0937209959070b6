"""Desired versus installed kernel routes, without I/O (issue 6).

The state itself lives in C (kbgp._fast.netlink.RouteState, one per address
family): for every prefix the next hop its best route wants and the next hop
kbgp's route in the kernel has.  KernelRoutes is the pure layer on top that
the syncer drives:

* ``validate_update`` checks what the RIB hands over (per batch, never per
  prefix);
* ``apply`` records a RIB change: prefixes grouped by next hop id, and
  withdrawn prefixes;
* ``build`` diffs the dirty prefixes into one batch of route messages
  (RTM_NEWROUTE with NLM_F_EXCL for a prefix kbgp has no route for,
  NLM_F_REPLACE for one it has, RTM_DELROUTE restricted to kbgp's protocol),
  and ``complete`` takes the kernel's per-message answers back, undoing the
  refused ones and describing each failure (RouteFailure);
* reconcile_* and events (see RouteState) fold what the kernel really holds
  back into ``have``.

Ownership rule (robustness.md 4.4): only routes carrying kbgp's route
protocol number in kbgp's table are ever changed or deleted.  An add never
replaces: a prefix held by another protocol's route gives EEXIST, reported
as a conflict, and the other route stays.  A replace is only sent for a
prefix where kbgp's own route is (as last read or written).

Restarts: routes of kbgp's protocol found in the kernel that no best route
wants are *adopted* (kept) until ``converge()``; an explicit withdrawal
deletes at once.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from kbgp._fast.netlink import NH_SKIP, RouteBatch, RouteState
from kbgp._fast.wire import PrefixArray

__all__ = ["NH_SKIP", "KernelRoutes", "RouteFailure", "validate_update"]


@dataclass(frozen=True, slots=True)
class RouteFailure:
    """One route the kernel refused."""

    op: str             # "add" | "replace" | "delete"
    prefix: str
    gateway: str        # "10.0.0.1", "dev tun-e443169117a", ...
    errno: int

    @property
    def reason(self) -> str:
        return os.strerror(self.errno)

    def describe(self) -> dict:
        return {"op": self.op, "prefix": self.prefix, "gateway": self.gateway,
                "errno": self.errno, "error": self.reason}


def validate_update(afi: int, announce, withdraw) -> int:
    """Check one update() call; returns the number of prefixes in it.
    Raises ValueError/TypeError naming the bad element."""
    if afi not in (1, 2):
        raise ValueError(f"afi must be 1 (IPv4) or 2 (IPv6), not {afi!r}")
    if not isinstance(announce, dict):
        raise TypeError(f"announce must be a dict of gateway -> PrefixArray, "
                        f"not {type(announce).__name__}")
    total = 0
    for gw, arr in announce.items():
        if not isinstance(gw, str):
            raise TypeError(f"announce gateway {gw!r} must be address text, "
                            f"not {type(gw).__name__}")
        if not isinstance(arr, PrefixArray):
            raise TypeError(f"announce[{gw!r}] must be a PrefixArray, not {type(arr).__name__}")
        if arr.afi != afi:
            raise ValueError(f"announce[{gw!r}] holds afi {arr.afi} prefixes in an afi {afi} "
                             f"update")
        total += len(arr)
    if withdraw is not None:
        if not isinstance(withdraw, PrefixArray):
            raise TypeError(f"withdraw must be a PrefixArray or None, "
                            f"not {type(withdraw).__name__}")
        if withdraw.afi != afi:
            raise ValueError(f"withdraw holds afi {withdraw.afi} prefixes in an afi {afi} update")
        total += len(withdraw)
    return total


class KernelRoutes:
    """The wanted and installed routes of both families in one table."""

    def __init__(self, protocol: int = 17, table: int = 254) -> None:
        self.protocol = protocol
        self.table = table
        self.states = {1: RouteState(1, protocol, table), 2: RouteState(2, protocol, table)}
        # (afi, next hop id) -> text naming it in failures, e.g. "dev tun-..."
        self.labels: dict[tuple[int, int], str] = {}

    @property
    def converged(self) -> bool:
        return self.states[1].converged

    def nexthop(self, afi: int, gateway: str | None = None, oif: int = 0,
                src: str | None = None, label: str | None = None) -> int:
        nh = self.states[afi].nexthop(gateway, oif, src)
        if label:
            self.labels[(afi, nh)] = label
        return nh

    def label(self, afi: int, nh: int) -> str:
        if nh == NH_SKIP:
            return "none"
        if (afi, nh) in self.labels:
            return self.labels[(afi, nh)]
        info = self.states[afi].nexthop_info(nh)
        if info["gateway"]:
            return info["gateway"]
        return f"dev #{info['oif']}" + (f" src {info['src']}" if info["src"] else "")

    def apply(self, afi: int, announce: dict[int, PrefixArray],
              withdraw: PrefixArray | None) -> int:
        """Record one RIB change: announce maps a next hop id to the
        prefixes whose best route now uses it.  Returns how many prefixes
        need a kernel write."""
        st = self.states[afi]
        work = 0
        if withdraw is not None and len(withdraw):
            work += st.withdraw(withdraw)
        for nh, arr in announce.items():
            if len(arr):
                work += st.announce(arr, nh)
        return work

    def converge(self) -> int:
        return sum(st.converge() for st in self.states.values())

    @property
    def pending(self) -> int:
        return sum(st.pending for st in self.states.values())

    def build(self, afi: int, max_ops: int, seq0: int, run_bytes: int = 65536,
              run_msgs: int = 0) -> RouteBatch | None:
        return self.states[afi].build(max_ops, seq0, run_bytes, run_msgs)

    def complete(self, afi: int, batch: RouteBatch, errors: dict) -> list[RouteFailure]:
        return [RouteFailure(op, prefix, self.label(afi, nh), err)
                for op, prefix, nh, err in self.states[afi].complete(batch, errors)]

    def counts(self) -> dict:
        c4 = self.states[1].counts()
        c6 = self.states[2].counts()
        total = {k: c4[k] + c6[k] for k in c4}
        return {"total": total, "ipv4": c4, "ipv6": c6}

    def nexthops_in_use(self) -> dict[int, list[int]]:
        return {afi: st.nexthops() for afi, st in self.states.items()}
