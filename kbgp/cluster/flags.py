"""The agent's command line: kube-router's flags, as kbgp reads them.

A kube-router DaemonSet's ``args:`` work unchanged: every kube-router flag is
accepted.  The flags of BGP routing take effect; the others (firewall,
service proxy, CNI, metrics, ...) are accepted and ignored, with one warning
per flag, because kbgp does BGP routing only.  A flag that neither
kube-router nor kbgp has is an error that names it and suggests the nearest
known one.

Syntax follows kube-router's flag library (spf13/pflag):

- ``--name=value`` or ``--name value``; a boolean takes ``--name`` or
  ``--name=VALUE`` with Go's ParseBool spellings (never ``--name false``:
  that ``false`` would be an argument, which is an error here);
- the one-letter forms ``-v N`` / ``-vN`` / ``-v=N``, ``-h`` and ``-V``;
- list flags split on commas; a list flag given twice appends the second
  list to the first;
- durations are Go's (``90s``, ``1m30s``, ``1.5h``); integers are base 10.

``KBGP_<FLAG>`` environment variables (``KBGP_PEER_ROUTER_PASSWORDS`` for
``--peer-router-passwords``) give a value to a flag that is not on the
command line: a password read from a Secret through ``env`` stays out of
``/proc/PID/cmdline``, which every local user can read.

Passwords (base64 on the command line, in the file and the environment) are
kept decoded in ``AgentFlags.peer_router_passwords`` and never appear in an
error, a warning, ``repr()`` or ``describe()``.
"""
from __future__ import annotations

import base64
import difflib
import ipaddress
import os
import re
import stat
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from fractions import Fraction
from typing import Any

from kbgp.errors import ConfigError

from kbgp.control import DEFAULT_CONTROL_SOCKET  # one default for every command

DEFAULT_CLUSTER_ASN = 64512
# kube-router's route protocol number (0x11, "zebra" in iproute2's rt_protos).
DEFAULT_ROUTE_PROTOCOL = 17
MAX_MD5_KEY_LEN = 80  # TCP_MD5SIG_MAXKEYLEN in the Linux kernel
ENV_PREFIX = "KBGP_"

# Go's strconv.ParseBool.
_TRUE = frozenset({"1", "t", "T", "TRUE", "true", "True"})
_FALSE = frozenset({"0", "f", "F", "FALSE", "false", "False"})
BOOL_SPELLINGS = "true or false (also 1, t, T, TRUE, True, 0, f, F, FALSE, False)"


def parse_go_bool(text: str) -> bool | None:
    """Go's ParseBool: True, False, or None when ``text`` is none of its spellings."""
    if text in _TRUE:
        return True
    if text in _FALSE:
        return False
    return None


# ------------------------------------------------------------------ AS numbers


def private_asn_problem(asn: int) -> str | None:
    """Why ``asn`` cannot be the cluster's AS, or None (RFC 6996 private ranges)."""
    if 64512 <= asn <= 65534 or 4200000000 <= asn <= 4294967294:
        return None
    return ("is not a private AS number; expected 64512..65534 or 4200000000..4294967294 "
            "(RFC 6996)")


def peer_asn_problem(asn: int) -> str | None:
    """Why ``asn`` cannot be a neighbour's AS, or None.

    The reserved numbers that kube-router refuses for external peers, each
    with its reason (IANA "Special-Purpose AS Numbers" registry).
    """
    if asn == 0:
        return "is AS 0, which no BGP speaker may use (RFC 7607)"
    if asn == 23456:
        return "is AS_TRANS (RFC 6793), a placeholder, not a real AS"
    if 64000 <= asn <= 64495 or 65552 <= asn <= 131071:
        return "is reserved by IANA, not a usable AS number"
    if 64496 <= asn <= 64511 or 65536 <= asn <= 65551:
        return "is reserved for documentation (RFC 5398), not a usable AS number"
    if asn == 65535 or asn == 4294967295:
        return "is reserved (RFC 7300), not a usable AS number"
    if asn > 4294967295:
        return "is larger than 4294967295, the largest AS number"
    return None


# ------------------------------------------------------------------ durations

_DURATION_UNITS: dict[str, Fraction] = {
    "ns": Fraction(1, 10**9), "us": Fraction(1, 10**6), "\u00b5s": Fraction(1, 10**6),
    "\u03bcs": Fraction(1, 10**6), "ms": Fraction(1, 1000), "s": Fraction(1),
    "m": Fraction(60), "h": Fraction(3600),
}
_DURATION_PART = re.compile(r"([0-9]*)(?:\.([0-9]*))?(ns|us|\u00b5s|\u03bcs|ms|s|m|h)")


