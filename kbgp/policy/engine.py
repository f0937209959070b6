"""Policy evaluation: once per class of routes, never per prefix.

``CompiledPolicy`` turns the prefix sets into C ``PrefixSet``s (one per set
and family, bit k of a class mask = set k).  For a batch, ``classify`` gives
each prefix a class id whose mask says which sets it is in; the rules are then
evaluated in Python once per (neighbour rules, class, local or learned) and
the outcome is cached.
"""
from __future__ import annotations

import ipaddress
from dataclasses import dataclass

from kbgp._fast.rib import Classes, PrefixSet, classify
from kbgp._fast.wire import PrefixArray
from kbgp.policy.model import Policy, Rule


@dataclass(frozen=True, slots=True)
class Outcome:
    """What the rules decided for one class of routes."""

    verdict: str | None  # "accept", "reject", or None: the neighbour's default decides
    add_communities: tuple[int, ...] = ()
    add_large_communities: tuple[tuple[int, int, int], ...] = ()
    prepends: tuple[tuple[int | None, int], ...] = ()
    next_hop_self: bool = False
    local_pref: int | None = None

    @property
    def modifies(self) -> bool:
        return bool(self.add_communities or self.add_large_communities or self.prepends
                    or self.next_hop_self or self.local_pref is not None)


NO_RULES = Outcome(None)


class CompiledPolicy:
    def __init__(self, policy: Policy) -> None:
        self.policy = policy
        names = sorted(policy.prefix_sets)
        if len(names) > 64:
            raise ValueError("at most 64 prefix sets")
        self.bit = {name: i for i, name in enumerate(names)}
        self.sets = {
            afi: [PrefixSet(afi, [(r.prefix, r.ge, r.le) for r in policy.prefix_sets[n] if r.afi == afi])
                  for n in names]
            for afi in (1, 2)
        }
        self.neighbor_sets = {
            name: frozenset(int(ipaddress.ip_address(a)) for a in addrs)
            for name, addrs in policy.neighbor_sets.items()
        }
        self.uses_prefixes = {
            "import": any(r.match.prefix_sets for r in policy.import_rules),
            "export": any(r.match.prefix_sets for r in policy.export_rules),
        }
        self._cache: dict[tuple, Outcome] = {}

    def import_signature(self) -> tuple:
        """What import decisions depend on: the rules and the sets they name."""
        p = self.policy
        names = {n for r in p.import_rules for n in r.match.prefix_sets}
        nsets = {n for r in p.import_rules for n in r.match.neighbor_sets}
        return (p.import_rules, tuple(sorted((n, p.prefix_sets[n]) for n in names)),
                tuple(sorted((n, p.neighbor_sets[n]) for n in nsets)))

    def rules_for(self, direction: str, address: str, peer_class: str) -> tuple[int, ...]:
        """Indexes of the rules whose neighbour conditions hold for this neighbour."""
        rules = self.policy.import_rules if direction == "import" else self.policy.export_rules
        addr = int(ipaddress.ip_address(address))
        out = []
        for i, r in enumerate(rules):
            m = r.match
            if m.peer_classes and peer_class not in m.peer_classes:
                continue
            if m.neighbor_sets and not any(addr in self.neighbor_sets[n] for n in m.neighbor_sets):
                continue
            out.append(i)
        return tuple(out)

    def classify(self, direction: str, prefixes: PrefixArray) -> Classes | None:
        """Class ids for a batch, or None when no rule of the direction matches prefixes."""
        if not self.uses_prefixes[direction]:
            return None
        return classify(prefixes, self.sets[prefixes.afi])

    def evaluate(self, direction: str, rules: tuple[int, ...], mask: int, local: bool) -> Outcome:
        key = (direction, rules, mask, local)
        out = self._cache.get(key)
        if out is None:
            out = self._cache[key] = self._evaluate(direction, rules, mask, local)
        return out

    def _evaluate(self, direction: str, rules: tuple[int, ...], mask: int, local: bool) -> Outcome:
        table = self.policy.import_rules if direction == "import" else self.policy.export_rules
        comms: list[int] = []
        large: list[tuple[int, int, int]] = []
        prepends: list[tuple[int | None, int]] = []
        nhs = False
        lp: int | None = None
        verdict: str | None = None
        for i in rules:
            r: Rule = table[i]
            m = r.match
            if m.source is not None and (m.source == "local") != local:
                continue
            if m.prefix_sets and not any(mask >> self.bit[n] & 1 for n in m.prefix_sets):
                continue
            if r.action == "reject":
                verdict = "reject"
                break
            for c in r.add_communities:
                if c not in comms:
                    comms.append(c)
            for c in r.add_large_communities:
                if c not in large:
                    large.append(c)
            if r.prepend:
                prepends.append(r.prepend)
            nhs = nhs or r.next_hop_self
            if r.local_pref is not None:
                lp = r.local_pref
            if r.action == "accept":
                verdict = "accept"
                break
        if verdict == "reject":
            return Outcome("reject")
        return Outcome(verdict, tuple(comms), tuple(large), tuple(prepends), nhs, lp)
