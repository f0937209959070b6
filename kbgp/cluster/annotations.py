"""kube-router's Node and Service annotations, one parser each.

Every parser returns ``Parsed(value, errors, warnings)``.  An error names the
object, the annotation, the element (1-based, for lists) and why it is bad::

    node worker-1: annotation kube-router.io/peer.asns: element 2 "65x" is not an AS number

A single-valued annotation has no ``element <i>`` part.  Passwords are never
shown: their element reads ``element 2 (hidden)``.

What a bad element costs is decided per annotation and written down in
``ANNOTATION_ERROR_SCOPE`` (the README quotes it): "element" drops that
element and keeps the rest, "whole annotation" drops the annotation (with
the stated fallback).

Differences from kube-router, on purpose:

- elements of comma lists are trimmed (kube-router trims only
  ``customimportreject``); a trimmed element gets a warning, since
  kube-router would refuse it;
- integers take Go's integer-literal syntax as kube-router does
  (``0x``, ``0o``, ``0b``, ``_`` separators, and a leading ``0`` meaning
  octal, so ``065000`` is 27136), with a warning whenever the text is not
  plain decimal;
- route-reflector cluster ids are an integer (``42`` is ``0.0.0.42``) or an
  IPv4 address, compared between nodes (the seed's rule, not kube-router's);
- ``service.local`` takes Go's ParseBool spellings, not only ``"true"``.
"""
from __future__ import annotations

import ipaddress
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Generic, NamedTuple, TypeVar

import yaml

from kbgp.cluster.flags import (
    BOOL_SPELLINGS,
    NEWLINE_KEY_WARNING,
    decode_password,
    parse_go_bool,
    password_problem,
    peer_asn_problem,
)

PREFIX = "kube-router.io/"
NODE_ASN = PREFIX + "node.asn"
RR_SERVER = PREFIX + "rr.server"
RR_CLIENT = PREFIX + "rr.client"
PEERS = PREFIX + "peers"
PEER_IPS = PREFIX + "peer.ips"
PEER_ASNS = PREFIX + "peer.asns"
PEER_PASSWORDS = PREFIX + "peer.passwords"
PEER_LOCALIPS = PREFIX + "peer.localips"
PEER_PORTS = PREFIX + "peer.ports"
PATH_PREPEND_AS = PREFIX + "path-prepend.as"
PATH_PREPEND_REPEAT = PREFIX + "path-prepend.repeat-n"
COMMUNITIES = PREFIX + "node.bgp.communities"
CUSTOM_IMPORT_REJECT = PREFIX + "node.bgp.customimportreject"
BGP_LOCAL_ADDRESSES = PREFIX + "bgp-local-addresses"
POD_CIDRS = PREFIX + "pod-cidrs"
POD_CIDR = PREFIX + "pod-cidr"
SVC_ADVERTISE_CLUSTER_IP = PREFIX + "service.advertise.clusterip"
SVC_ADVERTISE_EXTERNAL_IP = PREFIX + "service.advertise.externalip"
SVC_ADVERTISE_LB_IP = PREFIX + "service.advertise.loadbalancerip"
SVC_LOCAL = PREFIX + "service.local"
SVC_SKIP_LB_IPS = PREFIX + "service.skiplbips"

PEER_LIST_KEYS = (PEER_IPS, PEER_ASNS, PEER_PASSWORDS, PEER_LOCALIPS, PEER_PORTS)
_PEER_LISTS_DROPPED = "whole annotation: no peer from any kube-router.io/peer.* annotation"

