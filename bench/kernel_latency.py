"""Time from an UPDATE received to the kernel route present, under a steady load.

    sudo python3 bench/kernel_latency.py [--n 50000] [--rate 10000] [--batch 100] [--targets kbgp,bird]

A feeder (bench/peer.py pacer, namespace 10.70.0.1) announces N new /32s at
RATE prefixes/s, BATCH per UPDATE, to the target (namespace 10.70.0.2): kbgp's
speaker with ``kernel: true``, or BIRD 2 with a kernel protocol exporting
everything.  A watcher in the target's namespace (bench/route_watch.py)
timestamps each route's RTM_NEWROUTE; the latency of a route is that time
minus the time its UPDATE left the feeder (both CLOCK_REALTIME, one machine).
Prints p50, p99 and max per target and writes bench/results/kernel-latency.json.
"""
from __future__ import annotations

import argparse
import json
import os
import queue
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.integration.kbgp_driver import PYTHON, kbgp_env  # noqa: E402
from tests.integration.netns import Netns, link  # noqa: E402

FEEDER, TARGET = "10.70.0.1", "10.70.0.2"
FIRST = "20.0.0.0"
PROTOCOL = {"kbgp": 17, "bird": 12}


def lines(proc: subprocess.Popen) -> queue.Queue:
    q: queue.Queue = queue.Queue()

    def read():
        for line in proc.stdout:
            try:
                q.put(json.loads(line))
            except ValueError:
                pass
    threading.Thread(target=read, daemon=True).start()
    return q


def wait(q: queue.Queue, event: str, timeout: float) -> dict:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        try:
            ev = q.get(timeout=0.5)
        except queue.Empty:
            continue
        if ev.get("event") == event:
            return ev
    raise RuntimeError(f"no {event!r} within {timeout} s")


def start_target(kind: str, ns: Netns, work: Path) -> subprocess.Popen:
    if kind == "kbgp":
        conf = work / "kbgp.yaml"
        conf.write_text(json.dumps({
            "router-id": TARGET, "asn": 65000, "listen": [f"{TARGET}:179"], "kernel": True,
            "neighbors": [{"address": FEEDER, "asn": 65001, "passive": True, "families": ["ipv4"],
                           "import": "accept", "export": "reject"}]}))
        return ns.popen([PYTHON, "-m", "kbgp", "speaker", "--config", str(conf), "--control-socket",
                         str(work / "kbgp.sock")], log=work / "kbgp.log", env=kbgp_env(), cwd=str(ROOT))
    conf = work / "bird.conf"
    conf.write_text(f"""router id {TARGET};
protocol device {{ }}
protocol kernel {{ ipv4 {{ export all; }}; }}
protocol bgp feeder {{ local {TARGET} as 65000; neighbor {FEEDER} as 65001; direct; passive on;
  ipv4 {{ import all; export none; }}; }}
""")
    return ns.popen(["bird", "-f", "-c", str(conf), "-s", str(work / "bird.ctl")], log=work / "bird.log")


def run_one(kind: str, a) -> dict:
    work = Path(tempfile.mkdtemp(prefix=f"kbgp-lat-{kind}-"))
    os.chmod(work, 0o755)
    ns_f, ns_t = Netns(hint="lat-feed"), Netns(hint=f"lat-{kind}")
    try:
        link(ns_f, ns_t, FEEDER, TARGET)
        watch = ns_t.popen([PYTHON, str(ROOT / "bench" / "route_watch.py"), "--protocol", str(PROTOCOL[kind]),
                            "--first", FIRST, "--n", str(a.n), "--timeout", str(a.n / a.rate + 60)],
                           stdout=subprocess.PIPE, text=True, env=kbgp_env())
        wq = lines(watch)
        wait(wq, "ready", 20)
        start_target(kind, ns_t, work)
        pacer = ns_f.popen([PYTHON, str(ROOT / "bench" / "peer.py"), "pacer", "--local", FEEDER, "--remote", TARGET,
                            "--asn", "65001", "--n", str(a.n), "--first", f"{FIRST}/32", "--rate", str(a.rate),
                            "--batch", str(a.batch)], stdout=subprocess.PIPE, text=True, env=kbgp_env(),
                           cwd=str(ROOT))
        pq = lines(pacer)
        wait(pq, "established", 60)
        paced = wait(pq, "paced", a.n / a.rate + 60)
        routes = wait(wq, "routes", a.n / a.rate + 90)
        sent = paced["sent"]
        lat = [t - sent[i // a.batch] for i, t in enumerate(routes["times"]) if t is not None]
        missing = sum(1 for t in routes["times"] if t is None)
        lat.sort()
        q = statistics.quantiles(lat, n=100) if len(lat) > 1 else [0] * 99
        return {"target": kind, "n": a.n, "rate": a.rate, "batch": a.batch, "installed": len(lat),
                "missing": missing, "p50_ms": round(q[49] * 1e3, 2), "p99_ms": round(q[98] * 1e3, 2),
                "max_ms": round(lat[-1] * 1e3, 2) if lat else None}
    finally:
        ns_f.delete()
        ns_t.delete()


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=50_000)
    ap.add_argument("--rate", type=float, default=10_000)
    ap.add_argument("--batch", type=int, default=100)
    ap.add_argument("--targets", default="kbgp,bird")
    a = ap.parse_args()
    out = []
    for kind in a.targets.split(","):
        rec = run_one(kind, a)
        print(json.dumps(rec), flush=True)
        out.append(rec)
    bird = next((r for r in out if r["target"] == "bird"), None)
    if bird:
        for r in out:
            r["p50_over_bird"] = round(r["p50_ms"] / bird["p50_ms"], 2) if bird["p50_ms"] else None
            r["p99_over_bird"] = round(r["p99_ms"] / bird["p99_ms"], 2) if bird["p99_ms"] else None
    res = ROOT / "bench" / "results" / "kernel-latency.json"
    res.write_text(json.dumps({"date": time.strftime("%Y-%m-%d"), "command": " ".join(sys.argv),
                               "results": out}, indent=1) + "\n")
    print(f"{'target':8} {'p50 ms':>8} {'p99 ms':>8} {'max ms':>8} {'installed':>10} {'missing':>8}")
    for r in out:
        print(f"{r['target']:8} {r['p50_ms']:>8} {r['p99_ms']:>8} {r['max_ms']:>8} {r['installed']:>10} {r['missing']:>8}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
