"""The agent's command line (kbgp.cluster.flags): kube-router's flags with
their defaults and syntax, every malformed value named by flag and element,
ignored kube-router flags, password handling."""
from __future__ import annotations

import dataclasses
import os
from fractions import Fraction
from pathlib import Path

import pytest

from kbgp.cluster.flags import (
    IGNORED_FLAGS,
    ROUTING_FLAGS,
    AgentFlags,
    node_name,
    parse_agent_args,
    parse_go_duration,
)
from kbgp.errors import ConfigError

SEED_PASSWORD = "U2VjdXJlUGFzc3dvcmQK"  # the seed's example: "SecurePassword\n"
PRINTF_PASSWORD = "U2VjdXJlUGFzc3dvcmQ="  # printf "SecurePassword" | base64
# A password whose text must never show up anywhere.
SECRET = "c2VjcmV0LW5ldmVyLXNob3du"  # "secret-never-shown"


def parse(*argv: str, env: dict[str, str] | None = None) -> tuple[AgentFlags, list[str]]:
    return parse_agent_args(list(argv), env or {})


def error_of(*argv: str, env: dict[str, str] | None = None) -> str:
    with pytest.raises(ConfigError) as info:
        parse(*argv, env=env)
    return str(info.value)


# ------------------------------------------------------------------ defaults


def test_no_flags_gives_kube_router_defaults_and_no_warning():
    flags, warnings = parse()
    assert warnings == []
    assert flags == AgentFlags()
    assert flags.cluster_asn == 64512
    assert flags.nodes_full_mesh and flags.enable_ibgp and flags.advertise_pod_cidr
    assert not flags.advertise_cluster_ip and not flags.advertise_external_ip
    assert not flags.advertise_loadbalancer_ip and not flags.override_nexthop
    assert flags.bgp_port == 179 and flags.bgp_holdtime == 90
    assert not flags.bgp_graceful_restart
    assert (flags.bgp_graceful_restart_time, flags.bgp_graceful_restart_deferral_time) == (90, 360)
    assert flags.enable_ipv4 and not flags.enable_ipv6
    assert flags.enable_overlay and flags.overlay_type == "subnet"
    assert (flags.overlay_encap, flags.overlay_encap_port) == ("ipip", 5555)
    assert (flags.routes_sync_period, flags.injected_routes_sync_period) == (300, 60)
    assert flags.control_socket == "/run/kbgp/kbgp.sock" and flags.route_protocol == 17
    assert flags.peer_router_multihop_ttl is None
    assert flags.strict_external_ip_validation
    assert flags.service_cluster_ip_range == ("10.96.0.0/12",)


# ------------------------------------------------------------------ every flag, valid

