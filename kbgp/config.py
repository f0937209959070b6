"""The speaker's configuration file: ``kbgp speaker --config FILE``.

The file is YAML (JSON is YAML too) with kebab-case keys; the settings become
frozen dataclasses with snake_case fields.  Everything is checked here, once:
every problem raises ``ConfigError`` whose message names the file, the key
path (``neighbors[2].hold-time``), what is wrong and what was expected.

BGP MD5 passwords (``neighbors[].password``) are base64 in the file and bytes
in ``NeighborConfig.password``.  They never appear in an error message, in
``repr()``/``str()`` of a config object, nor in ``describe()``.

Two YAML 1.1 traps are closed by the loader: ``65000:1`` is a string here, not
the base-60 integer 3900001 that plain ``yaml.safe_load`` makes of it, and a
key written twice in one mapping is an error instead of the last one silently
winning.  Otherwise the loader is ``yaml.SafeLoader``.
"""
from __future__ import annotations

import base64
import difflib
import ipaddress
import os
import re
from dataclasses import dataclass, field, fields
from typing import Any

import yaml

from kbgp._fast.attrs import community_str, parse_community, parse_large_community
from kbgp.bgp.constants import WELL_KNOWN_COMMUNITY_VALUES
from kbgp.bgp.messages import IPV4_UNICAST, IPV6_UNICAST, Family, parse_family
from kbgp.errors import ConfigError
from kbgp.policy.model import ACTIONS, PEER_CLASSES, SOURCES, Match, Policy, PrefixRange, Rule

BGP_PORT = 179
MAX_ASN = 0xFFFFFFFF
MAX_U32 = 0xFFFFFFFF
MAX_MD5_KEY_LEN = 80  # TCP_MD5SIG_MAXKEYLEN in the Linux kernel
DEFAULT_HOLD_TIME = 90
# RFC 4271 suggests 120 s; the peers of a node are other nodes of the cluster,
# which come back in seconds, so kbgp retries sooner.
DEFAULT_CONNECT_RETRY = 5
DEFAULT_RESTART_TIME = 120
DEFAULT_STALE_TIME = 360
DEFAULT_FAMILIES: tuple[Family, ...] = (IPV4_UNICAST, IPV6_UNICAST)
POLICIES = ("accept", "reject")
MAX_PREPEND = 32

TOP_KEYS = (
    "router-id", "asn", "listen", "cluster-id", "kernel", "hold-time",
    "connect-retry", "graceful-restart", "neighbors", "originate",
    "prefix-sets", "neighbor-sets", "policy",
)
GRACEFUL_RESTART_KEYS = ("enabled", "restart-time", "stale-time", "deferral-time")
NEIGHBOR_KEYS = (
    "address", "asn", "port", "local-address", "password", "passive",
    "multihop-ttl", "ttl-security", "hold-time", "route-reflector-client",
    "families", "import", "export", "description", "max-prefixes", "peer-class",
)
POLICY_KEYS = ("import", "export")
RULE_KEYS = ("name", "match", "action", "add-communities", "add-large-communities", "prepend",
             "next-hop-self", "local-pref")
MATCH_KEYS = ("prefix-set", "neighbor-set", "peer-class", "source")
RULE_PREPEND_KEYS = ("asn", "repeat")
ORIGINATE_KEYS = (
    "prefix", "next-hop", "communities", "large-communities", "med",
    "local-pref", "as-path-prepend",
)
PREPEND_KEYS = ("asn", "repeat")

_FAMILY_NAMES = {IPV4_UNICAST: "ipv4", IPV6_UNICAST: "ipv6"}
_HOLD_TIME_RANGE = "0 (no keepalives) or 3..65535 seconds"
_MISSING: Any = object()


# ------------------------------------------------------------------ settings


@dataclass(frozen=True, slots=True)
class ListenAddress:
    """One address the speaker accepts BGP connections on."""

    address: str
    port: int = BGP_PORT

    def __str__(self) -> str:
        if ":" in self.address:
            return f"[{self.address}]:{self.port}"
        return f"{self.address}:{self.port}"


@dataclass(frozen=True, slots=True)
class GracefulRestartConfig:
    """Graceful restart (RFC 4724) as this speaker announces and honours it."""

    enabled: bool = True
    restart_time: int = DEFAULT_RESTART_TIME
    stale_time: int = DEFAULT_STALE_TIME
    # After a restart, how long to wait for the peers' End-of-RIB before
    # sending our routes anyway (RFC 4724 4.1 selection deferral).
    deferral_time: int = DEFAULT_RESTART_TIME

    def describe(self) -> dict[str, Any]:
        return {"enabled": self.enabled, "restart-time": self.restart_time,
                "stale-time": self.stale_time, "deferral-time": self.deferral_time}


