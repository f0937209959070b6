"""kube-router's annotations (kbgp.cluster.annotations): every example of the
seed, valid and malformed values of every annotation, the error format and
scope, and passwords kept out of every message."""
from __future__ import annotations

import pytest

from kbgp.cluster import annotations as A
from kbgp.cluster.annotations import (
    ANNOTATION_ERROR_SCOPE,
    WELL_KNOWN_COMMUNITIES,
    PeerSpec,
    parse_bgp_local_addresses,
    parse_communities,
    parse_custom_import_reject,
    parse_go_uint,
    parse_node_asn,
    parse_path_prepend,
    parse_peer_lists,
    parse_peers_yaml,
    parse_pod_cidrs,
    parse_role_annotations,
    parse_rr_id,
    parse_service_bool,
)

NODE = "worker-1"
SECRET = "c2VjcmV0LW5ldmVyLXNob3du"  # "secret-never-shown"


def head(key: str) -> str:
    return f"node {NODE}: annotation {key}:"


# ------------------------------------------------------------------ the seed's examples


def test_seed_node_asn():
    assert parse_node_asn(NODE, "64512") == (64512, (), ())


@pytest.mark.parametrize("key", [A.RR_SERVER, A.RR_CLIENT])
def test_seed_rr_cluster_id_42_is_0_0_0_42(key):
    assert parse_rr_id(NODE, key, "42") == ("0.0.0.42", (), ())


def test_seed_node_specific_peers():
    parsed = parse_peer_lists(NODE, {A.PEER_IPS: "192.168.1.99,192.168.1.100",
                                     A.PEER_ASNS: "65000,65000"})
    assert parsed == ((PeerSpec("192.168.1.99", 65000), PeerSpec("192.168.1.100", 65000)), (), ())


def test_seed_path_prepend():
    assert parse_path_prepend(NODE, {A.PATH_PREPEND_AS: "65000", A.PATH_PREPEND_REPEAT: "5"}) == \
        ((65000, 5), (), ())


def test_seed_peer_localips():
    parsed = parse_peer_lists(NODE, {A.PEER_IPS: "192.168.1.99,192.168.1.100",
                                     A.PEER_ASNS: "65000,65000",
                                     A.PEER_LOCALIPS: "10.1.1.1,10.1.1.2"})
    assert [p.local_address for p in parsed.value] == ["10.1.1.1", "10.1.1.2"]
    assert parsed.errors == ()


def test_seed_peer_passwords_first_set_second_empty():
    parsed = parse_peer_lists(NODE, {A.PEER_IPS: "192.168.1.99,192.168.1.100",
                                     A.PEER_ASNS: "65000,65000",
                                     A.PEER_PASSWORDS: "U2VjdXJlUGFzc3dvcmQK,"})
    assert [p.password for p in parsed.value] == [b"SecurePassword\n", None]
    assert parsed.errors == ()
    assert parsed.warnings == ((f"{head(A.PEER_PASSWORDS)} element 1 (hidden) decodes to a key that "
                               f"ends in a newline, which is used as part of the key (`echo KEY | "
                               f"base64` adds it; `printf %s KEY | base64` does not)"),)


@pytest.mark.parametrize("text", ["4294967041", "65535:65281", "no-export"])
def test_seed_communities_three_forms_of_no_export(text):
    assert parse_communities(NODE, text) == ((0xFFFFFF01,), (), ())


def test_seed_customimportreject_with_a_space_after_the_comma():
    parsed = parse_custom_import_reject(NODE, "10.0.0.0/16, 192.168.1.0/24")
    # kube-router trims this annotation's elements, so no warning either.
    assert parsed == (("10.0.0.0/16", "192.168.1.0/24"), (), ())


def test_seed_bgp_local_addresses():
    assert parse_bgp_local_addresses(NODE, "172.20.56.25,192.168.1.99") == \
        (("172.20.56.25", "192.168.1.99"), (), ())


# ------------------------------------------------------------------ integers


@pytest.mark.parametrize("text,value,plain", [
    ("65000", 65000, True), ("0", 0, True), ("0x10", 16, False), ("0X1f", 31, False),
    ("0o17", 15, False), ("017", 15, False), ("065000", 27136, False), ("0b101", 5, False),
    ("65_000", 65000, False), ("0x_1F", 31, False),
])
def test_go_integer_literals(text, value, plain):
    assert parse_go_uint(text) == (value, plain)