def parse_go_duration(text: str) -> Fraction:
    """Go's time.ParseDuration, in seconds: ``90s``, ``1m30s``, ``1.5h``, ``0``.

    Raises ValueError.  Every part needs a unit; only a bare ``0`` has none.
    """
    s = text
    negative = False
    if s[:1] in ("+", "-"):
        negative = s[0] == "-"
        s = s[1:]
    if s == "0":
        return Fraction(0)
    if not s:
        raise ValueError("empty duration")
    total = Fraction(0)
    pos = 0
    while pos < len(s):
        m = _DURATION_PART.match(s, pos)
        if m is None or (not m.group(1) and not m.group(2)):
            raise ValueError(f"bad duration {text!r}")
        number = Fraction(int(m.group(1) or "0"))
        if m.group(2):
            number += Fraction(int(m.group(2)), 10 ** len(m.group(2)))
        total += number * _DURATION_UNITS[m.group(3)]
        pos = m.end()
    return -total if negative else total


def format_seconds(seconds: int) -> str:
    """``5400`` -> ``1h30m0s``, the way Go prints durations (for messages)."""
    h, rest = divmod(seconds, 3600)
    m, s = divmod(rest, 60)
    if h:
        return f"{h}h{m}m{s}s"
    if m:
        return f"{m}m{s}s"
    return f"{s}s"


# ------------------------------------------------------------------ the result


@dataclass(frozen=True, slots=True)
class AgentFlags:
    """Everything the agent's command line says.

    Durations are whole seconds (Go durations truncated, as kube-router
    does).  ``peer_router_passwords`` holds one decoded MD5 key (or None) per
    ``peer_router_ips`` entry, or is empty; it is never shown.
    ``ignored`` names the kube-router flags given that kbgp does not use.
    """

    # Node-to-node peering.
    cluster_asn: int = DEFAULT_CLUSTER_ASN
    nodes_full_mesh: bool = True
    enable_ibgp: bool = True
    bgp_port: int = 179
    router_id: str = ""  # "", "generate" or an IPv4 address
    # External peers (global).
    peer_router_ips: tuple[str, ...] = ()
    peer_router_asns: tuple[int, ...] = ()
    peer_router_ports: tuple[int, ...] = ()
    peer_router_passwords: tuple[bytes | None, ...] = field(default=(), repr=False)
    peer_router_passwords_file: str = ""
    peer_router_multihop_ttl: int | None = None
    # Export.
    advertise_pod_cidr: bool = True
    advertise_cluster_ip: bool = False
    advertise_external_ip: bool = False
    advertise_loadbalancer_ip: bool = False
    override_nexthop: bool = False
    # kube-router's service IP validator (v2.8+): external and load-balancer
    # IPs are advertised only from these ranges when strict.
    strict_external_ip_validation: bool = True
    service_cluster_ip_range: tuple[str, ...] = ("10.96.0.0/12",)
    service_external_ip_range: tuple[str, ...] = ()
    loadbalancer_ip_range: tuple[str, ...] = ()
    # Timers and graceful restart (RFC 4724), in seconds.
    bgp_holdtime: int = 90
    bgp_graceful_restart: bool = False
    bgp_graceful_restart_time: int = 90
    bgp_graceful_restart_deferral_time: int = 360
    # Families and overlay.
    enable_ipv4: bool = True
    enable_ipv6: bool = False
    enable_overlay: bool = True
    overlay_type: str = "subnet"
    overlay_encap: str = "ipip"
    overlay_encap_port: int = 5555
    # Periods, in seconds.
    routes_sync_period: int = 300
    injected_routes_sync_period: int = 60
    cache_sync_timeout: int = 60
    # Where the cluster state comes from.
    hostname_override: str = ""
    kubeconfig: str = ""
    master: str = ""
    cluster_file: str = ""
    # kbgp's own.
    check: bool = False
    control_socket: str = DEFAULT_CONTROL_SOCKET
    route_protocol: int = DEFAULT_ROUTE_PROTOCOL
    log_level: str = "info"
    help: bool = False
    version: bool = False
    ignored: tuple[str, ...] = ()

    def __repr__(self) -> str:
        parts = []
        for f in fields(self):
            value = getattr(self, f.name)
            if f.name == "peer_router_passwords":
                value = _hidden(value)
            parts.append(f"{f.name}={value!r}")
        return f"AgentFlags({', '.join(parts)})"

    __str__ = __repr__

    def describe(self) -> dict[str, Any]:
        """The flags by their command-line names, safe to print: passwords are "<set>"."""
        out: dict[str, Any] = {}
        for f in fields(self):
            value = getattr(self, f.name)
            if f.name == "peer_router_passwords":
                value = _hidden(value)
            elif isinstance(value, tuple):
                value = list(value)
            out[f.name.replace("_", "-")] = value
        return out