VALID = [
    (["--advertise-cluster-ip"], "advertise_cluster_ip", True),
    (["--advertise-external-ip=true"], "advertise_external_ip", True),
    (["--advertise-loadbalancer-ip=1"], "advertise_loadbalancer_ip", True),
    (["--advertise-pod-cidr=false"], "advertise_pod_cidr", False),
    (["--bgp-graceful-restart"], "bgp_graceful_restart", True),
    (["--bgp-graceful-restart", "--bgp-graceful-restart-time=2m"], "bgp_graceful_restart_time", 120),
    (["--bgp-graceful-restart", "--bgp-graceful-restart-deferral-time", "10m"],
     "bgp_graceful_restart_deferral_time", 600),
    (["--bgp-holdtime=1m30s"], "bgp_holdtime", 90),
    (["--bgp-holdtime", "3s"], "bgp_holdtime", 3),
    (["--bgp-holdtime=9.9s"], "bgp_holdtime", 9),  # whole seconds, truncated
    (["--bgp-holdtime=18h12m15s"], "bgp_holdtime", 65535),
    (["--bgp-port=1179"], "bgp_port", 1179),
    (["--cache-sync-timeout=5s"], "cache_sync_timeout", 5),
    (["--cluster-asn=65000"], "cluster_asn", 65000),
    (["--cluster-asn=0"], "cluster_asn", 64512),
    (["--cluster-asn=4200000000"], "cluster_asn", 4200000000),
    (["--cluster-asn=65534"], "cluster_asn", 65534),
    (["--enable-ibgp=false"], "enable_ibgp", False),
    (["--enable-ipv4=F"], "enable_ipv4", False),
    (["--enable-ipv6"], "enable_ipv6", True),
    (["--enable-overlay=FALSE"], "enable_overlay", False),
    (["--hostname-override=worker-1"], "hostname_override", "worker-1"),
    (["--injected-routes-sync-period=30s"], "injected_routes_sync_period", 30),
    (["--kubeconfig", "/etc/kubernetes/kubelet.conf"], "kubeconfig", "/etc/kubernetes/kubelet.conf"),
    (["--master=https://10.0.0.1:6443"], "master", "https://10.0.0.1:6443"),
    (["--nodes-full-mesh=false"], "nodes_full_mesh", False),
    (["--overlay-type=full"], "overlay_type", "full"),
    (["--overlay-encap=fou"], "overlay_encap", "fou"),
    (["--overlay-encap-port=1024"], "overlay_encap_port", 1024),
    (["--override-nexthop"], "override_nexthop", True),
    (["--peer-router-ips=192.168.1.99,192.168.1.100", "--peer-router-asns=65000,65000"],
     "peer_router_ips", ("192.168.1.99", "192.168.1.100")),
    (["--peer-router-ips=192.168.1.99,192.168.1.100", "--peer-router-asns=65000,65001"],
     "peer_router_asns", (65000, 65001)),
    (['--peer-router-ips="192.168.1.99", 2001:DB8::1', "--peer-router-asns=65000,65000"],
     "peer_router_ips", ("192.168.1.99", "2001:db8::1")),
    (["--peer-router-ips=10.0.0.1", "--peer-router-asns=65000", "--peer-router-ports=1179"],
     "peer_router_ports", (1179,)),
    (["--peer-router-ips=10.0.0.1", "--peer-router-asns=65000", "--peer-router-multihop-ttl=5"],
     "peer_router_multihop_ttl", 5),
    (["--peer-router-multihop-ttl=0"], "peer_router_multihop_ttl", None),
    (["--peer-router-multihop-ttl=255"], "peer_router_multihop_ttl", 255),
    (["--peer-router-ips=", "--peer-router-asns="], "peer_router_ips", ()),
    (["--router-id=generate"], "router_id", "generate"),
    (["--router-id=192.0.2.1"], "router_id", "192.0.2.1"),
    (["--routes-sync-period=1m"], "routes_sync_period", 60),
    (["--service-cluster-ip-range=10.96.0.0/12,fd00:96::/108"], "service_cluster_ip_range",
     ("10.96.0.0/12", "fd00:96::/108")),
    (["--service-external-ip-range=192.0.2.0/24"], "service_external_ip_range", ("192.0.2.0/24",)),
    (["--loadbalancer-ip-range=198.51.100.0/24"], "loadbalancer_ip_range", ("198.51.100.0/24",)),
    (["--strict-external-ip-validation=false"], "strict_external_ip_validation", False),
    (["--cluster-file=/etc/kbgp/cluster.yaml"], "cluster_file", "/etc/kbgp/cluster.yaml"),
    (["--check"], "check", True),
    (["--control-socket=/tmp/k.sock"], "control_socket", "/tmp/k.sock"),
    (["--route-protocol=200"], "route_protocol", 200),
    (["--log-level=debug"], "log_level", "debug"),
    (["-h"], "help", True),
    (["--help"], "help", True),
    (["-V"], "version", True),
    (["--version"], "version", True),
]


@pytest.mark.parametrize("argv,attr,expected", VALID, ids=[" ".join(v[0]) for v in VALID])
def test_valid_flag(argv, attr, expected):
    flags, _ = parse(*argv)
    assert getattr(flags, attr) == expected


