"""``kbgp agent``: the composition root of the Kubernetes node agent.

    cluster source  ->  translate (pure)  ->  speaker config  ->  Speaker
    (file or API)       NodePlan              (pure)              sessions, RIB, policy
                                                                   -> kernel syncer

One uvloop event loop runs everything.  The source calls ``on_snapshot``; the
newest snapshot wins (a burst of changes is applied once) and one task
applies it: the first plan starts the speaker, later plans reconfigure it
(only what changed changes: no session is reset for a policy change), and a
change of router id, AS, listen addresses, cluster id or graceful restart
restarts it.  While this node is not in the cluster state the agent waits and
says so; an API outage keeps every session and route as it is (the source
keeps its last snapshot).

Shutdown (SIGTERM, SIGINT): without graceful restart, peers get Cease /
Administrative Shutdown (their routes from us go) and kbgp's kernel routes are
removed.  With graceful restart the sessions are closed without a
NOTIFICATION and kernel routes stay: peers keep our routes as stale for the
restart time and the next run adopts the kernel routes (RFC 4724).
"""
from __future__ import annotations

import asyncio
import logging
import os
import signal
import socket
import sys
from typing import Any

from kbgp.cluster.flags import AgentFlags, node_name
from kbgp.cluster.model import Snapshot
from kbgp.cluster.speaker_config import plan_to_speaker_config
from kbgp.cluster.translate import NodePlan, translate
from kbgp.config import SpeakerConfig
from kbgp.errors import KbgpError

log = logging.getLogger(__name__)

RESTART_FIELDS = ("router_id", "asn", "listen", "cluster_id", "graceful_restart")