def _hidden(passwords: tuple[bytes | None, ...]) -> list[str | None]:
    return ["<set>" if p is not None else None for p in passwords]


# ------------------------------------------------------------------ flag table

# Kinds: bool, uint, duration, string, choice, ips, uints, strings, cidrs.


@dataclass(frozen=True, slots=True)
class _Flag:
    name: str
    kind: str
    attr: str | None = None  # AgentFlags field; None: accepted and ignored
    low: int = 0
    high: int = 0
    choices: tuple[str, ...] = ()
    noun: str = "a number"  # what one element is, for messages
    short: str = ""
    why: str = ""  # why it is ignored


def usage() -> str:
    """``kbgp agent --help``: the flags that take effect, then the ignored ones."""
    used = sorted(f"  --{f.name} ({f.kind})" for f in _FLAGS)
    ignored = sorted(f"--{f.name}" for f in _IGNORED)
    return ("usage: kbgp agent [flags]   (kube-router's flag names and syntax)\n\n"
            "flags that take effect:\n" + "\n".join(used) +
            "\n\nkube-router flags accepted and ignored (kbgp does BGP routing only):\n  " +
            ", ".join(ignored) + "\n")


def _real(name: str, kind: str, **kw: Any) -> _Flag:
    return _Flag(name, kind, name.replace("-", "_"), **kw)


_FLAGS: tuple[_Flag, ...] = (
    # BGP routing: these take effect.
    _real("advertise-cluster-ip", "bool"),
    _real("advertise-external-ip", "bool"),
    _real("advertise-loadbalancer-ip", "bool"),
    _real("advertise-pod-cidr", "bool"),
    _real("bgp-graceful-restart", "bool"),
    _real("bgp-graceful-restart-deferral-time", "duration"),
    _real("bgp-graceful-restart-time", "duration"),
    _real("bgp-holdtime", "duration"),
    _real("bgp-port", "uint", low=1, high=65535, noun="a port number"),
    _real("cache-sync-timeout", "duration"),
    _real("cluster-asn", "uint", low=0, high=4294967295, noun="an AS number"),
    _real("enable-ibgp", "bool"),
    _real("enable-ipv4", "bool"),
    _real("enable-ipv6", "bool"),
    _real("enable-overlay", "bool"),
    _real("hostname-override", "string"),
    _real("injected-routes-sync-period", "duration"),
    _real("kubeconfig", "string"),
    _real("loadbalancer-ip-range", "cidrs"),
    _real("master", "string"),
    _real("nodes-full-mesh", "bool"),
    _real("overlay-encap", "choice", choices=("ipip", "fou")),
    _real("overlay-encap-port", "uint", low=1024, high=65535, noun="a port number"),
    _real("overlay-type", "choice", choices=("subnet", "full")),
    _real("override-nexthop", "bool"),
    _real("peer-router-asns", "uints", low=0, high=4294967295, noun="an AS number"),
    _real("peer-router-ips", "ips"),
    _real("peer-router-multihop-ttl", "uint", low=0, high=255, noun="a TTL"),
    _real("peer-router-passwords", "strings"),
    _real("peer-router-passwords-file", "string"),
    _real("peer-router-ports", "uints", low=1, high=65535, noun="a port number"),
    _real("router-id", "string"),
    _real("routes-sync-period", "duration"),
    _real("service-cluster-ip-range", "cidrs"),
    _real("service-external-ip-range", "cidrs"),
    _real("strict-external-ip-validation", "bool"),
    _Flag("help", "bool", "help", short="h"),
    _Flag("version", "bool", "version", short="V"),
    # kbgp's own.
    _real("check", "bool"),
    _real("cluster-file", "string"),
    _real("control-socket", "string"),
    _real("log-level", "choice", choices=("debug", "info", "warning", "error")),
    _real("route-protocol", "uint", low=5, high=255, noun="a route protocol number"),
)

_ONLY = ", and kbgp does BGP routing only"
_WHY_CNI = "configures the CNI plugin and the pod bridge" + _ONLY
_WHY_FW = "configures the network policy firewall" + _ONLY
_WHY_PROXY = "configures the service proxy (IPVS)" + _ONLY
_WHY_LB = "configures the load-balancer IP allocator" + _ONLY
_WHY_OBS = "configures the metrics, health or profiling endpoints" + _ONLY
_WHY_BFD = "configures BFD, which kbgp does not implement (the hold time detects a dead peer)"
_WHY_GOBGP = "opens the embedded GoBGP's gRPC API (kbgp has --control-socket)"

