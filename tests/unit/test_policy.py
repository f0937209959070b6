"""Policy as data: prefix sets in C, classes, rule evaluation, configuration."""
from __future__ import annotations

import ipaddress
import random

import pytest

from kbgp._fast.rib import PrefixSet, classify, partition
from kbgp._fast.wire import PrefixArray
from kbgp.config import parse_prefix_range, parse_speaker_config
from kbgp.errors import ConfigError
from kbgp.policy.engine import CompiledPolicy
from kbgp.policy.model import Match, Policy, PrefixRange, Rule


def ranges(*texts: str) -> list[tuple[str, int, int]]:
    out = []
    for t in texts:
        r = parse_prefix_range(t)
        out.append((r.prefix, r.ge, r.le))
    return out


# ------------------------------------------------------------- prefix sets

def test_exact_and_or_longer_ipv4():
    s = PrefixSet(1, ranges("10.0.0.0/8 or-longer", "192.168.1.0/24", "0.0.0.0/0"))
    probe = ["10.0.0.0/8", "10.1.0.0/16", "10.255.255.255/32", "11.0.0.0/8", "192.168.1.0/24",
             "192.168.1.0/25", "192.168.0.0/16", "0.0.0.0/0", "0.0.0.0/1"]
    got = s.match(PrefixArray.from_strings(probe))
    assert dict(zip(probe, got)) == {
        "10.0.0.0/8": 1, "10.1.0.0/16": 1, "10.255.255.255/32": 1, "11.0.0.0/8": 0,
        "192.168.1.0/24": 1, "192.168.1.0/25": 0, "192.168.0.0/16": 0,
        "0.0.0.0/0": 1, "0.0.0.0/1": 0}


def test_length_range():
    s = PrefixSet(1, ranges("10.0.0.0/8 16-24"))
    probe = ["10.0.0.0/8", "10.1.0.0/16", "10.1.2.0/24", "10.1.2.0/25"]
    assert list(s.match(PrefixArray.from_strings(probe))) == [0, 1, 1, 0]


def test_ipv6_sets_and_lengths_past_64_bits():
    s = PrefixSet(2, ranges("2001:db8::/32 or-longer", "::/0", "2001:db9:0:1::/64",
                            "2001:dba::1:0/112 or-longer"))
    probe = ["2001:db8:1::/48", "::/0", "2001:db9::/32", "2001:db9:0:1::/64", "2001:db9:0:1::/65",
             "2001:dba::1:5/128", "2001:dba::2:0/112", "2002::/16"]
    assert list(s.match(PrefixArray.from_strings(probe))) == [1, 1, 0, 1, 0, 1, 0, 0]


def test_a_set_of_the_other_family_never_matches():
    s4 = PrefixSet(1, ranges("0.0.0.0/0 or-longer"))
    assert s4.match(PrefixArray.from_strings(["2001:db8::/32"])) == b"\x00"


def test_prefix_set_agrees_with_ipaddress_on_random_prefixes():
    rnd = random.Random(7)
    entries = []
    for _ in range(200):
        plen = rnd.randint(0, 32)
        net = ipaddress.ip_network((rnd.getrandbits(32), plen), strict=False)
        ge = rnd.randint(plen, 32)
        entries.append((str(net), ge, rnd.randint(ge, 32)))
    s = PrefixSet(1, entries)
    probes = []
    for _ in range(3000):
        e = rnd.choice(entries)
        base = ipaddress.ip_network(e[0])
        plen = rnd.randint(0, 32)
        addr = int(base.network_address) | rnd.getrandbits(32 - base.prefixlen) if rnd.random() < .7 \
            else rnd.getrandbits(32)
        probes.append(ipaddress.ip_network((addr, plen), strict=False))
    got = s.match(PrefixArray.from_strings([str(p) for p in probes]))

    def oracle(p):
        for net, ge, le in entries:
            n = ipaddress.ip_network(net)
            if ge <= p.prefixlen <= le and p.prefixlen >= n.prefixlen and p.supernet(new_prefix=n.prefixlen) == n:
                return 1
        return 0
    assert list(got) == [oracle(p) for p in probes]


