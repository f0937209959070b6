#!/usr/bin/env python3
"""Capture golden BGP OPEN/UPDATE byte streams from BIRD 2, GoBGP and FRR.

Usage (as root, Linux, with bird2 / gobgpd / frr installed):

    python3 tests/vectors/golden/capture.py [bird|gobgp|frr|all] [--keep] [--window SECONDS]

For every daemon this script

  1. builds two network namespaces (``kbgpcap-<daemon>-d`` for the daemon,
     ``kbgpcap-<daemon>-c`` for the collector) joined by one veth pair,
  2. writes a configuration generated from the ROUTES table below into a temp
     dir and starts the daemon inside the daemon namespace,
  3. runs a tiny collector (this same file, ``--collector`` mode) inside the
     collector namespace; it listens on 10.200.0.2:179, accepts the daemon's
     connection, answers its OPEN with a handcrafted OPEN + KEEPALIVE and
     records every byte the daemon sends until End-of-RIB was seen for IPv4
     and IPv6 unicast (or the time window passes),
  4. writes ``<daemon>/stream.bin`` (raw bytes, whole messages, in order) and
     ``<daemon>/expected.json`` next to this file.

``expected.json`` is the oracle for kbgp's decoder tests, so it is built from
the configuration handed to the daemon (ROUTES, LOCAL_AS, ...) plus a few
deliberately tiny parses of the received bytes (message header walk, OPEN
hold time and capability codes, the IPv6 link-local next hop).  This file
must never import kbgp.  Everything is removed again in ``finally`` blocks,
also on Ctrl-C / SIGTERM / errors.

Only loopback and the veth link between the two private namespaces are used.
"""

from __future__ import annotations

import argparse
import ipaddress
import json
import os
import select
import shutil
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent

# --------------------------------------------------------------------------
# Scenario (single source of truth for daemon configs and expected.json)
# --------------------------------------------------------------------------

LOCAL_AS = 4200000001          # daemon AS, needs the 4-octet AS capability
AS_TRANS = 23456               # RFC 6793: My-AS field when the AS is > 65535
COLLECTOR_AS = 65010
DAEMON_V4, COLLECTOR_V4 = "10.200.0.1", "10.200.0.2"
DAEMON_V6, COLLECTOR_V6 = "fd00:200::1", "fd00:200::2"
ROUTER_ID, COLLECTOR_ID = DAEMON_V4, COLLECTOR_V4
# Fixed MAC addresses make the kernel's EUI-64 link-local addresses (and so
# the captured bytes) identical between runs.
DAEMON_MAC, COLLECTOR_MAC = "02:00:00:c8:00:01", "02:00:00:c8:00:02"

# prefix -> attributes the daemon is told to attach.  "origin" is always set
# explicitly in every daemon's configuration, so it is never a daemon default.
ROUTES: dict[str, dict] = {
    "198.51.100.0/27": {"origin": "igp", "communities": ["65000:1", "no-export"]},
    "198.51.100.32/27": {"origin": "igp", "large_communities": ["4200000001:1:2"]},
    "198.51.100.64/27": {"origin": "igp", "med": 50},
    "198.51.100.96/27": {"origin": "incomplete"},
    "198.51.100.200/32": {"origin": "igp"},
    "198.51.100.201/32": {"origin": "igp", "med": 50, "communities": ["65000:1"],
                          "large_communities": ["4200000001:1:2"]},
    "2001:db8:100::/64": {"origin": "igp"},
    "2001:db8:100:1::/64": {"origin": "igp", "med": 50, "communities": ["65000:1"]},
    "2001:db8:100::1/128": {"origin": "igp", "large_communities": ["4200000001:1:2"]},
    "2001:db8:100:f0::/60": {"origin": "incomplete"},
}

WELL_KNOWN_COMMUNITIES = {"no-export": (65535, 65281)}


def is_v6(prefix: str) -> bool:
    return ":" in prefix


def community_pair(text: str) -> tuple[int, int]:
    if text in WELL_KNOWN_COMMUNITIES:
        return WELL_KNOWN_COMMUNITIES[text]
    high, low = text.split(":")
    return int(high), int(low)


# --------------------------------------------------------------------------
# Small helpers
# --------------------------------------------------------------------------

def log(msg: str) -> None:
    print(f"[capture] {msg}", file=sys.stderr, flush=True)


def run(cmd: list[str], check: bool = True, **kw) -> subprocess.CompletedProcess:
    return subprocess.run(cmd, check=check, text=True, capture_output=True, **kw)


def netns_cmd(ns: str, cmd: list[str]) -> list[str]:
    return ["ip", "netns", "exec", ns] + cmd


def first_line_of_version(cmd: list[str]) -> str:
    out = run(cmd, check=False)
    for line in (out.stdout + out.stderr).splitlines():
        if line.strip():
            return line.strip()
    return "unknown"