_IGNORED: tuple[_Flag, ...] = (
    _Flag("auto-mtu", "bool", why=_WHY_CNI),
    _Flag("bfd-desired-min-tx-interval", "uint", high=4294967, why=_WHY_BFD),
    _Flag("bfd-detection-multiplier", "uint", high=255, why=_WHY_BFD),
    _Flag("bfd-port", "uint", high=65535, why=_WHY_BFD),
    _Flag("bfd-required-min-rx-interval", "uint", high=4294967, why=_WHY_BFD),
    _Flag("cleanup-config", "bool", why="cleans up iptables, IPVS and ipset state and exits" + _ONLY),
    _Flag("cluster-cidr", "string", why="was removed (the pod CIDRs come from the nodes)"),
    _Flag("disable-source-dest-check", "bool", why="changes an AWS EC2 instance attribute" + _ONLY),
    _Flag("enable-bfd", "bool", why=_WHY_BFD),
    _Flag("enable-cni", "bool", why=_WHY_CNI),
    _Flag("enable-pod-egress", "bool", why="sets up pod egress masquerading" + _ONLY),
    _Flag("enable-pprof", "bool", why=_WHY_OBS),
    _Flag("excluded-cidrs", "strings", why=_WHY_PROXY),
    _Flag("gobgp-admin-address", "string", why=_WHY_GOBGP),
    _Flag("gobgp-admin-port", "uint", high=65535, why=_WHY_GOBGP),
    _Flag("hairpin-mode", "bool", why=_WHY_PROXY),
    _Flag("health-addr", "string", why=_WHY_OBS),
    _Flag("health-port", "uint", high=65535, why=_WHY_OBS),
    _Flag("iptables-sync-period", "duration", why=_WHY_FW),
    _Flag("ipvs-graceful-period", "duration", why=_WHY_PROXY),
    _Flag("ipvs-graceful-termination", "bool", why=_WHY_PROXY),
    _Flag("ipvs-permit-all", "bool", why=_WHY_PROXY),
    _Flag("ipvs-sync-period", "duration", why=_WHY_PROXY),
    _Flag("loadbalancer-default-class", "bool", why=_WHY_LB),
    _Flag("loadbalancer-sync-period", "duration", why=_WHY_LB),
    _Flag("masquerade-all", "bool", why=_WHY_PROXY),
    _Flag("metrics-addr", "string", why=_WHY_OBS),
    _Flag("metrics-path", "string", why=_WHY_OBS),
    _Flag("metrics-port", "uint", high=65535, why=_WHY_OBS),
    _Flag("netpol-default-deny", "bool", why=_WHY_FW),
    _Flag("nodeport-bindon-all-ip", "bool", why=_WHY_PROXY),
    _Flag("run-firewall", "bool", why=_WHY_FW),
    _Flag("run-loadbalancer", "bool", why=_WHY_LB),
    _Flag("run-router", "bool", why="switches the routing controller on or off; kbgp is that controller"),
    _Flag("run-service-proxy", "bool", why=_WHY_PROXY),
    _Flag("runtime-endpoint", "string", why=_WHY_PROXY),
    _Flag("service-node-port-range", "string", why=_WHY_PROXY),
    _Flag("service-tcp-timeout", "duration", why=_WHY_PROXY),
    _Flag("service-tcpfin-timeout", "duration", why=_WHY_PROXY),
    _Flag("service-udp-timeout", "duration", why=_WHY_PROXY),
    _Flag("v", "string", short="v", why="sets klog's verbosity (kbgp has --log-level)"),
)

FLAGS: dict[str, _Flag] = {f.name: f for f in _FLAGS + _IGNORED}
_SHORT: dict[str, _Flag] = {f.short: f for f in FLAGS.values() if f.short}
#: Every kube-router flag that kbgp accepts and ignores.
IGNORED_FLAGS: frozenset[str] = frozenset(f.name for f in _IGNORED)
#: Every flag that takes effect.
ROUTING_FLAGS: frozenset[str] = frozenset(f.name for f in _FLAGS)

_DEFAULTS = AgentFlags()


def _suggest(name: str) -> str:
    near = difflib.get_close_matches(name, list(FLAGS), n=1, cutoff=0.6)
    return f"; did you mean --{near[0]}?" if near else ""


# ------------------------------------------------------------------ tokenising


@dataclass(frozen=True, slots=True)
class _Given:
    flag: _Flag
    value: str | None  # None: a boolean given as --name
    where: str  # "--name" or "KBGP_NAME", for messages


