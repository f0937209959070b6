"""The standalone speaker: ``kbgp speaker --config FILE``.

The composition root of the BGP engine the agent also uses: one PeerLink per
neighbour, one RIB, originated routes, import/export policy (accept/reject,
RFC 8212 defaults), route reflection, graceful restart (helper side), route
refresh, and the control socket behind ``kbgp neighbors`` and ``kbgp rib``.
Everything runs on one uvloop event loop; nothing here blocks.
"""
from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import ipaddress
import os
import logging
import signal
import time
from dataclasses import dataclass, field
from typing import Any

from kbgp._fast.attrs import AttrTable, PathAttributes, encode_attributes, encode_end_of_rib, encode_updates, mp_next_hop_bytes
from kbgp._fast.wire import PrefixArray, encode_route_refresh
from kbgp.bgp.capabilities import LocalSettings, Negotiated
from kbgp.bgp.constants import WELL_KNOWN_COMMUNITY_VALUES, CeaseSubcode, RouteRefreshSubtype
from kbgp.bgp.messages import IPV4_UNICAST, IPV6_UNICAST, Family, family_name
from kbgp.bgp.session import Down, Received, RefreshRequested, Session, Up
from kbgp.config import NeighborConfig, OriginateConfig, SpeakerConfig
from kbgp.io.sockopts import tcp_md5_counters
from kbgp.io.tcp import Listener, PeerLink, normalise_address
from kbgp._fast.rib import Changes, Classes, RouteTable, batch_sources, classify, export_diff, partition
from kbgp.policy.engine import CompiledPolicy, Outcome

log = logging.getLogger(__name__)

NO_EXPORT = WELL_KNOWN_COMMUNITY_VALUES["no-export"]
NO_ADVERTISE = WELL_KNOWN_COMMUNITY_VALUES["no-advertise"]
FAMILIES = (IPV4_UNICAST, IPV6_UNICAST)
LOCAL_SRC = 0
MAX_PREFIX_RESTART = 60.0


@dataclass(slots=True)
class Peer:
    """One neighbour: configuration, its link, and what it sent and was told."""

    config: NeighborConfig
    session: Session
    link: PeerLink | None = None
    src: int = 0  # this neighbour's source index in the route tables
    # What its import policy refused (kept to count "received"), per family.
    # What it was told is not kept: it is the export of the Loc-RIB (export_diff).
    rejected: dict[Family, RouteTable] = field(default_factory=dict)
    advertised: dict[Family, int] = field(default_factory=dict)
    group: "UpdateGroup | None" = None
    peer_class: str = "external"
    import_rules: tuple[int, ...] = ()
    export_rules: tuple[int, ...] = ()
    negotiated: Negotiated | None = None
    rr_client: bool = False
    # From the last OPEN; kept while the session is down so stale routes keep their standing.
    ibgp: bool = False
    router_id: str = "0.0.0.0"
    local_address: str = ""
    eor_sent: set[Family] = field(default_factory=set)
    eor_received: set[Family] = field(default_factory=set)
    eor_wait: set[Family] = field(default_factory=set)
    gr_timer: asyncio.TimerHandle | None = None
    defer: set[Family] = field(default_factory=set)
    md5_failures_at_start: int = 0

    @property
    def key(self) -> str:
        return self.config.address


@dataclass(slots=True)
class UpdateGroup:
    """Established neighbours that get the same export: one computed diff and
    one encoded UPDATE stream per batch, written to every member (RFC 4271
    leaves this to the implementation; BIRD and FRR do the same).  The key
    holds everything _export reads of a neighbour, so any member stands for
    all; split horizon (a member's own routes) is handled per member."""

    key: tuple
    members: list[Peer] = field(default_factory=list)