#: What a bad element of each annotation costs.
ANNOTATION_ERROR_SCOPE: dict[str, str] = {
    NODE_ASN: ("whole annotation: the node has no AS; with --nodes-full-mesh=false this node "
               "waits and other nodes do not peer with it"),
    RR_SERVER: "whole annotation: the node is treated as having no rr.server annotation",
    RR_CLIENT: "whole annotation: the node is treated as having no rr.client annotation",
    PEERS: ("element: that peer entry is dropped, the others kept; whole annotation when it is "
            "not a YAML list"),
    PEER_IPS: _PEER_LISTS_DROPPED,
    PEER_ASNS: _PEER_LISTS_DROPPED,
    PEER_PASSWORDS: _PEER_LISTS_DROPPED,
    PEER_LOCALIPS: _PEER_LISTS_DROPPED,
    PEER_PORTS: _PEER_LISTS_DROPPED,
    PATH_PREPEND_AS: "whole annotation: no AS-path prepending",
    PATH_PREPEND_REPEAT: "whole annotation: no AS-path prepending",
    COMMUNITIES: "element: that community is dropped, the others kept",
    CUSTOM_IMPORT_REJECT: "element: that prefix is dropped, the others kept",
    BGP_LOCAL_ADDRESSES: ("element: that address is dropped; when none is left, the node's own "
                          "addresses are used"),
    POD_CIDRS: "element: that CIDR is dropped; when none is left, spec.podCIDRs is used",
    SVC_ADVERTISE_CLUSTER_IP: "whole annotation: read as false (as kube-router does)",
    SVC_ADVERTISE_EXTERNAL_IP: "whole annotation: read as false (as kube-router does)",
    SVC_ADVERTISE_LB_IP: "whole annotation: read as false (as kube-router does)",
    SVC_LOCAL: "whole annotation: read as false",
}

T = TypeVar("T")


class Parsed(NamedTuple, Generic[T]):
    value: T
    errors: tuple[str, ...] = ()
    warnings: tuple[str, ...] = ()


# ------------------------------------------------------------------ messages


def show(text: str) -> str:
    """A user-typed value, quoted, for a message (never used for passwords)."""
    shown = text if len(text) <= 60 else text[:57] + "..."
    return json.dumps(shown, ensure_ascii=False)


class _Report:
    """Collects the messages about one annotation of one object."""

    __slots__ = ("errors", "head", "warnings")

    def __init__(self, owner: str, key: str) -> None:
        self.head = f"{owner}: annotation {key}:"
        self.errors: list[str] = []
        self.warnings: list[str] = []

    def error(self, text: str) -> None:
        self.errors.append(f"{self.head} {text}")

    def element(self, i: int, bad: str, why: str) -> None:
        self.errors.append(f"{self.head} element {i} {show(bad)} {why}")

    def warn(self, text: str) -> None:
        self.warnings.append(f"{self.head} {text}")

    def result(self, value: T) -> Parsed[T]:
        return Parsed(value, tuple(self.errors), tuple(self.warnings))


def _node(name: str) -> str:
    return f"node {name}"


def _elements(text: str, report: _Report, kube_router_trims: bool = False) -> list[tuple[int, str]]:
    """Split a comma list; trim each element (with a warning when that changed
    it and kube-router would not have trimmed it).

    An empty annotation is an empty list (kube-router reads one empty element).
    """
    if text.strip() == "":
        return []
    out = []
    for i, raw in enumerate(text.split(","), 1):
        trimmed = raw.strip()
        if trimmed != raw and trimmed and not kube_router_trims:
            report.warn(f"element {i} {show(raw)} has spaces around it; kbgp trims them, "
                        f"kube-router would not accept it")
        out.append((i, trimmed))
    return out


# ------------------------------------------------------------------ integers

_PLAIN_DECIMAL = re.compile(r"(?:0|[1-9][0-9]*)")


def parse_go_uint(text: str) -> tuple[int, bool] | None:
    """Go's integer literal (strconv.ParseUint(s, 0, 64)) -> (value, plain decimal?).

    ``0x1F``, ``0o17``, ``0b101``, ``017`` (octal), ``65_000``.  None when it
    is not one.
    """
    if not text.isascii() or not text or text[0] in "+-" or text.strip() != text:
        return None
    if _PLAIN_DECIMAL.fullmatch(text):
        return int(text), True
    t = text.lower()
    try:
        if t.startswith(("0x", "0o", "0b")):
            return int(t, 0), False
        if t.startswith("0"):
            return int("0o" + t[1:], 0), False  # a leading 0 is octal in Go
        return int(t, 10), False  # decimal with _ separators
    except ValueError:
        return None


