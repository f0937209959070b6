#!/usr/bin/env python3
"""The Quick start demo: a three-node cluster and an external router, on this machine.

    sudo python3 packaging/demo.py [--keep-seconds N]

What it does, with the installed ``kbgp`` (run ``bash packaging/quickstart.sh``,
which installs it first):

1. a LAN (a bridge in its own network namespace) and four namespaces on it:
   nodes node-1..3 (10.81.0.1-3) and a BIRD router (10.81.0.100, AS 65000);
2. a cluster file (the ``kubectl get nodes,services -o yaml`` shape) with the
   three Nodes, their pod CIDRs 10.244.1-3.0/24, and one Service;
3. ``kbgp agent --cluster-file cluster.yaml --hostname-override node-N
   --peer-router-ips 10.81.0.100 --peer-router-asns 65000
   --advertise-cluster-ip`` in each node's namespace;
4. shows ``kbgp neighbors``, ``kbgp rib`` and the kernel routes of node-1, and
   BIRD's view of the cluster;
5. removes everything it made (also on failure or Ctrl-C).

Nothing leaves this machine: every address lives inside the namespaces.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time

PREFIX = "kbgpdemo-"
LAN = "10.81.0"
ROUTER = f"{LAN}.100"
NODES = {f"node-{i}": (f"{LAN}.{i}", f"10.244.{i}.0/24") for i in (1, 2, 3)}


def sh(*cmd: str, check: bool = True, **kw) -> subprocess.CompletedProcess:
    return subprocess.run(cmd, check=check, text=True, capture_output=True, **kw)


def in_ns(ns: str, *cmd: str, **kw) -> subprocess.CompletedProcess:
    return sh("ip", "netns", "exec", ns, *cmd, **kw)


def banner(text: str) -> None:
    print(f"\n=== {text}", flush=True)


class Demo:
    def __init__(self, workdir: str) -> None:
        self.dir = workdir
        self.namespaces: list[str] = []
        self.procs: list[subprocess.Popen] = []

    def netns(self, name: str) -> str:
        ns = PREFIX + name
        sh("ip", "netns", "add", ns)
        self.namespaces.append(ns)
        in_ns(ns, "ip", "link", "set", "lo", "up")
        return ns

    def attach(self, sw: str, ns: str, address: str, port: int) -> None:
        sh("ip", "link", "add", f"p{port}", "netns", sw, "type", "veth", "peer", "name", "eth0", "netns", ns)
        in_ns(sw, "ip", "link", "set", f"p{port}", "master", "br0")
        in_ns(sw, "ip", "link", "set", f"p{port}", "up")
        in_ns(ns, "ip", "addr", "add", f"{address}/24", "dev", "eth0")
        in_ns(ns, "ip", "link", "set", "eth0", "up")

    def spawn(self, ns: str, cmd: list[str], log: str) -> subprocess.Popen:
        with open(os.path.join(self.dir, log), "ab") as out:
            p = subprocess.Popen(["ip", "netns", "exec", ns, *cmd], stdout=out, stderr=subprocess.STDOUT,
                                 stdin=subprocess.DEVNULL, start_new_session=True, cwd="/")
        self.procs.append(p)
        return p

    def cleanup(self) -> None:
        for p in self.procs:
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
        for p in self.procs:
            try:
                p.wait(10)
            except subprocess.TimeoutExpired:
                p.kill()
        for ns in reversed(self.namespaces):
            sh("ip", "netns", "del", ns, check=False)

    def run(self, keep: float) -> int:
        kbgp = shutil.which("kbgp")
        bird = shutil.which("bird")
        if not kbgp or not bird:
            print("needs the kbgp command (bash packaging/quickstart.sh) and BIRD 2 (apt-get install bird2)",
                  file=sys.stderr)
            return 2
        banner("a LAN with three nodes and a BIRD router, each in its own network namespace")
        sw = self.netns("lan")
        in_ns(sw, "ip", "link", "add", "br0", "type", "bridge")
        in_ns(sw, "ip", "link", "set", "br0", "up")
        for port, (name, (addr, cidr)) in enumerate(NODES.items(), 1):
            ns = self.netns(name)
            in_ns(ns, "sysctl", "-q", "-w", "net.ipv4.ip_forward=1")
            self.attach(sw, ns, addr, port)
            print(f"{name}: {addr}, pod CIDR {cidr}")
        rns = self.netns("router")
        self.attach(sw, rns, ROUTER, 9)
        print(f"router: {ROUTER}, BIRD, AS 65000")

        items = [{"apiVersion": "v1", "kind": "Node",
                  "metadata": {"name": name, "annotations": {}},
                  "spec": {"podCIDR": cidr, "podCIDRs": [cidr]},
                  "status": {"addresses": [{"type": "InternalIP", "address": addr}]}}
                 for name, (addr, cidr) in NODES.items()]
        items.append({"apiVersion": "v1", "kind": "Service",
                      "metadata": {"name": "web", "namespace": "default"},
                      "spec": {"type": "ClusterIP", "clusterIP": "10.96.0.10", "clusterIPs": ["10.96.0.10"]}})
        cluster_file = os.path.join(self.dir, "cluster.yaml")
        with open(cluster_file, "w") as f:
            json.dump({"apiVersion": "v1", "kind": "List", "items": items}, f, indent=1)
        banner(f"cluster file {cluster_file}: 3 Nodes, 1 Service (10.96.0.10)")

        conf = os.path.join(self.dir, "bird.conf")
        with open(conf, "w") as f:
            f.write(f"router id {ROUTER};\nprotocol device {{}}\n")
            f.write("protocol static { ipv4; route 192.0.2.0/24 unreachable; }\n")
            for name, (addr, _) in NODES.items():
                f.write(f"protocol bgp {name.replace('-', '_')} {{ local as 65000; neighbor {addr} as 64512;"
                        " direct; ipv4 { import all; export all; }; }\n")
        self.spawn(rns, [bird, "-f", "-c", conf, "-s", os.path.join(self.dir, "bird.ctl")], "bird.log")

        banner("kbgp agent on each node (kube-router's flags)")
        for name, (addr, _) in NODES.items():
            cmd = [kbgp, "agent", "--cluster-file", cluster_file, "--hostname-override", name,
                   "--control-socket", os.path.join(self.dir, f"{name}.sock"),
                   f"--peer-router-ips={ROUTER}", "--peer-router-asns=65000", "--advertise-cluster-ip"]
            print(" ".join(["kbgp"] + cmd[1:]))
            self.spawn(PREFIX + name, cmd, f"{name}.log")

        sock = os.path.join(self.dir, "node-1.sock")
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            p = in_ns(PREFIX + "node-1", kbgp, "neighbors", "--json", "--control-socket", sock, check=False)
            if p.returncode == 0:
                rows = json.loads(p.stdout)
                routes = in_ns(PREFIX + "node-1", "ip", "route", "show", "proto", "17").stdout
                if len(rows) == 3 and all(r["state"] == "established" for r in rows) and routes.count("10.244.") == 2:
                    break
            time.sleep(0.5)
        else:
            print("the sessions did not all come up within 60 s; logs in", self.dir, file=sys.stderr)
            for name in NODES:
                print(open(os.path.join(self.dir, f"{name}.log")).read()[-2000:], file=sys.stderr)
            return 1
        banner("node-1: kbgp neighbors")
        print(in_ns(PREFIX + "node-1", kbgp, "neighbors", "--control-socket", sock).stdout)
        banner("node-1: kbgp rib")
        print(in_ns(PREFIX + "node-1", kbgp, "rib", "--control-socket", sock).stdout)
        banner("node-1: kernel routes written by kbgp (ip route show proto 17)")
        print(in_ns(PREFIX + "node-1", "ip", "route", "show", "proto", "17").stdout)
        time.sleep(1)
        banner("BIRD's view: birdc show route")
        print(in_ns(rns, "birdc", "-s", os.path.join(self.dir, "bird.ctl"), "show", "route").stdout)
        if keep:
            banner(f"keeping everything for {keep:g} s (namespaces {PREFIX}*)")
            time.sleep(keep)
        return 0


def main() -> int:
    ap = argparse.ArgumentParser(description="kbgp demo: three nodes and a BIRD router in namespaces")
    ap.add_argument("--keep-seconds", type=float, default=0, help="keep it running this long before cleaning up")
    a = ap.parse_args()
    if os.geteuid() != 0:
        print("the demo creates network namespaces: run it as root", file=sys.stderr)
        return 2
    for ns in sh("ip", "netns", "list").stdout.split("\n"):
        if ns.startswith(PREFIX):
            sh("ip", "netns", "del", ns.split()[0], check=False)
    workdir = tempfile.mkdtemp(prefix="kbgp-demo-")
    os.chmod(workdir, 0o755)
    demo = Demo(workdir)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(130))
    try:
        return demo.run(a.keep_seconds)
    except KeyboardInterrupt:
        return 130
    finally:
        demo.cleanup()
        shutil.rmtree(workdir, ignore_errors=True)
        banner("removed the namespaces and the work directory")


if __name__ == "__main__":
    sys.exit(main())