def _tokenise(argv: list[str]) -> list[_Given]:
    out: list[_Given] = []
    i = 0
    while i < len(argv):
        arg = argv[i]
        i += 1
        if arg == "--":
            if i < len(argv):
                raise ConfigError(f"unexpected argument {argv[i]!r} after '--': kbgp agent takes "
                                  f"flags only")
            break
        if arg.startswith("--"):
            name, eq, value = arg[2:].partition("=")
            flag = FLAGS.get(name)
            if flag is None:
                shown = name if len(name) <= 60 else name[:57] + "..."
                raise ConfigError(f"unknown flag --{shown}: neither kube-router nor kbgp has it"
                                  f"{_suggest(name)}")
            if eq:
                out.append(_Given(flag, value, f"--{name}"))
            elif flag.kind == "bool":
                out.append(_Given(flag, None, f"--{name}"))
            elif i < len(argv):
                out.append(_Given(flag, argv[i], f"--{name}"))
                i += 1
            else:
                raise ConfigError(f"--{name} needs a value")
        elif arg.startswith("-") and len(arg) > 1:
            i = _short(arg, argv, i, out)
        else:
            shown = arg if len(arg) <= 60 else arg[:57] + "..."
            hint = ""
            if parse_go_bool(arg) is not None and out and out[-1].flag.kind == "bool":
                hint = f" (a boolean flag takes its value with '=': {out[-1].where}={arg})"
            raise ConfigError(f"unexpected argument {shown!r}: kbgp agent takes flags only{hint}")
    return out


def _short(arg: str, argv: list[str], i: int, out: list[_Given]) -> int:
    """One ``-x...`` argument: booleans may be combined (``-hV``); ``-v`` takes a value."""
    letters = arg[1:]
    j = 0
    while j < len(letters):
        flag = _SHORT.get(letters[j])
        if flag is None:
            raise ConfigError(f"unknown flag -{letters[j]}: the one-letter flags are -v, -h and "
                              f"-V; long flags start with '--'{_suggest(letters)}")
        rest = letters[j + 1:]
        if flag.kind == "bool":
            if rest.startswith("="):
                out.append(_Given(flag, rest[1:], f"-{flag.short}"))
                return i
            out.append(_Given(flag, None, f"-{flag.short}"))
            j += 1
            continue
        if rest:
            out.append(_Given(flag, rest.removeprefix("="), f"-{flag.short}"))
        elif i < len(argv):
            out.append(_Given(flag, argv[i], f"-{flag.short}"))
            i += 1
        else:
            raise ConfigError(f"-{flag.short} needs a value")
        return i
    return i


def _from_env(env: Mapping[str, str], warnings: list[str]) -> list[_Given]:
    out: list[_Given] = []
    for key in sorted(env):
        if not key.startswith(ENV_PREFIX):
            continue
        name = key[len(ENV_PREFIX):].lower().replace("_", "-")
        flag = FLAGS.get(name)
        if flag is None:
            near = difflib.get_close_matches(name, list(FLAGS), n=1, cutoff=0.6)
            hint = f"; did you mean {ENV_PREFIX}{near[0].upper().replace('-', '_')}?" if near else ""
            warnings.append(f"environment variable {key} is not a kbgp setting and is ignored{hint}")
            continue
        out.append(_Given(flag, env[key], key))
    return out


# ------------------------------------------------------------------ values


def _show(text: str) -> str:
    """A user-typed value for a message (never used for passwords)."""
    shown = text if len(text) <= 60 else text[:57] + "..."
    return '"' + shown.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _bool(g: _Given) -> bool:
    if g.value is None:
        return True
    value = parse_go_bool(g.value)
    if value is None:
        raise ConfigError(f"{g.where}: {_show(g.value)} is not a boolean; expected {BOOL_SPELLINGS}")
    return value


def _uint_text(text: str) -> int | None:
    return int(text) if text.isascii() and text.isdigit() else None


def _uint(g: _Given) -> int:
    f = g.flag
    value = _uint_text(g.value or "")
    if value is None:
        raise ConfigError(f"{g.where}: {_show(g.value or '')} is not {f.noun}; expected a "
                          f"base-10 integer {f.low}..{f.high}")
    if not f.low <= value <= f.high:
        raise ConfigError(f"{g.where}: {value} is out of range; expected {f.low}..{f.high}")
    return value


def _duration(g: _Given) -> int:
    text = g.value or ""
    try:
        seconds = parse_go_duration(text)
    except ValueError:
        raise ConfigError(f"{g.where}: {_show(text)} is not a duration; expected a number with a "
                          f"unit, like 90s, 1m30s or 1.5h (units h, m, s, ms)") from None
    if seconds < 0:
        raise ConfigError(f"{g.where}: {_show(text)} is negative; expected a positive duration")
    return int(seconds)  # whole seconds, truncated as kube-router does


def _split(text: str) -> list[str]:
    return [] if text == "" else text.split(",")


def _elements_error(g: _Given, i: int, bad: str, why: str) -> ConfigError:
    return ConfigError(f"{g.where}: element {i} {_show(bad)} {why}")