def test_every_routing_flag_is_tested_valid():
    tested = {arg.split("=")[0].lstrip("-") for argv, _, _ in VALID for arg in argv
              if arg.startswith("--")}
    tested |= {"peer-router-passwords", "peer-router-passwords-file"}  # see the password tests
    assert ROUTING_FLAGS - tested == set()


@pytest.mark.parametrize("spelling,value", [
    (s, True) for s in ("1", "t", "T", "TRUE", "true", "True")] + [
    (s, False) for s in ("0", "f", "F", "FALSE", "false", "False")])
def test_go_parsebool_spellings(spelling, value):
    flags, _ = parse(f"--override-nexthop={spelling}")
    assert flags.override_nexthop is value


def test_list_flag_given_twice_appends():
    flags, _ = parse("--peer-router-ips=10.0.0.1", "--peer-router-ips=10.0.0.2,10.0.0.3",
                     "--peer-router-asns=65001", "--peer-router-asns=65002,65003")
    assert flags.peer_router_ips == ("10.0.0.1", "10.0.0.2", "10.0.0.3")
    assert flags.peer_router_asns == (65001, 65002, 65003)


def test_list_flag_replaces_its_default():
    flags, _ = parse("--service-cluster-ip-range=10.43.0.0/16")
    assert flags.service_cluster_ip_range == ("10.43.0.0/16",)


def test_scalar_flag_given_twice_keeps_the_last():
    flags, _ = parse("--bgp-port=1179", "--bgp-port=2179")
    assert flags.bgp_port == 2179


@pytest.mark.parametrize("argv", [["-v", "2"], ["-v2"], ["-v=2"], ["--v=2"], ["--v", "2"]])
def test_klog_verbosity_is_accepted_in_every_form(argv):
    flags, warnings = parse(*argv)
    assert flags.ignored == ("v",)
    assert len(warnings) == 1 and "--v is ignored" in warnings[0] and "--log-level" in warnings[0]


def test_combined_short_booleans():
    flags, _ = parse("-hV")
    assert flags.help and flags.version


def test_double_dash_ends_flags():
    flags, _ = parse("--check", "--")
    assert flags.check


# ------------------------------------------------------------------ malformed

