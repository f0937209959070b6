"""``kbgp speaker`` with a profiling window opened and closed by signals.

    KBGP_PROFILE_OUT=/tmp/speaker.prof python3 bench/profile_speaker.py speaker --config F ...
    KBGP_STAGES_OUT=/tmp/stages.json   python3 bench/profile_speaker.py speaker --config F ...

The arguments are those of ``python3 -m kbgp``.  SIGUSR1 opens the window,
SIGUSR2 closes it and writes the result, so session set-up and shutdown stay
out of the figures.  Used by ``bench/fanout.py --profile cprofile|stages``.

KBGP_PROFILE_OUT: cProfile of the event-loop thread (pstats format; read it
with ``python3 -m pstats FILE``).  Compiled code (kbgp._fast, uvloop) is
invisible to cProfile: its time counts as the calling Python function's own.

KBGP_STAGES_OUT: wall-clock timers around the stages of the speaker's export
path, as JSON {stage: {"calls", "seconds"}}.  Times are inclusive (a stage
holds the stages it calls; see STAGES).  The timers wrap names from outside:
module functions ``kbgp.speaker`` imported (export_diff, encode_updates, ...),
Speaker and PeerLink methods, and a thin proxy around each connection's
transport for the socket writes.  kbgp's own files are not changed.

Python-level signal handlers run between bytecodes of the main thread; the
speaker runs Python code for every event, so the window opens at the next
event after the signal.
"""

from __future__ import annotations

import cProfile
import json
import os
import signal
import sys
import time
from collections.abc import Callable
from typing import Any

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

PROFILE_OUT = os.environ.get("KBGP_PROFILE_OUT")
STAGES_OUT = os.environ.get("KBGP_STAGES_OUT")

# stage -> what it covers (inclusive)
STAGES = {
    "received": "Speaker._received: one UPDATE from a neighbour, all it causes",
    "changed": "Speaker._changed: best paths changed -> every update group's export (all below)",
    "export_diff": "rib.export_diff: what a group (or one member, split horizon) must be sent",
    "export": "Speaker._export: policy + attribute rewrite + intern, per distinct (src, attr, class)",
    "encode_diff": "Speaker._encode_diff: encode one group's difference (attributes + UPDATEs)",
    "encode_attributes": "attrs.encode_attributes (+ mp_next_hop_bytes)",
    "encode_updates": "attrs.encode_updates: pack the prefixes into UPDATE messages",
    "link_send": "PeerLink.send: queue + pump + Session.send + transport.write",
    "socket_write": "transport.write (uvloop; a send() syscall when the buffer is empty)",
}

profiler = cProfile.Profile() if PROFILE_OUT else None
acc: dict[str, list] = {name: [0, 0.0] for name in STAGES}
active = False


def timed(name: str, fn: Callable) -> Callable:
    rec = acc[name]
    clock = time.perf_counter

    def wrapper(*args: Any, **kw: Any) -> Any:
        if not active:
            return fn(*args, **kw)
        t = clock()
        try:
            return fn(*args, **kw)
        finally:
            rec[0] += 1
            rec[1] += clock() - t
    wrapper.__name__ = getattr(fn, "__name__", name)
    wrapper.__doc__ = getattr(fn, "__doc__", None)
    return wrapper


def install_stage_timers() -> None:
    import kbgp.speaker as sp
    from kbgp.io import tcp

    for name, attr in (("encode_attributes", "encode_attributes"),
                       ("encode_attributes", "mp_next_hop_bytes"),
                       ("encode_updates", "encode_updates"),
                       ("export_diff", "export_diff")):
        setattr(sp, attr, timed(name, getattr(sp, attr)))
    for name, meth in (("received", "_received"), ("changed", "_changed"),
                       ("export", "_export"), ("encode_diff", "_encode_diff")):
        setattr(sp.Speaker, meth, timed(name, getattr(sp.Speaker, meth)))
    tcp.PeerLink.send = timed("link_send", tcp.PeerLink.send)

    class TimedTransport:
        __slots__ = ("_t", "write")

        def __init__(self, transport: Any) -> None:
            self._t = transport
            self.write = timed("socket_write", transport.write)

        def __getattr__(self, name: str) -> Any:
            return getattr(self._t, name)

    made = tcp.BgpProtocol.connection_made

    def connection_made(self, transport):
        made(self, TimedTransport(transport))
    tcp.BgpProtocol.connection_made = connection_made


def start(signum: int, frame: object) -> None:
    global active
    for rec in acc.values():
        rec[0], rec[1] = 0, 0.0
    active = True
    if profiler is not None:
        profiler.enable()


def stop(signum: int, frame: object) -> None:
    global active
    if profiler is not None:
        profiler.disable()
        profiler.dump_stats(PROFILE_OUT)
    active = False
    if STAGES_OUT:
        out = {name: {"calls": acc[name][0], "seconds": round(acc[name][1], 4),
                      "covers": STAGES[name]} for name in STAGES}
        with open(STAGES_OUT, "w") as f:
            json.dump(out, f, indent=1)


if STAGES_OUT:
    install_stage_timers()
signal.signal(signal.SIGUSR1, start)
signal.signal(signal.SIGUSR2, stop)

from kbgp.cli import main

sys.exit(main(sys.argv[1:]))