def test_bad_ranges_are_refused():
    with pytest.raises(ValueError, match="must lie within"):
        PrefixSet(1, [("10.0.0.0/8", 4, 32)])
    with pytest.raises(ValueError):
        parse_prefix_range("10.0.0.1/8")          # host bits
    with pytest.raises(ValueError, match="or-longer"):
        parse_prefix_range("10.0.0.0/8 longer")
    with pytest.raises(ValueError, match="within"):
        parse_prefix_range("10.0.0.0/8 4-9")


def test_classify_and_partition():
    a = PrefixSet(1, ranges("10.0.0.0/8 or-longer"))
    b = PrefixSet(1, ranges("10.1.0.0/16"))
    prefixes = PrefixArray.from_strings(["10.1.0.0/16", "10.2.0.0/16", "11.0.0.0/8", "10.1.0.0/16"])
    c = classify(prefixes, [a, b])
    ids = c.class_ids()
    assert [c.masks[i] for i in ids] == [0b11, 0b01, 0b00, 0b11]
    parts = partition(prefixes, c)
    assert sorted(p.to_strings() for p in parts) == sorted(
        [["10.1.0.0/16", "10.1.0.0/16"], ["10.2.0.0/16"], ["11.0.0.0/8"]])
    with pytest.raises(ValueError, match="64"):
        classify(prefixes, [a] * 65)


# ------------------------------------------------------------------ engine

def policy(**kw) -> CompiledPolicy:
    return CompiledPolicy(Policy(**kw))


def test_first_terminal_rule_decides_and_next_accumulates():
    p = policy(
        prefix_sets={"pods": (PrefixRange("10.0.0.0/24", 24, 24),)},
        export_rules=(
            Rule(Match(peer_classes=("external",)), action="next", add_communities=(1,)),
            Rule(Match(prefix_sets=("pods",)), action="accept", prepend=(None, 2), next_hop_self=True),
            Rule(Match(), action="reject"),
        ))
    ext = p.rules_for("export", "192.0.2.1", "external")
    mesh = p.rules_for("export", "192.0.2.1", "mesh")
    assert ext == (0, 1, 2) and mesh == (1, 2)
    o = p.evaluate("export", ext, 0b1, True)
    assert (o.verdict, o.add_communities, o.prepends, o.next_hop_self) == ("accept", (1,), ((None, 2),), True)
    assert p.evaluate("export", ext, 0, True).verdict == "reject"
    o = p.evaluate("export", mesh, 0b1, False)
    assert (o.verdict, o.add_communities) == ("accept", ())


def test_no_terminal_rule_leaves_the_neighbour_default():
    p = policy(import_rules=(Rule(Match(), action="next", local_pref=300),))
    o = p.evaluate("import", p.rules_for("import", "10.0.0.1", "mesh"), 0, False)
    assert o.verdict is None and o.local_pref == 300


def test_neighbor_sets_and_source_match():
    p = policy(neighbor_sets={"tor": ("10.0.0.1", "2001:db8::1")},
               export_rules=(Rule(Match(neighbor_sets=("tor",), source="local")),))
    assert p.rules_for("export", "10.0.0.1", "external") == (0,)
    assert p.rules_for("export", "2001:db8:0::1", "external") == (0,)
    assert p.rules_for("export", "10.0.0.2", "external") == ()
    assert p.evaluate("export", (0,), 0, True).verdict == "accept"
    assert p.evaluate("export", (0,), 0, False).verdict is None


# ----------------------------------------------------------- configuration

BASE = {"router-id": "192.0.2.1", "asn": 65000}


def cfg(**top):
    return parse_speaker_config({**BASE, **top}, "test.yaml")