MALFORMED = [
    (["--peer-router-ips=192.168.1.99,192.168.1.100", "--peer-router-asns=65000,65x"],
     '--peer-router-asns: element 2 "65x" is not an AS number'),
    (["--peer-router-ips=192.168.1.99,192.168.1.x", "--peer-router-asns=65000,65000"],
     '--peer-router-ips: element 2 "192.168.1.x" is not an IP address'),
    (["--peer-router-ips=10.0.0.1,10.0.0.2", "--peer-router-asns=65000,"],
     '--peer-router-asns: element 2 "" is empty'),
    (["--peer-router-ips=10.0.0.1", "--peer-router-asns=65000", "--peer-router-ports=70000"],
     '--peer-router-ports: element 1 "70000" is out of range; expected 1..65535'),
    (["--peer-router-ips=10.0.0.1", "--peer-router-asns=65000", "--peer-router-ports=0"],
     '--peer-router-ports: element 1 "0" is out of range'),
    (["--peer-router-ips=10.0.0.1", "--peer-router-asns=65000", "--peer-router-ports=abc"],
     '--peer-router-ports: element 1 "abc" is not a port number'),
    (["--peer-router-ips=10.0.0.1,10.0.0.2", "--peer-router-asns=65000"],
     "--peer-router-asns: 1 AS numbers for 2 --peer-router-ips"),
    (["--peer-router-asns=65000"], "--peer-router-asns: 1 AS numbers for 0 --peer-router-ips"),
    (["--peer-router-ips=10.0.0.1,10.0.0.2", "--peer-router-asns=65000,65000",
      "--peer-router-ports=179"], "--peer-router-ports: 1 ports for 2 --peer-router-ips"),
    (["--peer-router-ips=10.0.0.1,10.0.0.2", "--peer-router-asns=65000,65000",
      f"--peer-router-passwords={PRINTF_PASSWORD}"],
     "--peer-router-passwords: 1 passwords for 2 --peer-router-ips"),
    (["--peer-router-ips=10.0.0.1,10.0.0.1", "--peer-router-asns=65000,65000"],
     '--peer-router-ips: element 2 "10.0.0.1" is listed twice (also element 1)'),
    (["--peer-router-ips=10.0.0.1", "--peer-router-asns=23456"],
     '--peer-router-asns: element 1 "23456" is AS_TRANS'),
    (["--peer-router-ips=10.0.0.1", "--peer-router-asns=0"], '--peer-router-asns: element 1 "0" is AS 0'),
    (["--peer-router-ips=10.0.0.1", "--peer-router-asns=64496"], "reserved for documentation"),
    (["--peer-router-ips=10.0.0.1", "--peer-router-asns=65535"], "is reserved (RFC 7300)"),
    (["--peer-router-ips=10.0.0.1", "--peer-router-asns=4294967295"], "is reserved (RFC 7300)"),
    (["--peer-router-ips=10.0.0.1", "--peer-router-asns=100000"], "is reserved by IANA"),
    (["--peer-router-ips=10.0.0.1", "--peer-router-asns=-1"], 'element 1 "-1" is not an AS number'),
    (["--peer-router-multihop-ttl=1"], "--peer-router-multihop-ttl: 1 is out of range; expected 2..255"),
    (["--peer-router-multihop-ttl=256"], "--peer-router-multihop-ttl: 256 is out of range"),
    (["--peer-router-multihop-ttl=x"], '--peer-router-multihop-ttl: "x" is not a TTL'),
    (["--cluster-asn=65000x"], '--cluster-asn: "65000x" is not an AS number'),
    (["--cluster-asn=0x10000"], '--cluster-asn: "0x10000" is not an AS number'),
    (["--cluster-asn=64511"], "--cluster-asn: 64511 is not a private AS number"),
    (["--cluster-asn=65535"], "--cluster-asn: 65535 is not a private AS number"),
    (["--cluster-asn=13335"], "--cluster-asn: 13335 is not a private AS number"),
    (["--cluster-asn="], '--cluster-asn: "" is not an AS number'),
    (["--bgp-port=0"], "--bgp-port: 0 is out of range; expected 1..65535"),
    (["--bgp-port=65536"], "--bgp-port: 65536 is out of range"),
    (["--bgp-holdtime=90"], '--bgp-holdtime: "90" is not a duration'),
    (["--bgp-holdtime=2s"], "--bgp-holdtime: 2s is out of range; expected 3s..18h12m16s"),
    (["--bgp-holdtime=18h12m17s"], "--bgp-holdtime: 18h12m17s is out of range"),
    (["--bgp-holdtime=-5s"], '--bgp-holdtime: "-5s" is negative'),
    (["--bgp-graceful-restart", "--bgp-graceful-restart-time=4096s"],
     "--bgp-graceful-restart-time: 1h8m16s is out of range; expected 1s..4095s"),
    (["--bgp-graceful-restart", "--bgp-graceful-restart-time=0s"],
     "--bgp-graceful-restart-time: 0s is out of range"),
    (["--bgp-graceful-restart", "--bgp-graceful-restart-deferral-time=19h"],
     "--bgp-graceful-restart-deferral-time: 19h0m0s is out of range; expected 1s..18h"),
    (["--routes-sync-period=0s"], "--routes-sync-period: 0s is too short"),
    (["--injected-routes-sync-period=500ms"], "--injected-routes-sync-period: 0s is too short"),
    (["--router-id=2001:db8::1"], '--router-id: "2001:db8::1" is not a router id'),
    (["--router-id=abc"], '--router-id: "abc" is not a router id'),
    (["--router-id=0.0.0.0"], '--router-id: "0.0.0.0" is not a router id'),
    (["--overlay-type=mesh"], '--overlay-type: "mesh" is not one of subnet, full'),
    (["--overlay-encap=gre"], '--overlay-encap: "gre" is not one of ipip, fou'),
    (["--overlay-encap-port=1023"], "--overlay-encap-port: 1023 is out of range; expected 1024..65535"),
    (["--route-protocol=4"], "--route-protocol: 4 is out of range; expected 5..255"),
    (["--route-protocol=256"], "--route-protocol: 256 is out of range"),
    (["--log-level=trace"], '--log-level: "trace" is not one of debug, info, warning, error'),
    (["--enable-ibgp=yes"], '--enable-ibgp: "yes" is not a boolean'),
    (["--check=maybe"], '--check: "maybe" is not a boolean'),
    (["--service-external-ip-range=192.0.2.0/33"],
     '--service-external-ip-range: element 1 "192.0.2.0/33" is not a CIDR'),
    (["--control-socket="], "--control-socket: empty"),
    (["--cluster-file=/c.yaml", "--kubeconfig=/k"], "--cluster-file and --kubeconfig are both set"),
    (["--cluster-file=/c.yaml", "--master=https://x"], "--cluster-file and --master are both set"),
    (["--metrics-port=abc"], '--metrics-port: "abc" is not a number'),
    (["--iptables-sync-period=5"], '--iptables-sync-period: "5" is not a duration'),
    (["--bgp-port"], "--bgp-port needs a value"),
    (["-v"], "-v needs a value"),
    (["--enable-ibgp", "false"],
     ("unexpected argument 'false': kbgp agent takes flags only (a boolean flag takes its value "
     "with '=': --enable-ibgp=false)")),
    (["extra"], "unexpected argument 'extra'"),
    (["--", "extra"], "unexpected argument 'extra' after '--'"),
    (["-x"], "unknown flag -x"),
]