def _go_uint_note(text: str, value: int) -> str:
    base = {"0x": "hexadecimal", "0o": "octal", "0b": "binary"}.get(text[:2].lower())
    if base is None:
        base = "octal" if text.startswith("0") else "decimal with '_' separators"
    return (f"{show(text)} is read as {base}, {value}, as kube-router reads it; "
            f"write {value} to say so plainly")


def check_asn(text: str, *, peer: bool) -> tuple[int | None, str | None, str | None]:
    """An AS number in Go integer syntax -> (value or None, why it is bad, a note on its syntax)."""
    parsed = parse_go_uint(text)
    if parsed is None:
        return None, ("is empty; expected an AS number" if text == "" else "is not an AS number"), None
    value, plain = parsed
    if value > 0xFFFFFFFF:
        return None, "is larger than 4294967295, the largest AS number", None
    note = None if plain else _go_uint_note(text, value)
    problem = peer_asn_problem(value) if peer else _node_asn_problem(value)
    if problem is not None:
        return None, problem, note
    return value, None, note


def _asn(text: str, report: _Report, i: int | None, *, peer: bool) -> int | None:
    """An AS number; None (and an error in ``report``) when bad."""
    value, why, note = check_asn(text, peer=peer)
    if note is not None:
        report.warn(("" if i is None else f"element {i} ") + note)
    if why is not None:
        _bad(report, i, text, why)
    return value


def _node_asn_problem(asn: int) -> str | None:
    if asn == 0:
        return "is AS 0, which no BGP speaker may use (RFC 7607)"
    if asn == 23456:
        return "is AS_TRANS (RFC 6793), a placeholder, not a real AS"
    if asn == 4294967295:
        return "is reserved (RFC 7300), not a usable AS number"
    return None


def _bad(report: _Report, i: int | None, text: str, why: str) -> None:
    if i is None:
        report.error(f"{show(text)} {why}")
    else:
        report.element(i, text, why)


# ------------------------------------------------------------------ node: AS and roles


def parse_node_asn(node: str, text: str) -> Parsed[int | None]:
    """``kube-router.io/node.asn``: the node's AS (no range rule but 0, 23456, 4294967295)."""
    report = _Report(_node(node), NODE_ASN)
    return report.result(_asn(text.strip(), report, None, peer=False))


def parse_rr_id(node: str, key: str, text: str) -> Parsed[str | None]:
    """``rr.server`` / ``rr.client``: the cluster id as a dotted quad.

    An integer 1..4294967295 (Go syntax; 42 is 0.0.0.42, RFC 4456 takes a
    4-byte id) or a non-zero IPv4 address.
    """
    report = _Report(_node(node), key)
    t = text.strip()
    value: int | None = None
    parsed = parse_go_uint(t)
    if parsed is not None:
        value = parsed[0]
        if not parsed[1]:
            report.warn(_go_uint_note(t, value))
        if value > 0xFFFFFFFF:
            report.error(f"{show(text)} is larger than 4294967295; expected an integer "
                         f"1..4294967295 or an IPv4 address (a cluster id is 4 bytes)")
            return report.result(None)
    else:
        try:
            value = int(ipaddress.IPv4Address(t))
        except ValueError:
            why = "is an IPv6 address" if _is_ipv6(t) else "is not a cluster id"
            report.error(f"{show(text)} {why}; expected an integer like 42 or an IPv4 address "
                         f"like 10.0.0.42 (a cluster id is 4 bytes, RFC 4456)")
            return report.result(None)
    if value == 0:
        report.error(f"{show(text)} is zero; expected a non-zero cluster id")
        return report.result(None)
    return report.result(str(ipaddress.IPv4Address(value)))


