"""The speaker's configuration file (kbgp.config): what it accepts, its
defaults, and that every mistake is named by file and key path."""
from __future__ import annotations

import dataclasses
import json
import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from kbgp.bgp.messages import IPV4_UNICAST, IPV6_UNICAST
from kbgp.config import (
    AsPathPrepend,
    GracefulRestartConfig,
    ListenAddress,
    NeighborConfig,
    OriginateConfig,
    SpeakerConfig,
    load_speaker_config,
    parse_speaker_config,
)
from kbgp.errors import ConfigError

# The example of the README: every key, with values that differ from the defaults.
EXAMPLE_CONFIG = """\
# kbgp speaker --config /etc/kbgp/speaker.yaml
router-id: 192.0.2.10
asn: 64512
listen:                        # quote these: [::] would start a YAML list
  - "0.0.0.0:179"
  - "[::]:1179"
cluster-id: 192.0.2.1
kernel: true
hold-time: 30
connect-retry: 10
graceful-restart:
  enabled: true
  restart-time: 90
  stale-time: 300
neighbors:
  - address: 192.0.2.11        # another node: iBGP, a route reflector client
    asn: 64512
    route-reflector-client: true
    description: node-b
  - address: 2001:db8::1       # the top-of-rack switch, eBGP over IPv6
    asn: 65001
    port: 1179
    local-address: 2001:db8::10
    password: c2VjcmV0LXRva2Vu # the MD5 key in base64: printf %s KEY | base64
    multihop-ttl: 2
    hold-time: 9
    families: [ipv6]
    import: accept
    export: accept
    max-prefixes: 1000
  - address: 198.51.100.1
    asn: 0                     # accept any AS
    passive: true
    ttl-security: 1
    import: reject
originate:
  - prefix: 10.244.1.0/24
    next-hop: 192.0.2.10
    communities: ["64512:100", no-export]
    large-communities: ["64512:1:2"]
    med: 10
    local-pref: 200
    as-path-prepend: {asn: 64512, repeat: 2}
  - prefix: 2001:db8:244:1::/64
  - prefix: 10.96.0.0/12
    next-hop: 2001:db8::10     # RFC 8950: an IPv6 next hop for an IPv4 prefix
"""

SECRET = "c2VjcmV0LXRva2Vu"
SECRET_DECODED = "secret-token"
SOURCE = "speaker.yaml"