@pytest.mark.parametrize("text", ["", "08", "0x", "-1", "+1", "1e3", "65 000", " 1", "６５"])
def test_not_go_integer_literals(text):
    assert parse_go_uint(text) is None


# ------------------------------------------------------------------ node.asn

NODE_ASN_BAD = [
    ("65x", '"65x" is not an AS number'),
    ("", '"" is empty; expected an AS number'),
    ("0", '"0" is AS 0'),
    ("23456", '"23456" is AS_TRANS'),
    ("4294967295", '"4294967295" is reserved'),
    ("4294967296", '"4294967296" is larger than 4294967295'),
    ("-1", '"-1" is not an AS number'),
]


@pytest.mark.parametrize("text,why", NODE_ASN_BAD)
def test_node_asn_malformed(text, why):
    parsed = parse_node_asn(NODE, text)
    assert parsed.value is None
    assert len(parsed.errors) == 1
    assert parsed.errors[0].startswith(f"{head(A.NODE_ASN)} {why}")


def test_node_asn_public_and_4_byte_are_fine():
    assert parse_node_asn(NODE, "13335").value == 13335
    assert parse_node_asn(NODE, "4200000001").value == 4200000001


def test_node_asn_octal_is_read_as_kube_router_does_with_a_warning():
    parsed = parse_node_asn(NODE, "065000")
    assert parsed.value == 27136
    assert parsed.warnings == ((f'{head(A.NODE_ASN)} "065000" is read as octal, 27136, as '
                               f'kube-router reads it; write 27136 to say so plainly'),)


# ------------------------------------------------------------------ rr ids


@pytest.mark.parametrize("text,cid", [
    ("42", "0.0.0.42"), ("10.0.0.42", "10.0.0.42"), ("4294967295", "255.255.255.255"),
    ("256", "0.0.1.0"), ("0x2a", "0.0.0.42"),
])
def test_rr_ids(text, cid):
    assert parse_rr_id(NODE, A.RR_SERVER, text).value == cid


@pytest.mark.parametrize("text,why", [
    ("abc", '"abc" is not a cluster id'),
    ("2001:db8::1", '"2001:db8::1" is an IPv6 address'),
    ("0", '"0" is zero'),
    ("0.0.0.0", '"0.0.0.0" is zero'),
    ("4294967296", '"4294967296" is larger than 4294967295'),
    ("", '"" is not a cluster id'),
])
def test_rr_id_malformed(text, why):
    parsed = parse_rr_id(NODE, A.RR_CLIENT, text)
    assert parsed.value is None
    assert parsed.errors[0].startswith(f"{head(A.RR_CLIENT)} {why}")


def test_server_and_client_on_one_node_makes_a_server():
    roles = parse_role_annotations(NODE, {A.RR_SERVER: "1", A.RR_CLIENT: "1"})
    assert (roles.rr_server, roles.rr_client) == ("0.0.0.1", None)
    assert "the node is a route-reflector server" in roles.warnings[0]


def test_role_annotations_collect_every_error():
    roles = parse_role_annotations(NODE, {A.NODE_ASN: "x", A.RR_SERVER: "y"})
    assert (roles.asn, roles.rr_server) == (None, None)
    assert len(roles.errors) == 2


# ------------------------------------------------------------------ peer.* lists


def peer_lists(**kw: str):
    keys = {"ips": A.PEER_IPS, "asns": A.PEER_ASNS, "passwords": A.PEER_PASSWORDS,
            "localips": A.PEER_LOCALIPS, "ports": A.PEER_PORTS}
    return parse_peer_lists(NODE, {keys[k]: v for k, v in kw.items()})


def test_peer_lists_every_field():
    parsed = peer_lists(ips="192.168.1.99,2001:db8::9", asns="65000,4200000001",
                        passwords=",U2VjdXJlUGFzc3dvcmQ=", localips="10.1.1.1,",
                        ports="1179,")
    assert parsed.errors == ()
    assert parsed.value == (
        PeerSpec("192.168.1.99", 65000, 1179, None, "10.1.1.1"),
        PeerSpec("2001:db8::9", 4200000001, 179, b"SecurePassword", None),
    )


def test_no_peer_annotations_no_peers():
    assert parse_peer_lists(NODE, {}) == ((), (), ())