@pytest.mark.parametrize("argv,message", MALFORMED, ids=[" ".join(m[0]) for m in MALFORMED])
def test_malformed_flag_names_flag_and_element(argv, message):
    assert message in error_of(*argv)


@pytest.mark.parametrize("typo,meant", [
    ("--peer-router-ip", "--peer-router-ips"),
    ("--enable-ibgpp", "--enable-ibgp"),
    ("--nodes-full-mes", "--nodes-full-mesh"),
    ("--advertise-clusterip", "--advertise-cluster-ip"),
])
def test_unknown_flag_is_an_error_with_a_suggestion(typo, meant):
    message = error_of(f"{typo}=1")
    assert message.startswith(f"unknown flag {typo}:")
    assert f"did you mean {meant}?" in message


def test_unknown_flag_without_a_near_name_has_no_suggestion():
    message = error_of("--zzzzzzzzzz")
    assert "unknown flag --zzzzzzzzzz" in message and "did you mean" not in message


def test_gr_times_are_checked_only_with_graceful_restart():
    flags, _ = parse("--bgp-graceful-restart-time=5000s")
    assert flags.bgp_graceful_restart_time == 5000 and not flags.bgp_graceful_restart


def test_holdtime_65536_is_kube_routers_maximum_and_becomes_65535():
    flags, warnings = parse("--bgp-holdtime=18h12m16s")
    assert flags.bgp_holdtime == 65535
    assert any("16-bit" in w for w in warnings)


@pytest.mark.parametrize("text,seconds", [
    ("0", 0), ("90s", 90), ("1m30s", 90), ("1.5h", 5400), ("1h2m3s", 3723), ("500ms", Fraction(1, 2)),
    ("2h45m", 9900), ("1.s", 1), (".5s", Fraction(1, 2)), ("+3s", 3), ("-3s", -3),
    ("1000000us", 1), ("1000000\u00b5s", 1), ("1000ns", Fraction(1, 10**6)),
])
def test_go_durations(text, seconds):
    assert parse_go_duration(text) == seconds


@pytest.mark.parametrize("text", ["", "90", "1d", "s", ".s", "1m30", "1 m", "5x", "--1s", "1h-5m"])
def test_bad_go_durations(text):
    with pytest.raises(ValueError):
        parse_go_duration(text)


# ------------------------------------------------------------------ ignored kube-router flags