def _uints(g: _Given) -> list[int]:
    f = g.flag
    out = []
    for i, part in enumerate(_split(g.value or ""), 1):
        value = _uint_text(part)
        if value is None:
            why = "is empty" if part == "" else f"is not {f.noun}"
            raise _elements_error(g, i, part, f"{why}; expected a base-10 integer {f.low}..{f.high}")
        if not f.low <= value <= f.high:
            raise _elements_error(g, i, part, f"is out of range; expected {f.low}..{f.high}")
        out.append(value)
    return out


def _ips(g: _Given) -> list[str]:
    text = (g.value or "").strip().strip("[]")
    out = []
    for i, part in enumerate(_split(text), 1):
        cleaned = part.strip().strip('"').strip()
        try:
            out.append(str(ipaddress.ip_address(cleaned)))
        except ValueError:
            raise _elements_error(g, i, part, "is not an IP address") from None
    return out


def _cidrs(g: _Given) -> list[str]:
    out = []
    for i, part in enumerate(_split(g.value or ""), 1):
        try:
            out.append(str(ipaddress.ip_network(part.strip(), strict=False)))
        except ValueError:
            raise _elements_error(g, i, part, "is not a CIDR like 10.96.0.0/12") from None
    return out


def _choice(g: _Given) -> str:
    value = g.value or ""
    if value not in g.flag.choices:
        raise ConfigError(f"{g.where}: {_show(value)} is not one of "
                          f"{', '.join(g.flag.choices)}")
    return value


def _check_value(g: _Given) -> Any:
    """The value of one given flag, checked by its kind."""
    kind = g.flag.kind
    if kind == "bool":
        return _bool(g)
    if kind == "uint":
        return _uint(g)
    if kind == "duration":
        return _duration(g)
    if kind == "choice":
        return _choice(g)
    if kind == "uints":
        return _uints(g)
    if kind == "ips":
        return _ips(g)
    if kind == "cidrs":
        return _cidrs(g)
    if kind == "strings":
        # Kept raw: passwords are checked later, without ever echoing them.
        return _split(g.value or "")
    return g.value or ""


# ------------------------------------------------------------------ passwords


def decode_password(text: str) -> bytes | None:
    """Standard base64 with padding -> the key; None when it is not that.

    CR and LF are dropped first, as Go's decoder does; any other character
    outside the alphabet (a space, say) makes it invalid.
    """
    cleaned = text.replace("\r", "").replace("\n", "")
    try:
        key = base64.b64decode(cleaned, validate=True)
    except ValueError:  # binascii.Error, or non-ASCII text
        return None
    return key


def password_problem(key: bytes | None) -> str | None:
    """Why a decoded key cannot be used (the key itself is never in the text)."""
    if key is None:
        return ("is not valid base64 (the standard alphabet with '=' padding, "
                "as `printf %s KEY | base64` writes it)")
    if len(key) > MAX_MD5_KEY_LEN:
        return f"decodes to more than {MAX_MD5_KEY_LEN} bytes, the longest TCP MD5 key Linux takes"
    return None


NEWLINE_KEY_WARNING = ("decodes to a key that ends in a newline, which is used as part of the "
                       "key (`echo KEY | base64` adds it; `printf %s KEY | base64` does not)")


def _passwords(items: list[str], where: str, warnings: list[str]) -> list[bytes | None]:
    out: list[bytes | None] = []
    for i, item in enumerate(items, 1):
        if item.replace("\r", "").replace("\n", "") == "":
            out.append(None)  # an empty item: this peer has no password
            continue
        key = decode_password(item)
        problem = password_problem(key)
        if problem is not None:
            raise ConfigError(f"{where}: element {i} {problem}")
        assert key is not None
        if not key:
            out.append(None)
            continue
        if key.endswith(b"\n"):
            warnings.append(f"{where}: element {i} {NEWLINE_KEY_WARNING}")
        out.append(key)
    return out


def read_password_file(path: str) -> list[str]:
    """The comma-separated items of ``--peer-router-passwords-file``.

    The file must be a regular file that neither group nor others can read:
    it holds MD5 keys.  One line; a final newline is allowed.
    """
    where = "--peer-router-passwords-file"
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC | os.O_NOCTTY)
    except OSError as exc:
        raise ConfigError(f"{where}: cannot open {path}: {exc.strerror or exc}") from None
    try:
        st = os.fstat(fd)  # of the opened file: no window between check and read
        if not stat.S_ISREG(st.st_mode):
            raise ConfigError(f"{where}: {path} is not a regular file")
        if st.st_mode & (stat.S_IRGRP | stat.S_IROTH):
            raise ConfigError(
                f"{where}: {path} is readable by group or others (mode "
                f"{stat.S_IMODE(st.st_mode):04o}) and holds passwords; kbgp refuses it: "
                f"`chmod 600 {path}`, or `defaultMode: 0400` on the Secret volume")
        chunks = []
        while True:
            chunk = os.read(fd, 65536)
            if not chunk:
                break
            chunks.append(chunk)
            if sum(map(len, chunks)) > 1 << 20:
                raise ConfigError(f"{where}: {path} is larger than 1 MiB; expected one line of "
                                  f"base64 passwords")
    except OSError as exc:
        raise ConfigError(f"{where}: cannot read {path}: {exc.strerror or exc}") from None
    finally:
        os.close(fd)
    raw = b"".join(chunks)
    try:
        text = raw.decode("ascii")
    except UnicodeDecodeError:
        raise ConfigError(f"{where}: {path} is not ASCII text; expected one line of "
                          f"comma-separated base64 passwords") from None
    if text.endswith("\r\n"):
        text = text[:-2]
    elif text.endswith("\n"):
        text = text[:-1]
    if "\n" in text or "\r" in text:
        raise ConfigError(f"{where}: {path} has more than one line; expected the passwords "
                          f"comma-separated on one line")
    return _split(text)