PEER_LISTS_BAD = [
    ({"ips": "192.168.1.99, 192.168.1.x", "asns": "65000,65000"},
     f'{head(A.PEER_IPS)} element 2 "192.168.1.x" is not an IP address'),
    ({"ips": "192.168.1.99,192.168.1.100", "asns": "65000,65x"},
     f'{head(A.PEER_ASNS)} element 2 "65x" is not an AS number'),
    ({"ips": "192.168.1.99", "asns": "23456"}, f'{head(A.PEER_ASNS)} element 1 "23456" is AS_TRANS'),
    ({"ips": "192.168.1.99,192.168.1.100", "asns": "65000"},
     f"{head(A.PEER_ASNS)} 1 AS numbers for 2 addresses in {A.PEER_IPS}; expected one per address"),
    ({"ips": "192.168.1.99,192.168.1.100", "asns": "65000,65000", "passwords": "U2VjdXJlUGFzc3dvcmQ="},
     (f"{head(A.PEER_PASSWORDS)} 1 passwords for 2 addresses in {A.PEER_IPS}; expected one per "
     f"address, or none")),
    ({"ips": "192.168.1.99", "asns": "65000", "localips": "10.1.1.1,10.1.1.2"},
     f"{head(A.PEER_LOCALIPS)} 2 local addresses for 1 addresses"),
    ({"ips": "192.168.1.99", "asns": "65000", "localips": "eth0"},
     f'{head(A.PEER_LOCALIPS)} element 1 "eth0" is not an IP address'),
    ({"ips": "192.168.1.99", "asns": "65000", "localips": "2001:db8::1"},
     f'{head(A.PEER_LOCALIPS)} element 1 "2001:db8::1" is IPv6 but peer 192.168.1.99 is IPv4'),
    ({"ips": "192.168.1.99", "asns": "65000", "ports": "70000"},
     f'{head(A.PEER_PORTS)} element 1 "70000" is not a port number'),
    ({"ips": "192.168.1.99", "asns": "65000", "ports": "1179,179"}, f"{head(A.PEER_PORTS)} 2 ports for 1"),
    ({"ips": "192.168.1.99,192.168.1.99", "asns": "65000,65000"},
     f'{head(A.PEER_IPS)} element 2 "192.168.1.99" is listed twice (also element 1)'),
    ({"ips": "192.168.1.99"}, f"{head(A.PEER_ASNS)} missing, but {A.PEER_IPS} is set"),
    ({"asns": "65000"}, f"{head(A.PEER_IPS)} missing, but {A.PEER_ASNS} is set"),
    ({"passwords": "U2VjdXJlUGFzc3dvcmQ="}, f"{head(A.PEER_IPS)} missing, but {A.PEER_PASSWORDS} is set"),
]


@pytest.mark.parametrize("kw,error", PEER_LISTS_BAD, ids=[e for _, e in PEER_LISTS_BAD])
def test_peer_lists_any_bad_element_drops_them_all(kw, error):
    parsed = peer_lists(**kw)
    assert parsed.value == ()
    assert any(e.startswith(error) for e in parsed.errors), parsed.errors


def test_peer_lists_bad_password_is_hidden():
    parsed = peer_lists(ips="192.168.1.99,192.168.1.100", asns="65000,65000",
                        passwords=f"U2VjdXJlUGFzc3dvcmQ=,{SECRET[:-1]}")
    assert parsed.value == ()
    assert parsed.errors[0].startswith(f"{head(A.PEER_PASSWORDS)} element 2 (hidden) is not valid "
                                       f"base64")
    assert SECRET[:-1] not in " ".join(parsed.errors)


def test_peer_lists_spaces_are_trimmed_with_a_warning():
    parsed = peer_lists(ips="192.168.1.99, 192.168.1.100", asns="65000, 65000")
    assert [p.address for p in parsed.value] == ["192.168.1.99", "192.168.1.100"]
    assert parsed.warnings[0] == (f'{head(A.PEER_IPS)} element 2 " 192.168.1.100" has spaces around '
                                  f"it; kbgp trims them, kube-router would not accept it")


# ------------------------------------------------------------------ kube-router.io/peers (YAML)

YAML_PEERS = """\
- remoteip: 192.168.1.99
  remoteasn: 65000
  password: U2VjdXJlUGFzc3dvcmQ=
- remoteip: 2001:db8::99
  remoteasn: 4200000001
  localip: 2001:db8::1
  port: 1179
- remoteip: 192.168.1.100
  remoteasn: 65000
  port: 0
  bfd:
    enabled: true
"""