def _is_ipv6(text: str) -> bool:
    try:
        return ipaddress.ip_address(text).version == 6
    except ValueError:
        return False


# ------------------------------------------------------------------ node: external peers


@dataclass(frozen=True, slots=True)
class PeerSpec:
    """One external peer as an annotation (or the flags) describe it."""

    address: str
    asn: int
    port: int = 179
    password: bytes | None = field(default=None, repr=False)
    local_address: str | None = None

    def __repr__(self) -> str:
        pw = "<set>" if self.password is not None else None
        return (f"PeerSpec(address={self.address!r}, asn={self.asn!r}, port={self.port!r}, "
                f"password={pw!r}, local_address={self.local_address!r})")


def _password(report: _Report, i: int, text: str) -> tuple[bool, bytes | None]:
    """(ok, key); the value never reaches a message."""
    if text == "":
        return True, None
    key = decode_password(text)
    problem = password_problem(key)
    if problem is not None:
        report.error(f"element {i} (hidden) {problem}")
        return False, None
    assert key is not None
    if not key:
        return True, None
    if key.endswith(b"\n"):
        report.warn(f"element {i} (hidden) {NEWLINE_KEY_WARNING}")
    return True, key


def _ip(text: str) -> str | None:
    try:
        return str(ipaddress.ip_address(text))
    except ValueError:
        return None


def _version(address: str) -> int:
    return ipaddress.ip_address(address).version


def parse_peer_lists(node: str, annotations: Mapping[str, str]) -> Parsed[tuple[PeerSpec, ...]]:
    """The deprecated ``peer.ips`` + ``peer.asns`` (+ ``passwords``, ``localips``,
    ``ports``) annotations: parallel comma lists, one element per peer.

    Any bad element or count drops every peer of these annotations (the
    lists are only meaningful together).
    """
    owner = _node(node)
    errors: list[str] = []
    warnings: list[str] = []
    present = [k for k in PEER_LIST_KEYS if k in annotations]
    if not present:
        return Parsed(())
    if PEER_IPS not in annotations or PEER_ASNS not in annotations:
        missing = PEER_ASNS if PEER_IPS in annotations else PEER_IPS
        have = ", ".join(k for k in present)
        error = (f"{owner}: annotation {missing}: missing, but {have} is set; "
                 f"expected {PEER_IPS} and {PEER_ASNS} together")
        return Parsed((), (error,), ())

    def parse_list(key: str, one: Any) -> list[Any] | None:
        report = _Report(owner, key)
        items = _elements(annotations[key], report)
        out = []
        ok = True
        for i, text in items:
            good, value = one(report, i, text)
            ok = ok and good
            out.append(value)
        errors.extend(report.errors)
        warnings.extend(report.warnings)
        return out if ok else None

    def one_ip(report: _Report, i: int, text: str) -> tuple[bool, Any]:
        ip = _ip(text)
        if ip is None:
            report.element(i, text, "is not an IP address")
        return ip is not None, ip

    def one_asn(report: _Report, i: int, text: str) -> tuple[bool, Any]:
        asn = _asn(text, report, i, peer=True)
        return asn is not None, asn

    def one_local(report: _Report, i: int, text: str) -> tuple[bool, Any]:
        if text == "":
            return True, None  # the node's own address
        ip = _ip(text)
        if ip is None:
            report.element(i, text, "is not an IP address (leave the element empty for the "
                                    "node's address)")
        return ip is not None, ip

    def one_port(report: _Report, i: int, text: str) -> tuple[bool, Any]:
        if text == "":
            return True, 179
        parsed = parse_go_uint(text)
        if parsed is None or not 1 <= parsed[0] <= 65535:
            report.element(i, text, "is not a port number; expected 1..65535 (empty for 179)")
            return False, None
        if not parsed[1]:
            report.warn(f"element {i} {_go_uint_note(text, parsed[0])}")
        return True, parsed[0]

    ips = parse_list(PEER_IPS, one_ip)
    asns = parse_list(PEER_ASNS, one_asn)
    passwords = parse_list(PEER_PASSWORDS, _password) if PEER_PASSWORDS in annotations else []
    locals_ = parse_list(PEER_LOCALIPS, one_local) if PEER_LOCALIPS in annotations else []
    ports = parse_list(PEER_PORTS, one_port) if PEER_PORTS in annotations else []
    if ips is None or asns is None or passwords is None or locals_ is None or ports is None:
        return Parsed((), tuple(errors), tuple(warnings))
    n = len(ips)
    for key, values, what in ((PEER_ASNS, asns, "AS numbers"), (PEER_PASSWORDS, passwords, "passwords"),
                              (PEER_LOCALIPS, locals_, "local addresses"), (PEER_PORTS, ports, "ports")):
        required = key == PEER_ASNS
        if len(values) != n and (required or values):
            tail = "" if required else ", or none"
            errors.append(f"{owner}: annotation {key}: {len(values)} {what} for {n} addresses "
                          f"in {PEER_IPS}; expected one per address{tail}")
    for i, ip in enumerate(ips):
        if ip in ips[:i]:
            errors.append(f"{owner}: annotation {PEER_IPS}: element {i + 1} {show(ip)} is listed "
                          f"twice (also element {ips.index(ip) + 1})")
    for i, local in enumerate(locals_):
        if local is not None and i < n and _version(local) != _version(ips[i]):
            errors.append(f"{owner}: annotation {PEER_LOCALIPS}: element {i + 1} {show(local)} is "
                          f"IPv{_version(local)} but peer {ips[i]} is IPv{_version(ips[i])}")
    if errors:
        return Parsed((), tuple(errors), tuple(warnings))
    peers = tuple(
        PeerSpec(address=ips[i], asn=asns[i], port=ports[i] if ports else 179,
                 password=passwords[i] if passwords else None,
                 local_address=locals_[i] if locals_ else None)
        for i in range(n))
    return Parsed(peers, (), tuple(warnings))


