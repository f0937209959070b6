"""Minimal BGP peers for the pipeline benchmark (bench/pipeline.py).

    python3 bench/peer.py feeder  --local 10.70.0.1 --remote 10.70.0.2 --asn 65001 --n 100000
    python3 bench/peer.py monitor --local 10.71.0.2 --remote 10.71.0.1 --asn 65002 --n 100000

Both connect to the target on port 179, send an OPEN (4-octet AS, IPv4
unicast, route refresh; no extended messages, no graceful restart, hold
time 180 s) and answer with KEEPALIVEs every 30 s.

feeder:  pre-encodes N unique IPv4 prefixes (consecutive /24s from
         --first, 16.0.0.0/24 by default) into packed 4096-byte UPDATEs
         before connecting, then writes them as fast as the socket takes
         them once the session is Established.
monitor: counts received prefixes (IPv4 NLRI announced minus withdrawn)
         and reports when the count reaches N, then keeps the session up
         until it is killed.

Every event is one JSON line on stdout with a ``time.monotonic()`` stamp
(CLOCK_MONOTONIC is machine-wide, so stamps compare across namespaces).
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from kbgp._fast.attrs import (AttrTable, DecodeContext, PathAttributes,  # noqa: E402
                              decode_update, encode_attributes, encode_updates)
from kbgp._fast.wire import Framer, PrefixArray, encode_keepalive, encode_open  # noqa: E402
from kbgp.bgp.messages import (FourOctetAsCap, MultiprotocolCap, Open,  # noqa: E402
                               RouteRefreshCap)

OPEN, UPDATE, NOTIFICATION, KEEPALIVE = 1, 2, 3, 4
HOLD_TIME = 180
KEEPALIVE_EVERY = 30
BATCH = 50_000          # prefixes per encode_updates() call (whole messages each)


def emit(event: str, **kw) -> None:
    t = kw.pop("t_override", None)
    kw = {"event": event, "t": time.monotonic() if t is None else t, **kw}
    sys.stdout.write(json.dumps(kw) + "\n")
    sys.stdout.flush()


class Peer:
    def __init__(self, local: str, remote: str, asn: int, router_id: str):
        self.local, self.remote, self.asn, self.router_id = local, remote, asn, router_id
        self.sock: socket.socket | None = None
        self.lock = threading.Lock()
        self.framer = Framer()

    def send(self, data: bytes) -> None:
        with self.lock:
            self.sock.sendall(data)

    def connect(self, timeout: float = 30) -> None:
        end = time.monotonic() + timeout
        while True:
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            s.bind((self.local, 0))
            try:
                s.connect((self.remote, 179))
                self.sock = s
                return
            except OSError as exc:
                s.close()
                if time.monotonic() > end:
                    raise SystemExit(f"connect to {self.remote}: {exc}")
                time.sleep(0.2)

    def recv_messages(self) -> list:
        data = self.sock.recv(1 << 20)
        if not data:
            raise EOFError("connection closed by the target")
        return self.framer.messages(data)

    def handshake(self) -> None:
        """OPEN / KEEPALIVE exchange; returns once Established."""
        caps = (MultiprotocolCap(1, 1), RouteRefreshCap(), FourOctetAsCap(self.asn))
        my_as = self.asn if self.asn <= 0xFFFF else 23456
        self.send(encode_open(Open(my_as=my_as, hold_time=HOLD_TIME,
                                   router_id=self.router_id, capabilities=caps)))
        got_open = got_ka = False
        pending: list = []
        while not (got_open and got_ka):
            for mtype, body in self.recv_messages():
                if mtype == OPEN:
                    got_open = True
                    self.send(encode_keepalive())
                elif mtype == KEEPALIVE and got_open:
                    got_ka = True
                elif mtype == NOTIFICATION:
                    emit("notification", hex=body.hex())
                    raise SystemExit(1)
                else:
                    pending.append((mtype, body))
        self.pending = pending

    def keepalive_loop(self) -> None:
        while True:
            time.sleep(KEEPALIVE_EVERY)
            try:
                self.send(encode_keepalive())
            except OSError:
                return


def attrs_bytes(asn: int, next_hop: str, ibgp: bool = False) -> bytes:
    if ibgp:   # to a route reflector of our own AS: empty AS_PATH, LOCAL_PREF
        return encode_attributes(PathAttributes(origin=0, as_path=[], next_hop=next_hop, local_pref=100))
    return encode_attributes(PathAttributes(origin=0, as_path=[(2, (asn,))], next_hop=next_hop))


def run_feeder(a) -> None:
    t0 = time.monotonic()
    attrs = attrs_bytes(a.asn, a.local, a.ibgp)
    chunks = []
    done = 0
    # One PrefixArray per batch, encoded to whole messages, so keepalives can
    # go between batches without cutting a message.
    net, plen = a.first.split("/")
    base = int.from_bytes(socket.inet_aton(net), "big")
    step = 1 << (32 - int(plen))
    while done < a.n:
        k = min(BATCH, a.n - done)
        start = socket.inet_ntoa((base + done * step).to_bytes(4, "big"))
        chunks.append(encode_updates(PrefixArray.sequence(f"{start}/{plen}", k), attrs))
        done += k
    total = sum(len(c) for c in chunks)
    emit("encoded", bytes=total, chunks=len(chunks), seconds=time.monotonic() - t0)
    p = Peer(a.local, a.remote, a.asn, a.router_id)
    p.connect()
    emit("connected")
    p.handshake()
    emit("established")
    threading.Thread(target=p.keepalive_loop, daemon=True).start()
    threading.Thread(target=drain, args=(p,), daemon=True).start()
    for c in chunks:
        p.send(c)
    emit("sent", bytes=total)
    while True:
        time.sleep(3600)


def run_pacer(a) -> None:
    """Announce N /32s at RATE prefixes/s, BATCH per UPDATE, and print when
    each UPDATE left (CLOCK_REALTIME, comparable across namespaces), so the
    latency harness can match kernel events to UPDATEs."""
    attrs = attrs_bytes(a.asn, a.local, a.ibgp)
    net = a.first.split("/")[0]
    base = int.from_bytes(socket.inet_aton(net), "big")
    msgs = []
    for start in range(0, a.n, a.batch):
        k = min(a.batch, a.n - start)
        first = socket.inet_ntoa((base + start).to_bytes(4, "big"))
        msgs.append(encode_updates(PrefixArray.sequence(f"{first}/32", k), attrs))
    p = Peer(a.local, a.remote, a.asn, a.router_id)
    p.connect()
    p.handshake()
    emit("established")
    threading.Thread(target=p.keepalive_loop, daemon=True).start()
    threading.Thread(target=drain, args=(p,), daemon=True).start()
    time.sleep(a.settle)
    interval = a.batch / a.rate
    t0 = time.monotonic()
    sent = []
    for i, m in enumerate(msgs):
        delay = t0 + i * interval - time.monotonic()
        if delay > 0:
            time.sleep(delay)
        p.send(m)
        sent.append(time.time())
    emit("paced", first=a.first, batch=a.batch, rate=a.rate, sent=sent)
    while True:
        time.sleep(3600)


def drain(p: Peer) -> None:
    try:
        while True:
            for mtype, body in p.recv_messages():
                if mtype == NOTIFICATION:
                    emit("notification", hex=body.hex())
                    os._exit(1)
    except (EOFError, OSError) as exc:
        emit("closed", error=str(exc))
        os._exit(1)


def run_monitor(a) -> None:
    p = Peer(a.local, a.remote, a.asn, a.router_id)
    p.connect()
    p.handshake()
    emit("established")
    threading.Thread(target=p.keepalive_loop, daemon=True).start()
    ctx = DecodeContext(asn4=True, ibgp=a.ibgp)
    table = AttrTable()
    count = updates = 0
    reported = False
    first = None
    last_progress = time.monotonic()
    msgs = p.pending
    bodies: list[bytes] = []
    exact = None
    while True:
        for mtype, body in msgs:
            if mtype == UPDATE:
                if exact is not None:
                    u = decode_update(body, ctx, table)
                    exact.update(u.nlri.keys())
                    exact.difference_update(u.withdrawn.keys())
                elif not reported:
                    bodies.append(body)
                u = decode_update(body, ctx, table)
                n = len(u.nlri) - len(u.withdrawn)
                if n and first is None:
                    first = time.monotonic()
                    emit("first", count=n)
                count += n
                updates += 1
            elif mtype == NOTIFICATION:
                emit("notification", hex=body.hex(), count=count)
                raise SystemExit(1)
        if not reported and exact is None and count >= a.n:
            # Announcements reached N.  Check they are N distinct prefixes:
            # a target may send a prefix twice (implicit replacement), and
            # then counting goes on exactly, with a set, until N distinct.
            t_count = time.monotonic()
            seen: set = set()
            for body in bodies:
                u = decode_update(body, ctx, table)
                seen.update(u.nlri.keys())
                seen.difference_update(u.withdrawn.keys())
            bodies = []
            if len(seen) >= a.n:
                reported = True
                emit("done", t_override=t_count, count=count, distinct=len(seen),
                     updates=updates)
                emit("verified", distinct=len(seen))
            else:
                exact = seen
                emit("duplicates", count=count, distinct=len(seen))
        elif exact is not None and not reported and len(exact) >= a.n:
            reported = True
            emit("done", count=count, distinct=len(exact), updates=updates)
            emit("verified", distinct=len(exact))
            exact = None
        now = time.monotonic()
        if now - last_progress >= 1.0:
            last_progress = now
            emit("progress", count=count, updates=updates)
        try:
            msgs = p.recv_messages()
        except (EOFError, OSError) as exc:
            emit("closed", error=str(exc), count=count)
            raise SystemExit(1)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("role", choices=["feeder", "monitor", "pacer"])
    ap.add_argument("--local", required=True)
    ap.add_argument("--remote", required=True)
    ap.add_argument("--asn", type=int, required=True)
    ap.add_argument("--n", type=int, required=True)
    ap.add_argument("--first", default="16.0.0.0/24")
    ap.add_argument("--router-id")
    ap.add_argument("--ibgp", action="store_true", help="iBGP to a route reflector (same AS)")
    ap.add_argument("--rate", type=float, default=10_000, help="pacer: prefixes per second")
    ap.add_argument("--batch", type=int, default=100, help="pacer: prefixes per UPDATE")
    ap.add_argument("--settle", type=float, default=2.0, help="pacer: seconds after Established")
    a = ap.parse_args()
    a.router_id = a.router_id or a.local
    {"feeder": run_feeder, "monitor": run_monitor, "pacer": run_pacer}[a.role](a)


if __name__ == "__main__":
    main()