def test_yaml_peers_every_key():
    parsed = parse_peers_yaml(NODE, YAML_PEERS)
    assert parsed.errors == ()
    assert parsed.value == (
        PeerSpec("192.168.1.99", 65000, 179, b"SecurePassword", None),
        PeerSpec("2001:db8::99", 4200000001, 1179, None, "2001:db8::1"),
        PeerSpec("192.168.1.100", 65000, 179, None, None),
    )
    assert parsed.warnings == ((f"{head(A.PEERS)} element 3: bfd is ignored: kbgp does not "
                               f"implement BFD"),)


def test_yaml_peers_as_json():
    parsed = parse_peers_yaml(NODE, '[{"remoteip": "10.0.0.9", "remoteasn": 65010, "port": 1179}]')
    assert parsed.value == (PeerSpec("10.0.0.9", 65010, 1179),)


def test_yaml_ipv6_of_decimal_groups_is_not_a_base_60_number():
    # YAML 1.1 would read 2001:10:20:30:40:50:10:1 as a sexagesimal integer.
    parsed = parse_peers_yaml(NODE, "- {remoteip: 2001:10:20:30:40:50:10:1, remoteasn: 65000}")
    assert parsed.value == (PeerSpec("2001:10:20:30:40:50:10:1", 65000),)


YAML_BAD = [
    ("- remoteip: 10.0.0.1\n  remoteasn: 65x\n", 'element 1: remoteasn "65x" is not an AS number'),
    ("- remoteasn: 65000\n", "element 1: remoteip is missing"),
    ("- remoteip: 10.0.0.1\n", "element 1: remoteasn is missing"),
    ("- remoteip: 10.0.0.x\n  remoteasn: 65000\n", 'element 1: remoteip "10.0.0.x" is not an IP'),
    ("- remoteip: 10.0.0.1\n  remoteasn: 23456\n", 'element 1: remoteasn "23456" is AS_TRANS'),
    ("- remoteip: 10.0.0.1\n  remoteasn: 65000\n  port: 99999\n",
     'element 1: port "99999" is not a port number'),
    ("- remoteip: 10.0.0.1\n  remoteasn: 65000\n  localip: eth0\n",
     'element 1: localip "eth0" is not an IP address'),
    ("- remoteip: 10.0.0.1\n  remoteasn: 65000\n  localip: 2001:db8::1\n",
     'element 1: localip "2001:db8::1" is IPv6 but remoteip 10.0.0.1 is IPv4'),
    ("- remoteip: 10.0.0.1\n  remoteasn: true\n", 'element 1: remoteasn "True" is not an AS number'),
    ("- remoteip: 10.0.0.1\n  remoteasn: 65000\n  password: 12345\n",
     "element 1: password (hidden) is not a string of base64"),
    ("- 10.0.0.1\n", "element 1: is not a mapping"),
    ("remoteip: 10.0.0.1\n", "is not a YAML list"),
    ("- remoteip: [10.0.0.1\n", "is not valid YAML at line"),
    ("- {remoteip: 10.0.0.1, remoteip: 10.0.0.2, remoteasn: 65000}", "is not valid YAML"),
]


@pytest.mark.parametrize("text,error", YAML_BAD, ids=[e for _, e in YAML_BAD])
def test_yaml_peers_malformed(text, error):
    parsed = parse_peers_yaml(NODE, text)
    assert parsed.value == ()
    assert any(e.startswith(f"{head(A.PEERS)} {error}") for e in parsed.errors), parsed.errors


def test_yaml_bad_entry_is_dropped_and_the_others_kept():
    parsed = parse_peers_yaml(NODE, "- {remoteip: 10.0.0.1, remoteasn: 65x}\n"
                                    "- {remoteip: 10.0.0.2, remoteasn: 65000}\n"
                                    "- {remoteip: 10.0.0.2, remoteasn: 65001}\n")
    assert parsed.value == (PeerSpec("10.0.0.2", 65000),)
    assert len(parsed.errors) == 2 and "is listed twice" in parsed.errors[1]


def test_yaml_unknown_key_warns():
    parsed = parse_peers_yaml(NODE, "- {remoteip: 10.0.0.1, remoteasn: 65000, remoteAsn: 1}")
    assert parsed.value == (PeerSpec("10.0.0.1", 65000),)
    assert 'unknown key "remoteAsn" is ignored' in parsed.warnings[0]


