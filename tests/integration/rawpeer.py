"""A minimal BGP peer on a plain TCP socket, for sending kbgp arbitrary bytes.

Run as a script inside a namespace (``python rawpeer.py CONFIG_JSON``) it
connects to a BGP speaker, does the OPEN / KEEPALIVE exchange, then sends
whatever bytes it is told to and reports what comes back.  It talks to the
test over its standard input and output, one JSON object per line:

  commands (stdin)                      events (stdout)
  {"op": "connect", "timeout": S}       {"ev": "established", "open": {...}}
                                        {"ev": "connect-failed", "why": ...}
  {"op": "send", "hex": H, "id": N}     {"ev": "sent", "id": N}
  {"op": "close"}                       {"ev": "closed", "why": ...}
  {"op": "stats"}                       {"ev": "stats", "received": {type: count}}
  {"op": "quit"}
                                        {"ev": "notification", "code", "subcode",
                                         "data", "established"}

While connected it answers nothing but sends a KEEPALIVE every hold/3
seconds and reads (and counts) everything the speaker sends.  After a
NOTIFICATION or a closed connection during ``connect`` it tries again every
0.3 s until the timeout (a speaker in its idle hold refuses connections).

Imported (``from .rawpeer import RawPeer``), ``RawPeer`` starts the script
in a namespace and drives it; the message builders below make the valid
UPDATEs the tests send around the corpus cases.  The script part uses the
standard library only.
"""

from __future__ import annotations

import ipaddress
import json
import os
import queue
import select
import socket
import struct
import subprocess
import sys
import threading
import time

MARKER = b"\xff" * 16
OPEN, UPDATE, NOTIFICATION, KEEPALIVE, ROUTE_REFRESH = 1, 2, 3, 4, 5


# --------------------------------------------------------------------------
# Message builders (used by the script and by the tests)
# --------------------------------------------------------------------------

def message(mtype: int, body: bytes) -> bytes:
    return MARKER + struct.pack("!HB", 19 + len(body), mtype) + body


def open_message(asn: int, hold: int, router_id: str,
                 families=((1, 1), (2, 1)), asn4: bool = True,
                 route_refresh: bool = True) -> bytes:
    caps = b""
    for afi, safi in families:
        caps += struct.pack("!BBHBB", 1, 4, afi, 0, safi)
    if route_refresh:
        caps += struct.pack("!BB", 2, 0)
    if asn4:
        caps += struct.pack("!BBI", 65, 4, asn)
    params = struct.pack("!BB", 2, len(caps)) + caps
    my_as = asn if asn <= 0xFFFF else 23456
    body = struct.pack("!BHH4sB", 4, my_as, hold,
                       ipaddress.IPv4Address(router_id).packed, len(params)) + params
    return message(OPEN, body)


def keepalive() -> bytes:
    return message(KEEPALIVE, b"")


def prefix_bytes(prefix: str) -> bytes:
    net = ipaddress.ip_network(prefix)
    n = (net.prefixlen + 7) // 8
    return bytes([net.prefixlen]) + net.network_address.packed[:n]


def attribute(flags: int, code: int, value: bytes) -> bytes:
    if len(value) > 255:
        return struct.pack("!BBH", flags | 0x10, code, len(value)) + value
    return struct.pack("!BBB", flags, code, len(value)) + value


def base_attributes(as_path: list[int], next_hop: str | None, origin: int = 0) -> bytes:
    """ORIGIN, AS_PATH (one AS_SEQUENCE, 4-octet ASNs) and, when given, NEXT_HOP."""
    seg = struct.pack("!BB", 2, len(as_path)) + b"".join(struct.pack("!I", a) for a in as_path)
    out = attribute(0x40, 1, bytes([origin])) + attribute(0x40, 2, seg)
    if next_hop is not None:
        out += attribute(0x40, 3, ipaddress.IPv4Address(next_hop).packed)
    return out


def update_message(*, withdrawn: list[str] = (), attrs: bytes = b"",
                   nlri: list[str] = ()) -> bytes:
    w = b"".join(prefix_bytes(p) for p in withdrawn)
    n = b"".join(prefix_bytes(p) for p in nlri)
    body = struct.pack("!H", len(w)) + w + struct.pack("!H", len(attrs)) + attrs + n
    return message(UPDATE, body)


