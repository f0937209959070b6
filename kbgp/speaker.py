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
from kbgp._fast.rib import Changes, RouteTable, group_by_attr

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
    # What the neighbour was told (Adj-RIB-Out, one source: 0) and what its
    # import policy refused (kept to count "received"), per family.
    adj_out: dict[Family, RouteTable] = field(default_factory=dict)
    rejected: dict[Family, RouteTable] = field(default_factory=dict)
    negotiated: Negotiated | None = None
    rr_client: bool = False
    # From the last OPEN; kept while the session is down so stale routes keep their standing.
    ibgp: bool = False
    router_id: str = "0.0.0.0"
    local_address: str = ""
    eor_sent: set[Family] = field(default_factory=set)
    eor_wait: set[Family] = field(default_factory=set)
    gr_timer: asyncio.TimerHandle | None = None
    defer: set[Family] = field(default_factory=set)
    md5_failures_at_start: int = 0

    @property
    def key(self) -> str:
        return self.config.address


class Speaker:
    def __init__(self, config: SpeakerConfig, control_socket: str | None = None) -> None:
        self.config = config
        self.control_socket = control_socket
        self.table = AttrTable()
        # Loc-RIB and every Adj-RIB-In: one C prefix table per family (kbgp/_fast/rib).
        self.tables = {fam: RouteTable(fam[0]) for fam in FAMILIES}
        for t in self.tables.values():
            t.set_source(LOCAL_SRC, local=True)
        self.sources: dict[int, Peer | None] = {LOCAL_SRC: None}
        self.ranked: set[int] = set()
        self.peers: dict[str, Peer] = {}
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
        if self.config.kernel:
            log.warning("kernel: true is accepted, but this version does not write routes to the kernel yet")
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

    async def stop(self) -> None:
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
        if self.marker:
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

    def reconfigure(self, new: SpeakerConfig) -> None:
        """Apply a changed configuration: new neighbours start, removed ones get
        Cease 6/3 (peer de-configured), changed ones are reset with 6/6 (other
        configuration change).  Changes of router-id, asn, listen or originate
        need a restart and are refused with a message."""
        old = self.config
        fixed = ("router_id", "asn", "listen", "originate", "cluster_id", "graceful_restart")
        changed = [f for f in fixed if getattr(old, f) != getattr(new, f)]
        if changed:
            log.error("reload refused: %s cannot change without a restart", ", ".join(changed))
            return
        self.config = new
        before = {n.address: n for n in old.neighbors}
        after = {n.address: n for n in new.neighbors}
        for address in before.keys() - after.keys():
            log.info("peer=%s removed from the configuration", address)
            self.remove_peer(address)
        for address, n in after.items():
            if address not in before:
                log.info("peer=%s added to the configuration", address)
                self.add_peer(n)
            elif before[address] != n:
                log.info("peer=%s configuration changed: resetting the session", address)
                self.remove_peer(address, CeaseSubcode.OTHER_CONFIGURATION_CHANGE)
                self.add_peer(n)

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
        peer.adj_out = {fam: self._out_table(fam) for fam in n.families}
        peer.eor_sent = set()
        if peer.session.settings.restarting:
            # Later sessions of this run are not restarts (RFC 4724 4.1).
            peer.session.settings = dataclasses.replace(peer.session.settings, restarting=False)
            if n.graceful_restart:
                # Restarting speaker: wait for the peer's End-of-RIB (our routes
                # are still in its RIB as stale) before sending ours, bounded by
                # the restart time (RFC 4724 4.1 selection deferral).
                peer.defer = set(n.families)
                loop = asyncio.get_running_loop()
                loop.call_later(self.config.graceful_restart.restart_time, lambda: self._undefer(peer, None))
                return
        for fam in sorted(n.families):
            self._send_full(peer, fam)

    def _down(self, peer: Peer, e: Down) -> None:
        log.info("peer=%s state=down reason=%s graceful=%s", peer.key, e.reason, e.graceful)
        n = peer.negotiated
        peer.negotiated = None
        peer.adj_out = {}
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
        accept = peer.config.effective_import(n.ibgp) == "accept" and self._loop_free(peer, u.attrs)
        aid = self._rank(u.attr_id) if accept else -1
        for fam, arrays in announced.items():
            if fam not in self.tables:
                continue
            rejected = peer.rejected.get(fam)
            for arr in arrays:
                if accept:
                    self._changed(fam, self.tables[fam].update(peer.src, arr, aid, None))
                    if rejected is not None:
                        rejected.update(0, None, -1, arr)
                else:
                    # Refused (policy or a loop): an earlier path from this peer must not linger.
                    self._changed(fam, self.tables[fam].update(peer.src, None, -1, arr))
                    if rejected is None:
                        rejected = peer.rejected[fam] = self._out_table(fam)
                    rejected.update(0, arr, 0, None)
            if accept and self._over_limit(peer, fam):
                return

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

    def _out_table(self, fam: Family) -> RouteTable:
        """A one-source table: a neighbour's Adj-RIB-Out, or what its import policy refused."""
        t = RouteTable(fam[0])
        t.set_source(0)
        t.set_attr(0)
        return t

    def _changed(self, fam: Family, changes: Changes) -> None:
        """Best paths changed: tell every established neighbour what it should now hold."""
        if not len(changes):
            return
        for peer in self.peers.values():
            n = peer.negotiated
            if n is None or fam not in n.families or fam not in peer.eor_sent:
                continue
            self._advertise(peer, fam, changes)

    def _send_full(self, peer: Peer, fam: Family) -> None:
        self._advertise(peer, fam, self.tables[fam].best_routes())
        if peer.link is not None:
            peer.link.send(encode_end_of_rib(*fam))
        peer.eor_sent.add(fam)

    def _advertise(self, peer: Peer, fam: Family, routes: Any) -> None:
        """Group routes by the attributes this neighbour gets, diff them against
        its Adj-RIB-Out, and send only the difference, packed."""
        n = peer.negotiated
        if n is None or peer.link is None:
            return
        pairs = routes.pairs() if isinstance(routes, Changes) else set(zip(routes[1], routes[2]))
        mapping = {(src, aid): self._export(peer, fam, src, aid) for src, aid in pairs}
        groups, withdraw = group_by_attr(routes, mapping)
        told = peer.adj_out.setdefault(fam, self._out_table(fam))
        out = []
        if len(withdraw):
            gone = told.update(0, None, -1, withdraw)
            if len(gone):
                out.append(encode_updates(withdraw=gone.prefixes, max_size=n.max_message_size))
        for aid, prefixes in groups.items():
            told.set_attr(aid)
            fresh = told.update(0, prefixes, aid, None)
            if not len(fresh):
                continue
            pa = self.table[aid]
            try:
                attrs = encode_attributes(pa.replace(mp_next_hop=()), n.asn4)
                nh = mp_next_hop_bytes(pa.mp_next_hop) if fam != IPV4_UNICAST or (
                    pa.next_hop is None and pa.mp_next_hop) else b""
                out.append(encode_updates(fresh.prefixes, attrs, mp_next_hop=nh, max_size=n.max_message_size))
            except ValueError as exc:
                log.error("peer=%s cannot send %d routes: %s", peer.key, len(fresh), exc)
                told.update(0, None, -1, fresh.prefixes)
        if out:
            peer.link.send(b"".join(out))

    def _export(self, peer: Peer, fam: Family, src: int, attr_id: int) -> int | None:
        """The attribute id this neighbour should hold for a best route, or None."""
        n = peer.negotiated
        if src < 0 or n is None:
            return None
        if src == peer.src:
            return None
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
            if peer.config.effective_export(True) != "accept":
                return None
            if pa.local_pref is None:
                changes["local_pref"] = 100
            if local:
                changes.update(self._next_hop_self(peer, fam, pa))
        else:
            if peer.config.effective_export(False) != "accept":
                return None  # RFC 8212: nothing to an eBGP neighbour without an export policy
            if NO_EXPORT in pa.communities:
                return None
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
            if not local or (pa.next_hop is None and not pa.mp_next_hop):
                changes.update(self._next_hop_self(peer, fam, pa, force=True))
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
        peer.adj_out[fam] = self._out_table(fam)  # send everything again
        if n.enhanced_route_refresh:
            peer.link.send(encode_route_refresh(e.afi, e.safi, RouteRefreshSubtype.BEGIN))
        self._advertise(peer, fam, self.tables[fam].best_routes())
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
                "advertised": sum(len(t) for t in peer.adj_out.values()),
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
                told = peer.adj_out.get(fam)
                if told is not None:
                    arr, attrs = told.paths_of(0)
                    for prefix, aid in zip(arr.to_strings(), attrs):
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