def test_yaml_password_never_in_messages_even_in_a_syntax_error():
    for text in (f"- {{remoteip: 10.0.0.1, remoteasn: 65000, password: {SECRET}x}}",
                 f"- remoteip: 10.0.0.1\n  password: \"{SECRET}\n  remoteasn: [",
                 f"- {{remoteip: 10.0.0.1, remoteasn: 65000, password: {SECRET}}}\n- ["):
        parsed = parse_peers_yaml(NODE, text)
        assert parsed.errors
        assert SECRET not in " ".join(parsed.errors + parsed.warnings)
        assert "secret-never-shown" not in " ".join(parsed.errors + parsed.warnings)


def test_yaml_empty_is_no_peers():
    assert parse_peers_yaml(NODE, "") == ((), (), ())
    assert parse_peers_yaml(NODE, "[]") == ((), (), ())


def test_peer_spec_repr_hides_the_password():
    spec = PeerSpec("10.0.0.1", 65000, password=b"secret-never-shown")
    assert "secret-never-shown" not in repr(spec) and "<set>" in repr(spec)


# ------------------------------------------------------------------ path prepend

PREPEND_BAD = [
    ({A.PATH_PREPEND_AS: "65000"}, f"{head(A.PATH_PREPEND_REPEAT)} missing"),
    ({A.PATH_PREPEND_AS: "65x", A.PATH_PREPEND_REPEAT: "5"},
     f'{head(A.PATH_PREPEND_AS)} "65x" is not an AS number'),
    ({A.PATH_PREPEND_AS: "0", A.PATH_PREPEND_REPEAT: "5"}, f'{head(A.PATH_PREPEND_AS)} "0" is AS 0'),
    ({A.PATH_PREPEND_AS: "65000", A.PATH_PREPEND_REPEAT: "256"},
     f'{head(A.PATH_PREPEND_REPEAT)} "256" is not a repeat count; expected 1..255'),
    ({A.PATH_PREPEND_AS: "65000", A.PATH_PREPEND_REPEAT: "x"},
     f'{head(A.PATH_PREPEND_REPEAT)} "x" is not a repeat count'),
]


@pytest.mark.parametrize("annotations,error", PREPEND_BAD, ids=[e for _, e in PREPEND_BAD])
def test_path_prepend_malformed(annotations, error):
    parsed = parse_path_prepend(NODE, annotations)
    assert parsed.value is None
    assert parsed.errors[0].startswith(error)


def test_path_prepend_repeat_alone_is_ignored_with_a_warning():
    parsed = parse_path_prepend(NODE, {A.PATH_PREPEND_REPEAT: "5"})
    assert parsed.value is None and parsed.errors == ()
    assert "is ignored without" in parsed.warnings[0]


def test_path_prepend_repeat_zero_prepends_nothing():
    parsed = parse_path_prepend(NODE, {A.PATH_PREPEND_AS: "65000", A.PATH_PREPEND_REPEAT: "0"})
    assert parsed.value is None and parsed.errors == ()
    assert "0 prepends nothing" in parsed.warnings[0]


def test_path_prepend_hex_asn_is_accepted_with_a_warning():
    parsed = parse_path_prepend(NODE, {A.PATH_PREPEND_AS: "0xFDE8", A.PATH_PREPEND_REPEAT: "2"})
    assert parsed.value == (65000, 2)
    assert "is read as hexadecimal, 65000" in parsed.warnings[0]


# ------------------------------------------------------------------ communities


@pytest.mark.parametrize("name,value", sorted(WELL_KNOWN_COMMUNITIES.items()))
def test_every_well_known_community_name(name, value):
    assert parse_communities(NODE, name).value == (value,)


def test_communities_list_mixed_forms():
    parsed = parse_communities(NODE, "65000:100,4294967041,blackhole,0:0")
    assert parsed.value == (65000 << 16 | 100, 0xFFFFFF01, 0xFFFF029A, 0)
    assert parsed.errors == ()


@pytest.mark.parametrize("bad", ["65536:1", "1:65536", "4294967296", "no_export", "NO-EXPORT",
                                 "1:2:3", "abc", "-1", "1:"])
