"""Kernel route writers, same run, same kind of namespace (issue 6):
kbgp's KernelSyncer, ``ip -batch`` and BIRD 2's kernel protocol install N
IPv4 routes and then remove them.

    sudo python3 bench/kernel.py --n 1000000 [--targets kbgp,ip,bird]

For each target a fresh route namespace (tests/integration/netns.py: veth
kv0 10.80.0.1/24 with its peer in a second namespace) gets the same N /32
routes from 10.128.0.0 via 10.80.0.2:

* kbgp: a child process runs a KernelSyncer on uvloop (netns=...); the
  routes are one update() (untimed: the PrefixArray is built first), then
  one withdrawal of all of them; "writer done" is flush() returning.
* ip: ``ip -n NS -batch FILE`` of ``route add P via G proto 17`` lines,
  then of ``route del P proto 17`` lines (files written untimed); "writer
  done" is the process exit.
* bird: ``bird -c conf -s sock -P pid`` in the namespace, a static protocol
  with the N routes and a kernel protocol (export all) that starts
  disabled; once the static routes are in BIRD's table, ``birdc enable``
  starts the timed install and ``birdc disable`` the removal (BIRD deletes
  what it exported).

The same instrument measures all three: a thread reads the main table's
prefix count from /proc/PID/net/fib_triestat (PID: a process in the
namespace) every --poll seconds (cheaper than a netlink dump of N routes,
which would slow the writers), and the time until it reaches baseline + N
(install) and baseline (removal) is the figure compared.  The writers' own
"done" times (exact) are reported beside it for kbgp and ip.  After each
install a netlink dump checks that all N routes carry the writer's
protocol.  CPU seconds (user + system, the kernel's route work included)
and peak RSS of the writer process are reported too.

Results: a table on stdout and bench/results/kernel-<N>.json.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import shutil
import subprocess
import sys
import tempfile
import textwrap
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from kbgp._fast.wire import PrefixArray

from kbgp.kernel.netlink import RouteSocket, in_netns
from tests.integration.netns import cleanup_stale, netns_available, route_namespace
from procstat import proc_cpu, proc_kb  # noqa: E402

RESULTS = ROOT / "bench" / "results"
FIRST = "10.128.0.0/32"
GATEWAY = "10.80.0.2"
RTPROT_BIRD = 12
_PREFIXES_RE = re.compile(r"Main:.*?Prefixes:\s+(\d+)", re.DOTALL)



class Counter:
    """Polls the main table's prefix count of a namespace (via a process
    living in it) in a thread; wait(target) returns the monotonic time the
    count was first seen at target."""

    def __init__(self, pid: int, interval: float) -> None:
        self.path = f"/proc/{pid}/net/fib_triestat"
        self.interval = interval
        self.last = self.read()
        self.reads = 0

    def stable(self, settle: float = 0.3, timeout: float = 10.0) -> int:
        """The count once it has not moved for ``settle`` seconds (a new
        namespace's link-up routes come and go for a moment)."""
        end = time.monotonic() + timeout
        last, since = self.read(), time.monotonic()
        while time.monotonic() - since < settle:
            if time.monotonic() > end:
                raise TimeoutError("the route count of a new namespace does not settle")
            time.sleep(0.05)
            n = self.read()
            if n != last:
                last, since = n, time.monotonic()
        return last

    def read(self) -> int:
        with open(self.path) as f:
            m = _PREFIXES_RE.search(f.read())
        return int(m.group(1)) if m else 0

    def wait(self, target: int, timeout: float) -> float:
        end = time.monotonic() + timeout
        while True:
            n = self.read()
            now = time.monotonic()
            self.reads += 1
            self.last = n
            if n == target:
                return now
            if now > end:
                raise TimeoutError(f"route count {n}, waiting for {target}")
            time.sleep(self.interval)


def check_protocol(ns_name: str, n: int, protocol: int) -> None:
    sock = in_netns(ns_name, RouteSocket)
    try:
        got = len(sock.dump_array(protocol=protocol))
    finally:
        sock.close()
    if got != n:
        raise AssertionError(f"{got} routes of protocol {protocol} in the kernel, expected {n}")


# ------------------------------------------------------------------ targets

KBGP_CHILD = textwrap.dedent("""
    import asyncio, sys, time
    import uvloop
    sys.path.insert(0, {root!r})
    from kbgp._fast.wire import PrefixArray
    from kbgp.kernel.syncer import KernelSyncer

    async def main():
        arr = PrefixArray.sequence({first!r}, {n})
        s = KernelSyncer(netns={ns!r})
        await s.start()
        loop = asyncio.get_running_loop()
        reader = asyncio.StreamReader()
        await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
        print("ready", flush=True)
        while True:
            cmd = (await reader.readline()).decode().strip()
            if cmd == "install":
                s.update(1, {{{gw!r}: arr}}, None)
            elif cmd == "remove":
                s.update(1, {{}}, arr)
            else:
                break
            await s.flush()
            st = s.status()
            print("done", time.monotonic(), st["installed"], st["failed"]["count"], flush=True)
        await s.shutdown(remove_routes=False)

    uvloop.run(main())
""")


def run_kbgp(ns, n: int, counter: Counter, base: int, timeout: float) -> dict:
    child = subprocess.Popen(
        [sys.executable, "-c", KBGP_CHILD.format(root=str(ROOT), first=FIRST, n=n, ns=ns.name,
                                                 gw=GATEWAY)],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        if child.stdout.readline().strip() != "ready":
            raise RuntimeError("the kbgp child did not start")
        out = {}
        for phase, target in (("install", base + n), ("remove", base)):
            cpu0 = proc_cpu(child.pid)
            t0 = time.monotonic()
            child.stdin.write(phase + "\n")
            child.stdin.flush()
            seen = counter.wait(target, timeout)
            _, t_done, _installed, failed = child.stdout.readline().split()
            out[f"{phase}_s"] = round(seen - t0, 3)
            out[f"{phase}_writer_s"] = round(float(t_done) - t0, 3)
            out[f"{phase}_cpu_s"] = round(proc_cpu(child.pid) - cpu0, 2)
            if int(failed):
                raise AssertionError(f"kbgp: {failed} routes failed")
            if phase == "install":
                check_protocol(ns.name, n, 17)
        out["peak_rss_mb"] = round(proc_kb(child.pid, "VmHWM") / 1024, 1)
        child.stdin.write("quit\n")
        child.stdin.flush()
        child.wait(60)
        return out
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()


def run_ip(ns, n: int, counter: Counter, base: int, timeout: float, workdir: Path) -> dict:
    prefixes = PrefixArray.sequence(FIRST, n).to_strings()
    add = workdir / "add.batch"
    delete = workdir / "del.batch"
    add.write_text("".join(f"route add {p} via {GATEWAY} proto 17\n" for p in prefixes))
    delete.write_text("".join(f"route del {p} proto 17\n" for p in prefixes))
    out = {}
    for phase, path, target in (("install", add, base + n), ("remove", delete, base)):
        ended: dict = {}

        def reap(pid, into):
            _, status, usage = os.wait4(pid, 0)
            into.update(t=time.monotonic(), status=status, usage=usage)

        t0 = time.monotonic()
        p = subprocess.Popen(["ip", "-n", ns.name, "-batch", str(path)],
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        waiter = threading.Thread(target=reap, args=(p.pid, ended))
        waiter.start()
        seen = counter.wait(target, timeout)
        waiter.join(timeout)
        p.returncode = os.waitstatus_to_exitcode(ended["status"])
        if p.returncode != 0:
            raise RuntimeError(f"ip -batch {path.name} exited with {p.returncode}")
        out[f"{phase}_s"] = round(seen - t0, 3)
        out[f"{phase}_writer_s"] = round(ended["t"] - t0, 3)
        out[f"{phase}_cpu_s"] = round(ended["usage"].ru_utime + ended["usage"].ru_stime, 2)
        if phase == "install":
            check_protocol(ns.name, n, 17)
        out["peak_rss_mb"] = max(out.get("peak_rss_mb", 0),
                                 round(ended["usage"].ru_maxrss / 1024, 1))
    return out


def birdc(sock: Path, *args: str) -> str:
    return subprocess.run(["birdc", "-s", str(sock), *args], capture_output=True, text=True,
                          timeout=120, check=False).stdout


def run_bird(ns, n: int, counter: Counter, base: int, timeout: float, workdir: Path) -> dict:
    conf, sock, pidf = workdir / "bird.conf", workdir / "bird.ctl", workdir / "bird.pid"
    prefixes = PrefixArray.sequence(FIRST, n).to_strings()
    with open(conf, "w") as f:
        f.write("router id 10.80.0.1;\n"
                "protocol device { }\n"
                "protocol static s4 {\n  ipv4;\n")
        f.writelines(f"  route {p} via {GATEWAY};\n" for p in prefixes)
        f.write("}\n"
                "protocol kernel k4 {\n  disabled yes;\n  learn off;\n  persist off;\n"
                "  scan time 3600;\n  ipv4 { import none; export all; };\n}\n")
    bird = ns.popen(["bird", "-f", "-c", str(conf), "-s", str(sock), "-P", str(pidf)],
                    log=workdir / "bird.log")
    try:
        t_load = time.monotonic()
        while f"{n} of {n} routes" not in birdc(sock, "show", "route", "count"):
            if bird.poll() is not None:
                raise RuntimeError(f"bird exited: {(workdir / 'bird.log').read_text()[-800:]}")
            if time.monotonic() - t_load > timeout:
                raise TimeoutError("BIRD did not load its static routes")
            time.sleep(0.2)
        out = {"config_load_s": round(time.monotonic() - t_load, 2)}
        for phase, cmd, target in (("install", "enable", base + n), ("remove", "disable", base)):
            cpu0 = proc_cpu(bird.pid)
            t0 = time.monotonic()
            birdc(sock, cmd, "k4")
            seen = counter.wait(target, timeout)
            out[f"{phase}_s"] = round(seen - t0, 3)
            out[f"{phase}_writer_s"] = None
            out[f"{phase}_cpu_s"] = round(proc_cpu(bird.pid) - cpu0, 2)
            if phase == "install":
                check_protocol(ns.name, n, RTPROT_BIRD)
        out["peak_rss_mb"] = round(proc_kb(bird.pid, "VmHWM") / 1024, 1)
        return out
    finally:
        bird.kill()
        bird.wait(10)


# ------------------------------------------------------------------ driver

def measure(target: str, n: int, poll: float, timeout: float) -> dict:
    with route_namespace(f"kb-{target}") as ns, tempfile.TemporaryDirectory() as tmp:
        holder = ns.popen(["sleep", "infinity"])           # a pid inside the namespace
        counter = Counter(holder.pid, poll)
        base = counter.stable()
        if target == "kbgp":
            res = run_kbgp(ns, n, counter, base, timeout)
        elif target == "ip":
            res = run_ip(ns, n, counter, base, timeout, Path(tmp))
        elif target == "bird":
            res = run_bird(ns, n, counter, base, timeout, Path(tmp))
        else:
            raise ValueError(f"--targets: unknown target {target!r} (kbgp, ip, bird)")
        res["poll_reads"] = counter.reads
    return {"target": target, "n": n, **res}


def versions() -> dict:
    out = {"ip": subprocess.run(["ip", "-V"], capture_output=True, text=True,
                                check=False).stdout.strip()}
    if shutil.which("bird"):
        p = subprocess.run(["bird", "--version"], capture_output=True, text=True, check=False)
        out["bird"] = (p.stdout + p.stderr).strip()
    return out


def table(records: list[dict]) -> str:
    by = {r["target"]: r for r in records if "install_s" in r}
    bird = by.get("bird")
    lines = [("target | N | install s | writer done s | remove s | writer done s | "
              "install × BIRD | remove × BIRD | CPU s (in/out) | peak RSS MB")]
    for r in records:
        if "install_s" not in r:
            lines.append(f"{r['target']} | {r['n']:,} | {r.get('error')}")
            continue
        ri = f"{r['install_s'] / bird['install_s']:.2f}" if bird else "-"
        rr = f"{r['remove_s'] / bird['remove_s']:.2f}" if bird else "-"
        lines.append(f"{r['target']} | {r['n']:,} | {r['install_s']:.3f} | "
                     f"{r['install_writer_s'] if r['install_writer_s'] is not None else '-'} | "
                     f"{r['remove_s']:.3f} | "
                     f"{r['remove_writer_s'] if r['remove_writer_s'] is not None else '-'} | "
                     f"{ri} | {rr} | {r['install_cpu_s']}/{r['remove_cpu_s']} | "
                     f"{r['peak_rss_mb']}")
    return "\n".join(lines)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--n", type=int, default=100_000, help="routes (default 100000)")
    ap.add_argument("--targets", default="kbgp,ip,bird")
    ap.add_argument("--poll", type=float, default=None,
                    help="seconds between route counts (default 0.05 up to 200k routes, else 0.2)")
    ap.add_argument("--timeout", type=float, default=600.0)
    ap.add_argument("--out", type=Path, default=None, help="JSON file (default "
                    "bench/results/kernel-<N>.json)")
    args = ap.parse_args(argv)
    if args.n < 1 or args.n > 4_000_000:
        ap.error(f"--n {args.n}: 1..4000000")
    ok, reason = netns_available()
    if not ok:
        print(f"cannot run: {reason}", file=sys.stderr)
        return 2
    cleanup_stale()
    poll = args.poll if args.poll is not None else (0.05 if args.n <= 200_000 else 0.2)
    targets = [t.strip() for t in args.targets.split(",") if t.strip()]
    if "bird" in targets and not shutil.which("bird"):
        print("bird is not installed: skipped", file=sys.stderr)
        targets.remove("bird")
    records = []
    for t in targets:
        print(f"{t}: {args.n:,} routes ...", file=sys.stderr, flush=True)
        try:
            rec = measure(t, args.n, poll, args.timeout)
        except Exception as e:  # noqa: BLE001 - keep the other targets' figures
            rec = {"target": t, "n": args.n, "error": f"{type(e).__name__}: {e}"}
        print(json.dumps(rec), flush=True)
        records.append(rec)
    by = {r["target"]: r for r in records if "install_s" in r}
    ratios = {}
    if "bird" in by:
        for t, r in by.items():
            ratios[f"{t}_over_bird"] = {k: round(r[k] / by["bird"][k], 3)
                                        for k in ("install_s", "remove_s")}
    if "ip" in by:
        for t, r in by.items():
            ratios[f"{t}_over_ip"] = {k: round(r[k] / by["ip"][k], 3)
                                      for k in ("install_s", "remove_s")}
    doc = {
        "n": args.n,
        "date": time.strftime("%Y-%m-%d"),
        "machine": {"nproc": os.cpu_count(), "kernel": platform.release(),
                    "python": platform.python_version()},
        "versions": versions(),
        "method": "time from the trigger until /proc/PID/net/fib_triestat (main table) shows "
                  "baseline + N routes (install) or baseline (remove), polled every "
                  f"{poll} s; writer_s: the writer's own completion",
        "poll_s": poll,
        "results": records,
        "ratios": ratios,
    }
    out = args.out or RESULTS / f"kernel-{args.n}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(doc, indent=1) + "\n")
    print(table(records))
    print(f"results: {out}")
    return 0 if all("install_s" in r for r in records) else 1


if __name__ == "__main__":
    sys.exit(main())
