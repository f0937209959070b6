"""Timestamp IPv4 routes as they appear in the kernel (run inside a namespace).

    python3 bench/route_watch.py --protocol 17 --first 20.0.0.0 --n 50000 --timeout 60

Listens on a NETLINK_ROUTE socket (group RTMGRP_IPV4_ROUTE) and records, for
each /32 in FIRST .. FIRST+N-1 added with PROTOCOL, the CLOCK_REALTIME of the
first RTM_NEWROUTE.  Prints {"event": "ready"} once listening, then one JSON
line {"event": "routes", "first": ..., "times": [t or null, ...]}.
"""
from __future__ import annotations

import argparse
import json
import socket
import struct
import sys
import time

RTMGRP_IPV4_ROUTE = 0x40
RTM_NEWROUTE = 24
RTA_DST = 1


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--protocol", type=int, required=True)
    ap.add_argument("--first", required=True)
    ap.add_argument("--n", type=int, required=True)
    ap.add_argument("--timeout", type=float, default=60)
    a = ap.parse_args()
    base = int.from_bytes(socket.inet_aton(a.first), "big")
    s = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, socket.NETLINK_ROUTE)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 64 << 20)
    s.bind((0, RTMGRP_IPV4_ROUTE))
    s.settimeout(0.5)
    times: list[float | None] = [None] * a.n
    seen = 0
    print(json.dumps({"event": "ready"}), flush=True)
    deadline = time.monotonic() + a.timeout
    while seen < a.n and time.monotonic() < deadline:
        try:
            data = s.recv(1 << 20)
        except socket.timeout:
            continue
        now = time.time()
        off = 0
        while off + 16 <= len(data):
            mlen, mtype = struct.unpack_from("=IH", data, off)
            if mlen < 16:
                break
            if mtype == RTM_NEWROUTE and mlen >= 28:
                family, dst_len, _, _, _, proto = struct.unpack_from("=BBBBBB", data, off + 16)
                if family == socket.AF_INET and dst_len == 32 and proto == a.protocol:
                    at = off + 28
                    while at + 4 <= off + mlen:
                        alen, atype = struct.unpack_from("=HH", data, at)
                        if alen < 4:
                            break
                        if atype == RTA_DST and alen >= 8:
                            i = int.from_bytes(data[at + 4:at + 8], "big") - base
                            if 0 <= i < a.n and times[i] is None:
                                times[i] = now
                                seen += 1
                        at += (alen + 3) & ~3
            off += (mlen + 3) & ~3
    print(json.dumps({"event": "routes", "first": a.first, "times": times}), flush=True)


if __name__ == "__main__":
    sys.exit(main())