@dataclass(frozen=True, slots=True)
class NeighborConfig:
    """One configured BGP peer.

    ``asn`` 0 accepts whatever AS the peer's OPEN announces.  ``hold_time`` is
    the neighbor's own ``hold-time`` or, when absent, the global one.
    ``import_policy``/``export_policy`` are "accept", "reject" or None; None is
    decided once the peer's AS is known: see ``effective_import``.
    ``password`` is the decoded MD5 key and is never shown.
    """

    address: str
    asn: int
    port: int = BGP_PORT
    local_address: str | None = None
    password: bytes | None = field(default=None, repr=False)
    passive: bool = False
    multihop_ttl: int | None = None
    ttl_security: int | None = None
    hold_time: int = DEFAULT_HOLD_TIME
    route_reflector_client: bool = False
    families: tuple[Family, ...] = DEFAULT_FAMILIES
    import_policy: str | None = None
    export_policy: str | None = None
    description: str | None = None
    max_prefixes: int | None = None
    # "mesh", "rr-client" or "external" for policy matches; None: derived (see effective_class).
    peer_class: str | None = None

    def effective_class(self, local_asn: int) -> str:
        """The peer class policy rules match: as configured, else rr-client for a
        route-reflector client, mesh for another speaker of our AS, external otherwise."""
        if self.peer_class is not None:
            return self.peer_class
        if self.route_reflector_client:
            return "rr-client"
        return "mesh" if self.asn == local_asn else "external"

    def __repr__(self) -> str:
        parts = []
        for f in fields(self):
            value = getattr(self, f.name)
            if f.name == "password":
                parts.append(f"password={'<set>' if value is not None else None}")
            else:
                parts.append(f"{f.name}={value!r}")
        return f"NeighborConfig({', '.join(parts)})"

    def effective_ttl(self, ibgp: bool) -> int:
        """The IP TTL to send with: multihop-ttl, else 255 with GTSM or for
        iBGP, else 1 (a directly connected eBGP peer)."""
        if self.multihop_ttl is not None:
            return self.multihop_ttl
        if self.ttl_security is not None or ibgp:
            return 255
        return 1

    @property
    def min_ttl(self) -> int | None:
        """GTSM (RFC 5082): the lowest TTL accepted from the peer, or None."""
        if self.ttl_security is None:
            return None
        return 256 - self.ttl_security

    def effective_import(self, ibgp: bool) -> str:
        """The import policy; unset means reject for eBGP (RFC 8212), accept for iBGP."""
        if self.import_policy is not None:
            return self.import_policy
        return "accept" if ibgp else "reject"

    def effective_export(self, ibgp: bool) -> str:
        """The export policy; unset means reject for eBGP (RFC 8212), accept for iBGP."""
        if self.export_policy is not None:
            return self.export_policy
        return "accept" if ibgp else "reject"

    def describe(self) -> dict[str, Any]:
        out: dict[str, Any] = {"address": self.address, "asn": self.asn, "port": self.port}
        if self.local_address is not None:
            out["local-address"] = self.local_address
        if self.password is not None:
            out["password"] = "<set>"
        out["passive"] = self.passive
        if self.multihop_ttl is not None:
            out["multihop-ttl"] = self.multihop_ttl
        if self.ttl_security is not None:
            out["ttl-security"] = self.ttl_security
        out["hold-time"] = self.hold_time
        out["route-reflector-client"] = self.route_reflector_client
        out["families"] = [_FAMILY_NAMES.get(f, f"afi-{f[0]}-safi-{f[1]}") for f in self.families]
        if self.import_policy is not None:
            out["import"] = self.import_policy
        if self.export_policy is not None:
            out["export"] = self.export_policy
        if self.description is not None:
            out["description"] = self.description
        if self.max_prefixes is not None:
            out["max-prefixes"] = self.max_prefixes
        if self.peer_class is not None:
            out["peer-class"] = self.peer_class
        return out


@dataclass(frozen=True, slots=True)
class AsPathPrepend:
    """Prepend ``asn`` ``repeat`` times to the AS path of an originated route."""

    asn: int
    repeat: int

    def describe(self) -> dict[str, Any]:
        return {"asn": self.asn, "repeat": self.repeat}


@dataclass(frozen=True, slots=True)
class OriginateConfig:
    """One prefix this speaker announces.

    ``communities`` are 32-bit values, ``large_communities`` (a, b, c) tuples.
    ``next_hop`` None means the session's local address, decided per peer.
    """

    prefix: str
    next_hop: str | None = None
    communities: tuple[int, ...] = ()
    large_communities: tuple[tuple[int, int, int], ...] = ()
    med: int | None = None
    local_pref: int | None = None
    as_path_prepend: AsPathPrepend | None = None

    @property
    def family(self) -> Family:
        return IPV6_UNICAST if ":" in self.prefix else IPV4_UNICAST

    def describe(self) -> dict[str, Any]:
        out: dict[str, Any] = {"prefix": self.prefix}
        if self.next_hop is not None:
            out["next-hop"] = self.next_hop
        if self.communities:
            out["communities"] = [community_str(c) for c in self.communities]
        if self.large_communities:
            out["large-communities"] = [f"{a}:{b}:{c}" for a, b, c in self.large_communities]
        if self.med is not None:
            out["med"] = self.med
        if self.local_pref is not None:
            out["local-pref"] = self.local_pref
        if self.as_path_prepend is not None:
            out["as-path-prepend"] = self.as_path_prepend.describe()
        return out


