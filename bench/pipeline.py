"""Pipeline benchmark (issue 4): feeder -> target BGP daemon -> monitor.

    sudo python3 bench/pipeline.py [--n 100000] [--targets kbgp,bird,frr,gobgp]

For each N and target: three network namespaces (feeder, target, monitor)
joined by veth pairs (feeder 10.70.0.1 <-> 10.70.0.2 target 10.71.0.1 <->
10.71.0.2 monitor).  The target is configured as an eBGP route server shape
(AS 65000, feeder AS 65001, monitor AS 65002, accept everything in and out,
both neighbours passive), or with ``--shape rr`` as a route reflector (feeder
and monitor in AS 65000, both route-reflector clients).  The monitor connects first; once the target shows
it Established, the feeder connects and writes N pre-encoded IPv4 prefixes.
Measured: seconds from the feeder's session reaching Established until the
monitor holds all N; the target's peak RSS (sum of VmHWM over every process
in the target namespace) and CPU seconds (utime+stime delta over the same
processes).  One JSON line per (target, N) on stdout and in
bench/results/pipeline-<N>.json, then a table with ratios to BIRD.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import queue
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.integration.netns import Netns, cleanup_stale, link, netns_available  # noqa: E402
from tests.integration.daemons import Bird, Frr, Gobgp  # noqa: E402
from tests.integration.kbgp_driver import Kbgp, kbgp_compiled, kbgp_env  # noqa: E402
from procstat import proc_cpu, proc_kb, proc_name  # noqa: E402

PEER = ROOT / "bench" / "peer.py"
RESULTS = ROOT / "bench" / "results"
FEEDER, TGT_F, TGT_M, MONITOR = "10.70.0.1", "10.70.0.2", "10.71.0.1", "10.71.0.2"
TARGET_AS, FEEDER_AS, MONITOR_AS = 65000, 65001, 65002
DRIVERS = {"kbgp": Kbgp, "bird": Bird, "frr": Frr, "gobgp": Gobgp}



# ------------------------------------------------------------------ helpers

class Lines:
    """JSON lines of a subprocess's stdout, read by a thread into a queue."""

    def __init__(self, proc: subprocess.Popen, name: str):
        self.proc, self.name = proc, name
        self.q: queue.Queue = queue.Queue()
        self.events: list[dict] = []
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        for line in self.proc.stdout:
            try:
                self.q.put(json.loads(line))
            except ValueError:
                self.q.put({"event": "text", "text": line.rstrip()})
        self.q.put({"event": "eof"})

    def wait(self, events: set[str], deadline: float) -> dict | None:
        """The first event in EVENTS (or a fatal one), None at DEADLINE."""
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                return None
            try:
                ev = self.q.get(timeout=min(left, 1.0))
            except queue.Empty:
                continue
            self.events.append(ev)
            if ev["event"] in events or ev["event"] in ("eof", "closed", "notification"):
                return ev

    def last(self, name: str) -> dict | None:
        while True:                       # drain what is queued
            try:
                self.events.append(self.q.get_nowait())
            except queue.Empty:
                break
        for ev in reversed(self.events):
            if ev["event"] == name:
                return ev
        return None


def start_peer(ns: Netns, role: str, local: str, remote: str, asn: int, n: int,
               stderr_path: Path, ibgp: bool = False) -> Lines:
    env = kbgp_env()
    errf = open(stderr_path, "ab")
    p = ns.popen([sys.executable, str(PEER), role, "--local", local, "--remote", remote,
                  "--asn", str(asn), "--n", str(n)] + (["--ibgp"] if ibgp else []),
                 env=env, stdout=subprocess.PIPE, stderr=errf, text=True, cwd=str(ROOT))
    errf.close()
    return Lines(p, role)


def machine() -> dict:
    cpu = "?"
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            cpu = line.split(":", 1)[1].strip()
            break
    return {"nproc": os.cpu_count(), "cpu": cpu, "kernel": platform.release(),
            "python": platform.python_version()}


def versions() -> dict:
    out = {}
    for name, cmd in (("bird", ["bird", "--version"]), ("gobgp", ["gobgpd", "--version"]),
                      ("frr", ["/usr/lib/frr/bgpd", "--version"])):
        try:
            p = subprocess.run(cmd, capture_output=True, text=True, timeout=10)
            text = (p.stdout + p.stderr).strip().splitlines()
            out[name] = text[0] if text else "?"
        except Exception as exc:  # noqa: BLE001
            out[name] = f"? ({exc})"
    return out


# ------------------------------------------------------------------ one run

