"""``kbgp agent`` in network namespaces: a cluster on one LAN, from a cluster file.

    cluster = Cluster(netns_factory, tmp_path)           # a switch namespace with a bridge
    a = cluster.node("a", "10.80.0.1", "10.244.1.0/24")   # a namespace on the LAN + its Node object
    b = cluster.node("b", "10.80.0.2", "10.244.2.0/24", **{"kube-router.io/node.asn": "65001"})
    r = cluster.host("router", "10.80.0.100")            # a namespace on the LAN (BIRD goes there)
    cluster.write()                                      # the cluster file every agent reads
    a.start("--peer-router-ips=10.80.0.100", "--peer-router-asns=65000")
    a.wait_established("10.80.0.2")
    a.rib()                                              # kbgp rib --json

Every agent runs ``python -m kbgp agent --cluster-file F --hostname-override
NAME --control-socket S`` from this checkout inside its node's namespace,
with its log in the test's directory.  ``Cluster.write()`` replaces the file
by a rename, as an operator's tool should; agents pick it up within a
second.  Everything is removed at teardown by the fixtures that made it.
"""
from __future__ import annotations

import json
import os
import signal
import subprocess
from pathlib import Path
from typing import Any

from .daemons import wait_until
from .kbgp_driver import PYTHON, ROOT, kbgp_env
from .netns import Netns, sh


def node_object(name: str, addresses: list[str], pod_cidrs: list[str],
                annotations: dict[str, str] | None = None) -> dict:
    return {"apiVersion": "v1", "kind": "Node",
            "metadata": {"name": name, "annotations": dict(annotations or {})},
            "spec": {"podCIDR": pod_cidrs[0] if pod_cidrs else "", "podCIDRs": list(pod_cidrs)},
            "status": {"addresses": [{"type": "InternalIP", "address": a} for a in addresses]
                       + [{"type": "Hostname", "address": name}]}}


def service_object(name: str, cluster_ip: str, *, namespace: str = "default", type_: str = "ClusterIP",
                   external_ips: list[str] = (), annotations: dict[str, str] | None = None,
                   external_traffic_policy: str = "Cluster") -> dict:
    return {"apiVersion": "v1", "kind": "Service",
            "metadata": {"name": name, "namespace": namespace, "annotations": dict(annotations or {})},
            "spec": {"type": type_, "clusterIP": cluster_ip, "clusterIPs": [cluster_ip],
                     "externalIPs": list(external_ips), "externalTrafficPolicy": external_traffic_policy}}


class AgentNode:
    """One node: its namespace, its Node object and (once started) its agent."""

    def __init__(self, cluster: "Cluster", name: str, ns: Netns, addresses: list[str],
                 pod_cidrs: list[str], annotations: dict[str, str]) -> None:
        self.cluster = cluster
        self.name = name
        self.ns = ns
        self.addresses = addresses
        self.pod_cidrs = pod_cidrs
        self.annotations = dict(annotations)
        self.dir = cluster.workdir / f"agent-{name}"
        self.dir.mkdir(parents=True, exist_ok=True)
        os.chmod(self.dir, 0o755)
        self.proc: subprocess.Popen | None = None
        self.args: list[str] = []
        self.ifname = ""   # its interface on the LAN

    @property
    def address(self) -> str:
        return self.addresses[0]

    @property
    def ctl(self) -> Path:
        return self.dir / "kbgp.sock"

    @property
    def logfile(self) -> Path:
        return self.dir / "agent.log"

    def object(self) -> dict:
        return node_object(self.name, self.addresses, self.pod_cidrs, self.annotations)

    # ---- process -----------------------------------------------------------
    def start(self, *args: str) -> "AgentNode":
        self.args = list(args) or self.args
        # From the cluster file unless the arguments name an API server.
        source = [] if any(a.startswith(("--kubeconfig", "--master")) for a in self.args) \
            else ["--cluster-file", str(self.cluster.path)]
        cmd = [PYTHON, "-m", "kbgp", "agent", *source,
               "--hostname-override", self.name, "--control-socket", str(self.ctl),
               "--log-level", "info", *self.args]
        self.proc = self.ns.popen(cmd, log=self.logfile, env=kbgp_env(), cwd=str(ROOT))

        def ready():
            if self.proc.poll() is not None:
                raise AssertionError(f"agent {self.name} exited with {self.proc.returncode}:\n{self.log()}")
            return self.ctl.exists() and self.cli("neighbors", "--json", check=False).returncode == 0
        wait_until(ready, 30, f"agent {self.name} control socket", on_timeout=self.log)
        return self

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 15) -> int | None:
        if self.proc is None or self.proc.poll() is not None:
            return self.proc.returncode if self.proc else None
        self.proc.send_signal(sig)
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(5)
        return self.proc.returncode

    def kill(self) -> None:
        self.stop(signal.SIGKILL)

    def log(self) -> str:
        try:
            return self.logfile.read_text(errors="replace")[-20000:]
        except OSError:
            return ""

    # ---- observation -------------------------------------------------------
    def cli(self, *args: str, check: bool = True) -> subprocess.CompletedProcess:
        return self.ns.run([PYTHON, "-m", "kbgp", *args, "--control-socket", str(self.ctl)],
                           check=check, timeout=20, env=kbgp_env())

    def neighbors(self) -> dict[str, dict]:
        return {row["address"]: row for row in json.loads(self.cli("neighbors", "--json").stdout)}

    def rib(self, *args: str) -> list[dict]:
        return json.loads(self.cli("rib", "--json", *args).stdout)

    def best(self) -> dict[str, dict]:
        return {r["prefix"]: r for r in self.rib() if r["best"]}

    def established(self) -> set[str]:
        return {a for a, row in self.neighbors().items() if row["state"] == "established"}

    def wait_established(self, *addresses: str, timeout: float = 40) -> None:
        wait_until(lambda: set(addresses) <= self.established(), timeout,
                   f"agent {self.name}: sessions with {', '.join(addresses)}",
                   on_timeout=lambda: json.dumps(self.neighbors(), indent=1) + "\n" + self.log())

    def kernel_routes(self, family: str = "-4") -> dict[str, str]:
        """Routes with kbgp's protocol (17) in the main table: prefix -> 'via X' / 'dev Y'.
        A route over a nexthop object ('nhid N via X dev Y': ip prints the
        object's gateway and device after its id) reads 'via X dev Y' too."""
        out = self.ns.run(["ip", family, "route", "show", "proto", "17"]).stdout
        routes = {}
        for line in out.splitlines():
            parts = line.split()
            if len(parts) >= 3 and parts[1] == "nhid":
                parts = parts[:1] + parts[3:]
            if parts:
                routes[parts[0]] = " ".join(parts[1:])
        return routes