@dataclass(frozen=True, slots=True)
class SpeakerConfig:
    """Everything ``kbgp speaker --config FILE`` reads.

    ``cluster_id`` is IPv4 text or None (use the router id: see
    ``effective_cluster_id``).  ``warnings`` are problems that do not stop the
    speaker, for it to log.  ``source`` names the file in later messages.
    """

    router_id: str
    asn: int
    listen: tuple[ListenAddress, ...] = ()
    cluster_id: str | None = None
    kernel: bool = False
    hold_time: int = DEFAULT_HOLD_TIME
    connect_retry: int = DEFAULT_CONNECT_RETRY
    graceful_restart: GracefulRestartConfig = field(default_factory=GracefulRestartConfig)
    neighbors: tuple[NeighborConfig, ...] = ()
    originate: tuple[OriginateConfig, ...] = ()
    policy: Policy = field(default_factory=Policy)
    warnings: tuple[str, ...] = ()
    source: str = field(default="<config>", compare=False)

    @property
    def effective_cluster_id(self) -> str:
        return self.cluster_id if self.cluster_id is not None else self.router_id

    def describe(self) -> dict[str, Any]:
        """The settings as a dict in the file's own shape, safe to print or log:
        passwords are "<set>", unset optional keys are left out."""
        out: dict[str, Any] = {
            "router-id": self.router_id,
            "asn": self.asn,
            "listen": [str(a) for a in self.listen],
        }
        if self.cluster_id is not None:
            out["cluster-id"] = self.cluster_id
        out["kernel"] = self.kernel
        out["hold-time"] = self.hold_time
        out["connect-retry"] = self.connect_retry
        out["graceful-restart"] = self.graceful_restart.describe()
        out["neighbors"] = [n.describe() for n in self.neighbors]
        out["originate"] = [o.describe() for o in self.originate]
        out.update(self.policy.describe())
        return out


# ------------------------------------------------------------------- loading


_INT_WITHOUT_BASE_60 = re.compile(
    r"""^(?:[-+]?0b[0-1_]+
    |[-+]?0[0-7_]+
    |[-+]?(?:0|[1-9][0-9_]*)
    |[-+]?0x[0-9a-fA-F_]+)$""",
    re.VERBOSE,
)
_INT_TAG = "tag:yaml.org,2002:int"
_MERGE_TAG = "tag:yaml.org,2002:merge"


class _Loader(yaml.SafeLoader):
    """``yaml.SafeLoader`` without base-60 integers and with duplicate keys refused."""

    def construct_mapping(self, node: yaml.Node, deep: bool = False) -> dict:
        if isinstance(node, yaml.MappingNode):
            seen: dict[str, int] = {}
            for key_node, _ in node.value:
                if not isinstance(key_node, yaml.ScalarNode) or key_node.tag == _MERGE_TAG:
                    continue
                line = key_node.start_mark.line + 1
                if key_node.value in seen:
                    raise yaml.constructor.ConstructorError(
                        None, None,
                        f"key {key_node.value!r} appears twice in one mapping "
                        f"(first on line {seen[key_node.value]}); keep one",
                        key_node.start_mark,
                    )
                seen[key_node.value] = line
        return super().construct_mapping(node, deep=deep)