def write(tmp_path: Path, text: str, name: str = "speaker.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def kebab(keys: dict[str, Any]) -> dict[str, Any]:
    """Keyword arguments as file keys: local_address -> local-address, import_ -> import."""
    return {k.rstrip("_").replace("_", "-"): v for k, v in keys.items()}


def base(**extra: Any) -> dict[str, Any]:
    return {"router-id": "192.0.2.1", "asn": 65000, **kebab(extra)}


def with_neighbor(**keys: Any) -> dict[str, Any]:
    return base(neighbors=[{"address": "192.0.2.2", "asn": 65001, **kebab(keys)}])


def with_route(**keys: Any) -> dict[str, Any]:
    return base(originate=[{"prefix": "10.0.0.0/24", **kebab(keys)}])


def error_of(data: Any) -> str:
    with pytest.raises(ConfigError) as info:
        parse_speaker_config(data, SOURCE)
    return str(info.value)


# ------------------------------------------------------------------ valid


def test_full_example(tmp_path: Path):
    cfg = load_speaker_config(write(tmp_path, EXAMPLE_CONFIG))
    assert cfg.source == str(tmp_path / "speaker.yaml")
    assert cfg.router_id == "192.0.2.10"
    assert cfg.asn == 64512
    assert cfg.listen == (ListenAddress("0.0.0.0", 179), ListenAddress("::", 1179))
    assert cfg.cluster_id == "192.0.2.1"
    assert cfg.effective_cluster_id == "192.0.2.1"
    assert cfg.kernel is True
    assert cfg.hold_time == 30
    assert cfg.connect_retry == 10
    assert cfg.graceful_restart == GracefulRestartConfig(enabled=True, restart_time=90,
                                                         stale_time=300)
    assert cfg.warnings == ()

    node, tor, anyas = cfg.neighbors
    assert node == NeighborConfig(address="192.0.2.11", asn=64512, hold_time=30,
                                  route_reflector_client=True, description="node-b")
    assert tor == NeighborConfig(
        address="2001:db8::1", asn=65001, port=1179, local_address="2001:db8::10",
        password=b"secret-token", multihop_ttl=2, hold_time=9, families=(IPV6_UNICAST,),
        import_policy="accept", export_policy="accept", max_prefixes=1000,
    )
    assert anyas == NeighborConfig(address="198.51.100.1", asn=0, passive=True, ttl_security=1,
                                   hold_time=30, import_policy="reject")

    pod, v6, service = cfg.originate
    assert pod == OriginateConfig(
        prefix="10.244.1.0/24", next_hop="192.0.2.10",
        communities=((64512 << 16) | 100, 0xFFFFFF01), large_communities=((64512, 1, 2),),
        med=10, local_pref=200, as_path_prepend=AsPathPrepend(asn=64512, repeat=2),
    )
    assert pod.family == IPV4_UNICAST
    assert v6 == OriginateConfig(prefix="2001:db8:244:1::/64")
    assert v6.family == IPV6_UNICAST
    assert service == OriginateConfig(prefix="10.96.0.0/12", next_hop="2001:db8::10")


def test_the_same_settings_as_json(tmp_path: Path):
    data = yaml.safe_load(EXAMPLE_CONFIG)
    from_json = load_speaker_config(write(tmp_path, json.dumps(data, indent=2), "speaker.json"))
    assert from_json == load_speaker_config(write(tmp_path, EXAMPLE_CONFIG))


def test_minimal_file_takes_every_global_default(tmp_path: Path):
    cfg = load_speaker_config(write(tmp_path, "router-id: 192.0.2.1\nasn: 65000\n"))
    assert cfg.router_id == "192.0.2.1"
    assert cfg.asn == 65000
    assert cfg.listen == ()  # do not listen
    assert cfg.cluster_id is None
    assert cfg.effective_cluster_id == "192.0.2.1"  # the router id
    assert cfg.kernel is False
    assert cfg.hold_time == 90
    assert cfg.connect_retry == 5
    assert cfg.graceful_restart == GracefulRestartConfig()
    assert (cfg.graceful_restart.enabled, cfg.graceful_restart.restart_time,
            cfg.graceful_restart.stale_time) == (True, 120, 360)
    assert cfg.neighbors == ()
    assert cfg.originate == ()
    assert cfg.warnings == ()
    # The dataclass defaults are the file's defaults.
    assert cfg == SpeakerConfig(router_id="192.0.2.1", asn=65000)


def test_empty_lists_mean_none():
    cfg = parse_speaker_config(base(listen=[], neighbors=[], originate=[]))
    assert (cfg.listen, cfg.neighbors, cfg.originate) == ((), (), ())


def test_graceful_restart_keys_default_one_by_one():
    cfg = parse_speaker_config(base(graceful_restart={"enabled": False}))
    assert cfg.graceful_restart == GracefulRestartConfig(enabled=False, restart_time=120,
                                                         stale_time=360)
    cfg = parse_speaker_config(base(graceful_restart={}))
    assert cfg.graceful_restart == GracefulRestartConfig()


def test_neighbor_defaults():
    (n,) = parse_speaker_config(with_neighbor()).neighbors
    assert n.address == "192.0.2.2"
    assert n.asn == 65001
    assert n.port == 179
    assert n.local_address is None
    assert n.password is None
    assert n.passive is False
    assert n.multihop_ttl is None
    assert n.ttl_security is None
    assert n.hold_time == 90  # the global hold-time
    assert n.route_reflector_client is False
    assert n.families == (IPV4_UNICAST, IPV6_UNICAST)
    assert n.import_policy is None
    assert n.export_policy is None
    assert n.description is None
    assert n.max_prefixes is None
    assert n == NeighborConfig(address="192.0.2.2", asn=65001)


def test_neighbor_hold_time_inherits_the_global_one_and_may_override_it():
    cfg = parse_speaker_config({**base(hold_time=0), "neighbors": [
        {"address": "192.0.2.2", "asn": 1}, {"address": "192.0.2.3", "asn": 1, "hold-time": 3}]})
    assert [n.hold_time for n in cfg.neighbors] == [0, 3]


def test_policies_unset_are_decided_by_the_peer_as():
    (n,) = parse_speaker_config(with_neighbor()).neighbors
    assert (n.effective_import(ibgp=False), n.effective_export(ibgp=False)) == ("reject", "reject")
    assert (n.effective_import(ibgp=True), n.effective_export(ibgp=True)) == ("accept", "accept")
    (n,) = parse_speaker_config(with_neighbor(import_="accept", export="reject")).neighbors
    assert (n.import_policy, n.export_policy) == ("accept", "reject")
    assert (n.effective_import(ibgp=False), n.effective_export(ibgp=True)) == ("accept", "reject")


def test_ttl_defaults_are_decided_by_the_peer_as():
    (n,) = parse_speaker_config(with_neighbor()).neighbors
    assert (n.effective_ttl(ibgp=False), n.effective_ttl(ibgp=True), n.min_ttl) == (1, 255, None)
    (n,) = parse_speaker_config(with_neighbor(multihop_ttl=3)).neighbors
    assert (n.effective_ttl(ibgp=False), n.effective_ttl(ibgp=True)) == (3, 3)
    (n,) = parse_speaker_config(with_neighbor(ttl_security=2)).neighbors
    assert (n.effective_ttl(ibgp=False), n.min_ttl) == (255, 254)


def test_originate_defaults():
    (r,) = parse_speaker_config(with_route()).originate
    assert r == OriginateConfig(prefix="10.0.0.0/24")
    assert (r.next_hop, r.communities, r.large_communities, r.med, r.local_pref,
            r.as_path_prepend) == (None, (), (), None, None, None)


@pytest.mark.parametrize("value", [42, "0.0.0.42"])
def test_cluster_id_number_is_stored_as_ipv4_text(value):
    cfg = parse_speaker_config(base(cluster_id=value))
    assert cfg.cluster_id == "0.0.0.42"
    assert cfg.effective_cluster_id == "0.0.0.42"


def test_cluster_id_largest():
    assert parse_speaker_config(base(cluster_id=4294967295)).cluster_id == "255.255.255.255"


@pytest.mark.parametrize("text, address, port", [
    ("0.0.0.0", "0.0.0.0", 179),
    ("10.0.0.1:1179", "10.0.0.1", 1179),
    ("[::]", "::", 179),
    ("[2001:DB8:0::1]:65535", "2001:db8::1", 65535),
])
def test_listen_addresses(text, address, port):
    (listen,) = parse_speaker_config(base(listen=[text])).listen
    assert listen == ListenAddress(address, port)


def test_listen_address_text():
    assert str(ListenAddress("0.0.0.0", 179)) == "0.0.0.0:179"
    assert str(ListenAddress("::", 1179)) == "[::]:1179"


def test_hold_time_zero_and_bounds_are_valid():
    for value in (0, 3, 65535):
        assert parse_speaker_config(base(hold_time=value)).hold_time == value


def test_families_accept_the_long_names_in_any_order():
    (n,) = parse_speaker_config(with_neighbor(families=["ipv6-unicast", "IPv4"])).neighbors
    assert n.families == (IPV6_UNICAST, IPV4_UNICAST)


def test_unquoted_communities_are_not_base_60_numbers(tmp_path: Path):
    # Plain yaml.safe_load reads 65000:1 as 3900001 (YAML 1.1 base 60).
    text = ("router-id: 192.0.2.1\nasn: 65000\noriginate:\n  - prefix: 10.0.0.0/24\n"
            "    communities: [65000:1, 65000:59]\n    large-communities: [65000:1:2]\n")
    (r,) = load_speaker_config(write(tmp_path, text)).originate
    assert r.communities == ((65000 << 16) | 1, (65000 << 16) | 59)
    assert r.large_communities == ((65000, 1, 2),)


def test_well_known_community_names():
    names = ["no-export", "no_advertise", "blackhole"]
    (r,) = parse_speaker_config(with_route(communities=names)).originate
    assert r.communities == (0xFFFFFF01, 0xFFFFFF02, 0xFFFF029A)


def test_ipv4_neighbor_accepts_ipv6_families():
    (n,) = parse_speaker_config(with_neighbor(families=["ipv6"])).neighbors
    assert n.families == (IPV6_UNICAST,)


def test_the_same_link_local_address_on_two_links_is_two_neighbors():
    data = base(neighbors=[{"address": "fe80::1%eth0", "asn": 65000},
                           {"address": "fe80::1%eth1", "asn": 65000}])
    cfg = parse_speaker_config(data)
    assert [n.address for n in cfg.neighbors] == ["fe80::1%eth0", "fe80::1%eth1"]


def test_route_reflector_client_with_any_as_is_allowed():
    (n,) = parse_speaker_config(with_neighbor(asn=0, route_reflector_client=True)).neighbors
    assert n.route_reflector_client is True


def test_password_is_decoded_to_bytes():
    (n,) = parse_speaker_config(with_neighbor(password=SECRET)).neighbors
    assert n.password == b"secret-token"
    (n,) = parse_speaker_config(with_neighbor(password="QQ==")).neighbors  # one byte
    assert n.password == b"A"
    eighty = "QUFB" * 26 + "QUE="  # 80 bytes, the most the kernel takes
    (n,) = parse_speaker_config(with_neighbor(password=eighty)).neighbors
    assert n.password == b"A" * 80


def test_password_ending_in_a_newline_is_a_warning(tmp_path: Path):
    # `echo SecurePassword | base64` keeps echo's newline in the key.
    text = EXAMPLE_CONFIG.replace(SECRET, "U2VjdXJlUGFzc3dvcmQK")
    cfg = load_speaker_config(write(tmp_path, text))
    assert cfg.neighbors[1].password == b"SecurePassword\n"
    (warning,) = cfg.warnings
    assert "neighbors[1].password decodes to a key ending in a newline" in warning
    assert str(tmp_path / "speaker.yaml") in warning
    assert "SecurePassword" not in warning and "U2VjdXJlUGFzc3dvcmQK" not in warning


def test_describe_is_the_file_shape_without_passwords(tmp_path: Path):
    cfg = load_speaker_config(write(tmp_path, EXAMPLE_CONFIG))
    out = cfg.describe()
    assert out["neighbors"][1]["password"] == "<set>"
    assert "password" not in out["neighbors"][0]
    assert out["listen"] == ["0.0.0.0:179", "[::]:1179"]
    assert out["originate"][0]["communities"] == ["64512:100", "no-export"]
    assert out["neighbors"][2]["families"] == ["ipv4", "ipv6"]
    json.dumps(out)  # printable as is
    # Without its passwords, what describe() prints reads back as the same settings.
    del out["neighbors"][1]["password"]
    again = parse_speaker_config(out)
    assert again == dataclasses.replace(
        cfg, neighbors=(cfg.neighbors[0], dataclasses.replace(cfg.neighbors[1], password=None),
                        cfg.neighbors[2]))


def test_settings_are_frozen_and_slotted():
    cfg = parse_speaker_config(with_neighbor())
    for obj in (cfg, cfg.neighbors[0], cfg.graceful_restart, ListenAddress("::"),
                OriginateConfig("10.0.0.0/8"), AsPathPrepend(1, 1)):
        assert not hasattr(obj, "__dict__")
        with pytest.raises(dataclasses.FrozenInstanceError):
            obj.__setattr__(dataclasses.fields(obj)[0].name, None)
    assert hash(cfg) == hash(parse_speaker_config(with_neighbor()))


# ------------------------------------------------------------- passwords


def test_password_is_never_in_repr_str_or_describe(tmp_path: Path):
    cfg = load_speaker_config(write(tmp_path, EXAMPLE_CONFIG))
    neighbor = cfg.neighbors[1]
    assert neighbor.password == b"secret-token"
    for text in (repr(cfg), str(cfg), repr(neighbor), str(neighbor), json.dumps(cfg.describe()),
                 repr(cfg.describe()), " ".join(cfg.warnings)):
        assert SECRET not in text
        assert SECRET_DECODED not in text
    assert "password=<set>" in repr(neighbor)
    assert "password=None" in repr(cfg.neighbors[0])


def secret_errors(tmp_path: Path) -> list[str]:
    """Error messages of files with the secret next to (or in) the mistake."""
    cases = [
        # a mistake after the password, in the same neighbor
        EXAMPLE_CONFIG.replace("multihop-ttl: 2", "multihop-ttl: 0"),
        EXAMPLE_CONFIG.replace("hold-time: 9", "hold_time: 9"),
        # the password itself is wrong
        EXAMPLE_CONFIG.replace(SECRET, SECRET + "!"),
        EXAMPLE_CONFIG.replace(SECRET, SECRET[:-1]),
        EXAMPLE_CONFIG.replace(SECRET, f'"{SECRET} "'),
        EXAMPLE_CONFIG.replace(SECRET, f"{SECRET}\n    password: {SECRET}"),  # twice
        # YAML errors on the password's line
        EXAMPLE_CONFIG.replace(f"password: {SECRET}", f"password: {SECRET}: {SECRET}"),
        EXAMPLE_CONFIG.replace(f"password: {SECRET}", f'password: "{SECRET}\\q{SECRET}"'),
        EXAMPLE_CONFIG.replace(f"password: {SECRET}", f"password: {SECRET}\t{SECRET}"),
        EXAMPLE_CONFIG.replace(f"password: {SECRET}", f"password: [{SECRET}"),
    ]
    out = []
    for i, text in enumerate(cases):
        with pytest.raises(ConfigError) as info:
            load_speaker_config(write(tmp_path, text, f"case{i}.yaml"))
        out.append(str(info.value))
    return out


def test_password_is_never_in_an_error_message(tmp_path: Path):
    messages = secret_errors(tmp_path)
    assert len(messages) == 10
    for message in messages:
        assert SECRET not in message, message
        assert SECRET_DECODED not in message, message
    assert "neighbors[1].password: not valid base64" in messages[2]
    assert "neighbors[1].password: not valid base64" in messages[3]


# ------------------------------------------------------------ file errors


def test_missing_file(tmp_path: Path):
    path = tmp_path / "nope.yaml"
    with pytest.raises(ConfigError, match="^cannot read .*nope.yaml: No such file or directory$"):
        load_speaker_config(path)


def test_directory_is_not_a_file(tmp_path: Path):
    with pytest.raises(ConfigError, match="^cannot read .*: Is a directory$"):
        load_speaker_config(tmp_path)


def test_yaml_syntax_error_names_the_line(tmp_path: Path):
    path = write(tmp_path, "router-id: 192.0.2.1\nasn: 65000\nneighbors:\n  - address: [1.2.3.4\n")
    with pytest.raises(ConfigError) as info:
        load_speaker_config(path)
    message = str(info.value)
    assert message.startswith(f"{path}: invalid YAML at line 5")


def test_yaml_key_written_twice(tmp_path: Path):
    path = write(tmp_path, "router-id: 192.0.2.1\nasn: 65000\nasn: 65001\n")
    with pytest.raises(ConfigError,
                       match=r"line 3, column 1: key 'asn' appears twice .*first on line 2"):
        load_speaker_config(path)


def test_yaml_merge_keys_may_be_overridden(tmp_path: Path):
    text = ("router-id: 192.0.2.1\nasn: 65000\nneighbors:\n"
            "  - &node {address: 192.0.2.2, asn: 65000, hold-time: 30}\n"
            "  - {<<: *node, address: 192.0.2.3}\n")
    cfg = load_speaker_config(write(tmp_path, text))
    got = [(n.address, n.hold_time) for n in cfg.neighbors]
    assert got == [("192.0.2.2", 30), ("192.0.2.3", 30)]


def test_file_not_utf8(tmp_path: Path):
    path = tmp_path / "speaker.yaml"
    path.write_bytes(b"router-id: 192.0.2.1\nasn: \xff\n")
    with pytest.raises(ConfigError, match=f"^{re.escape(str(path))}: invalid YAML"):
        load_speaker_config(path)


def test_empty_file(tmp_path: Path):
    path = write(tmp_path, "# nothing yet\n")
    pattern = f"^{re.escape(str(path))}: expected a mapping .* at the top level.*empty"
    with pytest.raises(ConfigError, match=pattern):
        load_speaker_config(path)


def test_top_level_list(tmp_path: Path):
    path = write(tmp_path, "- router-id: 192.0.2.1\n")
    pattern = f"^{re.escape(str(path))}: expected a mapping .* at the top level.*got a list"
    with pytest.raises(ConfigError, match=pattern):
        load_speaker_config(path)


def test_parse_without_a_file_names_the_default_source():
    with pytest.raises(ConfigError, match=r"^<config>: asn: required key is missing"):
        parse_speaker_config({"router-id": "192.0.2.1"})
    with pytest.raises(ConfigError, match=r"^<config>: expected a mapping .*got a string"):
        parse_speaker_config("router-id: 192.0.2.1")  # type: ignore[arg-type]


# ------------------------------------------------------- settings errors

N = "neighbors[0]"
R = "originate[0]"
P = f"{R}.as-path-prepend"
TOP_KEYS_TEXT = ("router-id, asn, listen, cluster-id, kernel, hold-time, connect-retry, "
                 "graceful-restart, neighbors, originate")
NEIGHBOR_KEYS_TEXT = ("address, asn, port, local-address, password, passive, multihop-ttl, "
                      "ttl-security, hold-time, route-reflector-client, families, import, export, "
                      "description, max-prefixes")
HOLD_TIME_TEXT = "0 (no keepalives) or 3..65535 seconds"
BASE64_TEXT = ("expected the key in standard padded base64 (A-Z a-z 0-9 + / and '=' padding), "
               "1..80 bytes once decoded")


def case(name: str, data: Any, path: str, fragment: str) -> Any:
    return pytest.param(data, path, fragment, id=name)


# (test id, settings, key path the message must start with, text it must contain)
ERRORS = [
    # ---- top level
    case("router-id missing", {"asn": 65000}, "router-id",
         "required key is missing; expected an IPv4 address"),
    case("router-id ipv6", base(router_id="2001:db8::1"), "router-id",
         "expected an IPv4 address like 192.0.2.1, got the string '2001:db8::1'"),
    case("router-id name", base(router_id="node-a"), "router-id", "got the string 'node-a'"),
    case("router-id number", base(router_id=1), "router-id",
         "expected an IPv4 address like 192.0.2.1, got the number 1"),
    case("router-id zero", base(router_id="0.0.0.0"), "router-id",
         "must not be 0.0.0.0; expected a non-zero IPv4 address"),
    case("asn missing", {"router-id": "192.0.2.1"}, "asn",
         "required key is missing; expected an integer 1..4294967295"),
    case("asn zero", base(asn=0), "asn", "must be 1..4294967295, got 0"),
    case("asn too big", base(asn=4294967296), "asn", "must be 1..4294967295, got 4294967296"),
    case("asn string", base(asn="65000"), "asn",
         "expected an integer 1..4294967295, got the string '65000'"),
    case("asn boolean", base(asn=True), "asn",
         "expected an integer 1..4294967295, got the boolean true"),
    case("asn null", base(asn=None), "asn", "has no value; expected an integer 1..4294967295"),
    case("listen not a list", base(listen="0.0.0.0:179"), "listen",
         "expected a list of 'address:port' strings"),
    case("listen number", base(listen=[179]), "listen[0]",
         "expected 'address:port' like '0.0.0.0:179'"),
    case("listen bare ipv6", base(listen=["::"]), "listen[0]",
         "an IPv6 address must be in brackets, like '[::]'"),
    case("listen port zero", base(listen=["0.0.0.0:0"]), "listen[0]",
         "the port must be 1..65535, got the string '0.0.0.0:0'"),
    case("listen port too big", base(listen=["[::]:65536"]), "listen[0]",
         "the port must be 1..65535"),
    case("listen port name", base(listen=["0.0.0.0:bgp"]), "listen[0]",
         "the port must be 1..65535"),
    case("listen port empty", base(listen=["0.0.0.0:"]), "listen[0]",
         "the port must be 1..65535"),
    case("listen host name", base(listen=["localhost:179"]), "listen[0]",
         "got the string 'localhost:179'"),
    case("listen unclosed bracket", base(listen=["[::1:179"]), "listen[0]",
         "expected 'address:port'"),
    case("listen ipv4 in brackets", base(listen=["[10.0.0.1]:179"]), "listen[0]",
         "expected 'address:port'"),
    case("listen twice", base(listen=["0.0.0.0", "0.0.0.0:179"]), "listen[1]",
         "0.0.0.0:179 is listed twice (also listen[0])"),
    case("cluster-id zero", base(cluster_id=0), "cluster-id",
         "must be 1..4294967295 or a non-zero IPv4 address, got 0"),
    case("cluster-id too big", base(cluster_id=1 << 32), "cluster-id",
         "must be 1..4294967295 or a non-zero IPv4 address, got 4294967296"),
    case("cluster-id zero address", base(cluster_id="0.0.0.0"), "cluster-id",
         "must not be 0.0.0.0"),
    case("cluster-id name", base(cluster_id="rr1"), "cluster-id",
         "expected an integer 1..4294967295 or an IPv4 address like 192.0.2.1, "
         "got the string 'rr1'"),
    case("cluster-id boolean", base(cluster_id=True), "cluster-id", "got the boolean true"),
    case("kernel string", base(kernel="yes"), "kernel",
         "expected true or false, got the string 'yes'"),
    case("hold-time 2", base(hold_time=2), "hold-time",
         f"must be {HOLD_TIME_TEXT} (RFC 4271), got 2"),
    case("hold-time too big", base(hold_time=65536), "hold-time", "got 65536"),
    case("hold-time negative", base(hold_time=-1), "hold-time", "got -1"),
    case("hold-time string", base(hold_time="90s"), "hold-time",
         f"expected {HOLD_TIME_TEXT}, got the string '90s'"),
    case("hold-time fraction", base(hold_time=1.5), "hold-time", "got the number 1.5"),
    case("connect-retry zero", base(connect_retry=0), "connect-retry",
         "must be 1..3600 seconds, got 0"),
    case("connect-retry too big", base(connect_retry=3601), "connect-retry",
         "must be 1..3600 seconds, got 3601"),
    case("graceful-restart boolean", base(graceful_restart=False), "graceful-restart",
         "expected a mapping with the keys enabled, restart-time, stale-time, deferral-time, got a boolean"),
    case("graceful-restart.enabled string", base(graceful_restart={"enabled": "on"}),
         "graceful-restart.enabled", "expected true or false, got the string 'on'"),
    case("graceful-restart.restart-time zero", base(graceful_restart={"restart-time": 0}),
         "graceful-restart.restart-time", "must be 1..4095 seconds, got 0"),
    case("graceful-restart.restart-time too big", base(graceful_restart={"restart-time": 4096}),
         "graceful-restart.restart-time", "must be 1..4095 seconds, got 4096"),
    case("graceful-restart.stale-time zero", base(graceful_restart={"stale-time": 0}),
         "graceful-restart.stale-time", "must be 1..4095 seconds, got 0"),
    case("graceful-restart unknown key", base(graceful_restart={"restart_time": 60}),
         "graceful-restart.restart_time",
         "unknown key (did you mean 'restart-time'? keys use dashes); "
         "accepted keys in graceful-restart: enabled, restart-time, stale-time"),
    case("unknown key with underscore", {**base(), "hold_time": 90}, "hold_time",
         "unknown key (did you mean 'hold-time'? keys use dashes); "
         f"accepted keys at the top level: {TOP_KEYS_TEXT}"),
    case("unknown key misspelled", base(neighbours=[]), "neighbours",
         "unknown key (did you mean 'neighbors'?); accepted keys at the top level"),
    case("unknown key not a string", {**base(), 1: 2}, "1",
         "unknown key; accepted keys at the top level"),
    case("neighbors not a list", base(neighbors={"address": "192.0.2.2"}), "neighbors",
         "expected a list of neighbor mappings, got a mapping"),
    case("neighbors null", base(neighbors=None), "neighbors",
         "has no value; expected a list of neighbor mappings "
         "(or remove the key to use the default)"),
    case("neighbor not a mapping", base(neighbors=["192.0.2.2"]), N,
         "expected a mapping with the keys address, asn, port"),
    # ---- neighbors
    case("neighbor address missing", base(neighbors=[{"asn": 1}]), f"{N}.address",
         "required key is missing; expected an IP address"),
    case("neighbor address invalid", with_neighbor(address="192.0.2.256"), f"{N}.address",
         "expected an IP address like 192.0.2.1 or 2001:db8::1, got the string '192.0.2.256'"),
    case("neighbor address unspecified", with_neighbor(address="::"), f"{N}.address",
         ":: is a unspecified address; expected a unicast address"),
    case("neighbor address multicast", with_neighbor(address="224.0.0.5"), f"{N}.address",
         "224.0.0.5 is a multicast address; expected a unicast address"),
    case("neighbor address twice",
         base(neighbors=[{"address": "2001:db8::2", "asn": 1},
                         {"address": "2001:DB8:0::2", "asn": 2}]),
         "neighbors[1].address",
         "2001:db8::2 is already neighbors[0]; expected each neighbor address once"),
    case("neighbor asn missing", base(neighbors=[{"address": "192.0.2.2"}]), f"{N}.asn",
         "required key is missing; expected an integer 0..4294967295 (0 accepts any AS)"),
    case("neighbor asn negative", with_neighbor(asn=-1), f"{N}.asn",
         "must be 0..4294967295 (0 accepts any AS), got -1"),
    case("neighbor asn too big", with_neighbor(asn=1 << 32), f"{N}.asn", "got 4294967296"),
    case("neighbor port zero", with_neighbor(port=0), f"{N}.port", "must be 1..65535, got 0"),
    case("neighbor port too big", with_neighbor(port=65536), f"{N}.port",
         "must be 1..65535, got 65536"),
    case("neighbor local-address ipv6 for ipv4", with_neighbor(local_address="2001:db8::1"),
         f"{N}.local-address",
         "2001:db8::1 is IPv6 but address 192.0.2.2 is IPv4; expected an IPv4 address"),
    case("neighbor local-address ipv4 for ipv6",
         base(neighbors=[{"address": "2001:db8::2", "asn": 1, "local-address": "192.0.2.1"}]),
         f"{N}.local-address",
         "192.0.2.1 is IPv4 but address 2001:db8::2 is IPv6; expected an IPv6 address"),
    case("neighbor local-address name", with_neighbor(local_address="eth0"),
         f"{N}.local-address", "got the string 'eth0'"),
    case("neighbor password not base64", with_neighbor(password="not base64!"),
         f"{N}.password", f"not valid base64; {BASE64_TEXT}"),
    case("neighbor password unpadded", with_neighbor(password="QQ"), f"{N}.password",
         "not valid base64"),
    case("neighbor password urlsafe", with_neighbor(password="-_-_"), f"{N}.password",
         "not valid base64"),
    case("neighbor password not ascii", with_neighbor(password="pässwörd"), f"{N}.password",
         "not valid base64"),
    case("neighbor password number", with_neighbor(password=12345678), f"{N}.password",
         f"{BASE64_TEXT}, got an integer"),
    case("neighbor password empty", with_neighbor(password=""), f"{N}.password",
         "decodes to an empty key"),
    case("neighbor password null", with_neighbor(password=None), f"{N}.password",
         "has no value; expected the key in standard padded base64"),
    case("neighbor password too long", with_neighbor(password="QUFB" * 27), f"{N}.password",
         "decodes to a key longer than 80 bytes"),
    case("neighbor passive string", with_neighbor(passive="false"), f"{N}.passive",
         "expected true or false, got the string 'false'"),
    case("neighbor multihop-ttl zero", with_neighbor(multihop_ttl=0), f"{N}.multihop-ttl",
         "must be 1..255, got 0"),
    case("neighbor multihop-ttl too big", with_neighbor(multihop_ttl=256), f"{N}.multihop-ttl",
         "must be 1..255, got 256"),
    case("neighbor ttl-security zero", with_neighbor(ttl_security=0), f"{N}.ttl-security",
         "must be 1..254 hops, got 0"),
    case("neighbor ttl-security too big", with_neighbor(ttl_security=255), f"{N}.ttl-security",
         "must be 1..254 hops, got 255"),
    case("neighbor ttl-security with multihop-ttl",
         with_neighbor(multihop_ttl=2, ttl_security=1), f"{N}.ttl-security",
         "cannot be combined with multihop-ttl (as in FRR)"),
    case("neighbor hold-time 1", with_neighbor(hold_time=1), f"{N}.hold-time",
         f"must be {HOLD_TIME_TEXT} (RFC 4271), got 1"),
    case("neighbor route-reflector-client ebgp", with_neighbor(route_reflector_client=True),
         f"{N}.route-reflector-client",
         "applies only to iBGP neighbors, but asn 65001 is not the local asn 65000"),
    case("neighbor route-reflector-client string", with_neighbor(route_reflector_client="yes"),
         f"{N}.route-reflector-client", "expected true or false"),
    case("neighbor families empty", with_neighbor(families=[]), f"{N}.families",
         "is empty; expected at least one of ipv4, ipv6"),
    case("neighbor families not a list", with_neighbor(families="ipv4"), f"{N}.families",
         "expected a list of address families: ipv4, ipv6, got a string"),
    case("neighbor families unknown", with_neighbor(families=["ipv4", "l2vpn"]),
         f"{N}.families[1]", "unknown address family 'l2vpn': expected ipv4 or ipv6"),
    case("neighbor families number", with_neighbor(families=[4]), f"{N}.families[0]",
         "expected ipv4 or ipv6, got the number 4"),
    case("neighbor families twice", with_neighbor(families=["ipv4", "ipv4-unicast"]),
         f"{N}.families[1]", "'ipv4-unicast' is listed twice; expected each family once"),
    case("neighbor import unknown", with_neighbor(import_="allow"), f"{N}.import",
         "expected 'accept' or 'reject', got the string 'allow'"),
    case("neighbor export boolean", with_neighbor(export=True), f"{N}.export",
         "expected 'accept' or 'reject', got the boolean true"),
    case("neighbor description number", with_neighbor(description=7), f"{N}.description",
         "expected a string, got the number 7"),
    case("neighbor max-prefixes zero", with_neighbor(max_prefixes=0), f"{N}.max-prefixes",
         "must be 1..4294967295, got 0"),
    case("neighbor unknown key",
         base(neighbors=[{"address": "192.0.2.2", "asn": 1, "hold_time": 30}]),
         f"{N}.hold_time",
         "unknown key (did you mean 'hold-time'? keys use dashes); "
         f"accepted keys in neighbors[0]: {NEIGHBOR_KEYS_TEXT}"),
    # ---- originate
    case("originate not a list", base(originate="10.0.0.0/8"), "originate",
         "expected a list of route mappings, got a string"),
    case("originate not a mapping", base(originate=["10.0.0.0/8"]), R,
         "expected a mapping with the keys prefix, next-hop"),
    case("originate prefix missing", base(originate=[{"med": 1}]), f"{R}.prefix",
         "required key is missing; expected a network like 10.0.0.0/24 or 2001:db8::/48"),
    case("originate prefix host bits", with_route(prefix="10.244.1.7/24"), f"{R}.prefix",
         "10.244.1.7/24 has host bits set; expected a network address: "
         "did you mean 10.244.1.0/24?"),
    case("originate prefix host bits ipv6", with_route(prefix="2001:db8::1/64"), f"{R}.prefix",
         "2001:db8::1/64 has host bits set; expected a network address: "
         "did you mean 2001:db8::/64?"),
    case("originate prefix without length", with_route(prefix="10.0.0.1"), f"{R}.prefix",
         "(with its prefix length), got the string '10.0.0.1'"),
    case("originate prefix invalid", with_route(prefix="10.0.0.0/33"), f"{R}.prefix",
         "got the string '10.0.0.0/33'"),
    case("originate prefix number", with_route(prefix=10), f"{R}.prefix", "got the number 10"),
    case("originate prefix twice",
         base(originate=[{"prefix": "10.0.0.0/8"}, {"prefix": "10.0.0.0/8", "med": 1}]),
         "originate[1].prefix", "10.0.0.0/8 is already originate[0]; expected each prefix once"),
    case("originate next-hop ipv4 for ipv6",
         with_route(prefix="2001:db8::/32", next_hop="192.0.2.1"), f"{R}.next-hop",
         "192.0.2.1 is IPv4 but prefix 2001:db8::/32 is IPv6; expected an IPv6 next hop"),
    case("originate next-hop name", with_route(next_hop="self"), f"{R}.next-hop",
         "got the string 'self'"),
    case("originate next-hop unspecified", with_route(next_hop="0.0.0.0"), f"{R}.next-hop",
         "0.0.0.0 is a unspecified address"),
    case("originate communities not a list", with_route(communities="no-export"),
         f"{R}.communities", "expected a list of communities"),
    case("originate community out of range", with_route(communities=["no-export", "65536:1"]),
         f"{R}.communities[1]", "bad community '65536:1': expected 'A:B' with A and B 0..65535"),
    case("originate community unknown name", with_route(communities=["no-exports"]),
         f"{R}.communities[0]",
         "or a well-known name (graceful-shutdown, accept-own, blackhole, no-export"),
    case("originate community base 60", with_route(communities=[3900001]),
         f"{R}.communities[0]", "got the number 3900001 (quote it in YAML)"),
    case("originate large community short", with_route(large_communities=["1:2"]),
         f"{R}.large-communities[0]",
         "bad large community '1:2': expected 'A:B:C' with 32-bit numbers"),
    case("originate large community too big",
         with_route(large_communities=["1:2:4294967296"]), f"{R}.large-communities[0]",
         "bad large community '1:2:4294967296'"),
    case("originate large community base 60", with_route(large_communities=[234000062]),
         f"{R}.large-communities[0]", "got the number 234000062 (quote it in YAML)"),
    case("originate med negative", with_route(med=-1), f"{R}.med",
         "must be 0..4294967295, got -1"),
    case("originate med string", with_route(med="low"), f"{R}.med",
         "expected an integer 0..4294967295, got the string 'low'"),
    case("originate local-pref too big", with_route(local_pref=1 << 32), f"{R}.local-pref",
         "must be 0..4294967295, got 4294967296"),
    case("originate prepend not a mapping", with_route(as_path_prepend=3), P,
         "expected a mapping with the keys asn, repeat, got an integer"),
    case("originate prepend repeat zero", with_route(as_path_prepend={"asn": 1, "repeat": 0}),
         f"{P}.repeat", "must be 1..32 times, got 0"),
    case("originate prepend repeat too big",
         with_route(as_path_prepend={"asn": 1, "repeat": 33}), f"{P}.repeat",
         "must be 1..32 times, got 33"),
    case("originate prepend repeat missing", with_route(as_path_prepend={"asn": 65000}),
         f"{P}.repeat", "required key is missing; expected an integer 1..32 times"),
    case("originate prepend asn zero", with_route(as_path_prepend={"asn": 0, "repeat": 1}),
         f"{P}.asn", "must be 1..4294967295, got 0"),
    case("originate prepend unknown key", with_route(as_path_prepend={"as": 1, "repeat": 1}),
         f"{P}.as",
         f"unknown key (did you mean 'asn'?); accepted keys in {P}: asn, repeat"),
    case("originate unknown key", with_route(communitites=["no-export"]), f"{R}.communitites",
         "unknown key (did you mean 'communities'?); "
         "accepted keys in originate[0]: prefix, next-hop, communities"),
]


def test_error_table_ids_are_unique():
    names = [param.id for param in ERRORS]
    assert len(names) == len(set(names))


@pytest.mark.parametrize("data, path, fragment", ERRORS)
def test_error_names_the_file_and_key_path(data, path, fragment):
    message = error_of(data)
    assert message.startswith(f"{SOURCE}: {path}: "), message
    assert fragment in message, message
    assert "\n" not in message


def test_errors_in_a_file_name_the_file(tmp_path: Path):
    path = write(tmp_path, EXAMPLE_CONFIG.replace("hold-time: 9", "hold-time: 2"))
    with pytest.raises(ConfigError) as info:
        load_speaker_config(path)
    assert str(info.value) == (f"{path}: neighbors[1].hold-time: must be 0 (no keepalives) "
                               f"or 3..65535 seconds (RFC 4271), got 2")


def test_error_in_a_later_list_entry_names_its_index():
    data = base(neighbors=[{"address": "192.0.2.2", "asn": 1}, {"address": "192.0.2.3", "asn": 1},
                           {"address": "192.0.2.4", "asn": 1, "hold-time": 2}])
    assert error_of(data).startswith(f"{SOURCE}: neighbors[2].hold-time: ")