class Speaker:
    def __init__(self, config: SpeakerConfig, control_socket: str | None = None, kernel: Any = None) -> None:
        self.config = config
        self.control_socket = control_socket
        # The kernel route writer (kbgp.kernel.syncer.KernelSyncer) fed with
        # Loc-RIB changes, or None.  The agent passes its own; ``kernel: true``
        # in a speaker configuration makes the speaker start one.
        self.kernel = kernel
        self._own_kernel = False
        self._gateways: dict[str, int] = {}
        self._gateway_list: list[str] = []
        self._converged = False
        self._converge_timer: asyncio.TimerHandle | None = None
        self.table = AttrTable()
        # Loc-RIB and every Adj-RIB-In: one C prefix table per family (kbgp/_fast/rib).
        self.tables = {fam: RouteTable(fam[0]) for fam in FAMILIES}
        for t in self.tables.values():
            t.set_source(LOCAL_SRC, local=True)
        self.sources: dict[int, Peer | None] = {LOCAL_SRC: None}
        self.ranked: set[int] = set()
        self.peers: dict[str, Peer] = {}
        self.groups: dict[tuple, UpdateGroup] = {}
        self.policy = CompiledPolicy(config.policy)
        self.listener = Listener(self._route_inbound)
        self.started = time.monotonic()
        self.stopping = asyncio.Event()
        self.cluster_id = config.effective_cluster_id
        self.control: Any = None
        # RFC 4724: the Restart State bit only after a real restart, i.e. when
        # the previous run did not shut down cleanly (its marker is still there).
        self.marker = f"{control_socket}.running" if control_socket else None
        self.restarting = bool(self.marker and os.path.exists(self.marker))

    # -------------------------------------------------------------- life

    async def run(self, config_path: str | None = None) -> None:
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            try:
                loop.add_signal_handler(sig, self.stopping.set)
            except (NotImplementedError, RuntimeError):
                pass
        if config_path:
            loop.add_signal_handler(signal.SIGHUP, lambda: self.reload_file(config_path))
        await self.start()
        try:
            await self.stopping.wait()
        finally:
            await self.stop()

    async def start(self) -> None:
        if self.marker:
            os.makedirs(os.path.dirname(os.path.abspath(self.marker)), exist_ok=True)
            with open(self.marker, "w") as f:
                f.write(f"{os.getpid()}\n")
        if self.restarting:
            log.info("the previous run did not stop cleanly: restarting with the Restart State bit set")
        if self.config.kernel and self.kernel is None:
            from kbgp.kernel.syncer import KernelSyncer
            self.kernel = KernelSyncer()
            self._own_kernel = True
            await self.kernel.start()
        if self.kernel is not None:
            # Kernel routes left by an earlier run are adopted, not deleted;
            # the ones no longer wanted go once the RIB has re-learned.
            loop = asyncio.get_running_loop()
            self._converge_timer = loop.call_later(self.config.graceful_restart.deferral_time
                                                   if self.restarting else 30.0, self._kernel_converged)
        for addr in self.config.listen:
            await self.listener.listen(addr.address, addr.port)
            log.info("listening on %s", addr)
        self._originate()
        for n in self.config.neighbors:
            self.add_peer(n)
        if self.control_socket:
            from kbgp.control import ControlServer
            self.control = ControlServer(self.control_socket, self)
            await self.control.start()

    async def stop(self, graceful: bool = False) -> None:
        """Close every session.  graceful (graceful restart): without a
        NOTIFICATION, so peers keep our routes as stale (RFC 4724 4), and the
        restart marker stays so the next run sets the Restart State bit.
        Otherwise Cease / Administrative Shutdown to every peer."""
        if self._converge_timer is not None:
            self._converge_timer.cancel()
        if not graceful:
            for p in self.peers.values():
                if p.link is not None:
                    p.link.stop(CeaseSubcode.ADMINISTRATIVE_SHUTDOWN, "kbgp speaker shutting down")
            await asyncio.sleep(0.2)  # let the NOTIFICATIONs leave
        for p in self.peers.values():
            if p.link is not None:
                p.link.shutdown()
        self.listener.close()
        if self.control is not None:
            await self.control.stop()
        if self._own_kernel and self.kernel is not None:
            await self.kernel.shutdown(remove_routes=not (graceful or self.config.graceful_restart.enabled))
        if self.marker and not graceful:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(self.marker)

    def add_peer(self, n: NeighborConfig) -> Peer:
        settings = LocalSettings(
            asn=self.config.asn,
            router_id=self.config.router_id,
            hold_time=n.hold_time,
            families=tuple(n.families),
            peer_asn=n.asn,
            graceful_restart=self.config.graceful_restart.enabled,
            restart_time=self.config.graceful_restart.restart_time,
            restarting=self.restarting and self.config.graceful_restart.enabled,
        )
        session = Session(settings, passive=n.passive, connect_retry=float(self.config.connect_retry),
                          table=self.table, password_set=bool(n.password), name=n.address)
        peer = Peer(n, session, src=self._new_source(), rr_client=n.route_reflector_client)
        self.sources[peer.src] = peer
        for t in self.tables.values():
            t.set_source(peer.src)  # declared now; its details come with the OPEN
        ibgp_guess = n.asn == self.config.asn
        peer.link = PeerLink(
            session, n.address, n.port, local_address=n.local_address, password=n.password,
            ttl=n.effective_ttl(ibgp_guess), min_ttl=n.min_ttl, on_effect=self._effect)
        peer.md5_failures_at_start = sum(tcp_md5_counters().values())
        self.peers[n.address] = peer
        if n.password:
            self.listener.set_password(n.address, n.password)
        peer.link.start()
        return peer

    def reload_file(self, path: str) -> None:
        from kbgp.config import load_speaker_config
        from kbgp.errors import ConfigError

        try:
            new = load_speaker_config(path)
        except ConfigError as exc:
            log.error("reload refused, the running configuration stays: %s", exc)
            return
        self.reconfigure(new)

    # Neighbour settings that change policy only: applied without a reset.
    SOFT_FIELDS = ("import_policy", "export_policy", "peer_class", "description", "max_prefixes")

    def reconfigure(self, new: SpeakerConfig) -> None:
        """Apply a changed configuration without touching what did not change.

        New neighbours start; removed ones get Cease 6/3 (peer de-configured)
        and their routes go at once; a neighbour whose transport or session
        settings changed is reset with 6/6 (other configuration change).
        Policy changes (rules, sets, a neighbour's import/export/peer-class)
        reset nothing: exports are re-diffed against what each neighbour
        holds, and neighbours whose import changed are asked for a route
        refresh.  Originated routes are diffed.  Router id, AS, listen
        addresses, cluster id and graceful restart need a restart."""
        old = self.config
        fixed = ("router_id", "asn", "listen", "cluster_id", "graceful_restart")
        changed = [f for f in fixed if getattr(old, f) != getattr(new, f)]
        if changed:
            log.error("reload refused: %s cannot change without a restart", ", ".join(changed))
            return
        old_policy = self.policy
        if new.policy != old.policy:
            try:
                self.policy = CompiledPolicy(new.policy)
            except ValueError as exc:
                log.error("reload refused: policy: %s", exc)
                return
        self.config = new
        before = {n.address: n for n in old.neighbors}
        after = {n.address: n for n in new.neighbors}
        for address in before.keys() - after.keys():
            log.info("peer=%s removed from the configuration", address)
            self.remove_peer(address)
        soft: list[tuple[Peer, tuple[int, ...], tuple[int, ...], NeighborConfig]] = []
        for address, n in after.items():
            if address not in before:
                log.info("peer=%s added to the configuration", address)
                self.add_peer(n)
                continue
            b = before[address]
            peer = self.peers.get(address)
            if b == n:
                if peer is not None and self.policy is not old_policy:
                    soft.append((peer, peer.import_rules, peer.export_rules, b))
                continue
            if peer is not None and all(getattr(b, f.name) == getattr(n, f.name)
                                        for f in dataclasses.fields(n) if f.name not in self.SOFT_FIELDS):
                log.info("peer=%s policy settings changed: applying without a reset", address)
                peer.config = n
                soft.append((peer, peer.import_rules, peer.export_rules, b))
                continue
            log.info("peer=%s configuration changed: resetting the session", address)
            self.remove_peer(address, CeaseSubcode.OTHER_CONFIGURATION_CHANGE)
            self.add_peer(n)
        if old.originate != new.originate:
            self._reoriginate(old.originate, new.originate)
        for peer, old_import, old_export, old_cfg in soft:
            self._repolicy(peer, old_policy, old_import, old_export, old_cfg)

    def _repolicy(self, peer: Peer, old_policy: CompiledPolicy, old_import: tuple[int, ...],
                  old_export: tuple[int, ...], old_cfg: NeighborConfig) -> None:
        """A neighbour's policy changed: send it the export difference, and ask
        it to send its routes again when its import changed."""
        n = peer.negotiated
        if n is None:
            return
        self._bind_policy(peer)
        for fam in sorted(peer.eor_sent):
            routes = self.tables[fam].export_best()
            old_sets = old_policy.sets[fam[0]]
            new_sets = self.policy.sets[fam[0]]
            both = old_policy is not self.policy
            if both and len(old_sets) + len(new_sets) > 64:
                # Too many sets to classify at once: withdraw all, then send the new export.
                self._send_withdraw_all(peer, fam, old_policy, old_export, old_cfg)
                self._send_table(peer, fam)
                continue
            sets = list(old_sets) + (list(new_sets) if both else [])
            classes = classify(routes.prefixes, sets) if sets else None
            shift = len(old_sets) if both else 0
            low = (1 << len(old_sets)) - 1
            masks = classes.masks if classes is not None else [0]

            def old_resolve(src: int, aid: int, cls: int) -> int | None:
                return self._export(peer, fam, src, aid, masks[cls] & low, old_policy, old_export, old_cfg)

            def new_resolve(src: int, aid: int, cls: int) -> int | None:
                return self._export(peer, fam, src, aid, masks[cls] >> shift)
            self._send(peer, fam, self._encode_diff(peer, fam, export_diff(
                routes, new_resolve, old_resolve, classes=classes, exclude=peer.src)))
        if (peer.import_rules != old_import or peer.config.import_policy != old_cfg.import_policy
                or (peer.import_rules and self.policy.import_signature() != old_policy.import_signature())):
            if n.route_refresh and peer.link is not None:
                log.info("peer=%s import policy changed: asking for its routes again (route refresh)", peer.key)
                for fam in n.families:
                    peer.link.apply(peer.session.request_refresh(*fam))
            elif peer.link is not None:
                log.info("peer=%s import policy changed and it cannot refresh: resetting the session", peer.key)
                peer.link.stop(CeaseSubcode.OTHER_CONFIGURATION_CHANGE)
                self._drop_routes(peer)
                link = peer.link
                asyncio.get_running_loop().call_later(1.0, lambda: link.closed or link.start())

    def _send_withdraw_all(self, peer: Peer, fam: Family, policy: CompiledPolicy,
                           rules: tuple[int, ...], cfg: NeighborConfig) -> None:
        routes = self.tables[fam].export_best()
        classes = policy.classify("export", routes.prefixes)
        masks = classes.masks if classes is not None else [0]
        groups, _, _ = export_diff(
            routes, lambda src, aid, cls: self._export(peer, fam, src, aid, masks[cls], policy, rules, cfg),
            classes=classes, exclude=peer.src)
        gone = PrefixArray(fam[0])
        for arr in groups.values():
            gone = gone.concat(arr)
        if len(gone) and peer.link is not None:
            peer.link.send(encode_updates(withdraw=gone, max_size=peer.negotiated.max_message_size))
        peer.advertised[fam] = 0

    def _reoriginate(self, old: tuple[OriginateConfig, ...], new: tuple[OriginateConfig, ...]) -> None:
        """Originated routes changed: withdraw the removed, announce the new and changed."""
        before = {o.prefix: o for o in old}
        after = {o.prefix: o for o in new}
        for prefix in before.keys() - after.keys():
            fam = before[prefix].family
            self._changed(fam, self.tables[fam].update(LOCAL_SRC, None, -1, PrefixArray.from_strings([prefix])))
        for prefix, o in after.items():
            if before.get(prefix) != o:
                fam = o.family
                aid = self._rank(self.table.intern(self._origin_attrs(o)))
                self._changed(fam, self.tables[fam].update(LOCAL_SRC, PrefixArray.from_strings([prefix]), aid, None))

    def remove_peer(self, address: str, subcode: int = CeaseSubcode.PEER_DECONFIGURED) -> None:
        """A de-configured neighbour: Cease 6/3, its routes go at once."""
        peer = self.peers.pop(address, None)
        if peer is None or peer.link is None:
            return
        peer.link.stop(subcode)
        # shutdown() closes the transport after the NOTIFICATION is written.
        peer.link.shutdown()
        if peer.config.password:
            self.listener.set_password(address, None)
        self._leave_group(peer)
        peer.negotiated = None
        self._drop_routes(peer)
        self.sources.pop(peer.src, None)

    def _new_source(self) -> int:
        i = 1
        while i in self.sources:
            i += 1
        return i

    def _rank(self, attr_id: int) -> int:
        """Declare an attribute set's decision-process ranks to the tables, once."""
        if attr_id not in self.ranked:
            pa = self.table[attr_id]
            for t in self.tables.values():
                t.set_attr_from(attr_id, pa)
            self.ranked.add(attr_id)
        return attr_id

    def _route_inbound(self, source: str) -> PeerLink | None:
        peer = self.peers.get(source)
        return peer.link if peer else None

    # ----------------------------------------------------------- originate

    def _originate(self) -> None:
        for o in self.config.originate:
            fam = o.family
            net = ipaddress.ip_network(o.prefix)
            aid = self._rank(self.table.intern(self._origin_attrs(o)))
            self.tables[fam].update(LOCAL_SRC, PrefixArray.from_strings([str(net)]), aid, None)

    def _origin_attrs(self, o: OriginateConfig) -> PathAttributes:
        path = ()
        if o.as_path_prepend is not None:
            path = ((2, (o.as_path_prepend.asn,) * o.as_path_prepend.repeat),)
        nh = o.next_hop
        v4 = o.family == IPV4_UNICAST
        return PathAttributes(
            origin=0, as_path=path, med=o.med, local_pref=o.local_pref,
            communities=o.communities, large_communities=o.large_communities,
            next_hop=nh if (nh and v4 and ":" not in nh) else None,
            mp_next_hop=(nh,) if (nh and (not v4 or ":" in nh)) else ())

    # --------------------------------------------------------- session events

    def _effect(self, link: PeerLink, e: Any) -> None:
        peer = self.peers.get(link.address)
        if peer is None or peer.link is not link:
            return
        if isinstance(e, Received):
            self._received(peer, e.update)
        elif isinstance(e, Up):
            self._up(peer, e.negotiated)
        elif isinstance(e, Down):
            self._down(peer, e)
        elif isinstance(e, RefreshRequested):
            self._refresh_requested(peer, e)

    def _up(self, peer: Peer, n: Negotiated) -> None:
        peer.negotiated = n
        conn = peer.session.established
        peer.local_address = conn.cid.local_address if conn is not None else ""
        peer.ibgp = n.ibgp
        peer.router_id = n.peer_router_id
        for t in self.tables.values():
            t.set_source(peer.src, ibgp=n.ibgp, router_id=n.peer_router_id,
                         address=int(ipaddress.ip_address(peer.key)), rr_client=peer.rr_client)
        log.info("peer=%s state=established asn=%d families=%s", peer.key, n.peer_asn,
                 ",".join(family_name(*f) for f in sorted(n.families)))
        if peer.gr_timer is not None:
            peer.gr_timer.cancel()
            peer.gr_timer = None
        # RFC 4724 4.2: families the peer no longer preserves lose their stale routes now;
        # the others wait for End-of-RIB (bounded by the stale timer).
        peer.eor_wait = set()
        for fam in [f for f, t in self.tables.items() if t.stale_count(peer.src)]:
            if fam in n.families and n.peer_forwarding_preserved(fam):
                peer.eor_wait.add(fam)
            else:
                self._sweep(peer, fam)
        if peer.eor_wait:
            loop = asyncio.get_running_loop()
            peer.gr_timer = loop.call_later(self.config.graceful_restart.stale_time,
                                            lambda: self._sweep_all(peer))
        peer.advertised = {fam: 0 for fam in n.families}
        peer.eor_sent = set()
        peer.eor_received = set()
        self._bind_policy(peer)
        if peer.session.settings.restarting:
            # Later sessions of this run are not restarts (RFC 4724 4.1).
            peer.session.settings = dataclasses.replace(peer.session.settings, restarting=False)
            if n.graceful_restart:
                # Restarting speaker: wait for the peer's End-of-RIB (our routes
                # are still in its RIB as stale) before sending ours, bounded by
                # the deferral time (RFC 4724 4.1 selection deferral).
                peer.defer = set(n.families)
                loop = asyncio.get_running_loop()
                loop.call_later(self.config.graceful_restart.deferral_time, lambda: self._undefer(peer, None))
                return
        for fam in sorted(n.families):
            self._send_full(peer, fam)

    def _down(self, peer: Peer, e: Down) -> None:
        log.info("peer=%s state=down reason=%s graceful=%s", peer.key, e.reason, e.graceful)
        n = peer.negotiated
        self._leave_group(peer)
        peer.negotiated = None
        peer.advertised = {}
        if e.graceful and n is not None and n.peer_graceful_restart is not None and any(
                t.received(peer.src) for t in self.tables.values()):
            count = sum(t.mark_stale(peer.src) for t in self.tables.values())
            restart = n.peer_graceful_restart.restart_time or self.config.graceful_restart.restart_time
            log.info("peer=%s graceful restart: keeping %d routes as stale for %d s", peer.key, count, restart)
            loop = asyncio.get_running_loop()
            peer.gr_timer = loop.call_later(restart, lambda: self._sweep_all(peer))
            return
        self._drop_routes(peer)

    def _drop_routes(self, peer: Peer) -> None:
        if peer.gr_timer is not None:
            peer.gr_timer.cancel()
            peer.gr_timer = None
        peer.rejected = {}
        for fam, t in self.tables.items():
            self._changed(fam, t.drop_source(peer.src))

    def _undefer(self, peer: Peer, fam: Family | None) -> None:
        """Send what a restarting speaker held back, for one family or all."""
        if peer.negotiated is None:
            return
        for f in sorted(peer.defer if fam is None else peer.defer & {fam}):
            peer.defer.discard(f)
            self._send_full(peer, f)

    def _sweep(self, peer: Peer, fam: Family) -> None:
        self._changed(fam, self.tables[fam].sweep_stale(peer.src))

    def _sweep_all(self, peer: Peer) -> None:
        peer.gr_timer = None
        for fam, t in self.tables.items():
            if t.stale_count(peer.src):
                self._sweep(peer, fam)

    # -------------------------------------------------------------- import

    def _received(self, peer: Peer, u: Any) -> None:
        n = peer.negotiated
        if n is None:
            return
        if u.end_of_rib is not None:
            fam = tuple(u.end_of_rib)
            peer.eor_received.add(fam)  # type: ignore[arg-type]
            self._check_converged()
            if fam in peer.eor_wait:
                peer.eor_wait.discard(fam)
                self._sweep(peer, fam)  # type: ignore[arg-type]
            self._undefer(peer, fam)  # type: ignore[arg-type]
            return
        # Prefixes stay in the UPDATE's C arrays all the way into the tables.
        withdrawn: dict[Family, list[PrefixArray]] = {}
        announced: dict[Family, list[PrefixArray]] = {}
        if len(u.withdrawn):
            withdrawn.setdefault(IPV4_UNICAST, []).append(u.withdrawn)
        if u.mp_withdrawn is not None and len(u.mp_withdrawn):
            withdrawn.setdefault((u.mp_withdrawn.afi, 1), []).append(u.mp_withdrawn)
        if len(u.nlri):
            announced.setdefault(IPV4_UNICAST, []).append(u.nlri)
        if u.mp_nlri is not None and len(u.mp_nlri):
            announced.setdefault((u.mp_nlri.afi, 1), []).append(u.mp_nlri)
        if u.treat_as_withdraw:
            for fam, arrays in announced.items():
                withdrawn.setdefault(fam, []).extend(arrays)
            announced = {}
            log.warning("peer=%s UPDATE treated as withdraw: %s", peer.key, u.error[4] if u.error else "")
        for fam, arrays in withdrawn.items():
            if fam not in self.tables:
                continue
            for arr in arrays:
                self._changed(fam, self.tables[fam].update(peer.src, None, -1, arr))
                if fam in peer.rejected:
                    peer.rejected[fam].update(0, None, -1, arr)
        if not announced:
            return
        loop_free = self._loop_free(peer, u.attrs)
        default = peer.config.effective_import(n.ibgp)
        for fam, arrays in announced.items():
            if fam not in self.tables:
                continue
            for arr in arrays:
                if not loop_free:
                    self._refuse(peer, fam, arr)
                    continue
                for part, aid in self._import(peer, arr, u.attr_id, default):
                    if aid is None:
                        self._refuse(peer, fam, part)
                        continue
                    self._changed(fam, self.tables[fam].update(peer.src, part, aid, None))
                    rejected = peer.rejected.get(fam)
                    if rejected is not None:
                        rejected.update(0, None, -1, part)
            if loop_free and self._over_limit(peer, fam):
                return

    def _import(self, peer: Peer, arr: PrefixArray, attr_id: int, default: str) -> list[tuple[PrefixArray, int | None]]:
        """Import policy for one UPDATE's prefixes: [(prefixes, attr id or None)].
        Rules are evaluated once per class of prefixes (kbgp.policy.engine)."""
        if not peer.import_rules:
            return [(arr, self._rank(attr_id) if default == "accept" else None)]
        classes = self.policy.classify("import", arr)
        if classes is None:
            parts = [(arr, 0)]
        else:
            parts = list(zip(partition(arr, classes), classes.masks))
        out = []
        for part, mask in parts:
            if not len(part):
                continue
            o = self.policy.evaluate("import", peer.import_rules, mask, False)
            if (o.verdict or default) != "accept":
                out.append((part, None))
                continue
            aid = attr_id
            if o.modifies:
                aid = self.table.intern(self._apply(self.table[attr_id], o, {}, ibgp=True))
            out.append((part, self._rank(aid)))
        return out

    def _refuse(self, peer: Peer, fam: Family, arr: PrefixArray) -> None:
        """Refused (policy or a loop): an earlier path from this peer must not linger."""
        self._changed(fam, self.tables[fam].update(peer.src, None, -1, arr))
        rejected = peer.rejected.get(fam)
        if rejected is None:
            rejected = peer.rejected[fam] = self._one_source_table(fam)
        rejected.update(0, arr, 0, None)

    def _apply(self, pa: PathAttributes, o: Outcome, changes: dict, ibgp: bool) -> PathAttributes:
        """A policy outcome's modifications, on top of ``changes`` already decided."""
        if o.add_communities:
            have = list(changes.get("communities", pa.communities))
            changes["communities"] = tuple(have + [c for c in o.add_communities if c not in have])
        if o.add_large_communities:
            have = list(changes.get("large_communities", pa.large_communities))
            changes["large_communities"] = tuple(have + [c for c in o.add_large_communities if c not in have])
        for asn, repeat in o.prepends:
            path = tuple(changes.get("as_path", pa.as_path) or ())
            add = (asn or self.config.asn,) * repeat
            if path and path[0][0] == 2:
                path = ((2, add + tuple(path[0][1])),) + path[1:]
            else:
                path = ((2, add),) + path
            changes["as_path"] = path
        if o.local_pref is not None and ibgp:
            changes["local_pref"] = o.local_pref
        return pa.replace(**changes) if changes else pa

    def _over_limit(self, peer: Peer, fam: Family) -> bool:
        """max-prefixes (counted after import policy): Cease 6/1 with AFI, SAFI and
        the limit (RFC 4486 4), routes dropped, the session stays down for a minute."""
        limit = peer.config.max_prefixes
        if not limit or self.tables[fam].received(peer.src) <= limit or peer.link is None:
            return False
        log.error("peer=%s sent more than %d %s prefixes: closing (max-prefixes)", peer.key, limit,
                  family_name(*fam))
        data = fam[0].to_bytes(2, "big") + bytes([fam[1]]) + limit.to_bytes(4, "big")
        peer.link.stop(CeaseSubcode.MAXIMUM_PREFIXES_REACHED, "", data)
        peer.session.last_error = f"more than {limit} {family_name(*fam)} prefixes (max-prefixes): down for 60 s"
        self._drop_routes(peer)
        link = peer.link
        asyncio.get_running_loop().call_later(MAX_PREFIX_RESTART, lambda: link.closed or link.start())
        return True

    def _loop_free(self, peer: Peer, pa: PathAttributes) -> bool:
        if pa is None:
            return False
        n = peer.negotiated
        if n is not None and not n.ibgp and self.config.asn in pa.as_path_flat():
            return False
        if pa.originator_id == self.config.router_id:
            return False
        if self.cluster_id in pa.cluster_list:
            return False
        return True

    # -------------------------------------------------------------- export

    def _one_source_table(self, fam: Family) -> RouteTable:
        """A one-source table: what a neighbour's import policy refused."""
        t = RouteTable(fam[0])
        t.set_source(0)
        t.set_attr(0)
        return t

    # Kernel ---------------------------------------------------------------

    def _gateway(self, src: int, attr_id: int, cls: int) -> int | None:
        """The kernel next hop of a best route, as an index: learned routes
        only (our own are not installed); None when it has no usable one."""
        if src == LOCAL_SRC:
            return None
        pa: PathAttributes = self.table[attr_id]
        nh = pa.next_hop
        if nh is None and pa.mp_next_hop:
            nh = pa.mp_next_hop[0]
        if not nh:
            return None
        i = self._gateways.get(nh)
        if i is None:
            i = self._gateways[nh] = len(self._gateway_list)
            self._gateway_list.append(nh)
        return i

    def _to_kernel(self, fam: Family, changes: Changes) -> None:
        groups, withdraw, _ = export_diff(changes, self._gateway)
        announce = {self._gateway_list[i]: arr for i, arr in groups.items()}
        self.kernel.update(fam[0], announce, withdraw if len(withdraw) else None)

    def _kernel_converged(self) -> None:
        """The RIB has re-learned (every peer's End-of-RIB, or the deferral
        timer): kernel routes of an earlier run that are not wanted now go."""
        if self._converged or self.kernel is None:
            return
        self._converged = True
        if self._converge_timer is not None:
            self._converge_timer.cancel()
            self._converge_timer = None
        log.info("routing converged: removing kernel routes of an earlier run that are gone")
        self.kernel.converged()

    def _check_converged(self) -> None:
        if self._converged or self.kernel is None:
            return
        for peer in self.peers.values():
            n = peer.negotiated
            if n is None or not peer.eor_received >= set(n.families):
                return
        self._kernel_converged()

    # Update groups -------------------------------------------------------

    def _bind_policy(self, peer: Peer) -> None:
        """At Established (and after a reload): the neighbour's rules and group."""
        n = peer.negotiated
        if n is None:
            return
        peer.peer_class = peer.config.effective_class(self.config.asn)
        peer.import_rules = self.policy.rules_for("import", peer.key, peer.peer_class)
        peer.export_rules = self.policy.rules_for("export", peer.key, peer.peer_class)
        key = (n.ibgp, peer.rr_client, peer.peer_class, peer.export_rules,
               peer.config.effective_export(n.ibgp), peer.local_address or peer.config.local_address,
               n.asn4, n.max_message_size)
        if peer.group is not None and peer.group.key == key:
            return
        self._leave_group(peer)
        group = self.groups.get(key)
        if group is None:
            group = self.groups[key] = UpdateGroup(key)
        group.members.append(peer)
        peer.group = group

    def _leave_group(self, peer: Peer) -> None:
        group = peer.group
        peer.group = None
        if group is None:
            return
        if peer in group.members:
            group.members.remove(peer)
        if not group.members:
            self.groups.pop(group.key, None)

    def _resolver(self, peer: Peer, fam: Family, classes: Classes | None,
                  policy: CompiledPolicy | None = None, rules: tuple[int, ...] | None = None):
        masks = classes.masks if classes is not None else None
        policy = policy or self.policy
        rules = peer.export_rules if rules is None else rules

        def resolve(src: int, attr_id: int, cls: int) -> int | None:
            return self._export(peer, fam, src, attr_id, masks[cls] if masks else 0, policy, rules)
        return resolve

    def _changed(self, fam: Family, changes: Changes) -> None:
        """Best paths changed: each update group computes and encodes its
        difference once and writes the same bytes to every member."""
        if not len(changes):
            return
        if self.kernel is not None:
            self._to_kernel(fam, changes)
        classes = None
        involved = None
        for group in list(self.groups.values()):
            members = [p for p in group.members if p.link is not None and p.negotiated is not None
                       and fam in p.negotiated.families and fam in p.eor_sent]
            if not members:
                continue
            if classes is None:
                classes = self.policy.classify("export", changes.prefixes) or False
            if involved is None:
                involved = batch_sources(changes)
            resolve = self._resolver(members[0], fam, classes or None)
            shared = None
            for peer in members:
                if peer.src in involved:
                    # Split horizon: its own routes are never sent back to it.
                    out = self._encode_diff(peer, fam, export_diff(
                        changes, resolve, classes=classes or None, exclude=peer.src))
                else:
                    if shared is None:
                        shared = self._encode_diff(peer, fam, export_diff(
                            changes, resolve, classes=classes or None))
                    out = shared
                self._send(peer, fam, out)

    def _send(self, peer: Peer, fam: Family, out: tuple[bytes, int, int]) -> None:
        data, added, withdrawn = out
        peer.advertised[fam] = peer.advertised.get(fam, 0) + added - withdrawn
        if data and peer.link is not None:
            peer.link.send(data)

    def _encode_diff(self, peer: Peer, fam: Family, diff: tuple) -> tuple[bytes, int, int]:
        """Encode an export diff for a neighbour (any member of its group):
        (UPDATE bytes, routes added, routes withdrawn)."""
        groups, withdraw, added = diff
        n = peer.negotiated
        out = []
        if len(withdraw):
            out.append(encode_updates(withdraw=withdraw, max_size=n.max_message_size))
        for aid, prefixes in groups.items():
            pa = self.table[aid]
            try:
                attrs = encode_attributes(pa.replace(mp_next_hop=()), n.asn4)
                nh = mp_next_hop_bytes(pa.mp_next_hop) if fam != IPV4_UNICAST or (
                    pa.next_hop is None and pa.mp_next_hop) else b""
                out.append(encode_updates(prefixes, attrs, mp_next_hop=nh, max_size=n.max_message_size))
            except ValueError as exc:
                log.error("peer=%s cannot send %d routes: %s", peer.key, len(prefixes), exc)
                added -= len(prefixes)
        return b"".join(out), added, len(withdraw)

    def _send_full(self, peer: Peer, fam: Family) -> None:
        self._send_table(peer, fam)
        if peer.link is not None:
            peer.link.send(encode_end_of_rib(*fam))
        peer.eor_sent.add(fam)

    def _send_table(self, peer: Peer, fam: Family, announce_all: bool = False) -> None:
        """The whole export to one neighbour (session up, route refresh)."""
        if peer.negotiated is None or peer.link is None:
            return
        routes = self.tables[fam].export_best()
        classes = self.policy.classify("export", routes.prefixes)
        resolve = self._resolver(peer, fam, classes)
        diff = export_diff(routes, resolve, resolve if announce_all else None, classes=classes,
                           exclude=peer.src, announce_all=announce_all)
        data, added, withdrawn = self._encode_diff(peer, fam, diff)
        if not announce_all:
            peer.advertised[fam] = 0
        self._send(peer, fam, (data, added, withdrawn))

    def _export(self, peer: Peer, fam: Family, src: int, attr_id: int, mask: int = 0,
                policy: CompiledPolicy | None = None, rules: tuple[int, ...] | None = None,
                config: NeighborConfig | None = None) -> int | None:
        """The attribute id this neighbour should hold for a best route, or None."""
        n = peer.negotiated
        if src < 0 or n is None:
            return None
        # No split-horizon test here: PEER may stand for its whole update
        # group; export_diff's ``exclude`` keeps a member's own routes from it.
        policy = policy or self.policy
        rules = peer.export_rules if rules is None else rules
        origin_peer = self.sources.get(src)
        local = src == LOCAL_SRC
        src_ibgp = origin_peer is not None and origin_peer.ibgp
        pa: PathAttributes = self.table[attr_id]
        if NO_ADVERTISE in pa.communities:
            return None
        changes: dict[str, Any] = {}
        if n.ibgp:
            if src_ibgp and not local:
                # RFC 4456 8: reflect client routes to everyone, non-client routes to clients.
                if not (origin_peer.rr_client or peer.rr_client):
                    return None
                changes["originator_id"] = pa.originator_id or origin_peer.router_id
                changes["cluster_list"] = (self.cluster_id,) + tuple(pa.cluster_list)
        elif NO_EXPORT in pa.communities:
            return None
        o = policy.evaluate("export", rules, mask, local) if rules else None
        verdict = (o.verdict if o is not None else None) or (config or peer.config).effective_export(n.ibgp)
        if verdict != "accept":
            return None  # RFC 8212: nothing to an eBGP neighbour without an export policy
        if n.ibgp:
            if pa.local_pref is None:
                changes["local_pref"] = 100
            if local or (o is not None and o.next_hop_self):
                changes.update(self._next_hop_self(peer, fam, pa, force=o is not None and o.next_hop_self))
        else:
            path = tuple(pa.as_path or ())
            if path and path[0][0] == 2:
                path = ((2, (self.config.asn,) + path[0][1]),) + path[1:]
            else:
                path = ((2, (self.config.asn,)),) + path
            changes["as_path"] = path
            changes["local_pref"] = None
            changes["originator_id"] = None
            changes["cluster_list"] = ()
            if not local:
                changes["med"] = None  # MED is not passed on to another AS (RFC 4271 5.1.4)
            if not local or (pa.next_hop is None and not pa.mp_next_hop) or (o is not None and o.next_hop_self):
                changes.update(self._next_hop_self(peer, fam, pa, force=True))
        if o is not None and o.modifies:
            return self.table.intern(self._apply(pa, o, changes, ibgp=n.ibgp))
        if not changes:
            return attr_id
        return self.table.intern(pa.replace(**changes))

    def _next_hop_self(self, peer: Peer, fam: Family, pa: PathAttributes, force: bool = False) -> dict:
        local = peer.local_address or peer.config.local_address or ""
        if not force and (pa.next_hop or pa.mp_next_hop):
            return {}
        if fam == IPV4_UNICAST:
            if ":" in local:
                return {"next_hop": None, "mp_next_hop": (local,)}  # RFC 8950
            return {"next_hop": local or None, "mp_next_hop": ()}
        if ":" not in local and local:
            local = f"::ffff:{local}"  # an IPv6 route over an IPv4 session
        return {"next_hop": None, "mp_next_hop": (local,) if local else ()}

    def _refresh_requested(self, peer: Peer, e: RefreshRequested) -> None:
        fam = (e.afi, e.safi)
        if fam not in self.tables:
            return
        if e.subtype == RouteRefreshSubtype.BEGIN:
            # RFC 7313 4: the peer re-advertises this family; what it does not repeat goes at EoRR.
            self.tables[fam].mark_stale(peer.src)
            return
        if e.subtype == RouteRefreshSubtype.END:
            self._sweep(peer, fam)
            return
        n = peer.negotiated
        if n is None or fam not in n.families or peer.link is None:
            return
        if n.enhanced_route_refresh:
            peer.link.send(encode_route_refresh(e.afi, e.safi, RouteRefreshSubtype.BEGIN))
        self._send_table(peer, fam, announce_all=True)  # everything again
        if n.enhanced_route_refresh:
            peer.link.send(encode_route_refresh(e.afi, e.safi, RouteRefreshSubtype.END))

    def request_refresh(self, address: str) -> bool:
        peer = self.peers.get(address)
        if peer is None or peer.link is None or peer.negotiated is None:
            return False
        for fam in peer.negotiated.families:
            peer.link.apply(peer.session.request_refresh(*fam))
        return True

    # -------------------------------------------------------------- status

    def neighbors(self) -> list[dict]:
        now = time.monotonic()
        out = []
        for peer in self.peers.values():
            s = peer.session
            n = peer.negotiated
            last_error = s.last_error
            accepted = sum(t.received(peer.src) for t in self.tables.values())
            if (peer.config.password and n is None and not last_error
                    and sum(tcp_md5_counters().values()) > peer.md5_failures_at_start):
                last_error = "no session yet; TCP MD5 authentication is the likely cause (a password is set)"
            out.append({
                "address": peer.key,
                "asn": n.peer_asn if n else peer.config.asn,
                "state": s.state.value,
                "uptime": round(s.uptime(now), 1),
                "last_error": last_error,
                "received": accepted + sum(len(t) for t in peer.rejected.values()),
                "accepted": accepted,
                "advertised": sum(peer.advertised.values()),
                "capabilities": n.describe() if n else {},
                "router_id": n.peer_router_id if n else None,
                "description": peer.config.description,
                "stale": sum(t.stale_count(peer.src) for t in self.tables.values()),
                "last_notification": _last_notification(s),
                "messages": {"in": s.counters.messages_in, "out": s.counters.messages_out},
                "malformed": dict(s.counters.malformed),
            })
        return out

    def rib_entries(self, family: Family | None = None, neighbor: str | None = None,
                    direction: str | None = None) -> list[dict]:
        """Routes for kbgp rib (not a hot path).

        Without neighbor: every path of the Adj-RIBs-In with its best flag
        (the Loc-RIB is the best ones).  With neighbor and direction "in":
        that neighbour's Adj-RIB-In (after import policy); "out": its
        Adj-RIB-Out, the routes and attributes it was sent."""
        if neighbor is not None:
            peer = self.peers.get(neighbor)
            if peer is None:
                raise ValueError(f"{neighbor} is not a configured neighbor")
        out = []
        for fam, table in self.tables.items():
            if family is not None and fam != family:
                continue
            if neighbor is not None and direction == "out":
                if peer.negotiated is not None and fam in peer.eor_sent:
                    routes = table.export_best()
                    classes = self.policy.classify("export", routes.prefixes)
                    groups, _, _ = export_diff(routes, self._resolver(peer, fam, classes),
                                               classes=classes, exclude=peer.src)
                    for aid, arr in groups.items():
                        for prefix in arr.to_strings():
                            out.append(self._route_dict(prefix, fam, aid, peer.key, best=None, stale=False))
                continue
            prefixes = set()
            for src in ([peer.src] if neighbor is not None else list(self.sources)):
                arr, _attrs = table.paths_of(src)
                prefixes.update(arr.to_strings())
            for prefix in prefixes:
                for src, aid, stale, is_best in table.lookup(prefix):
                    if neighbor is not None and src != peer.src:
                        continue
                    origin_peer = self.sources.get(src)
                    out.append(self._route_dict(prefix, fam, aid,
                                                origin_peer.key if origin_peer is not None else None,
                                                bool(is_best), bool(stale)))
        out.sort(key=_route_order)
        return out

    def _route_dict(self, prefix: str, fam: Family, aid: int, neighbor: str | None,
                    best: bool | None, stale: bool) -> dict:
        pa: PathAttributes = self.table[aid]
        return {
            "prefix": prefix,
            "family": family_name(*fam),
            "next_hop": pa.next_hop or (pa.mp_next_hop[0] if pa.mp_next_hop else None),
            "as_path": pa.as_path_flat(),
            "origin": ("igp", "egp", "incomplete")[pa.origin] if pa.origin >= 0 else None,
            "local_pref": pa.local_pref,
            "med": pa.med,
            "communities": pa.community_strings(),
            "large_communities": [f"{a}:{b}:{c}" for a, b, c in pa.large_communities],
            "originator_id": pa.originator_id,
            "cluster_list": list(pa.cluster_list),
            "neighbor": neighbor,
            "best": best,
            "stale": stale,
        }


def _route_order(r: dict) -> tuple:
    """IPv4 before IPv6 (their networks do not compare), then by network and neighbour."""
    net = ipaddress.ip_network(r["prefix"])
    return (net.version, net, str(r["neighbor"]))


def _last_notification(s: Session) -> dict | None:
    """The last NOTIFICATION received or sent, whichever is newer (kept when a
    later connect failure replaces last_error)."""
    if s.last_notification_at is None:
        return None
    return dict(s.last_notification_at[1])


def run_speaker(config: SpeakerConfig, control_socket: str | None) -> int:
    import uvloop

    async def main() -> None:
        await Speaker(config, control_socket).run(config.source if config.source != "<config>" else None)

    uvloop.run(main())
    return 0


def peer_address(text: str) -> str:
    return normalise_address(text)
