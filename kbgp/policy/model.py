"""Policy values: what a rule matches and what it does.

A policy is an ordered list of rules.  For a route and a neighbour, the first
rule whose match holds and whose action is ``accept`` or ``reject`` decides;
a rule with action ``next`` applies its modifications and evaluation goes on.
When no rule decides, the neighbour's own default applies (``import``/
``export`` of the neighbour; unset means RFC 8212: accept for iBGP, reject
for eBGP).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

PEER_CLASSES = ("mesh", "rr-client", "external")
SOURCES = ("local", "learned")
ACTIONS = ("accept", "reject", "next")


@dataclass(frozen=True, slots=True)
class PrefixRange:
    """``prefix`` with lengths ge..le: exact is (p, len, len), or-longer (p, len, 32|128)."""

    prefix: str
    ge: int
    le: int

    @property
    def afi(self) -> int:
        return 2 if ":" in self.prefix else 1

    def describe(self) -> str:
        plen = int(self.prefix.rsplit("/", 1)[1])
        top = 128 if self.afi == 2 else 32
        if self.ge == plen and self.le == plen:
            return self.prefix
        if self.ge == plen and self.le == top:
            return f"{self.prefix} or-longer"
        return f"{self.prefix} {self.ge}-{self.le}"


@dataclass(frozen=True, slots=True)
class Match:
    """Every condition given must hold; a list inside one condition means any of them."""

    prefix_sets: tuple[str, ...] = ()
    neighbor_sets: tuple[str, ...] = ()
    peer_classes: tuple[str, ...] = ()
    source: str | None = None  # "local" (originated here) or "learned"

    def describe(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        if self.prefix_sets:
            out["prefix-set"] = list(self.prefix_sets)
        if self.neighbor_sets:
            out["neighbor-set"] = list(self.neighbor_sets)
        if self.peer_classes:
            out["peer-class"] = list(self.peer_classes)
        if self.source is not None:
            out["source"] = self.source
        return out


@dataclass(frozen=True, slots=True)
class Rule:
    match: Match = field(default_factory=Match)
    action: str = "accept"
    add_communities: tuple[int, ...] = ()
    add_large_communities: tuple[tuple[int, int, int], ...] = ()
    prepend: tuple[int | None, int] | None = None  # (asn or None for the local AS, repeat)
    next_hop_self: bool = False
    local_pref: int | None = None
    name: str | None = None

    @property
    def modifies(self) -> bool:
        return bool(self.add_communities or self.add_large_communities or self.prepend
                    or self.next_hop_self or self.local_pref is not None)

    def describe(self) -> dict[str, Any]:
        from kbgp._fast.attrs import community_str
        out: dict[str, Any] = {}
        if self.name:
            out["name"] = self.name
        out["match"] = self.match.describe()
        if self.add_communities:
            out["add-communities"] = [community_str(c) for c in self.add_communities]
        if self.add_large_communities:
            out["add-large-communities"] = [":".join(map(str, c)) for c in self.add_large_communities]
        if self.prepend:
            asn, repeat = self.prepend
            out["prepend"] = {"repeat": repeat} if asn is None else {"asn": asn, "repeat": repeat}
        if self.next_hop_self:
            out["next-hop-self"] = True
        if self.local_pref is not None:
            out["local-pref"] = self.local_pref
        out["action"] = self.action
        return out


@dataclass(frozen=True, slots=True)
class Policy:
    prefix_sets: dict[str, tuple[PrefixRange, ...]] = field(default_factory=dict)
    neighbor_sets: dict[str, tuple[str, ...]] = field(default_factory=dict)
    import_rules: tuple[Rule, ...] = ()
    export_rules: tuple[Rule, ...] = ()

    def __hash__(self) -> int:  # dict fields: hash by content
        return hash((tuple(sorted(self.prefix_sets.items())), tuple(sorted(self.neighbor_sets.items())),
                     self.import_rules, self.export_rules))

    @property
    def empty(self) -> bool:
        return not (self.import_rules or self.export_rules)

    def describe(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        if self.prefix_sets:
            out["prefix-sets"] = {k: [r.describe() for r in v] for k, v in sorted(self.prefix_sets.items())}
        if self.neighbor_sets:
            out["neighbor-sets"] = {k: list(v) for k, v in sorted(self.neighbor_sets.items())}
        rules: dict[str, Any] = {}
        if self.import_rules:
            rules["import"] = [r.describe() for r in self.import_rules]
        if self.export_rules:
            rules["export"] = [r.describe() for r in self.export_rules]
        if rules:
            out["policy"] = rules
        return out