def announce(prefixes: list[str], as_path: list[int], next_hop_v4: str,
             next_hop_v6: str) -> bytes:
    """Valid UPDATEs announcing PREFIXES: IPv4 ones in the NLRI field, IPv6
    ones in MP_REACH_NLRI."""
    v4 = [p for p in prefixes if ":" not in p]
    v6 = [p for p in prefixes if ":" in p]
    out = b""
    if v4:
        out += update_message(attrs=base_attributes(as_path, next_hop_v4), nlri=v4)
    if v6:
        nh = ipaddress.IPv6Address(next_hop_v6).packed
        mp = struct.pack("!HBB", 2, 1, len(nh)) + nh + b"\x00" + b"".join(
            prefix_bytes(p) for p in v6)
        out += update_message(attrs=base_attributes(as_path, None) + attribute(0x80, 14, mp))
    return out


def withdraw(prefixes: list[str]) -> bytes:
    """Valid UPDATEs withdrawing PREFIXES (IPv6 ones in MP_UNREACH_NLRI)."""
    v4 = [p for p in prefixes if ":" not in p]
    v6 = [p for p in prefixes if ":" in p]
    out = b""
    if v4:
        out += update_message(withdrawn=v4)
    if v6:
        mp = struct.pack("!HB", 2, 1) + b"".join(prefix_bytes(p) for p in v6)
        out += update_message(attrs=attribute(0x80, 15, mp))
    return out


def parse_notification(body: bytes) -> dict:
    return {"code": body[0] if body else None, "subcode": body[1] if len(body) > 1 else None,
            "data": body[2:].hex()}


def parse_open(body: bytes) -> dict:
    version, my_as, hold, rid, plen = struct.unpack("!BHH4sB", body[:10])
    return {"version": version, "my_as": my_as, "hold_time": hold,
            "router_id": str(ipaddress.IPv4Address(rid)), "params": body[10:10 + plen].hex()}


# --------------------------------------------------------------------------
# The script
# --------------------------------------------------------------------------