_PEER_KEYS = ("remoteip", "remoteasn", "localip", "password", "port", "bfd")


def _yaml_loader() -> type:
    # kbgp.config's loader: no YAML 1.1 base-60 integers (an IPv6 address of
    # decimal groups would otherwise become a number) and no duplicate keys.
    from kbgp.config import StrictYamlLoader

    return StrictYamlLoader


def parse_peers_yaml(node: str, text: str) -> Parsed[tuple[PeerSpec, ...]]:
    """``kube-router.io/peers``: a YAML (or JSON) list of peers.

    Keys: ``remoteip`` and ``remoteasn`` (required), ``localip``,
    ``password`` (base64), ``port`` (0 or absent: 179), ``bfd`` (accepted,
    ignored: kbgp has no BFD).  A bad entry is dropped, the others kept.
    """
    report = _Report(_node(node), PEERS)
    try:
        data = yaml.load(text, Loader=_yaml_loader())  # a SafeLoader: plain data only
    except yaml.MarkedYAMLError as exc:
        # Position and problem only: the text around it could be a password.
        mark = exc.problem_mark or exc.context_mark
        where = f"line {mark.line + 1}, column {mark.column + 1}" if mark else "unknown position"
        report.error(f"is not valid YAML at {where}: {exc.problem or exc.context or 'syntax error'}")
        return report.result(())
    except yaml.YAMLError:
        report.error("is not valid YAML")
        return report.result(())
    if data is None:
        return report.result(())
    if not isinstance(data, list):
        report.error("is not a YAML list; expected a list of peers like "
                     "[{remoteip: 192.168.1.99, remoteasn: 65000}]")
        return report.result(())
    out: list[PeerSpec] = []
    seen: dict[str, int] = {}
    for i, entry in enumerate(data, 1):
        peer = _yaml_peer(report, i, entry)
        if peer is None:
            continue
        if peer.address in seen:
            report.error(f"element {i}: remoteip {show(peer.address)} is listed twice (also "
                         f"element {seen[peer.address]}); the first is kept")
            continue
        seen[peer.address] = i
        out.append(peer)
    return report.result(tuple(out))