_Loader.yaml_implicit_resolvers = {
    first: [(tag, regexp) for tag, regexp in resolvers if tag != _INT_TAG]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
_Loader.add_implicit_resolver(_INT_TAG, _INT_WITHOUT_BASE_60, list("-+0123456789"))


# Public name for other readers of YAML written by people (annotations, cluster files).
StrictYamlLoader = _Loader


def _load_yaml(raw: bytes, source: str) -> Any:
    try:
        return yaml.load(raw, Loader=_Loader)  # a SafeLoader subclass: builds only plain data
    except yaml.MarkedYAMLError as exc:
        # Only the short problem text and the position: str(exc) quotes the
        # offending line, which could be a password.
        mark = exc.problem_mark or exc.context_mark
        where = f"line {mark.line + 1}, column {mark.column + 1}" if mark else "unknown position"
        what = exc.problem or exc.context or "syntax error"
        if exc.context and exc.problem and exc.context_mark is not None:
            what += f" ({exc.context} at line {exc.context_mark.line + 1})"
        raise ConfigError(f"{source}: invalid YAML at {where}: {what}") from None
    except yaml.YAMLError as exc:
        text = " ".join(str(exc).split())
        raise ConfigError(f"{source}: invalid YAML: {text}") from None


def load_speaker_config(path: str | os.PathLike[str]) -> SpeakerConfig:
    """Read and check the speaker's configuration file."""
    source = os.fsdecode(path)
    try:
        with open(source, "rb") as fh:
            raw = fh.read()
    except OSError as exc:
        raise ConfigError(f"cannot read {source}: {exc.strerror or exc}") from None
    return parse_speaker_config(_load_yaml(raw, source), source)


# ------------------------------------------------------------------- checking


def _kind(value: Any) -> str:
    """The type of a value, in words, without the value."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int):
        return "an integer"
    if isinstance(value, float):
        return "a number with a fraction"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, dict):
        return "a mapping"
    return f"a {type(value).__name__}"


def _got(value: Any) -> str:
    """A value, in words, for an error message (never used for passwords)."""
    if isinstance(value, bool):
        return f"the boolean {str(value).lower()}"
    if isinstance(value, (int, float)):
        return f"the number {value!r}"
    if isinstance(value, str):
        shown = value if len(value) <= 60 else value[:57] + "..."
        return f"the string {shown!r}"
    return _kind(value)


def _join(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key


class _Section:
    """One mapping of the file and the key path that leads to it."""

    __slots__ = ("data", "path", "source")

    def __init__(self, source: str, path: str, data: Any, keys: tuple[str, ...]) -> None:
        self.source = source
        self.path = path
        if not isinstance(data, dict):
            raise self.fail(path, f"expected a mapping with the keys {', '.join(keys)}, "
                                  f"got {_kind(data)}")
        self.data = data
        for key in data:
            if key not in keys:
                raise self.fail(_join(path, str(key)), _unknown_key(str(key), keys, path))

    def fail(self, path: str, message: str) -> ConfigError:
        return ConfigError(f"{self.source}: {path or 'top level'}: {message}")

    def at(self, key: str) -> str:
        return _join(self.path, key)

    def get(self, key: str, expected: str, required: bool = False) -> Any:
        """The raw value of ``key``; _MISSING when absent.  A key that is
        present must have a value: an empty YAML value is an error, not a
        default, so a template that expands to nothing is caught."""
        if key not in self.data:
            if required:
                raise self.fail(self.at(key), f"required key is missing; expected {expected}")
            return _MISSING
        value = self.data[key]
        if value is None:
            hint = "" if required else " (or remove the key to use the default)"
            raise self.fail(self.at(key), f"has no value; expected {expected}{hint}")
        return value

    def integer(self, key: str, lo: int, hi: int, default: Any = _MISSING,
                unit: str = "", required: bool = False) -> Any:
        expected = f"an integer {lo}..{hi}{unit}"
        value = self.get(key, expected, required)
        if value is _MISSING:
            return default
        return _check_int(self, self.at(key), value, lo, hi, unit)

    def boolean(self, key: str, default: bool) -> bool:
        value = self.get(key, "true or false")
        if value is _MISSING:
            return default
        if not isinstance(value, bool):
            raise self.fail(self.at(key), f"expected true or false, got {_got(value)}")
        return value

    def string(self, key: str, expected: str = "a string", required: bool = False) -> Any:
        value = self.get(key, expected, required)
        if value is _MISSING:
            return None
        if not isinstance(value, str):
            raise self.fail(self.at(key), f"expected {expected}, got {_got(value)}")
        return value

    def items(self, key: str, expected: str) -> list | None:
        """A list value: None when absent."""
        value = self.get(key, expected)
        if value is _MISSING:
            return None
        if not isinstance(value, list):
            raise self.fail(self.at(key), f"expected {expected}, got {_kind(value)}")
        return value


def _check_int(sec: _Section, path: str, value: Any, lo: int, hi: int, unit: str = "") -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise sec.fail(path, f"expected an integer {lo}..{hi}{unit}, got {_got(value)}")
    if not lo <= value <= hi:
        raise sec.fail(path, f"must be {lo}..{hi}{unit}, got {value}")
    return value


def _unknown_key(key: str, keys: tuple[str, ...], path: str) -> str:
    hint = ""
    dashed = key.replace("_", "-").lower()
    if dashed in keys:
        hint = f" (did you mean {dashed!r}? keys use dashes)"
    else:
        close = difflib.get_close_matches(key, keys, n=1)
        if close:
            hint = f" (did you mean {close[0]!r}?)"
    where = f"in {path}" if path else "at the top level"
    return f"unknown key{hint}; accepted keys {where}: {', '.join(keys)}"


def _ip(sec: _Section, key: str, required: bool = False, version: int | None = None,
        allow_unspecified: bool = False) -> Any:
    """An IP address as normalised text, or None when absent."""
    if version == 4:
        expected = "an IPv4 address like 192.0.2.1"
    elif version == 6:
        expected = "an IPv6 address like 2001:db8::1"
    else:
        expected = "an IP address like 192.0.2.1 or 2001:db8::1"
    text = sec.string(key, expected, required)
    if text is None:
        return None
    try:
        addr = ipaddress.ip_address(text)
    except ValueError:
        addr = None
    if addr is None or (version is not None and addr.version != version):
        raise sec.fail(sec.at(key), f"expected {expected}, got {_got(text)}")
    if not allow_unspecified and (addr.is_unspecified or addr.is_multicast):
        kind = "unspecified" if addr.is_unspecified else "multicast"
        raise sec.fail(sec.at(key), f"{addr} is a {kind} address; expected a unicast address")
    return str(addr)


def _hold_time(sec: _Section, key: str, default: int) -> int:
    value = sec.get(key, _HOLD_TIME_RANGE)
    if value is _MISSING:
        return default
    if isinstance(value, bool) or not isinstance(value, int):
        raise sec.fail(sec.at(key), f"expected {_HOLD_TIME_RANGE}, got {_got(value)}")
    if value != 0 and not 3 <= value <= 65535:
        raise sec.fail(sec.at(key), f"must be {_HOLD_TIME_RANGE} (RFC 4271), got {value}")
    return value


def _choice(sec: _Section, key: str, choices: tuple[str, ...]) -> str | None:
    expected = " or ".join(repr(c) for c in choices)
    value = sec.string(key, expected)
    if value is not None and value not in choices:
        raise sec.fail(sec.at(key), f"expected {expected}, got {_got(value)}")
    return value


# ---------------------------------------------------------------- top level


def parse_speaker_config(data: dict, source: str = "<config>") -> SpeakerConfig:
    """Check the already-loaded settings (a dict from YAML or JSON)."""
    if not isinstance(data, dict):
        got = "nothing (the file is empty)" if data is None else _kind(data)
        raise ConfigError(f"{source}: expected a mapping of settings at the top level "
                          f"(router-id, asn, neighbors, ...), got {got}")
    top = _Section(source, "", data, TOP_KEYS)
    warnings: list[str] = []

    router_id = _ip(top, "router-id", required=True, version=4, allow_unspecified=True)
    if router_id == "0.0.0.0":
        raise top.fail("router-id", "must not be 0.0.0.0; "
                                    "expected a non-zero IPv4 address like 192.0.2.1")
    asn = top.integer("asn", 1, MAX_ASN, required=True)
    hold_time = _hold_time(top, "hold-time", DEFAULT_HOLD_TIME)
    policy = _policy(top)
    return SpeakerConfig(
        router_id=router_id,
        asn=asn,
        listen=_listen(top),
        cluster_id=_cluster_id(top),
        kernel=top.boolean("kernel", False),
        hold_time=hold_time,
        connect_retry=top.integer("connect-retry", 1, 3600, DEFAULT_CONNECT_RETRY, " seconds"),
        graceful_restart=_graceful_restart(top),
        neighbors=_neighbors(top, asn, hold_time, warnings),
        originate=_originate(top),
        policy=policy,
        warnings=tuple(warnings),
        source=source,
    )


def _listen(top: _Section) -> tuple[ListenAddress, ...]:
    expected = "a list of 'address:port' strings like ['0.0.0.0:179', '[::]:179']"
    entries = top.items("listen", expected)
    out: list[ListenAddress] = []
    for i, entry in enumerate(entries or ()):
        path = f"listen[{i}]"
        addr = _listen_entry(top, path, entry)
        if addr in out:
            raise top.fail(path, f"{addr} is listed twice (also listen[{out.index(addr)}])")
        out.append(addr)
    return tuple(out)


def _listen_entry(top: _Section, path: str, entry: Any) -> ListenAddress:
    expected = ("'address:port' like '0.0.0.0:179', or '[address]:port' for IPv6 like '[::]:179' "
                "(the port may be left out: 179)")
    if not isinstance(entry, str):
        raise top.fail(path, f"expected {expected}, got {_got(entry)}")
    port_text: str | None = None
    if entry.startswith("["):
        host, bracket, rest = entry[1:].partition("]")
        if not bracket or (rest and not rest.startswith(":")):
            raise top.fail(path, f"expected {expected}, got {_got(entry)}")
        if rest:
            port_text = rest[1:]
        version = 6
    elif entry.count(":") > 1:
        raise top.fail(path, f"an IPv6 address must be in brackets, like '[{entry}]' or "
                             f"'[::]:179'; got {_got(entry)}")
    else:
        host, colon, port_text_ = entry.partition(":")
        port_text = port_text_ if colon else None
        version = 4
    try:
        addr = ipaddress.ip_address(host)
    except ValueError:
        addr = None
    if addr is None or addr.version != version:
        raise top.fail(path, f"expected {expected}, got {_got(entry)}")
    port = BGP_PORT
    if port_text is not None:
        if not re.fullmatch(r"[0-9]{1,5}", port_text) or not 1 <= int(port_text) <= 65535:
            raise top.fail(path, f"the port must be 1..65535, got {_got(entry)}")
        port = int(port_text)
    return ListenAddress(str(addr), port)


def _cluster_id(top: _Section) -> str | None:
    expected = f"an integer 1..{MAX_U32} or an IPv4 address like 192.0.2.1"
    value = top.get("cluster-id", expected)
    if value is _MISSING:
        return None
    if isinstance(value, int) and not isinstance(value, bool):
        if not 1 <= value <= MAX_U32:
            raise top.fail("cluster-id",
                           f"must be 1..{MAX_U32} or a non-zero IPv4 address, got {value}")
        return str(ipaddress.IPv4Address(value))
    if isinstance(value, str):
        try:
            addr = ipaddress.IPv4Address(value)
        except ValueError:
            addr = None
        if addr is not None:
            if int(addr) == 0:
                raise top.fail("cluster-id", f"must not be 0.0.0.0; expected {expected}")
            return str(addr)
    raise top.fail("cluster-id", f"expected {expected}, got {_got(value)}")


def _graceful_restart(top: _Section) -> GracefulRestartConfig:
    expected = "a mapping with the keys " + ", ".join(GRACEFUL_RESTART_KEYS)
    value = top.get("graceful-restart", expected)
    if value is _MISSING:
        return GracefulRestartConfig()
    sec = _Section(top.source, "graceful-restart", value, GRACEFUL_RESTART_KEYS)
    return GracefulRestartConfig(
        enabled=sec.boolean("enabled", True),
        restart_time=sec.integer("restart-time", 1, 4095, DEFAULT_RESTART_TIME, " seconds"),
        stale_time=sec.integer("stale-time", 1, 4095, DEFAULT_STALE_TIME, " seconds"),
        deferral_time=sec.integer("deferral-time", 1, 65535, DEFAULT_RESTART_TIME, " seconds"),
    )


# ---------------------------------------------------------------- neighbors


def _neighbors(top: _Section, local_asn: int, hold_time: int,
               warnings: list[str]) -> tuple[NeighborConfig, ...]:
    entries = top.items("neighbors", "a list of neighbor mappings")
    out: list[NeighborConfig] = []
    first: dict[str, int] = {}
    for i, entry in enumerate(entries or ()):
        path = f"neighbors[{i}]"
        sec = _Section(top.source, path, entry, NEIGHBOR_KEYS)
        neighbor = _neighbor(sec, local_asn, hold_time, warnings)
        # Addresses are normalised text; fe80::1%eth0 and fe80::1%eth1 are
        # two neighbors on two links.
        if neighbor.address in first:
            raise sec.fail(sec.at("address"),
                           f"{neighbor.address} is already neighbors[{first[neighbor.address]}]; "
                           f"expected each neighbor address once")
        first[neighbor.address] = i
        out.append(neighbor)
    return tuple(out)


def _neighbor(sec: _Section, local_asn: int, hold_time: int, warnings: list[str]) -> NeighborConfig:
    address = _ip(sec, "address", required=True)
    version = ipaddress.ip_address(address).version
    asn = sec.integer("asn", 0, MAX_ASN, unit=" (0 accepts any AS)", required=True)
    local_address = _ip(sec, "local-address")
    if local_address is not None and ipaddress.ip_address(local_address).version != version:
        raise sec.fail(sec.at("local-address"),
                       f"{local_address} is IPv{6 if version == 4 else 4} but address {address} is "
                       f"IPv{version}; expected an IPv{version} address")
    multihop_ttl = sec.integer("multihop-ttl", 1, 255, None)
    ttl_security = sec.integer("ttl-security", 1, 254, None, " hops")
    if multihop_ttl is not None and ttl_security is not None:
        raise sec.fail(sec.at("ttl-security"),
                       "cannot be combined with multihop-ttl (as in FRR): GTSM sends with TTL 255 "
                       "and checks the TTL it receives; expected only one of the two")
    rr_client = sec.boolean("route-reflector-client", False)
    if rr_client and asn not in (0, local_asn):
        raise sec.fail(sec.at("route-reflector-client"),
                       f"applies only to iBGP neighbors, but asn {asn} is not the local asn "
                       f"{local_asn}; expected false or an iBGP neighbor")
    return NeighborConfig(
        address=address,
        asn=asn,
        port=sec.integer("port", 1, 65535, BGP_PORT),
        local_address=local_address,
        password=_password(sec, warnings),
        passive=sec.boolean("passive", False),
        multihop_ttl=multihop_ttl,
        ttl_security=ttl_security,
        hold_time=_hold_time(sec, "hold-time", hold_time),
        route_reflector_client=rr_client,
        families=_families(sec),
        import_policy=_choice(sec, "import", POLICIES),
        export_policy=_choice(sec, "export", POLICIES),
        peer_class=_choice(sec, "peer-class", PEER_CLASSES),
        description=sec.string("description"),
        max_prefixes=sec.integer("max-prefixes", 1, MAX_U32, None),
    )


def _password(sec: _Section, warnings: list[str]) -> bytes | None:
    """The decoded MD5 key.  No message here may contain the value."""
    path = sec.at("password")
    expected = (f"the key in standard padded base64 (A-Z a-z 0-9 + / and '=' padding), "
                f"1..{MAX_MD5_KEY_LEN} bytes once decoded")
    value = sec.get("password", expected)
    if value is _MISSING:
        return None
    if not isinstance(value, str):
        raise sec.fail(path, f"expected {expected}, got {_kind(value)}")
    key: bytes | None
    try:
        key = base64.b64decode(value, validate=True)
    except ValueError:  # binascii.Error, or non-ASCII text
        key = None
    if key is None:  # raised here so no exception carrying the value is chained
        raise sec.fail(path, f"not valid base64; expected {expected}")
    if not key:
        raise sec.fail(path, f"decodes to an empty key; expected {expected}")
    if len(key) > MAX_MD5_KEY_LEN:
        raise sec.fail(path, f"decodes to a key longer than {MAX_MD5_KEY_LEN} bytes, the most "
                             f"Linux TCP MD5 accepts; expected {expected}")
    if key.endswith(b"\n"):
        warnings.append(f"{sec.source}: {path} decodes to a key ending in a newline; it is used as "
                        f"is (if the newline is a mistake, encode with `printf %s KEY | base64`)")
    return key


def _families(sec: _Section) -> tuple[Family, ...]:
    entries = sec.items("families", "a list of address families: ipv4, ipv6")
    if entries is None:
        return DEFAULT_FAMILIES
    if not entries:
        raise sec.fail(sec.at("families"), "is empty; expected at least one of ipv4, ipv6 "
                                            "(remove the key for both)")
    out: list[Family] = []
    for i, entry in enumerate(entries):
        path = f"{sec.at('families')}[{i}]"
        if not isinstance(entry, str):
            raise sec.fail(path, f"expected ipv4 or ipv6, got {_got(entry)}")
        try:
            family = parse_family(entry)
        except ValueError as exc:
            raise sec.fail(path, str(exc)) from None
        if family in out:
            raise sec.fail(path, f"{entry!r} is listed twice; expected each family once")
        out.append(family)
    return tuple(out)


# ---------------------------------------------------------------- originate


def _originate(top: _Section) -> tuple[OriginateConfig, ...]:
    entries = top.items("originate", "a list of route mappings")
    out: list[OriginateConfig] = []
    first: dict[str, int] = {}
    for i, entry in enumerate(entries or ()):
        sec = _Section(top.source, f"originate[{i}]", entry, ORIGINATE_KEYS)
        route = _route(sec)
        if route.prefix in first:
            raise sec.fail(sec.at("prefix"),
                           f"{route.prefix} is already originate[{first[route.prefix]}]; "
                           f"expected each prefix once")
        first[route.prefix] = i
        out.append(route)
    return tuple(out)


def _route(sec: _Section) -> OriginateConfig:
    network = _prefix(sec)
    next_hop = _ip(sec, "next-hop")
    if next_hop is not None:
        nh_version = ipaddress.ip_address(next_hop).version
        # An IPv6 next hop for an IPv4 prefix is RFC 8950; the reverse does not exist.
        if nh_version == 4 and network.version == 6:
            raise sec.fail(sec.at("next-hop"), f"{next_hop} is IPv4 but prefix {network} is IPv6; "
                                               f"expected an IPv6 next hop")
    prepend = None
    value = sec.get("as-path-prepend", "a mapping with the keys asn, repeat")
    if value is not _MISSING:
        psec = _Section(sec.source, sec.at("as-path-prepend"), value, PREPEND_KEYS)
        prepend = AsPathPrepend(
            asn=psec.integer("asn", 1, MAX_ASN, required=True),
            repeat=psec.integer("repeat", 1, MAX_PREPEND, unit=" times", required=True),
        )
    return OriginateConfig(
        prefix=str(network),
        next_hop=next_hop,
        communities=_communities(sec),
        large_communities=_large_communities(sec),
        med=sec.integer("med", 0, MAX_U32, None),
        local_pref=sec.integer("local-pref", 0, MAX_U32, None),
        as_path_prepend=prepend,
    )


def _prefix(sec: _Section) -> ipaddress.IPv4Network | ipaddress.IPv6Network:
    expected = "a network like 10.0.0.0/24 or 2001:db8::/48"
    text = sec.string("prefix", expected, required=True)
    path = sec.at("prefix")
    if "/" not in text:
        raise sec.fail(path, f"expected {expected} (with its prefix length), got {_got(text)}")
    try:
        return ipaddress.ip_network(text, strict=True)
    except ValueError:
        pass
    try:
        meant = ipaddress.ip_network(text, strict=False)
    except ValueError:
        raise sec.fail(path, f"expected {expected}, got {_got(text)}") from None
    raise sec.fail(path, f"{text} has host bits set; expected a network address: "
                         f"did you mean {meant}?")


def _communities(sec: _Section, key: str = "communities") -> tuple[int, ...]:
    names = ", ".join(WELL_KNOWN_COMMUNITY_VALUES)
    expected = f"a string 'A:B' (A, B 0..65535) or a well-known name ({names})"
    entries = sec.items(key, f"a list of communities, each {expected}")
    out: list[int] = []
    for i, entry in enumerate(entries or ()):
        path = f"{sec.at(key)}[{i}]"
        if not isinstance(entry, str):
            raise sec.fail(path, f"expected {expected}, got {_got(entry)} (quote it in YAML)")
        try:
            out.append(parse_community(entry))
        except ValueError as exc:
            raise sec.fail(path, f"{exc} ({names})") from None
    return tuple(out)


def _large_communities(sec: _Section, key: str = "large-communities") -> tuple[tuple[int, int, int], ...]:
    expected = "a string 'A:B:C' with A, B, C 0..4294967295"
    entries = sec.items(key, f"a list of large communities, each {expected}")
    out: list[tuple[int, int, int]] = []
    for i, entry in enumerate(entries or ()):
        path = f"{sec.at(key)}[{i}]"
        if not isinstance(entry, str):
            raise sec.fail(path, f"expected {expected}, got {_got(entry)} (quote it in YAML)")
        try:
            out.append(parse_large_community(entry))
        except ValueError as exc:
            raise sec.fail(path, str(exc)) from None
    return tuple(out)


# ------------------------------------------------------------------- policy

_RANGE_FORMS = ("'10.0.0.0/8' (exact), '10.0.0.0/8 or-longer', '10.0.0.0/8 16-24' "
                "or a mapping {prefix: 10.0.0.0/8, or-longer: true}")


def parse_prefix_range(text: str) -> PrefixRange:
    """'P', 'P or-longer' or 'P GE-LE' -> PrefixRange; ValueError says why."""
    parts = text.split()
    if not parts or len(parts) > 2:
        raise ValueError(f"expected {_RANGE_FORMS}")
    try:
        net = ipaddress.ip_network(parts[0], strict=True)
    except ValueError as exc:
        raise ValueError(f"{parts[0]!r} is not a network: {exc}") from None
    top = net.max_prefixlen
    if len(parts) == 1:
        return PrefixRange(str(net), net.prefixlen, net.prefixlen)
    if parts[1] == "or-longer":
        return PrefixRange(str(net), net.prefixlen, top)
    lo, sep, hi = parts[1].partition("-")
    if not sep or not lo.isdigit() or not hi.isdigit():
        raise ValueError(f"{parts[1]!r}: expected 'or-longer' or a length range like 16-24")
    ge, le = int(lo), int(hi)
    if not net.prefixlen <= ge <= le <= top:
        raise ValueError(f"length range {ge}-{le} must lie within {net.prefixlen}-{top}")
    return PrefixRange(str(net), ge, le)


def _prefix_sets(top: _Section) -> dict[str, tuple[PrefixRange, ...]]:
    value = top.get("prefix-sets", "a mapping of set names to lists of prefixes")
    if value is _MISSING:
        return {}
    if not isinstance(value, dict):
        raise top.fail("prefix-sets", f"expected a mapping of set names to lists of prefixes, got {_kind(value)}")
    out: dict[str, tuple[PrefixRange, ...]] = {}
    for name, entries in value.items():
        path = f"prefix-sets.{name}"
        if not isinstance(entries, list):
            raise top.fail(path, f"expected a list of prefixes, each {_RANGE_FORMS}; got {_kind(entries)}")
        ranges = []
        for i, entry in enumerate(entries):
            epath = f"{path}[{i}]"
            if isinstance(entry, dict):
                sec = _Section(top.source, epath, entry, ("prefix", "or-longer"))
                text = sec.string("prefix", "a network like 10.0.0.0/8", required=True)
                if sec.boolean("or-longer", False):
                    text += " or-longer"
            elif isinstance(entry, str):
                text = entry
            else:
                raise top.fail(epath, f"expected {_RANGE_FORMS}, got {_got(entry)}")
            try:
                ranges.append(parse_prefix_range(text))
            except ValueError as exc:
                raise top.fail(epath, str(exc)) from None
        out[str(name)] = tuple(ranges)
    if len(out) > 64:
        raise top.fail("prefix-sets", f"at most 64 prefix sets, got {len(out)}")
    return out


def _neighbor_sets(top: _Section) -> dict[str, tuple[str, ...]]:
    value = top.get("neighbor-sets", "a mapping of set names to lists of addresses")
    if value is _MISSING:
        return {}
    if not isinstance(value, dict):
        raise top.fail("neighbor-sets", f"expected a mapping of set names to lists of addresses, got {_kind(value)}")
    out: dict[str, tuple[str, ...]] = {}
    for name, entries in value.items():
        path = f"neighbor-sets.{name}"
        if not isinstance(entries, list):
            raise top.fail(path, f"expected a list of IP addresses, got {_kind(entries)}")
        addrs = []
        for i, entry in enumerate(entries):
            try:
                addrs.append(str(ipaddress.ip_address(entry)))
            except ValueError:
                raise top.fail(f"{path}[{i}]", f"expected an IP address like 192.0.2.1, got {_got(entry)}") from None
        out[str(name)] = tuple(addrs)
    return out


def _names(sec: _Section, key: str, known: dict | tuple, what: str) -> tuple[str, ...]:
    value = sec.get(key, f"a {what} name or a list of them")
    if value is _MISSING:
        return ()
    items = value if isinstance(value, list) else [value]
    out = []
    for i, item in enumerate(items):
        path = sec.at(key) if not isinstance(value, list) else f"{sec.at(key)}[{i}]"
        if not isinstance(item, str):
            raise sec.fail(path, f"expected a {what} name, got {_got(item)}")
        if item not in known:
            choices = ", ".join(sorted(known)) or "none are defined"
            raise sec.fail(path, f"{item!r} is not a known {what} ({choices})")
        out.append(item)
    return tuple(out)


def _rule(top: _Section, path: str, entry: Any, direction: str,
          prefix_sets: dict, neighbor_sets: dict) -> Rule:
    sec = _Section(top.source, path, entry, RULE_KEYS)
    match = Match()
    mvalue = sec.get("match", "a mapping with the keys " + ", ".join(MATCH_KEYS))
    if mvalue is not _MISSING:
        msec = _Section(top.source, sec.at("match"), mvalue, MATCH_KEYS)
        match = Match(
            prefix_sets=_names(msec, "prefix-set", prefix_sets, "prefix set"),
            neighbor_sets=_names(msec, "neighbor-set", neighbor_sets, "neighbor set"),
            peer_classes=_names(msec, "peer-class", PEER_CLASSES, "peer class"),
            source=_choice(msec, "source", SOURCES),
        )
    action = _choice(sec, "action", ACTIONS) or "accept"
    prepend = None
    pvalue = sec.get("prepend", "a mapping {asn: N, repeat: N} or a repeat count")
    if pvalue is not _MISSING:
        if isinstance(pvalue, int) and not isinstance(pvalue, bool):
            prepend = (None, _check_int(sec, sec.at("prepend"), pvalue, 1, MAX_PREPEND, " times"))
        else:
            psec = _Section(top.source, sec.at("prepend"), pvalue, RULE_PREPEND_KEYS)
            prepend = (psec.integer("asn", 1, MAX_ASN, None),
                       psec.integer("repeat", 1, MAX_PREPEND, unit=" times", required=True))
    nhs = sec.boolean("next-hop-self", False)
    if nhs and direction == "import":
        raise sec.fail(sec.at("next-hop-self"), "next-hop-self is an export action; "
                                                "expected it in policy.export only")
    rule = Rule(
        match=match, action=action,
        add_communities=_communities(sec, "add-communities"),
        add_large_communities=_large_communities(sec, "add-large-communities"),
        prepend=prepend, next_hop_self=nhs,
        local_pref=sec.integer("local-pref", 0, MAX_U32, None),
        name=sec.string("name"),
    )
    if action == "reject" and rule.modifies:
        raise sec.fail(path, "a reject rule cannot modify routes; expected action accept or next")
    return rule


def _policy(top: _Section) -> Policy:
    prefix_sets = _prefix_sets(top)
    neighbor_sets = _neighbor_sets(top)
    value = top.get("policy", "a mapping with the keys import, export")
    rules: dict[str, tuple[Rule, ...]] = {"import": (), "export": ()}
    if value is not _MISSING:
        psec = _Section(top.source, "policy", value, POLICY_KEYS)
        for direction in POLICY_KEYS:
            entries = psec.items(direction, "a list of rules")
            rules[direction] = tuple(
                _rule(top, f"policy.{direction}[{i}]", e, direction, prefix_sets, neighbor_sets)
                for i, e in enumerate(entries or ()))
    return Policy(prefix_sets=prefix_sets, neighbor_sets=neighbor_sets,
                  import_rules=rules["import"], export_rules=rules["export"])