def wait_for(predicate, timeout: float, what: str) -> None:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if predicate():
            return
        time.sleep(0.2)
    raise RuntimeError(f"timed out waiting for {what}")


class Terminated(Exception):
    pass


def _on_sigterm(signum, frame):
    raise Terminated(f"signal {signum}")


# --------------------------------------------------------------------------
# BGP wire constants used by the collector
# --------------------------------------------------------------------------

MARKER = b"\xff" * 16
TYPE_NAMES = {1: "open", 2: "update", 3: "notification", 4: "keepalive", 5: "route-refresh"}


def bgp_message(mtype: int, body: bytes) -> bytes:
    return MARKER + struct.pack("!HB", 19 + len(body), mtype) + body


def collector_open() -> bytes:
    """Handcrafted OPEN: AS 65010, hold 90, id 10.200.0.2, capabilities
    MP ipv4-unicast, MP ipv6-unicast, route refresh, 4-octet AS 65010 and
    graceful restart (time 120, both families, no flags)."""
    caps = b"".join([
        bytes([1, 4]) + struct.pack("!HBB", 1, 0, 1),          # MP IPv4 unicast
        bytes([1, 4]) + struct.pack("!HBB", 2, 0, 1),          # MP IPv6 unicast
        bytes([2, 0]),                                          # route refresh
        bytes([65, 4]) + struct.pack("!I", COLLECTOR_AS),       # 4-octet AS
        bytes([64, 10]) + struct.pack("!H", 120)                # GR, R=N=0, 120 s
        + struct.pack("!HBB", 1, 1, 0) + struct.pack("!HBB", 2, 1, 0),
    ])
    params = bytes([2, len(caps)]) + caps                      # one capabilities param
    body = struct.pack("!BHH4sB", 4, COLLECTOR_AS, 90,
                       socket.inet_aton(COLLECTOR_ID), len(params)) + params
    return bgp_message(1, body)


KEEPALIVE = bgp_message(4, b"")
CEASE_ADMIN_SHUTDOWN = bgp_message(3, bytes([6, 2]))


# --------------------------------------------------------------------------
# Minimal, deliberately small parsing (the oracle side)
# --------------------------------------------------------------------------

def split_messages(data: bytes) -> list[tuple[int, bytes]]:
    """Header walk: marker, length, type only.  Returns (type, body) pairs."""
    out = []
    off = 0
    while off < len(data):
        if len(data) - off < 19:
            raise ValueError(f"partial header at offset {off}")
        if data[off:off + 16] != MARKER:
            raise ValueError(f"bad marker at offset {off}")
        length, mtype = struct.unpack_from("!HB", data, off + 16)
        if not 19 <= length <= 4096:
            raise ValueError(f"bad length {length} at offset {off}")
        if off + length > len(data):
            raise ValueError(f"truncated message at offset {off}")
        out.append((mtype, bytes(data[off + 19:off + length])))
        off += length
    return out


def open_fields(body: bytes) -> dict:
    """My-AS, hold time, BGP id and the capability codes (in order sent)."""
    version, my_as, hold, bgp_id, opt_len = struct.unpack_from("!BHH4sB", body, 0)
    params = body[10:]
    if len(params) != opt_len:
        raise ValueError("OPEN optional parameter length mismatch")
    if opt_len and params[0] == 255:
        raise ValueError("RFC 9072 extended optional parameters not handled here")
    codes = []
    i = 0
    while i < len(params):
        ptype, plen = params[i], params[i + 1]
        value = params[i + 2:i + 2 + plen]
        i += 2 + plen
        if ptype != 2:
            continue
        j = 0
        while j < len(value):
            code, clen = value[j], value[j + 1]
            codes.append(code)
            j += 2 + clen
        if j != len(value):
            raise ValueError("capability TLV overrun")
    if i != len(params):
        raise ValueError("optional parameter TLV overrun")
    return {"version": version, "my_as": my_as, "hold_time": hold,
            "router_id": socket.inet_ntoa(bgp_id), "capabilities": codes}


def update_parts(body: bytes) -> tuple[bytes, list[tuple[int, int, bytes]], bytes]:
    """(withdrawn bytes, [(flags, code, value)], nlri bytes) of one UPDATE."""
    wlen = struct.unpack_from("!H", body, 0)[0]
    withdrawn = body[2:2 + wlen]
    alen = struct.unpack_from("!H", body, 2 + wlen)[0]
    attrs_raw = body[4 + wlen:4 + wlen + alen]
    nlri = body[4 + wlen + alen:]
    if len(withdrawn) != wlen or len(attrs_raw) != alen:
        raise ValueError("UPDATE length fields overrun")
    attrs = []
    i = 0
    while i < len(attrs_raw):
        flags, code = attrs_raw[i], attrs_raw[i + 1]
        if flags & 0x10:                       # extended length bit
            alen1 = struct.unpack_from("!H", attrs_raw, i + 2)[0]
            i += 4
        else:
            alen1 = attrs_raw[i + 2]
            i += 3
        attrs.append((flags, code, attrs_raw[i:i + alen1]))
        i += alen1
    if i != len(attrs_raw):
        raise ValueError("attribute overrun")
    return withdrawn, attrs, nlri