def _yaml_scalar(value: Any) -> str | None:
    """A YAML scalar as text (numbers too); None for mappings, lists, booleans, null."""
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, (int, str)):
        return str(value)
    return None


def _yaml_peer(report: _Report, i: int, entry: Any) -> PeerSpec | None:
    head = f"element {i}:"
    if not isinstance(entry, dict):
        report.error(f"{head} is not a mapping; expected keys remoteip, remoteasn, ...")
        return None
    for key in entry:
        if key not in _PEER_KEYS:
            report.warn(f"{head} unknown key {show(str(key))} is ignored (keys: "
                        f"{', '.join(_PEER_KEYS)})")
    if "bfd" in entry:
        report.warn(f"{head} bfd is ignored: kbgp does not implement BFD")
    ok = True
    address = None
    text = _yaml_scalar(entry.get("remoteip"))
    if "remoteip" not in entry:
        report.error(f"{head} remoteip is missing")
        ok = False
    elif text is None or _ip(text) is None:
        report.error(f"{head} remoteip {show(str(entry.get('remoteip')))} is not an IP address")
        ok = False
    else:
        address = _ip(text)
    asn = None
    text = _yaml_scalar(entry.get("remoteasn"))
    if "remoteasn" not in entry:
        report.error(f"{head} remoteasn is missing")
        ok = False
    elif text is None:
        report.error(f"{head} remoteasn {show(str(entry.get('remoteasn')))} is not an AS number")
        ok = False
    else:
        asn, why, note = check_asn(text, peer=True)
        if note is not None:
            report.warn(f"{head} remoteasn {note}")
        if why is not None:
            report.error(f"{head} remoteasn {show(text)} {why}")
        ok = ok and asn is not None
    local = None
    if entry.get("localip") not in (None, ""):
        text = _yaml_scalar(entry.get("localip"))
        local = _ip(text) if text is not None else None
        if local is None:
            report.error(f"{head} localip {show(str(entry.get('localip')))} is not an IP address")
            ok = False
        elif address is not None and _version(local) != _version(address):
            report.error(f"{head} localip {show(local)} is IPv{_version(local)} but remoteip "
                         f"{address} is IPv{_version(address)}")
            ok = False
    port = 179
    if entry.get("port") not in (None, 0, "0", ""):
        text = _yaml_scalar(entry.get("port"))
        parsed = parse_go_uint(text) if text is not None else None
        if parsed is None or not 1 <= parsed[0] <= 65535:
            report.error(f"{head} port {show(str(entry.get('port')))} is not a port number; "
                         f"expected 1..65535 (0 or absent for 179)")
            ok = False
        else:
            port = parsed[0]
    password = None
    if entry.get("password") not in (None, ""):
        value = entry.get("password")
        if not isinstance(value, str):
            report.error(f"{head} password (hidden) is not a string of base64")
            ok = False
        else:
            key = decode_password(value)
            problem = password_problem(key)
            if problem is not None:
                report.error(f"{head} password (hidden) {problem}")
                ok = False
            elif key:
                if key.endswith(b"\n"):
                    report.warn(f"{head} password (hidden) {NEWLINE_KEY_WARNING}")
                password = key
    if not ok or address is None or asn is None:
        return None
    return PeerSpec(address=address, asn=asn, port=port, password=password, local_address=local)


# ------------------------------------------------------------------ node: export and import