class _Peer:
    def __init__(self, cfg: dict) -> None:
        self.cfg = cfg
        self.sock: socket.socket | None = None
        self.buf = b""
        self.state = "idle"            # idle / opensent / openconfirm / established
        self.peer_open: dict | None = None
        self.want_until: float | None = None      # connecting until then
        self.next_try = 0.0
        self.next_keepalive = 0.0
        self.received: dict[int, int] = {}
        self.stdin_buf = b""

    @staticmethod
    def emit(obj: dict) -> None:
        sys.stdout.write(json.dumps(obj) + "\n")
        sys.stdout.flush()

    # ---- connection -------------------------------------------------------
    def _try_connect(self) -> None:
        cfg = self.cfg
        fam = socket.AF_INET6 if ":" in cfg["peer"] else socket.AF_INET
        s = socket.socket(fam, socket.SOCK_STREAM)
        s.settimeout(2.0)
        try:
            if cfg.get("local"):
                s.bind((cfg["local"], 0))
            s.connect((cfg["peer"], int(cfg.get("port", 179))))
        except OSError as exc:
            s.close()
            self.emit({"ev": "connect-failed", "why": str(exc)})
            return
        s.setblocking(False)
        self.sock = s
        self.buf = b""
        self.state = "opensent"
        self._send(open_message(int(cfg["asn"]), int(cfg.get("hold", 90)), cfg["router_id"],
                                [tuple(f) for f in cfg.get("families", [[1, 1], [2, 1]])]))

    def _send(self, data: bytes) -> None:
        assert self.sock is not None
        self.sock.setblocking(True)
        try:
            self.sock.sendall(data)
        finally:
            self.sock.setblocking(False)

    def _close(self, why: str) -> None:
        if self.sock is not None:
            try:
                self.sock.close()
            except OSError:
                pass
        was = self.state
        self.sock = None
        self.state = "idle"
        self.emit({"ev": "closed", "why": why, "was": was})
        if self.want_until is not None:
            self.next_try = time.monotonic() + 0.3

    def _on_message(self, mtype: int, body: bytes) -> None:
        self.received[mtype] = self.received.get(mtype, 0) + 1
        if mtype == NOTIFICATION:
            note = parse_notification(body)
            note.update(ev="notification", established=self.state == "established")
            self.emit(note)
            self._close("notification")
        elif mtype == OPEN and self.state == "opensent":
            self.peer_open = parse_open(body)
            self._send(keepalive())
            self.state = "openconfirm"
        elif mtype == KEEPALIVE and self.state == "openconfirm":
            self.state = "established"
            self.want_until = None
            hold = min(int(self.cfg.get("hold", 90)), self.peer_open["hold_time"]) or 90
            self.interval = max(1.0, hold / 3)
            self.next_keepalive = time.monotonic() + self.interval
            self.emit({"ev": "established", "open": self.peer_open})

    def _read(self) -> None:
        assert self.sock is not None
        try:
            data = self.sock.recv(1 << 16)
        except (BlockingIOError, InterruptedError):
            return
        except OSError as exc:
            self._close(f"recv: {exc}")
            return
        if not data:
            self._close("eof")
            return
        self.buf += data
        while len(self.buf) >= 19 and self.sock is not None:
            length = struct.unpack("!H", self.buf[16:18])[0]
            if length < 19:
                self._close(f"bad length {length} from the speaker")
                return
            if len(self.buf) < length:
                break
            msg, self.buf = self.buf[:length], self.buf[length:]
            self._on_message(msg[18], msg[19:])

    # ---- commands ---------------------------------------------------------
    def _command(self, cmd: dict) -> bool:
        op = cmd.get("op")
        if op == "connect":
            if self.sock is not None:
                self._close("reconnect")
            self.want_until = time.monotonic() + float(cmd.get("timeout", 30))
            self.next_try = 0.0
        elif op == "send":
            if self.sock is None:
                self.emit({"ev": "send-failed", "id": cmd.get("id"), "why": "not connected"})
            else:
                try:
                    self._send(bytes.fromhex(cmd["hex"]))
                    self.emit({"ev": "sent", "id": cmd.get("id")})
                except OSError as exc:
                    self.emit({"ev": "send-failed", "id": cmd.get("id"), "why": str(exc)})
                    self._close(f"send: {exc}")
        elif op == "close":
            self.want_until = None
            if self.sock is not None:
                self._close("closed by the test")
        elif op == "stats":
            self.emit({"ev": "stats", "state": self.state,
                       "received": {str(k): v for k, v in self.received.items()}})
        elif op == "quit":
            return False
        return True

    def run(self) -> None:
        stdin = sys.stdin.fileno()
        while True:
            now = time.monotonic()
            if self.want_until is not None and self.sock is None:
                if now > self.want_until:
                    self.want_until = None
                    self.emit({"ev": "connect-timeout"})
                elif now >= self.next_try:
                    self._try_connect()
                    if self.sock is None:
                        self.next_try = time.monotonic() + 0.3
                    continue
            if self.state == "established" and now >= self.next_keepalive:
                try:
                    self._send(keepalive())
                except OSError as exc:
                    self._close(f"send: {exc}")
                self.next_keepalive = now + self.interval
            fds = [stdin] + ([self.sock] if self.sock is not None else [])
            r, _, _ = select.select(fds, [], [], 0.1)
            if self.sock is not None and self.sock in r:
                self._read()
            if stdin in r:
                data = os.read(stdin, 1 << 20)
                if not data:
                    return
                self.stdin_buf += data
                while b"\n" in self.stdin_buf:
                    line, self.stdin_buf = self.stdin_buf.split(b"\n", 1)
                    if line.strip() and not self._command(json.loads(line)):
                        return


def main() -> None:
    _Peer(json.loads(sys.argv[1])).run()


# --------------------------------------------------------------------------
# The test side
# --------------------------------------------------------------------------