# ------------------------------------------------------------------ node name


def node_name(flags: AgentFlags, env: Mapping[str, str], hostname: str) -> str:
    """This node's name: ``--hostname-override``, then ``NODE_NAME``, then the host name."""
    for candidate in (flags.hostname_override, env.get("NODE_NAME", ""), hostname):
        candidate = (candidate or "").strip()
        if candidate:
            return candidate
    raise ConfigError("cannot tell this node's name: set --hostname-override or the NODE_NAME "
                      "environment variable (the pod's spec.nodeName)")


# ------------------------------------------------------------------ parsing


def parse_agent_args(argv: list[str], env: Mapping[str, str]) -> tuple[AgentFlags, list[str]]:
    """Read the agent's flags (and ``KBGP_*`` variables of ``env``).

    Returns the flags and the warnings to log; raises ``ConfigError`` whose
    message names the flag and the bad element.
    """
    warnings: list[str] = []
    given = _tokenise(list(argv))
    on_command_line = {g.flag.name for g in given}
    from_env = [g for g in _from_env(env, warnings) if g.flag.name not in on_command_line]
    values: dict[str, Any] = {}
    seen_lists: set[str] = set()
    ignored: list[str] = []
    ignored_values: dict[str, Any] = {}
    for g in from_env + given:
        value = _check_value(g)
        f = g.flag
        if f.attr is None:
            if f.name not in ignored_values:
                ignored.append(f.name)
            ignored_values[f.name] = value
            continue
        if isinstance(value, list):
            # pflag: the first use replaces the default, later uses append.
            if f.name in seen_lists:
                values[f.attr] = values[f.attr] + value
            else:
                values[f.attr] = value
                seen_lists.add(f.name)
        else:
            values[f.attr] = value
    for name in ignored:
        f = FLAGS[name]
        extra = ""
        if name == "run-router" and ignored_values[name] is False:
            extra = " (kbgp runs BGP routing all the same: to stop it, do not run kbgp)"
        warnings.append(f"--{name} is ignored: in kube-router it {f.why}{extra}")
    return _build(values, tuple(ignored), warnings), warnings