def parse_path_prepend(node: str, annotations: Mapping[str, str]) -> Parsed[tuple[int, int] | None]:
    """``path-prepend.as`` x ``path-prepend.repeat-n`` -> (asn, repeat) or None."""
    owner = _node(node)
    as_text = annotations.get(PATH_PREPEND_AS)
    repeat_text = annotations.get(PATH_PREPEND_REPEAT)
    if as_text is None:
        if repeat_text is not None:
            warning = (f"{owner}: annotation {PATH_PREPEND_REPEAT}: is ignored without "
                       f"{PATH_PREPEND_AS}")
            return Parsed(None, (), (warning,))
        return Parsed(None)
    as_report = _Report(owner, PATH_PREPEND_AS)
    asn = _asn(as_text.strip(), as_report, None, peer=False)
    rep_report = _Report(owner, PATH_PREPEND_REPEAT)
    repeat = None
    if repeat_text is None:
        rep_report.error(f"missing, but {PATH_PREPEND_AS} is set; expected both (repeat-n 1..255)")
    else:
        t = repeat_text.strip()
        parsed = parse_go_uint(t)
        if parsed is None or parsed[0] > 255:
            rep_report.error(f"{show(repeat_text)} is not a repeat count; expected 1..255")
        else:
            repeat = parsed[0]
            if not parsed[1]:
                rep_report.warn(_go_uint_note(t, repeat))
            if repeat == 0:
                rep_report.warn("0 prepends nothing")
    errors = tuple(as_report.errors + rep_report.errors)
    warnings = tuple(as_report.warnings + rep_report.warnings)
    if errors or asn is None or not repeat:
        return Parsed(None, errors, warnings)
    return Parsed((asn, repeat), errors, warnings)


#: The well-known community names kube-router accepts (GoBGP's names), with
#: their values from the IANA "BGP Well-known Communities" registry.
WELL_KNOWN_COMMUNITIES: dict[str, int] = {
    "internet": 0x00000000,
    "planned-shut": 0xFFFF0000,  # GRACEFUL_SHUTDOWN, RFC 8326
    "accept-own": 0xFFFF0001,  # RFC 7611
    "route-filter-translated-v4": 0xFFFF0002,
    "route-filter-v4": 0xFFFF0003,
    "route-filter-translated-v6": 0xFFFF0004,
    "route-filter-v6": 0xFFFF0005,
    "llgr-stale": 0xFFFF0006,  # RFC 9494
    "no-llgr": 0xFFFF0007,  # RFC 9494
    "blackhole": 0xFFFF029A,  # RFC 7999
    "no-export": 0xFFFFFF01,  # RFC 1997
    "no-advertise": 0xFFFFFF02,  # RFC 1997
    "no-export-subconfed": 0xFFFFFF03,  # RFC 1997
    "no-peer": 0xFFFFFF04,  # RFC 3765
}


def parse_community(text: str) -> int | None:
    """One standard community (RFC 1997): a decimal uint32, ``a:b`` with two
    decimal uint16, or a well-known name.  None when it is none of these."""
    if text in WELL_KNOWN_COMMUNITIES:
        return WELL_KNOWN_COMMUNITIES[text]
    if text.isascii() and text.isdigit():
        value = int(text)
        return value if value <= 0xFFFFFFFF else None
    hi, colon, lo = text.partition(":")
    if (colon and hi.isascii() and hi.isdigit() and lo.isascii() and lo.isdigit()
            and int(hi) <= 0xFFFF and int(lo) <= 0xFFFF):
        return (int(hi) << 16) | int(lo)
    return None


def parse_communities(node: str, text: str) -> Parsed[tuple[int, ...]]:
    """``node.bgp.communities``: added to every route sent to external peers."""
    report = _Report(_node(node), COMMUNITIES)
    out: list[int] = []
    for i, item in _elements(text, report):
        value = parse_community(item)
        if value is None:
            report.element(i, item, "is not a community; expected a 32-bit number, A:B with "
                                    "A and B 0..65535, or a well-known name like no-export")
        elif value not in out:
            out.append(value)
    return report.result(tuple(out))