def run_one(target: str, n: int, timeout: float, workroot: Path, shape: str = "rs") -> dict:
    rec: dict = {"target": target, "n": n, "shape": shape}
    rr = shape == "rr"
    feeder_as, monitor_as = (TARGET_AS, TARGET_AS) if rr else (FEEDER_AS, MONITOR_AS)
    cls = DRIVERS[target]
    why = cls.missing()
    if why:
        rec["status"] = f"skipped: {why}"
        return rec
    work = Path(tempfile.mkdtemp(prefix=f"{target}-{n}-", dir=workroot))
    os.chmod(work, 0o755)
    nss: list[Netns] = []
    try:
        ns_f = Netns(hint="pf-feed"); nss.append(ns_f)
        ns_t = Netns(hint=f"pf-{target}"); nss.append(ns_t)
        ns_m = Netns(hint="pf-mon"); nss.append(ns_m)
        link(ns_f, ns_t, FEEDER, TGT_F)
        link(ns_t, ns_m, TGT_M, MONITOR)

        d = cls(ns_t, TGT_F, TARGET_AS, work)
        if target == "kbgp":
            d.configure(listen=["0.0.0.0:179"])
        for addr, asn in ((FEEDER, feeder_as), (MONITOR, monitor_as)):
            d.add_neighbor(addr, asn, passive=True, families=["ipv4"],
                           import_all=True, export_all=True, route_reflector_client=rr)
        d.start()

        mon = start_peer(ns_m, "monitor", MONITOR, TGT_M, monitor_as, n, work / "monitor.err", rr)
        d.wait_established(MONITOR, timeout=60)
        ev = mon.wait({"established"}, time.monotonic() + 30)
        if not ev or ev["event"] != "established":
            raise RuntimeError(f"monitor did not establish: {ev}")

        pids = [p for p in ns_t.pids()]
        cpu0 = {p: proc_cpu(p) for p in pids}
        feed = start_peer(ns_f, "feeder", FEEDER, TGT_F, feeder_as, n, work / "feeder.err", rr)
        # Encoding 1M prefixes takes well under a second; connecting a few.
        ev = feed.wait({"established"}, time.monotonic() + 60)
        if not ev or ev["event"] != "established":
            raise RuntimeError(f"feeder did not establish: {ev} "
                               f"{(work / 'feeder.err').read_text()[-2000:]}")
        t_est = ev["t"]
        deadline = t_est + timeout
        done = mon.wait({"done"}, deadline)
        t_end = time.monotonic()
        pids_after = ns_t.pids()
        allp = sorted(set(pids) | set(pids_after))
        cpu = sum(proc_cpu(p) - cpu0.get(p, 0.0) for p in allp)
        per = {f"{proc_name(p)}[{p}]": {"hwm_mb": round(proc_kb(p, "VmHWM") / 1024, 1),
                                        "rss_mb": round(proc_kb(p, "VmRSS") / 1024, 1),
                                        "cpu_s": round(proc_cpu(p) - cpu0.get(p, 0.0), 3)}
               for p in allp}
        rec["processes"] = per
        rec["peak_rss_mb"] = round(sum(v["hwm_mb"] for v in per.values()), 1)
        rec["cpu_s"] = round(cpu, 3)
        if done and done["event"] == "done":
            ver = mon.wait({"verified"}, time.monotonic() + 60)
            rec["monitor_distinct"] = ver.get("distinct") if ver else None
        sent = feed.last("sent")
        if sent:
            rec["feeder_write_s"] = round(sent["t"] - t_est, 3)
        first = mon.last("first")
        if first:
            rec["first_prefix_s"] = round(first["t"] - t_est, 3)
        if done and done["event"] == "done":
            secs = done["t"] - t_est
            rec["monitor_updates"] = done.get("updates")
            rec.update(status="ok", seconds=round(secs, 3),
                       prefixes_per_s=round(n / secs) if secs > 0 else None)
        else:
            prog = mon.last("progress") or {}
            rec.update(status="timeout" if done is None else f"failed: {done}",
                       seconds=None, prefixes_per_s=None,
                       monitor_count=prog.get("count"), waited_s=round(t_end - t_est, 1))
        # Progress curve of the monitor (one point a second) for diagnosis.
        rec["progress"] = [[round(e["t"] - t_est, 2), e["count"]] for e in mon.events
                           if e["event"] == "progress"][-60:]
        if target == "kbgp":
            RESULTS.mkdir(parents=True, exist_ok=True)
            try:
                nbj = d.neighbors_json()
            except Exception as exc:  # noqa: BLE001
                nbj = {"error": str(exc)}
            tag = f"{n}" if not rr else f"{n}-rr"
            (RESULTS / f"kbgp-{tag}-neighbors.json").write_text(json.dumps(nbj, indent=1) + "\n")
            shutil.copy(d.dir / "kbgp.log", RESULTS / f"kbgp-{tag}.log")
        return rec
    except Exception as exc:  # noqa: BLE001
        rec["status"] = f"error: {exc}"[:2000]
        return rec
    finally:
        for ns in reversed(nss):
            ns.delete()
        shutil.rmtree(work, ignore_errors=True)