def _build(values: dict[str, Any], ignored: tuple[str, ...], warnings: list[str]) -> AgentFlags:
    def get(attr: str) -> Any:
        return values.get(attr, getattr(_DEFAULTS, attr))

    # --cluster-asn: 0 (the default) means 64512.
    cluster_asn = get("cluster_asn") or DEFAULT_CLUSTER_ASN
    problem = private_asn_problem(cluster_asn)
    if problem is not None:
        raise ConfigError(f"--cluster-asn: {cluster_asn} {problem}")

    router_id = get("router_id")
    if router_id not in ("", "generate"):
        try:
            rid = ipaddress.ip_address(router_id)
        except ValueError:
            rid = None
        if rid is None or rid.version != 4 or int(rid) == 0:
            raise ConfigError(f"--router-id: {_show(router_id)} is not a router id; expected a "
                              f"non-zero IPv4 address (a router id is 4 bytes, RFC 4271 4.2) or "
                              f"'generate' (derived from the node's address)")
        router_id = str(rid)

    ips = tuple(get("peer_router_ips"))
    for i, ip in enumerate(ips):
        if ip in ips[:i]:
            raise ConfigError(f"--peer-router-ips: element {i + 1} {_show(ip)} is listed twice "
                              f"(also element {ips.index(ip) + 1})")
    asns = tuple(get("peer_router_asns"))
    if len(asns) != len(ips):
        raise ConfigError(f"--peer-router-asns: {len(asns)} AS numbers for {len(ips)} "
                          f"--peer-router-ips; expected one per address, in the same order")
    for i, asn in enumerate(asns, 1):
        problem = peer_asn_problem(asn)
        if problem is not None:
            raise ConfigError(f"--peer-router-asns: element {i} \"{asn}\" {problem}")
    ports = tuple(get("peer_router_ports"))
    if ports and len(ports) != len(ips):
        raise ConfigError(f"--peer-router-ports: {len(ports)} ports for {len(ips)} "
                          f"--peer-router-ips; expected one per address, or none (all 179)")

    pw_items: list[str] = list(values.get("peer_router_passwords", ()))
    pw_file = get("peer_router_passwords_file")
    pw_where = "--peer-router-passwords"
    if "peer_router_passwords" in values:
        if pw_file:
            warnings.append("--peer-router-passwords-file is not read: --peer-router-passwords "
                            "is set and takes precedence (as in kube-router)")
    elif pw_file:
        pw_items = read_password_file(pw_file)
        pw_where = "--peer-router-passwords-file"
    passwords = tuple(_passwords(pw_items, pw_where, warnings))
    if passwords and len(passwords) != len(ips):
        raise ConfigError(f"{pw_where}: {len(passwords)} passwords for {len(ips)} "
                          f"--peer-router-ips; expected one per address (an empty item for no "
                          f"password), or none")

    ttl = get("peer_router_multihop_ttl") or 0
    if ttl == 1:
        raise ConfigError("--peer-router-multihop-ttl: 1 is out of range; expected 2..255 "
                          "(leave the flag out for directly connected peers)")
    multihop_ttl = ttl if ttl >= 2 else None

    hold = get("bgp_holdtime")
    if not 3 <= hold <= 65536:
        raise ConfigError(f"--bgp-holdtime: {format_seconds(hold)} is out of range; expected "
                          f"3s..18h12m16s")
    if hold == 65536:
        # kube-router allows 65536 s, but the OPEN message's field is 16 bits (RFC 4271 4.2).
        warnings.append("--bgp-holdtime: 18h12m16s (65536 s) does not fit the 16-bit hold time "
                        "of the OPEN message (RFC 4271 4.2); 65535 s is used")
        hold = 65535
    gr = get("bgp_graceful_restart")
    gr_time = get("bgp_graceful_restart_time")
    gr_deferral = get("bgp_graceful_restart_deferral_time")
    if gr:
        # RFC 4724 3: the Restart Time field is 12 bits.
        if not 1 <= gr_time <= 4095:
            raise ConfigError(f"--bgp-graceful-restart-time: {format_seconds(gr_time)} is out of "
                              f"range; expected 1s..4095s (RFC 4724 3: a 12-bit field)")
        if not 1 <= gr_deferral <= 18 * 3600:
            raise ConfigError(f"--bgp-graceful-restart-deferral-time: "
                              f"{format_seconds(gr_deferral)} is out of range; expected 1s..18h")
    for attr in ("routes_sync_period", "injected_routes_sync_period", "cache_sync_timeout"):
        if get(attr) < 1:
            name = attr.replace("_", "-")
            raise ConfigError(f"--{name}: {format_seconds(get(attr))} is too short; expected at "
                              f"least 1s")
    if not get("control_socket"):
        raise ConfigError("--control-socket: empty; expected a path like "
                          f"{DEFAULT_CONTROL_SOCKET}")
    if get("kubeconfig") and get("cluster_file"):
        raise ConfigError("--cluster-file and --kubeconfig are both set; expected one source of "
                          "cluster state")
    if get("master") and get("cluster_file"):
        raise ConfigError("--cluster-file and --master are both set; expected one source of "
                          "cluster state")
    if get("strict_external_ip_validation") and (
            get("advertise_external_ip") or get("advertise_loadbalancer_ip")):
        if get("advertise_external_ip") and not get("service_external_ip_range"):
            warnings.append("--advertise-external-ip: with --strict-external-ip-validation (the "
                            "default) and no --service-external-ip-range, no external IP is "
                            "advertised (as in kube-router 2.8+)")
        if get("advertise_loadbalancer_ip") and not get("loadbalancer_ip_range"):
            warnings.append("--advertise-loadbalancer-ip: with --strict-external-ip-validation "
                            "(the default) and no --loadbalancer-ip-range, no load-balancer IP is "
                            "advertised (as in kube-router 2.8+)")

    kw = {f.name: get(f.name) for f in fields(AgentFlags)}
    kw.update(
        cluster_asn=cluster_asn,
        router_id=router_id,
        peer_router_ips=ips,
        peer_router_asns=asns,
        peer_router_ports=ports,
        peer_router_passwords=passwords,
        peer_router_multihop_ttl=multihop_ttl,
        bgp_holdtime=hold,
        service_cluster_ip_range=tuple(get("service_cluster_ip_range")),
        service_external_ip_range=tuple(get("service_external_ip_range")),
        loadbalancer_ip_range=tuple(get("loadbalancer_ip_range")),
        ignored=ignored,
    )
    return AgentFlags(**kw)