def _network(text: str) -> ipaddress.IPv4Network | ipaddress.IPv6Network | None:
    if "/" not in text:
        return None
    try:
        return ipaddress.ip_network(text, strict=False)
    except ValueError:
        return None


def _cidr_list(node: str, key: str, text: str, kube_router_trims: bool = False
               ) -> Parsed[tuple[str, ...]]:
    report = _Report(_node(node), key)
    out: list[str] = []
    for i, item in _elements(text, report, kube_router_trims):
        net = _network(item)
        if net is None:
            report.element(i, item, "is not a CIDR like 10.0.0.0/16 or 2001:db8::/64")
            continue
        try:
            ipaddress.ip_network(item, strict=True)
        except ValueError:
            report.warn(f"element {i} {show(item)} has host bits set; {net} is used")
        if str(net) not in out:
            out.append(str(net))
    return report.result(tuple(out))


def parse_custom_import_reject(node: str, text: str) -> Parsed[tuple[str, ...]]:
    """``node.bgp.customimportreject``: prefixes (with all more-specifics) never imported."""
    return _cidr_list(node, CUSTOM_IMPORT_REJECT, text, kube_router_trims=True)


def parse_pod_cidrs(node: str, text: str) -> Parsed[tuple[str, ...]]:
    """``pod-cidrs``: the node's pod CIDRs, both families, instead of spec.podCIDRs."""
    return _cidr_list(node, POD_CIDRS, text)


def parse_bgp_local_addresses(node: str, text: str) -> Parsed[tuple[str, ...]]:
    """``bgp-local-addresses``: the addresses BGP listens on."""
    report = _Report(_node(node), BGP_LOCAL_ADDRESSES)
    out: list[str] = []
    for i, item in _elements(text, report):
        ip = _ip(item)
        if ip is None:
            report.element(i, item, "is not an IP address")
        elif ip not in out:
            out.append(ip)
    return report.result(tuple(out))


# ------------------------------------------------------------------ services


def parse_service_bool(service: str, key: str, text: str) -> Parsed[bool]:
    """A service's boolean annotation, Go ParseBool; anything else reads as false."""
    report = _Report(f"service {service}", key)
    value = parse_go_bool(text.strip())
    if value is None:
        report.error(f"{show(text)} is not a boolean, so it reads as false; expected "
                     f"{BOOL_SPELLINGS}")
        return report.result(False)
    return report.result(value)


# ------------------------------------------------------------------ one node, everything


@dataclass(frozen=True, slots=True)
class NodeAnnotations:
    """What a node's annotations say, parsed once."""

    asn: int | None = None
    rr_server: str | None = None  # cluster id, dotted quad
    rr_client: str | None = None
    errors: tuple[str, ...] = ()
    warnings: tuple[str, ...] = ()


def parse_role_annotations(node: str, annotations: Mapping[str, str]) -> NodeAnnotations:
    """The annotations read from every node: node.asn, rr.server, rr.client."""
    errors: list[str] = []
    warnings: list[str] = []
    values: dict[str, Any] = {}
    for key, attr in ((NODE_ASN, "asn"), (RR_SERVER, "rr_server"), (RR_CLIENT, "rr_client")):
        text = annotations.get(key)
        if text is None:
            continue
        parsed = parse_node_asn(node, text) if key == NODE_ASN else parse_rr_id(node, key, text)
        values[attr] = parsed.value
        errors.extend(parsed.errors)
        warnings.extend(parsed.warnings)
    if values.get("rr_server") is not None and values.get("rr_client") is not None:
        warnings.append(f"node {node}: annotations {RR_SERVER} and {RR_CLIENT} are both set; "
                        f"the node is a route-reflector server (as in kube-router)")
        values["rr_client"] = None
    return NodeAnnotations(errors=tuple(errors), warnings=tuple(warnings), **values)