def test_bad_community_is_skipped_and_the_others_kept(bad):
    parsed = parse_communities(NODE, f"65000:1,{bad},no-peer")
    assert parsed.value == (65000 << 16 | 1, 0xFFFFFF04)
    assert parsed.errors == ((f'{head(A.COMMUNITIES)} element 2 "{bad}" is not a community; '
                             f"expected a 32-bit number, A:B with A and B 0..65535, or a "
                             f"well-known name like no-export"),)


# ------------------------------------------------------------------ prefix lists


def test_customimportreject_mixed_families_and_host_bits():
    parsed = parse_custom_import_reject(NODE, "10.0.0.0/16,2001:db8::/32,192.168.1.1/24")
    assert parsed.value == ("10.0.0.0/16", "2001:db8::/32", "192.168.1.0/24")
    assert parsed.warnings == ((f'{head(A.CUSTOM_IMPORT_REJECT)} element 3 "192.168.1.1/24" has host '
                               f"bits set; 192.168.1.0/24 is used"),)


@pytest.mark.parametrize("bad", ["10.0.0.0", "10.0.0.0/33", "x/8", "2001:db8::/129", ""])
def test_customimportreject_bad_element_is_skipped(bad):
    parsed = parse_custom_import_reject(NODE, f"10.0.0.0/16,{bad},172.16.0.0/12")
    assert parsed.value == ("10.0.0.0/16", "172.16.0.0/12")
    assert parsed.errors[0].startswith(f'{head(A.CUSTOM_IMPORT_REJECT)} element 2 "{bad}" is not a '
                                       f"CIDR")


def test_pod_cidrs_dual_stack_and_bad_element():
    parsed = parse_pod_cidrs(NODE, "10.244.1.0/24,fd00:244:1::/64,bogus")
    assert parsed.value == ("10.244.1.0/24", "fd00:244:1::/64")
    assert parsed.errors == ((f'{head(A.POD_CIDRS)} element 3 "bogus" is not a CIDR like '
                             f"10.0.0.0/16 or 2001:db8::/64"),)


def test_bgp_local_addresses_bad_element():
    parsed = parse_bgp_local_addresses(NODE, "172.20.56.25,eth0,2001:db8::1")
    assert parsed.value == ("172.20.56.25", "2001:db8::1")
    assert parsed.errors == (f'{head(A.BGP_LOCAL_ADDRESSES)} element 2 "eth0" is not an IP address',)


def test_empty_list_annotation_is_an_empty_list():
    assert parse_communities(NODE, "") == ((), (), ())
    assert parse_bgp_local_addresses(NODE, " ") == ((), (), ())


# ------------------------------------------------------------------ services


@pytest.mark.parametrize("text,value", [("true", True), ("1", True), ("T", True), ("False", False),
                                        ("0", False)])
def test_service_bools(text, value):
    assert parse_service_bool("ns/web", A.SVC_ADVERTISE_CLUSTER_IP, text) == (value, (), ())


def test_service_bool_malformed_reads_false():
    parsed = parse_service_bool("ns/web", A.SVC_ADVERTISE_EXTERNAL_IP, "yes")
    assert parsed.value is False
    assert parsed.errors[0].startswith(f'service ns/web: annotation {A.SVC_ADVERTISE_EXTERNAL_IP}: '
                                       f'"yes" is not a boolean, so it reads as false')


# ------------------------------------------------------------------ scope table


def test_error_scope_table_names_every_annotation_with_an_error_path():
    keys = {A.NODE_ASN, A.RR_SERVER, A.RR_CLIENT, A.PEERS, *A.PEER_LIST_KEYS, A.PATH_PREPEND_AS,
            A.PATH_PREPEND_REPEAT, A.COMMUNITIES, A.CUSTOM_IMPORT_REJECT, A.BGP_LOCAL_ADDRESSES,
            A.POD_CIDRS, A.SVC_ADVERTISE_CLUSTER_IP, A.SVC_ADVERTISE_EXTERNAL_IP,
            A.SVC_ADVERTISE_LB_IP, A.SVC_LOCAL}
    assert set(ANNOTATION_ERROR_SCOPE) == keys
    for key, scope in ANNOTATION_ERROR_SCOPE.items():
        assert scope.startswith(("element", "whole annotation")), key
    assert ANNOTATION_ERROR_SCOPE[A.PEER_IPS].startswith("whole annotation")
    assert ANNOTATION_ERROR_SCOPE[A.COMMUNITIES].startswith("element")