class Cluster:
    """Nodes and other hosts on one LAN (a bridge in a switch namespace), and
    the cluster file that describes the nodes."""

    def __init__(self, netns_factory, workdir: Path, subnet_len: int = 24, v6_len: int = 64) -> None:
        self.netns_factory = netns_factory
        self.workdir = Path(workdir)
        self.workdir.mkdir(parents=True, exist_ok=True)
        os.chmod(self.workdir, 0o755)
        self.path = self.workdir / "cluster.yaml"
        self.switch = netns_factory("switch")
        self.switch.ip("link", "add", "br0", "type", "bridge")
        self.switch.ip("link", "set", "br0", "up")
        self.nodes: dict[str, AgentNode] = {}
        self.extra_objects: list[dict] = []
        self.subnet_len = subnet_len
        self.v6_len = v6_len
        self._port = 0

    def _attach(self, ns: Netns, addresses: list[str]) -> str:
        self._port += 1
        sw_if = f"p{self._port}"
        ifname = ns.next_ifname()
        sh(["ip", "link", "add", "name", sw_if, "netns", self.switch.name, "type", "veth",
            "peer", "name", ifname, "netns", ns.name])
        self.switch.ip("link", "set", sw_if, "master", "br0")
        self.switch.ip("link", "set", sw_if, "up")
        ns.sysctl(f"net.ipv6.conf.{ifname}.accept_dad", 0)
        for a in addresses:
            plen = self.v6_len if ":" in a else self.subnet_len
            ns.ip("addr", "add", f"{a}/{plen}", "dev", ifname, *(["nodad"] if ":" in a else []))
        ns.ip("link", "set", ifname, "up")
        return ifname

    def host(self, hint: str, *addresses: str) -> Netns:
        ns = self.netns_factory(hint)
        self._attach(ns, list(addresses))
        return ns

    def node(self, name: str, address: str | list[str], pod_cidr: str | list[str],
             **annotations: str) -> AgentNode:
        addresses = [address] if isinstance(address, str) else list(address)
        cidrs = [pod_cidr] if isinstance(pod_cidr, str) else list(pod_cidr)
        ns = self.netns_factory(f"n-{name}", forwarding=True)
        ifname = self._attach(ns, addresses)
        n = self.nodes[name] = AgentNode(self, name, ns, addresses, cidrs, annotations)
        n.ifname = ifname
        return n

    def objects(self) -> list[dict]:
        return [n.object() for n in self.nodes.values()] + list(self.extra_objects)

    def write(self) -> None:
        """Write the cluster file (a List, as kubectl prints it) by a rename."""
        tmp = self.path.with_suffix(".tmp")
        tmp.write_text(json.dumps({"apiVersion": "v1", "kind": "List", "items": self.objects()}, indent=1))
        os.replace(tmp, self.path)

    def annotate(self, name: str, **changes: Any) -> None:
        """Set (value) or remove (None) annotations of a node, and rewrite the file."""
        n = self.nodes[name]
        for k, v in changes.items():
            if v is None:
                n.annotations.pop(k, None)
            else:
                n.annotations[k] = v
        self.write()

    def logs(self) -> str:
        return "\n\n".join(f"######## agent {n.name} ########\n{n.log()}" for n in self.nodes.values())

    def stop(self) -> None:
        for n in self.nodes.values():
            try:
                n.kill()
            except Exception:
                pass