IGNORED_EXAMPLES = {
    "bool": "--{}=true", "uint": "--{}=5", "duration": "--{}=5s", "string": "--{}=x",
    "strings": "--{}=a,b",
}


def _example(name: str) -> str:
    from kbgp.cluster.flags import FLAGS

    return IGNORED_EXAMPLES[FLAGS[name].kind].format(name)


def test_every_ignored_kube_router_flag_warns_once_and_changes_nothing():
    argv = [_example(name) for name in sorted(IGNORED_FLAGS)]
    flags, warnings = parse(*argv, *argv)  # each given twice
    assert set(flags.ignored) == IGNORED_FLAGS
    assert len(warnings) == len(IGNORED_FLAGS)
    for name in IGNORED_FLAGS:
        assert sum(w.startswith(f"--{name} is ignored:") for w in warnings) == 1, name
    assert dataclasses.replace(flags, ignored=()) == AgentFlags()


@pytest.mark.parametrize("name", ["run-firewall", "run-service-proxy", "run-router", "masquerade-all",
                                  "hairpin-mode", "enable-cni", "enable-pod-egress", "metrics-port",
                                  "health-port", "v", "auto-mtu", "enable-bfd", "gobgp-admin-port",
                                  "cleanup-config", "netpol-default-deny", "run-loadbalancer"])
def test_named_kube_router_flags_are_ignored(name):
    assert name in IGNORED_FLAGS
    flags, warnings = parse(_example(name))
    assert flags.ignored == (name,)
    assert len(warnings) == 1 and warnings[0].startswith(f"--{name} is ignored: in kube-router it")


def test_run_router_false_says_kbgp_routes_anyway():
    _, warnings = parse("--run-router=false")
    assert "kbgp runs BGP routing all the same" in warnings[0]


def test_kubeconfig_and_master_are_real_flags():
    assert {"kubeconfig", "master", "hostname-override"} <= ROUTING_FLAGS
    flags, warnings = parse("--kubeconfig=/k", "--master=https://api:6443")
    assert warnings == [] and flags.ignored == ()


def test_a_real_kube_router_daemonset_args_list_parses():
    # The args of kube-router's kubeadm-kuberouter-all-features DaemonSet, and common additions.
    argv = ["--run-router=true", "--run-firewall=true", "--run-service-proxy=true",
            "--bgp-graceful-restart=true", "--kubeconfig=/var/lib/kube-router/kubeconfig",
            "--runtime-endpoint=unix:///run/containerd/containerd.sock", "-v=2",
            "--advertise-cluster-ip=true", "--cluster-asn=64512", "--metrics-port=8080"]
    flags, warnings = parse(*argv)
    assert flags.bgp_graceful_restart and flags.advertise_cluster_ip
    assert flags.kubeconfig == "/var/lib/kube-router/kubeconfig"
    assert set(flags.ignored) == {"run-router", "run-firewall", "run-service-proxy",
                                  "runtime-endpoint", "v", "metrics-port"}
    assert len(warnings) == 6


# ------------------------------------------------------------------ environment


def test_env_gives_a_value_the_command_line_overrides():
    flags, _ = parse(env={"KBGP_CLUSTER_ASN": "65001", "KBGP_ENABLE_IBGP": "false"})
    assert flags.cluster_asn == 65001 and not flags.enable_ibgp
    flags, _ = parse("--cluster-asn=65002", env={"KBGP_CLUSTER_ASN": "65001"})
    assert flags.cluster_asn == 65002


def test_env_errors_name_the_variable():
    assert 'KBGP_BGP_PORT: "x" is not a port number' in error_of(env={"KBGP_BGP_PORT": "x"})


def test_unknown_kbgp_env_variable_warns_with_a_suggestion():
    _, warnings = parse(env={"KBGP_CLUSTER_ASM": "1", "PATH": "/bin", "NODE_NAME": "n"})
    assert warnings == [("environment variable KBGP_CLUSTER_ASM is not a kbgp setting and is "
                        "ignored; did you mean KBGP_CLUSTER_ASN?")]