class Agent:
    def __init__(self, flags: AgentFlags, node: str) -> None:
        self.flags = flags
        self.node = node
        self.speaker: Any = None
        self.kernel: Any = None
        self.plan: NodePlan | None = None
        self.source: Any = None
        self._latest: Snapshot | None = None
        self._wake = asyncio.Event()
        self._stopping = asyncio.Event()
        self._reported: set[str] = set()
        self._waiting: str | None = None
        self._warned: set[tuple[str, str]] = set()

    # ------------------------------------------------------------ life

    async def run(self) -> None:
        from kbgp.cluster.source import make_source

        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            try:
                loop.add_signal_handler(sig, self._stopping.set)
            except (NotImplementedError, RuntimeError):
                pass
        self.source = make_source(on_snapshot=self.on_snapshot, cluster_file=self.flags.cluster_file or None,
                                  kubeconfig=self.flags.kubeconfig or None, master=self.flags.master or None)
        where = self.flags.cluster_file or "the Kubernetes API"
        log.info("node=%s reading the cluster state from %s", self.node, where)
        tasks = [asyncio.create_task(self.source.run(), name="cluster-source"),
                 asyncio.create_task(self._apply_loop(), name="apply")]
        stop = asyncio.create_task(self._stopping.wait())
        try:
            done, _ = await asyncio.wait([stop, *tasks], return_when=asyncio.FIRST_COMPLETED)
            for t in done:
                if t is not stop and t.exception() is not None:
                    raise t.exception()
        finally:
            for t in (*tasks, stop):
                t.cancel()
            await asyncio.gather(*tasks, stop, return_exceptions=True)
            await self.shutdown()

    def on_snapshot(self, snapshot: Snapshot) -> None:
        """Called by the source on the loop: keep the newest, wake the applier."""
        self._latest = snapshot
        self._wake.set()

    async def _apply_loop(self) -> None:
        while True:
            await self._wake.wait()
            self._wake.clear()
            snapshot = self._latest
            if snapshot is None:
                continue
            try:
                await self.apply(snapshot)
            except KbgpError as exc:
                log.error("node=%s cannot apply the cluster state: %s", self.node, exc)
            except Exception:  # a bug: keep the agent (and every session) alive
                log.exception("node=%s unexpected error applying the cluster state", self.node)

    async def apply(self, snapshot: Snapshot) -> None:
        plan = translate(snapshot, self.flags, self.node)
        self._report(plan)
        if plan.waiting:
            if plan.waiting != self._waiting:
                what = "keeping the running sessions and routes" if self.speaker else "waiting"
                log.warning("node=%s %s: %s", self.node, what, plan.waiting)
            self._waiting = plan.waiting
            return
        if self._waiting:
            log.info("node=%s planned: %d peers, %d advertisements", self.node, len(plan.peers),
                     len(plan.advertisements))
        self._waiting = None
        config = plan_to_speaker_config(plan, source=f"node {self.node}")
        self.plan = plan
        self._check_next_hops(plan)
        if self.speaker is None:
            await self._start_speaker(config)
            return
        old: SpeakerConfig = self.speaker.config
        restart = [f for f in RESTART_FIELDS if getattr(old, f) != getattr(config, f)]
        if restart:
            log.warning("node=%s %s changed: restarting the BGP speaker", self.node, ", ".join(restart))
            await self.speaker.stop()
            self.speaker = None
            await self._start_speaker(config)
            return
        if config != old:
            self.speaker.reconfigure(config)

    def _check_next_hops(self, plan: NodePlan) -> None:
        """The seed's warning: with --override-nexthop and the overlay, a peer
        told a next hop other than the node address tunnels use sends the
        traffic (and builds tunnels) to the wrong address."""
        if not (self.flags.override_nexthop and self.flags.enable_overlay):
            return
        from kbgp.kernel.tunnels import warn_next_hop_mismatch

        for p in plan.peers:
            if p.kind != "external" or not p.local_address:
                continue
            v6 = ":" in p.local_address
            node_addr = next((a for a in plan.node_addresses if (":" in a) == v6), None)
            if node_addr and node_addr != p.local_address and (p.local_address, node_addr) not in self._warned:
                self._warned.add((p.local_address, node_addr))
                warn_next_hop_mismatch(p.local_address, node_addr)

    def _report(self, plan: NodePlan) -> None:
        """Log each bad flag or annotation element once (again only after it was fixed)."""
        now = set(plan.errors) | {"W" + w for w in plan.warnings}
        for e in plan.errors:
            if e not in self._reported:
                log.error("%s", e)
        for w in plan.warnings:
            if "W" + w not in self._reported:
                log.warning("%s", w)
        self._reported = now

    async def _start_speaker(self, config: SpeakerConfig) -> None:
        from kbgp.speaker import Speaker

        if self.kernel is None:
            self.kernel = await self._start_kernel()
        self.speaker = Speaker(config, control_socket=self.flags.control_socket or None, kernel=self.kernel)
        await self.speaker.start()
        log.info("node=%s BGP speaker up: router-id %s, AS %d, %d peers", self.node, config.router_id,
                 config.asn, len(config.neighbors))

    async def _start_kernel(self) -> Any:
        from kbgp.kernel.syncer import KernelSyncer, OverlayConfig

        plan = self.plan
        overlay = OverlayConfig(
            enabled=self.flags.enable_overlay, type=self.flags.overlay_type, encap=self.flags.overlay_encap,
            encap_port=self.flags.overlay_encap_port, node_addresses=plan.node_addresses if plan else (),
            pod_cidrs=plan.pod_cidrs if plan else ())
        kernel = KernelSyncer(protocol=self.flags.route_protocol,
                              sync_period=float(self.flags.injected_routes_sync_period), overlay=overlay)
        await kernel.start()
        return kernel

    async def shutdown(self) -> None:
        graceful = bool(self.speaker and self.speaker.config.graceful_restart.enabled)
        if self.speaker is not None:
            await self.speaker.stop(graceful=graceful)
        if self.kernel is not None:
            # Without graceful restart the routes go with the sessions; with it
            # they stay for the next run to adopt.
            await self.kernel.shutdown(remove_routes=not graceful)
        log.info("node=%s stopped (%s)", self.node,
                 "graceful restart: sessions closed without NOTIFICATION, kernel routes kept"
                 if graceful else "routes withdrawn from peers and removed from the kernel")


def check(flags: AgentFlags, node: str) -> int:
    """``kbgp agent --check``: validate, print the plan, exit non-zero on errors."""
    import orjson

    from kbgp.cluster.source import make_source

    if not flags.cluster_file:
        print("kbgp agent --check reads --cluster-file; with the Kubernetes API, run the agent",
              file=sys.stderr)
        return 2
    source = make_source(on_snapshot=lambda s: None, cluster_file=flags.cluster_file)
    try:
        snapshot = source.load_once()
    except KbgpError as exc:
        print(f"kbgp agent: {exc}", file=sys.stderr)
        return 1
    plan = translate(snapshot, flags, node)
    out = plan.describe()
    out["cluster-file-errors"] = list(snapshot.errors)
    if not plan.waiting:
        out["speaker"] = plan_to_speaker_config(plan).describe()
    sys.stdout.write(orjson.dumps(out, option=orjson.OPT_INDENT_2).decode() + "\n")
    bad = plan.errors or snapshot.errors or plan.waiting
    return 1 if bad else 0


def run_agent(flags: AgentFlags, warnings: list[str], env: dict[str, str] | None = None) -> int:
    env = dict(os.environ if env is None else env)
    node = node_name(flags, env, socket.gethostname())
    for w in warnings:
        log.warning("%s", w)
    if flags.check:
        return check(flags, node)
    import uvloop

    async def main() -> None:
        await Agent(flags, node).run()

    uvloop.run(main())
    return 0