# ------------------------------------------------------------------ report

def table(recs: list[dict]) -> str:
    bird = {r["n"]: r for r in recs if r["target"] == "bird" and r.get("status") == "ok"}
    lines = [f"{'target':8} {'N':>9} {'seconds':>9} {'prefixes/s':>12} {'peak RSS MB':>12} "
             f"{'CPU s':>8} {'x BIRD time':>11} {'x BIRD RSS':>10} {'x BIRD CPU':>10}"]
    for r in recs:
        ok = r.get("status") == "ok"
        b = bird.get(r["n"])

        def ratio(key):
            if not ok or not b or not b.get(key) or r.get(key) is None:
                return "-"
            return f"{r[key] / b[key]:.1f}"
        secs = f"{r['seconds']:.3f}" if ok else str(r.get("status", "?")).split(":")[0]
        rate = f"{r['prefixes_per_s']:,}" if ok else "-"
        lines.append(
            f"{r['target']:8} {r['n']:>9,} {secs:>9} {rate:>12} "
            f"{str(r.get('peak_rss_mb', '-')):>12} {str(r.get('cpu_s', '-')):>8} "
            f"{ratio('seconds'):>11} {ratio('peak_rss_mb'):>10} {ratio('cpu_s'):>10}")
    return "\n".join(lines)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", default="100000,1000000",
                    help="comma-separated prefix counts (default 100000,1000000)")
    ap.add_argument("--targets", default="kbgp,bird,frr,gobgp")
    ap.add_argument("--shape", choices=["rs", "rr"], default="rs",
                    help="rs: eBGP route server (default); rr: iBGP route reflector")
    ap.add_argument("--timeout", type=float, default=600.0,
                    help="seconds per run from feeder Established (default 600)")
    a = ap.parse_args()
    ok, why = netns_available()
    if not ok:
        print(f"cannot run: {why}", file=sys.stderr)
        return 2
    good, text = kbgp_compiled()
    if not good:
        print(text, file=sys.stderr)
        return 2
    cleanup_stale()
    targets = [t.strip() for t in a.targets.split(",") if t.strip()]
    for t in targets:
        if t not in DRIVERS:
            print(f"unknown target {t!r} (choose from {', '.join(DRIVERS)})", file=sys.stderr)
            return 2
    ns_list = [int(x.replace("_", "")) for x in a.n.split(",")]
    workroot = Path(tempfile.mkdtemp(prefix="kbgp-pipeline-"))
    os.chmod(workroot, 0o755)
    RESULTS.mkdir(parents=True, exist_ok=True)
    info = {"machine": machine(), "versions": versions()}

    def on_signal(signum, frame):
        raise KeyboardInterrupt
    signal.signal(signal.SIGTERM, on_signal)
    all_recs = []
    try:
        for n in ns_list:
            recs = []
            for t in targets:
                print(f"# {t} N={n:,} ...", file=sys.stderr, flush=True)
                r = run_one(t, n, a.timeout, workroot, a.shape)
                recs.append(r)
                slim = {k: v for k, v in r.items() if k not in ("processes", "progress")}
                print(json.dumps(slim), flush=True)
            bird = next((r for r in recs if r["target"] == "bird" and r.get("status") == "ok"),
                        None)
            for r in recs:
                if bird and r.get("status") == "ok":
                    r["ratio_to_bird"] = {k: round(r[k] / bird[k], 2) if bird[k] else None
                                          for k in ("seconds", "peak_rss_mb", "cpu_s")}
            out = RESULTS / (f"pipeline-{n}.json" if a.shape == "rs" else f"pipeline-{n}-rr.json")
            if out.exists():
                # Keep earlier results of targets not run this time.
                try:
                    old = json.loads(out.read_text()).get("results", [])
                except ValueError:
                    old = []
                ran = {r["target"] for r in recs}
                recs = [r for r in old if r["target"] not in ran] + recs
                order = list(DRIVERS)
                recs.sort(key=lambda r: order.index(r["target"]))
            bird = next((r for r in recs if r["target"] == "bird" and r.get("status") == "ok"),
                        None)
            for r in recs:
                if bird and r.get("status") == "ok":
                    r["ratio_to_bird"] = {k: round(r[k] / bird[k], 2) if bird[k] else None
                                          for k in ("seconds", "peak_rss_mb", "cpu_s")}
            out.write_text(json.dumps(
                {**info, "n": n, "timeout_s": a.timeout, "results": recs}, indent=1) + "\n")
            all_recs += recs
    finally:
        shutil.rmtree(workroot, ignore_errors=True)
    m = info["machine"]
    print(f"\nmachine: {m['nproc']} CPUs, {m['cpu']}, kernel {m['kernel']}, "
          f"python {m['python']}")
    print(table(all_recs))
    return 0


if __name__ == "__main__":
    sys.exit(main())