def test_passwords_from_env_work_like_the_flag():
    flags, _ = parse("--peer-router-ips=10.0.0.1", "--peer-router-asns=65000",
                     env={"KBGP_PEER_ROUTER_PASSWORDS": PRINTF_PASSWORD})
    assert flags.peer_router_passwords == (b"SecurePassword",)


# ------------------------------------------------------------------ passwords


def test_seed_password_example_decodes_with_a_newline_and_warns():
    flags, warnings = parse('--peer-router-ips=192.168.1.99,192.168.1.100',
                            '--peer-router-asns=65000,65000',
                            f'--peer-router-passwords={SEED_PASSWORD},')
    assert flags.peer_router_passwords == (b"SecurePassword\n", None)
    assert warnings == [("--peer-router-passwords: element 1 decodes to a key that ends in a "
                        "newline, which is used as part of the key (`echo KEY | base64` adds it; "
                        "`printf %s KEY | base64` does not)")]


def test_printf_password_has_no_warning():
    flags, warnings = parse("--peer-router-ips=10.0.0.1", "--peer-router-asns=65000",
                            f"--peer-router-passwords={PRINTF_PASSWORD}")
    assert flags.peer_router_passwords == (b"SecurePassword",) and warnings == []


@pytest.mark.parametrize("bad,why", [
    ("c2VjcmV0LW5ldmVyLXNob3d", "is not valid base64"),   # padding missing
    ("c2VjcmV0 LW5ldmVyLXNob3du", "is not valid base64"),  # a space
    ("c2VjcmV0-LW5ldmVyLXNob3du", "is not valid base64"),  # URL-safe alphabet
    ("QUFB" * 28, "decodes to more than 80 bytes"),
])
def test_bad_password_error_never_shows_the_password(bad, why):
    message = error_of("--peer-router-ips=10.0.0.1,10.0.0.2", "--peer-router-asns=65000,65000",
                       f"--peer-router-passwords=,{bad}")
    assert message.startswith("--peer-router-passwords: element 2 ") and why in message
    assert bad not in message and bad[:8] not in message


def test_passwords_never_in_repr_str_or_describe():
    flags, warnings = parse("--peer-router-ips=10.0.0.1", "--peer-router-asns=65000",
                            f"--peer-router-passwords={SECRET}")
    assert flags.peer_router_passwords == (b"secret-never-shown",)
    for text in (repr(flags), str(flags), str(flags.describe()), " ".join(warnings)):
        assert "secret-never-shown" not in text and SECRET not in text
        assert "c2VjcmV0" not in text
    assert flags.describe()["peer-router-passwords"] == ["<set>"]


def _password_file(tmp_path: Path, content: str, mode: int) -> Path:
    path = tmp_path / "bgp-passwords.conf"
    path.write_text(content)
    path.chmod(mode)
    return path


def test_password_file_of_the_seed(tmp_path):
    path = _password_file(tmp_path, f"{SEED_PASSWORD},\n", 0o600)
    flags, warnings = parse("--peer-router-ips=192.168.1.99,192.168.1.100",
                            "--peer-router-asns=65000,65000",
                            f"--peer-router-passwords-file={path}")
    assert flags.peer_router_passwords == (b"SecurePassword\n", None)
    assert warnings[0].startswith("--peer-router-passwords-file: element 1 decodes to a key that "
                                  "ends in a newline")


@pytest.mark.parametrize("mode", [0o400, 0o600, 0o700, 0o200])
def test_password_file_private_modes_are_accepted(tmp_path, mode):
    path = _password_file(tmp_path, PRINTF_PASSWORD, mode)
    if os.geteuid() != 0 and not mode & 0o400:
        pytest.skip("an unreadable file cannot be read without root")
    flags, _ = parse("--peer-router-ips=10.0.0.1", "--peer-router-asns=65000",
                     f"--peer-router-passwords-file={path}")
    assert flags.peer_router_passwords == (b"SecurePassword",)