class RawPeer:
    """Drives the script above inside NETNS.  Every event it reports is kept
    in ``events`` (in order); ``wait(kind)`` returns the next one of a kind."""

    instances: list["RawPeer"] = []          # every one made in this process (leak checks)

    def __init__(self, netns, workdir, *, peer: str, local: str, asn: int, router_id: str,
                 hold: int = 90, families=((1, 1), (2, 1)), port: int = 179) -> None:
        self.netns = netns
        self.cfg = {"peer": peer, "local": local, "asn": asn, "router_id": router_id,
                    "hold": hold, "families": [list(f) for f in families], "port": port}
        self.logpath = os.path.join(str(workdir), f"rawpeer-{local}.log")
        self.events: list[dict] = []
        self._queue: queue.Queue = queue.Queue()
        self._cursor = 0
        self._ids = 0
        self.proc: subprocess.Popen | None = None
        netns.add_finalizer(self.stop)
        RawPeer.instances.append(self)

    def start(self) -> None:
        with open(self.logpath, "ab") as err:
            self.proc = self.netns.popen(
                [sys.executable, os.path.abspath(__file__), json.dumps(self.cfg)],
                stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=err)
        threading.Thread(target=self._reader, daemon=True).start()

    def _reader(self) -> None:
        assert self.proc is not None and self.proc.stdout is not None
        for line in self.proc.stdout:
            try:
                ev = json.loads(line)
            except ValueError:
                continue
            ev["t"] = time.monotonic()
            self._queue.put(ev)
        self._queue.put({"ev": "exited", "t": time.monotonic()})

    def _command(self, cmd: dict) -> None:
        assert self.proc is not None and self.proc.stdin is not None
        self.proc.stdin.write((json.dumps(cmd) + "\n").encode())
        self.proc.stdin.flush()

    def _drain(self, timeout: float) -> bool:
        try:
            ev = self._queue.get(timeout=timeout)
        except queue.Empty:
            return False
        self.events.append(ev)
        return True

    def wait(self, kinds, timeout: float = 10.0, *, what: str = "") -> dict:
        """The next event (after the ones already returned) whose "ev" is in KINDS."""
        kinds = {kinds} if isinstance(kinds, str) else set(kinds)
        end = time.monotonic() + timeout
        while True:
            while self._cursor < len(self.events):
                ev = self.events[self._cursor]
                self._cursor += 1
                if ev["ev"] in kinds:
                    return ev
                if ev["ev"] == "exited":
                    raise RuntimeError(f"raw peer exited: {self.log()}")
            left = end - time.monotonic()
            if left <= 0:
                raise TimeoutError(f"raw peer: no {sorted(kinds)} event within {timeout:g} s "
                                   f"{what}; last events: {self.events[-8:]}")
            self._drain(min(left, 0.5))

    def connect(self, timeout: float = 30.0) -> dict:
        """Connect and wait for Established; returns the event (with kbgp's OPEN)."""
        self._command({"op": "connect", "timeout": timeout})
        ev = self.wait({"established", "connect-timeout"}, timeout + 5, what="(connect)")
        if ev["ev"] != "established":
            raise TimeoutError(f"raw peer: no session within {timeout:g} s; "
                               f"last events: {self.events[-8:]}")
        return ev

    def send(self, data: bytes, timeout: float = 10.0) -> None:
        self._ids += 1
        n = self._ids
        self._command({"op": "send", "hex": data.hex(), "id": n})
        ev = self.wait({"sent", "send-failed"}, timeout, what=f"(send {n})")
        if ev["ev"] != "sent" or ev.get("id") != n:
            raise RuntimeError(f"raw peer could not send: {ev}")

    def new_events(self) -> list[dict]:
        """Events that arrived and were not returned by wait() yet (drained)."""
        while self._drain(0):
            pass
        return self.events[self._cursor:]

    def close(self) -> None:
        self._command({"op": "close"})

    def stop(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        try:
            self._command({"op": "quit"})
            self.proc.wait(timeout=3)
        except Exception:                    # noqa: BLE001 - then kill it
            self.proc.kill()
            self.proc.wait(timeout=5)

    def log(self) -> str:
        try:
            with open(self.logpath, errors="replace") as fh:
                text = fh.read()
        except OSError:
            text = ""
        return f"events: {self.events[-20:]}\nstderr: {text[-3000:]}"


if __name__ == "__main__":
    main()