def end_of_rib_family(body: bytes) -> str | None:
    """RFC 4724 End-of-RIB: empty UPDATE (IPv4) or an UPDATE whose only
    content is MP_UNREACH_NLRI with AFI 2 / SAFI 1 and no prefixes."""
    if body == b"\x00\x00\x00\x00":
        return "ipv4-unicast"
    withdrawn, attrs, nlri = update_parts(body)
    if not withdrawn and not nlri and len(attrs) == 1 \
            and attrs[0][1] == 15 and attrs[0][2] == b"\x00\x02\x01":
        return "ipv6-unicast"
    return None


def ipv6_mp_next_hops(messages: list[tuple[int, bytes]]) -> set[tuple[str, ...]]:
    """Targeted parse of one field: the next hop(s) in every MP_REACH_NLRI for
    AFI 2 / SAFI 1, as tuples (global[, link-local])."""
    found = set()
    for mtype, body in messages:
        if mtype != 2:
            continue
        for _flags, code, value in update_parts(body)[1]:
            if code != 14:
                continue
            afi, safi, nhlen = struct.unpack_from("!HBB", value, 0)
            if (afi, safi) != (2, 1):
                continue
            nh = value[4:4 + nhlen]
            if nhlen not in (16, 32):
                raise ValueError(f"unexpected IPv6 next hop length {nhlen}")
            # inet_ntop gives RFC 5952 text, incl. "::ffff:a.b.c.d" for
            # IPv4-mapped addresses (str(IPv6Address) only does so on 3.13+).
            found.add(tuple(socket.inet_ntop(socket.AF_INET6, nh[k:k + 16])
                            for k in range(0, nhlen, 16)))
    return found


# ---- sanity checks only; nothing below feeds expected.json ---------------