@pytest.mark.parametrize("mode", [0o644, 0o640, 0o604, 0o440, 0o444])
def test_password_file_readable_by_group_or_others_is_refused(tmp_path, mode):
    path = _password_file(tmp_path, SECRET, mode)
    message = error_of("--peer-router-ips=10.0.0.1", "--peer-router-asns=65000",
                       f"--peer-router-passwords-file={path}")
    assert message.startswith(f"--peer-router-passwords-file: {path} is readable by group or others "
                              f"(mode {mode:04o})")
    assert SECRET not in message


def test_password_file_through_a_symlink_is_checked_on_the_target(tmp_path):
    # Kubernetes Secret volumes are symlinks into ..data/.
    target = _password_file(tmp_path, PRINTF_PASSWORD, 0o644)
    link = tmp_path / "link"
    link.symlink_to(target)
    assert "is readable by group or others" in error_of(
        "--peer-router-ips=10.0.0.1", "--peer-router-asns=65000",
        f"--peer-router-passwords-file={link}")


@pytest.mark.parametrize("content,message", [
    (f"{PRINTF_PASSWORD}\n{PRINTF_PASSWORD}\n", "has more than one line"),
    ("not base64!", "element 1 is not valid base64"),
    ("\xff", "is not ASCII text"),
])
def test_bad_password_file_content(tmp_path, content, message):
    path = tmp_path / "p"
    path.write_bytes(content.encode("latin-1"))
    path.chmod(0o600)
    text = error_of("--peer-router-ips=10.0.0.1", "--peer-router-asns=65000",
                    f"--peer-router-passwords-file={path}")
    assert text.startswith("--peer-router-passwords-file:") and message in text


def test_missing_password_file(tmp_path):
    assert "cannot open" in error_of("--peer-router-passwords-file=" + str(tmp_path / "nope"))


def test_password_file_is_a_directory(tmp_path):
    assert "is not a regular file" in error_of(f"--peer-router-passwords-file={tmp_path}")


def test_empty_password_file_means_no_passwords(tmp_path):
    path = _password_file(tmp_path, "\n", 0o600)
    flags, _ = parse("--peer-router-ips=10.0.0.1", "--peer-router-asns=65000",
                     f"--peer-router-passwords-file={path}")
    assert flags.peer_router_passwords == ()


def test_password_flag_takes_precedence_over_the_file(tmp_path):
    path = _password_file(tmp_path, "this would not decode", 0o644)
    flags, warnings = parse("--peer-router-ips=10.0.0.1", "--peer-router-asns=65000",
                            f"--peer-router-passwords={PRINTF_PASSWORD}",
                            f"--peer-router-passwords-file={path}")
    assert flags.peer_router_passwords == (b"SecurePassword",)
    assert any("--peer-router-passwords-file is not read" in w for w in warnings)


# ------------------------------------------------------------------ strict validation notice


def test_advertising_external_ips_without_a_range_warns_under_strict_validation():
    _, warnings = parse("--advertise-external-ip", "--advertise-loadbalancer-ip")
    assert any("no external IP is advertised" in w for w in warnings)
    assert any("no load-balancer IP is advertised" in w for w in warnings)
    _, warnings = parse("--advertise-external-ip", "--strict-external-ip-validation=false")
    assert warnings == []


# ------------------------------------------------------------------ node name


@pytest.mark.parametrize("override,env,hostname,expected", [
    ("from-flag", {"NODE_NAME": "from-env"}, "from-host", "from-flag"),
    ("", {"NODE_NAME": "from-env"}, "from-host", "from-env"),
    ("", {}, "from-host", "from-host"),
    ("", {"NODE_NAME": " "}, "from-host", "from-host"),
])
def test_node_name_order(override, env, hostname, expected):
    flags = AgentFlags(hostname_override=override)
    assert node_name(flags, env, hostname) == expected


def test_node_name_missing_everywhere():
    with pytest.raises(ConfigError, match="cannot tell this node's name"):
        node_name(AgentFlags(), {}, "")