def test_policy_configuration_round_trip():
    c = cfg(**{
        "prefix-sets": {"pods": ["10.0.0.0/24", "10.1.0.0/16 or-longer",
                                 {"prefix": "2001:db8::/32", "or-longer": True}],
                        "bogons": ["0.0.0.0/0", "10.0.0.0/8 24-32"]},
        "neighbor-sets": {"tor": ["192.0.2.9"]},
        "policy": {
            "import": [{"match": {"prefix-set": "bogons"}, "action": "reject"},
                       {"match": {"neighbor-set": "tor"}, "local-pref": 200, "action": "next"}],
            "export": [{"name": "pods out", "match": {"prefix-set": ["pods"], "peer-class": "external",
                                                      "source": "local"},
                        "add-communities": ["65000:1", "no-export"], "prepend": 2,
                        "next-hop-self": True},
                       {"match": {"peer-class": ["mesh", "rr-client"]},
                        "prepend": {"asn": 65001, "repeat": 1}, "add-large-communities": ["1:2:3"]}],
        },
        "neighbors": [{"address": "192.0.2.9", "asn": 65009, "peer-class": "mesh"}],
    })
    pol = c.policy
    assert pol.prefix_sets["pods"][1] == PrefixRange("10.1.0.0/16", 16, 32)
    assert pol.prefix_sets["bogons"][1] == PrefixRange("10.0.0.0/8", 24, 32)
    assert pol.import_rules[1].local_pref == 200 and pol.import_rules[1].action == "next"
    r = pol.export_rules[0]
    assert (r.name, r.prepend, r.next_hop_self, r.match.source) == ("pods out", (None, 2), True, "local")
    assert pol.export_rules[1].prepend == (65001, 1)
    assert c.neighbors[0].effective_class(65000) == "mesh"
    d = c.describe()
    assert d["prefix-sets"]["pods"] == ["10.0.0.0/24", "10.1.0.0/16 or-longer", "2001:db8::/32 or-longer"]
    assert d["policy"]["export"][0]["add-communities"] == ["65000:1", "no-export"]
    again = cfg(**{k: v for k, v in d.items() if k in ("prefix-sets", "neighbor-sets", "policy")})
    assert again.policy == pol
    CompiledPolicy(pol)  # compiles


@pytest.mark.parametrize("top, message", [
    ({"prefix-sets": {"a": ["10.0.0.1/8"]}}, "prefix-sets.a[0]: '10.0.0.1/8' is not a network"),
    ({"prefix-sets": {"a": "10.0.0.0/8"}}, "prefix-sets.a: expected a list of prefixes"),
    ({"prefix-sets": {"a": [{"prefix": "10.0.0.0/8", "longer": True}]}}, "prefix-sets.a[0].longer: unknown key"),
    ({"neighbor-sets": {"n": ["10.0.0.300"]}}, "neighbor-sets.n[0]: expected an IP address"),
    ({"policy": {"import": [{"match": {"prefix-set": "nope"}}]}},
     "policy.import[0].match.prefix-set: 'nope' is not a known prefix set (none are defined)"),
    ({"policy": {"export": [{"match": {"peer-class": "ebgp"}}]}},
     "policy.export[0].match.peer-class: 'ebgp' is not a known peer class"),
    ({"policy": {"export": [{"action": "permit"}]}}, "policy.export[0].action: expected 'accept' or 'reject' or 'next'"),
    ({"policy": {"import": [{"next-hop-self": True}]}}, "next-hop-self is an export action"),
    ({"policy": {"export": [{"action": "reject", "local-pref": 5}]}}, "a reject rule cannot modify routes"),
    ({"policy": {"export": [{"prepend": 40}]}}, "policy.export[0].prepend: must be 1..32 times"),
    ({"policy": {"export": [{"add-communities": ["65536:1"]}]}}, "policy.export[0].add-communities[0]"),
    ({"policy": {"exports": []}}, "policy.exports: unknown key (did you mean 'export'?)"),
    ({"neighbors": [{"address": "192.0.2.2", "asn": 1, "peer-class": "ibgp"}]}, "neighbors[0].peer-class"),
])
def test_policy_configuration_errors_name_the_key(top, message):
    with pytest.raises(ConfigError) as e:
        cfg(**top)
    assert message in str(e.value), str(e.value)
    assert str(e.value).startswith("test.yaml: ")


def test_peer_class_is_derived_when_unset():
    c = cfg(neighbors=[{"address": "192.0.2.2", "asn": 65000},
                       {"address": "192.0.2.3", "asn": 65000, "route-reflector-client": True},
                       {"address": "192.0.2.4", "asn": 65004}])
    assert [n.effective_class(65000) for n in c.neighbors] == ["mesh", "rr-client", "external"]