def _prefixes(raw: bytes, width: int) -> list[str]:
    out = []
    i = 0
    while i < len(raw):
        plen = raw[i]
        n = (plen + 7) // 8
        addr = int.from_bytes(raw[i + 1:i + 1 + n].ljust(width // 8, b"\x00"), "big")
        net = ipaddress.IPv4Network((addr, plen)) if width == 32 else ipaddress.IPv6Network((addr, plen))
        out.append(str(net))
        i += 1 + n
    if i != len(raw):
        raise ValueError("prefix overrun")
    return out


def announced_and_withdrawn(messages: list[tuple[int, bytes]]) -> tuple[list[str], list[str]]:
    announced, withdrawn = [], []
    for mtype, body in messages:
        if mtype != 2:
            continue
        wraw, attrs, nlri = update_parts(body)
        withdrawn += _prefixes(wraw, 32)
        announced += _prefixes(nlri, 32)
        for _flags, code, value in attrs:
            if code == 14:
                afi, safi, nhlen = struct.unpack_from("!HBB", value, 0)
                if (afi, safi) == (2, 1):
                    announced += _prefixes(value[5 + nhlen:], 128)
            elif code == 15:
                afi, safi = struct.unpack_from("!HB", value, 0)
                if (afi, safi) == (2, 1):
                    withdrawn += _prefixes(value[3:], 128)
    return announced, withdrawn


# --------------------------------------------------------------------------
# Collector (runs inside the collector namespace as a child process)
# --------------------------------------------------------------------------

def collector_main(out_path: str, accept_timeout: float, window: float) -> int:
    def clog(msg):
        print(f"[collector] {msg}", file=sys.stderr, flush=True)

    srv = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    srv.bind((COLLECTOR_V4, 179))
    srv.listen(1)
    srv.settimeout(accept_timeout)
    print("READY", flush=True)
    try:
        conn, peer = srv.accept()
    except socket.timeout:
        clog("no connection from the daemon")
        return 3
    finally:
        srv.close()
    clog(f"connection from {peer[0]}:{peer[1]}")
    if peer[0] != DAEMON_V4:
        clog("unexpected peer address")
        conn.close()
        return 4

    stream = bytearray()
    consumed = 0             # bytes of `stream` that form complete messages
    keep = None              # cut-off after the message completing End-of-RIB
    eor: list[str] = []
    sent_open = False
    status = 2
    deadline = time.monotonic() + window
    try:
        while keep is None:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                clog(f"window of {window} s passed; End-of-RIB seen for {eor}")
                break
            readable, _, _ = select.select([conn], [], [], remaining)
            if not readable:
                continue
            chunk = conn.recv(65536)
            if not chunk:
                clog("daemon closed the connection")
                break
            stream += chunk
            while keep is None and len(stream) - consumed >= 19:
                length = struct.unpack_from("!H", stream, consumed + 16)[0]
                if stream[consumed:consumed + 16] != MARKER or length < 19:
                    raise ValueError("collector: bad header from daemon")
                if len(stream) - consumed < length:
                    break
                mtype = stream[consumed + 18]
                body = bytes(stream[consumed + 19:consumed + length])
                consumed += length
                if mtype == 1 and not sent_open:
                    conn.sendall(collector_open() + KEEPALIVE)
                    sent_open = True
                elif mtype == 4:
                    conn.sendall(KEEPALIVE)
                elif mtype == 3:
                    clog(f"NOTIFICATION from daemon: {body.hex()}")
                    keep = consumed
                    status = 5
                elif mtype == 2:
                    fam = end_of_rib_family(body)
                    if fam and fam not in eor:
                        eor.append(fam)
                        clog(f"End-of-RIB {fam}")
                    if {"ipv4-unicast", "ipv6-unicast"} <= set(eor):
                        keep = consumed
                        status = 0
        try:
            conn.sendall(CEASE_ADMIN_SHUTDOWN)
        except OSError:
            pass
    finally:
        conn.close()
        data = bytes(stream[:keep]) if keep is not None else bytes(stream)
        with open(out_path, "wb") as fh:
            fh.write(data)
        clog(f"wrote {len(data)} bytes")
    return status


# --------------------------------------------------------------------------
# Daemon drivers
# --------------------------------------------------------------------------

class Daemon:
    name = ""
    version_cmd: list[str] = []
    # Attributes the daemon adds by itself to every route that does not get
    # them from ROUTES (documented daemon behaviour, see FRR).  ORIGIN is
    # never left to the daemon: every configuration sets it explicitly.
    implicit_attributes: dict = {}

    def __init__(self, tmp: Path, ns: str, procs: list):
        self.tmp, self.ns, self.procs = tmp, ns, procs

    def spawn(self, cmd: list[str], logname: str) -> subprocess.Popen:
        # Private UTS namespace with a fixed host name: GoBGP and FRR put the
        # host name into the FQDN capability (code 73), and the captured bytes
        # must not depend on (or leak) the machine's name.  Every step execs,
        # so the Popen pid is the daemon's own pid.
        wrapped = ["unshare", "--uts", "--", "sh", "-c",
                   'hostname "$1" && echo "(none)" > /proc/sys/kernel/domainname'
                   ' && shift && exec "$@"', "sh", f"kbgpcap-{self.name}"] + cmd
        logf = open(self.tmp / logname, "wb")
        p = subprocess.Popen(netns_cmd(self.ns, wrapped), stdout=logf, stderr=subprocess.STDOUT,
                             stdin=subprocess.DEVNULL)
        logf.close()
        self.procs.append(p)
        return p

    # The session to the collector is configured administratively down and
    # only enabled (enable_peer) once the daemon's RIB holds every route in
    # ROUTES, so the initial table transfer cannot race route origination
    # (for GoBGP the routes are added over its API after start-up).

    def start(self) -> None:
        raise NotImplementedError

    def route_count(self) -> int:
        raise NotImplementedError

    def enable_peer(self) -> None:
        raise NotImplementedError

    def ipv6_global_next_hop(self) -> str:
        """Global IPv6 next hop the daemon is expected to put into
        MP_REACH_NLRI: the daemon-side interface address we configured."""
        return DAEMON_V6


class Bird(Daemon):
    name = "bird"
    version_cmd = ["bird", "--version"]

    def config(self) -> str:
        lines = [
            "log stderr all;",
            f"router id {ROUTER_ID};",
            "protocol device { }",
            "protocol static static4 {",
            "  ipv4;",
        ]
        lines += [f"  route {p} unreachable;" for p in ROUTES if not is_v6(p)]
        lines += ["}", "protocol static static6 {", "  ipv6;"]
        lines += [f"  route {p} unreachable;" for p in ROUTES if is_v6(p)]
        lines += ["}", "filter to_collector {"]
        for prefix, attrs in ROUTES.items():
            lines.append(f"  if net = {prefix} then {{")
            lines.append(f"    bgp_origin = ORIGIN_{attrs['origin'].upper()};")
            if "med" in attrs:
                lines.append(f"    bgp_med = {attrs['med']};")
            for c in attrs.get("communities", []):
                lines.append("    bgp_community.add((%d, %d));" % community_pair(c))
            for lc in attrs.get("large_communities", []):
                lines.append("    bgp_large_community.add((%s, %s, %s));" % tuple(lc.split(":")))
            lines.append("    accept;")
            lines.append("  }")
        lines += [
            "  reject;",
            "}",
            "protocol bgp collector {",
            "  disabled yes;",
            f"  local {DAEMON_V4} as {LOCAL_AS};",
            f"  neighbor {COLLECTOR_V4} as {COLLECTOR_AS};",
            "  connect delay time 1;",
            "  connect retry time 2;",
            "  ipv4 { import none; export filter to_collector; };",
            "  ipv6 { import none; export filter to_collector; };",
            "}",
        ]
        return "\n".join(lines) + "\n"

    def start(self) -> None:
        conf = self.tmp / "bird.conf"
        conf.write_text(self.config())
        self.spawn(["bird", "-f", "-c", str(conf), "-s", str(self.tmp / "bird.ctl")], "bird.log")

    def birdc(self, *args: str, check: bool = True) -> subprocess.CompletedProcess:
        return run(netns_cmd(self.ns, ["birdc", "-s", str(self.tmp / "bird.ctl"), *args]), check=check)

    def route_count(self) -> int:
        out = self.birdc("show", "route", "count", check=False).stdout
        for line in out.splitlines():
            if line.startswith("Total:"):
                return int(line.split()[1])
        return 0

    def enable_peer(self) -> None:
        self.birdc("enable", "collector")


class GoBGP(Daemon):
    name = "gobgp"
    version_cmd = ["gobgpd", "--version"]
    api = "127.0.0.1"
    api_port = "50051"

    def config(self) -> str:
        # The neighbor starts administratively down so that the routes added
        # through the CLI are all in the RIB before the session comes up.
        # GoBGP only sends End-of-RIB markers when graceful restart is enabled
        # on the session (isGracefulRestartEnabled in its server), hence the
        # graceful-restart sections.
        return f"""[global.config]
  as = {LOCAL_AS}
  router-id = "{ROUTER_ID}"
  local-address-list = ["{DAEMON_V4}"]

[[neighbors]]
  [neighbors.config]
    neighbor-address = "{COLLECTOR_V4}"
    peer-as = {COLLECTOR_AS}
    admin-down = true
  [neighbors.timers.config]
    connect-retry = 1
  [neighbors.transport.config]
    local-address = "{DAEMON_V4}"
  [neighbors.graceful-restart.config]
    enabled = true
    restart-time = 120
  [[neighbors.afi-safis]]
    [neighbors.afi-safis.config]
      afi-safi-name = "ipv4-unicast"
    [neighbors.afi-safis.mp-graceful-restart.config]
      enabled = true
  [[neighbors.afi-safis]]
    [neighbors.afi-safis.config]
      afi-safi-name = "ipv6-unicast"
    [neighbors.afi-safis.mp-graceful-restart.config]
      enabled = true
"""

    def ipv6_global_next_hop(self) -> str:
        # GoBGP's eBGP next-hop-self uses the session's local address; for
        # IPv6 NLRI over an IPv4 session that is the IPv4-mapped IPv6 form of
        # 10.200.0.1 (16-byte next hop, no link-local).  Not configured by us:
        # this is GoBGP's behaviour, asserted against the capture below.
        return "::ffff:" + DAEMON_V4

    def cli(self, args: list[str], check: bool = True) -> subprocess.CompletedProcess:
        return run(netns_cmd(self.ns, ["gobgp", "-u", self.api, "-p", self.api_port] + args),
                   check=check)

    def rib_add_args(self, prefix: str, attrs: dict) -> list[str]:
        args = ["global", "rib", "add", "-a", "ipv6" if is_v6(prefix) else "ipv4", prefix,
                "origin", attrs["origin"]]
        if "med" in attrs:
            args += ["med", str(attrs["med"])]
        if attrs.get("communities"):
            args += ["community", ",".join(attrs["communities"])]
        if attrs.get("large_communities"):
            args += ["large-community", ",".join(attrs["large_communities"])]
        return args

    def start(self) -> None:
        conf = self.tmp / "gobgpd.toml"
        conf.write_text(self.config())
        self.spawn(["gobgpd", "-f", str(conf), "--api-hosts", f"{self.api}:{self.api_port}",
                    "--pprof-disable", "-p", "-l", "info"], "gobgpd.log")
        wait_for(lambda: self.cli(["global"], check=False).returncode == 0, 20, "gobgpd API")
        for prefix, attrs in ROUTES.items():
            self.cli(self.rib_add_args(prefix, attrs))
        (self.tmp / "gobgp-routes.sh").write_text(
            "".join("gobgp " + " ".join(self.rib_add_args(p, a)) + "\n" for p, a in ROUTES.items()))

    def route_count(self) -> int:
        total = 0
        for fam in ("ipv4", "ipv6"):
            out = self.cli(["-j", "global", "rib", "-a", fam], check=False)
            total += len(json.loads(out.stdout or "{}")) if out.returncode == 0 else 0
        return total

    def enable_peer(self) -> None:
        self.cli(["neighbor", COLLECTOR_V4, "enable"])


class FRR(Daemon):
    name = "frr"
    version_cmd = ["/usr/lib/frr/bgpd", "--version"]
    sbin = "/usr/lib/frr"
    # `network` statements copy the route's IGP metric (0 here, import-check
    # off) into MED, and FRR sends that MED to eBGP peers: every route without
    # a configured MED carries MED 0.
    implicit_attributes = {"med": 0}

    def bgpd_config(self) -> str:
        lines = ["hostname kbgpcap-frr", "!"]
        # Prefix-lists and the route-map come first: a route-map referenced
        # by a neighbor before it exists is treated as deny-all until FRR's
        # route-map delay timer fires, which made the first session empty.
        for n, prefix in enumerate(ROUTES, start=1):
            kind = "ipv6" if is_v6(prefix) else "ip"
            lines.append(f"{kind} prefix-list R{n} seq 5 permit {prefix}")
        lines.append("!")
        # Attributes are attached on the way out (an outbound route-map runs
        # after the RFC 1997 no-export check, so the no-export route is sent).
        for n, (prefix, attrs) in enumerate(ROUTES.items(), start=1):
            kind = "ipv6" if is_v6(prefix) else "ip"
            lines.append(f"route-map TO-COLLECTOR permit {n * 10}")
            lines.append(f" match {kind} address prefix-list R{n}")
            lines.append(f" set origin {attrs['origin']}")
            if "med" in attrs:
                lines.append(f" set metric {attrs['med']}")
            if attrs.get("communities"):
                lines.append(" set community " + " ".join(attrs["communities"]))
            if attrs.get("large_communities"):
                lines.append(" set large-community " + " ".join(attrs["large_communities"]))
            lines.append("!")
        lines += [
            "route-map TO-COLLECTOR deny 65000",
            "!",
            f"router bgp {LOCAL_AS}",
            f" bgp router-id {ROUTER_ID}",
            " no bgp ebgp-requires-policy",
            " no bgp network import-check",
            " no bgp default ipv4-unicast",
            f" neighbor {COLLECTOR_V4} remote-as {COLLECTOR_AS}",
            f" neighbor {COLLECTOR_V4} shutdown",
            f" neighbor {COLLECTOR_V4} timers connect 1",
            " !",
        ]
        for afi, v6 in (("ipv4", False), ("ipv6", True)):
            lines.append(f" address-family {afi} unicast")
            lines += [f"  network {p}" for p in ROUTES if is_v6(p) == v6]
            lines.append(f"  neighbor {COLLECTOR_V4} activate")
            lines.append(f"  neighbor {COLLECTOR_V4} route-map TO-COLLECTOR out")
            lines.append(" exit-address-family")
            lines.append(" !")
        return "\n".join(lines) + "\n"

    def start(self) -> None:
        zconf, bconf = self.tmp / "zebra.conf", self.tmp / "bgpd.conf"
        zconf.write_text("hostname kbgpcap-frr\n!\n")
        bconf.write_text(self.bgpd_config())
        vty = self.tmp / "vty"
        vty.mkdir()
        zsock = self.tmp / "zserv.api"
        # FRR drops privileges to its packaged "frr" user (root is refused
        # unless it is in the frrvty group), so hand it the temp dir.
        for path in (self.tmp, vty, zconf, bconf):
            shutil.chown(path, "frr", "frr")
        common = ["--vty_socket", str(vty), "-P", "0", "-z", str(zsock), "--log", "stdout"]
        self.spawn([f"{self.sbin}/zebra", "-f", str(zconf), "-i", str(self.tmp / "zebra.pid")] + common,
                   "zebra.log")
        wait_for(zsock.exists, 20, "zebra socket")
        self.spawn([f"{self.sbin}/bgpd", "-f", str(bconf), "-i", str(self.tmp / "bgpd.pid")] + common,
                   "bgpd.log")

    def vtysh(self, *commands: str, check: bool = True) -> subprocess.CompletedProcess:
        cmd = ["vtysh", "--vty_socket", str(self.tmp / "vty")]
        for c in commands:
            cmd += ["-c", c]
        return run(netns_cmd(self.ns, cmd), check=check)

    def route_count(self) -> int:
        total = 0
        for fam in ("ipv4", "ipv6"):
            out = self.vtysh(f"show bgp {fam} unicast json", check=False)
            if out.returncode == 0 and out.stdout.strip():
                total += len(json.loads(out.stdout).get("routes", {}))
        return total

    def enable_peer(self) -> None:
        self.vtysh("configure terminal", f"router bgp {LOCAL_AS}", f"no neighbor {COLLECTOR_V4} shutdown")


DAEMONS = {"bird": Bird, "gobgp": GoBGP, "frr": FRR}


# --------------------------------------------------------------------------
# Namespaces
# --------------------------------------------------------------------------

def ns_names(daemon: str) -> tuple[str, str, str, str]:
    tag = daemon[0]          # b / g / f: interface names must stay <= 15 chars
    return (f"kbgpcap-{daemon}-d", f"kbgpcap-{daemon}-c", f"kbgpcap-{tag}d", f"kbgpcap-{tag}c")


def netns_exists(ns: str) -> bool:
    return ns in run(["ip", "netns", "list"]).stdout.split()


def setup_netns(daemon: str) -> None:
    dns, cns, dif, cif = ns_names(daemon)
    for ns in (dns, cns):
        run(["ip", "netns", "add", ns])
        for key in ("all", "default"):
            run(netns_cmd(ns, ["sysctl", "-q", "-w", f"net.ipv6.conf.{key}.accept_dad=0"]))
        run(["ip", "-n", ns, "link", "set", "lo", "up"])
    run(["ip", "link", "add", "name", dif, "address", DAEMON_MAC, "netns", dns, "type", "veth",
         "peer", "name", cif, "address", COLLECTOR_MAC, "netns", cns])
    for ns, ifname, v4, v6 in ((dns, dif, DAEMON_V4, DAEMON_V6), (cns, cif, COLLECTOR_V4, COLLECTOR_V6)):
        run(netns_cmd(ns, ["sysctl", "-q", "-w", f"net.ipv6.conf.{ifname}.accept_dad=0"]))
        run(["ip", "-n", ns, "addr", "add", f"{v4}/30", "dev", ifname])
        run(["ip", "-n", ns, "addr", "add", f"{v6}/64", "dev", ifname, "nodad"])
        run(["ip", "-n", ns, "link", "set", ifname, "up"])


def link_local_of(ns: str, ifname: str) -> str | None:
    out = run(["ip", "-n", ns, "-j", "-6", "addr", "show", "dev", ifname, "scope", "link"]).stdout
    for link in json.loads(out or "[]"):
        for a in link.get("addr_info", []):
            if a.get("scope") == "link" and "local" in a:
                return a["local"]
    return None


def teardown_netns(daemon: str) -> None:
    for ns in ns_names(daemon)[:2]:
        if not netns_exists(ns):
            continue
        # Anything still running in our private namespace was started by us.
        for pid in run(["ip", "netns", "pids", ns], check=False).stdout.split():
            try:
                os.kill(int(pid), signal.SIGKILL)
            except (ProcessLookupError, ValueError):
                pass
        run(["ip", "netns", "del", ns], check=False)


def stop_procs(procs: list[subprocess.Popen]) -> None:
    for p in reversed(procs):
        if p.poll() is None:
            p.terminate()
    for p in reversed(procs):
        try:
            p.wait(timeout=5)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()


# --------------------------------------------------------------------------
# expected.json
# --------------------------------------------------------------------------

def build_expected(drv: Daemon, stream: bytes, link_local_kernel: str | None) -> dict:
    messages = split_messages(stream)
    counts: dict[str, int] = {}
    for mtype, _ in messages:
        name = TYPE_NAMES.get(mtype, f"type-{mtype}")
        counts[name] = counts.get(name, 0) + 1
    if not messages or messages[0][0] != 1:
        raise ValueError("stream does not start with an OPEN")
    opened = open_fields(messages[0][1])
    eor = []
    for mtype, body in messages:
        if mtype == 2:
            fam = end_of_rib_family(body)
            if fam:
                eor.append(fam)

    # IPv6 next hop: the global address is predicted per daemon (normally the
    # interface address we configured); whether a link-local follows is the
    # daemon's choice, so that part comes from the targeted MP_REACH parse
    # (and must equal the kernel's link-local of the daemon's interface).
    hops = ipv6_mp_next_hops(messages)
    if len(hops) != 1:
        raise ValueError(f"expected one IPv6 next hop set, saw {sorted(hops)}")
    (hop,) = hops
    if hop[0] != drv.ipv6_global_next_hop():
        raise ValueError(f"IPv6 global next hop {hop[0]} is not {drv.ipv6_global_next_hop()}")
    if len(hop) == 2 and hop[1] != link_local_kernel:
        raise ValueError(f"link-local next hop {hop[1]} is not the interface's {link_local_kernel}")
    mp_next_hop = list(hop)

    routes = {}
    for prefix, attrs in ROUTES.items():
        r = {"origin": attrs["origin"],
             "as_path": [{"type": "as-sequence", "asns": [LOCAL_AS]}]}
        if not is_v6(prefix):
            r["next_hop"] = DAEMON_V4
        if "med" in attrs:
            r["med"] = attrs["med"]
        elif "med" in drv.implicit_attributes:
            r["med"] = drv.implicit_attributes["med"]
        if attrs.get("communities"):
            r["communities"] = list(attrs["communities"])
        if is_v6(prefix):
            r["mp_next_hop"] = mp_next_hop
        if attrs.get("large_communities"):
            r["large_communities"] = list(attrs["large_communities"])
        routes[prefix] = r

    # Sanity only: the prefixes actually sent must be exactly the configured
    # ones (each once), with nothing withdrawn.
    announced, withdrawn = announced_and_withdrawn(messages)
    if sorted(announced) != sorted(ROUTES) or withdrawn:
        raise ValueError(f"announced {sorted(announced)} withdrawn {withdrawn}; "
                         f"configured {sorted(ROUTES)}")
    if opened["my_as"] != AS_TRANS or opened["router_id"] != ROUTER_ID:
        raise ValueError(f"OPEN my_as/router_id {opened['my_as']}/{opened['router_id']}")

    return {
        "daemon": drv.name,
        "version": first_line_of_version(drv.version_cmd),
        "open": {
            "asn": LOCAL_AS,
            "my_as": AS_TRANS,
            "router_id": ROUTER_ID,
            "hold_time": opened["hold_time"],          # parsed: daemon default
            "capabilities": opened["capabilities"],    # parsed: codes in order sent
        },
        "message_types": counts,
        "routes": routes,
        "end_of_rib": eor,
    }


# --------------------------------------------------------------------------
# One capture
# --------------------------------------------------------------------------

def capture(daemon: str, window: float, keep: bool) -> dict:
    dns, cns, dif, cif = ns_names(daemon)
    teardown_netns(daemon)                     # leftovers of an interrupted run
    tmp = Path(tempfile.mkdtemp(prefix=f"kbgpcap-{daemon}-"))
    procs: list[subprocess.Popen] = []
    collector = None
    try:
        setup_netns(daemon)
        raw_path = tmp / "stream.bin"
        collector = subprocess.Popen(
            netns_cmd(cns, [sys.executable, str(Path(__file__).resolve()), "--collector",
                            "--out", str(raw_path), "--window", str(window)]),
            stdout=subprocess.PIPE, stderr=None, text=True, stdin=subprocess.DEVNULL)
        if collector.stdout.readline().strip() != "READY":
            raise RuntimeError("collector did not start")
        drv = DAEMONS[daemon](tmp, dns, procs)
        log(f"{daemon}: starting daemon (temp dir {tmp})")
        drv.start()
        wait_for(lambda: drv.route_count() == len(ROUTES), 30, f"{daemon} to hold all {len(ROUTES)} routes")
        drv.enable_peer()
        rc = collector.wait(timeout=window + 120)
        collector = None
        if rc != 0:
            for f in sorted(tmp.glob("*.log")):
                log(f"--- {f.name} (tail) ---\n" + "\n".join(f.read_text(errors="replace").splitlines()[-30:]))
            raise RuntimeError(f"{daemon}: collector exited with status {rc}")
        stream = raw_path.read_bytes()
        expected = build_expected(drv, stream, link_local_of(dns, dif))
        outdir = HERE / daemon
        outdir.mkdir(exist_ok=True)
        (outdir / "stream.bin").write_bytes(stream)
        (outdir / "expected.json").write_text(json.dumps(expected, indent=2) + "\n")
        log(f"{daemon}: {len(stream)} bytes, {expected['message_types']}, EoR {expected['end_of_rib']}")
        return expected
    finally:
        if collector is not None and collector.poll() is None:
            collector.kill()
            collector.wait()
        stop_procs(procs)
        teardown_netns(daemon)
        if keep:
            log(f"{daemon}: kept {tmp}")
        else:
            shutil.rmtree(tmp, ignore_errors=True)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("daemon", nargs="?", default="all", choices=["all", *DAEMONS])
    ap.add_argument("--window", type=float, default=30.0,
                    help="seconds to record after the daemon connects (default 30)")
    ap.add_argument("--keep", action="store_true", help="keep the temp dirs (configs, logs)")
    ap.add_argument("--collector", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--out", help=argparse.SUPPRESS)
    ap.add_argument("--accept-timeout", type=float, default=90.0, help=argparse.SUPPRESS)
    args = ap.parse_args()

    if args.collector:
        return collector_main(args.out, args.accept_timeout, args.window)

    if os.geteuid() != 0:
        print("must run as root (network namespaces)", file=sys.stderr)
        return 1
    # Ctrl-C raises KeyboardInterrupt even when started with SIGINT ignored
    # (background job); SIGTERM / SIGHUP unwind through the same finally blocks.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, _on_sigterm)
    signal.signal(signal.SIGHUP, _on_sigterm)
    failed = []
    for daemon in (DAEMONS if args.daemon == "all" else [args.daemon]):
        try:
            capture(daemon, args.window, args.keep)
        except (KeyboardInterrupt, Terminated):
            log("interrupted; cleaned up")
            return 130
        except Exception as exc:              # keep going with the other daemons
            log(f"{daemon}: FAILED: {exc}")
            failed.append(daemon)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
