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
from kbgp._fast.wire import PrefixArray
from kbgp.bgp.capabilities import LocalSettings, Negotiated
from kbgp.bgp.constants import WELL_KNOWN_COMMUNITY_VALUES, CeaseSubcode, RouteRefreshSubtype
from kbgp.bgp.messages import IPV4_UNICAST, IPV6_UNICAST, Family, family_name
from kbgp.bgp.session import Down, Received, RefreshRequested, Session, Up
from kbgp.config import NeighborConfig, OriginateConfig, SpeakerConfig
from kbgp.io.sockopts import tcp_md5_counters
from kbgp.io.tcp import Listener, PeerLink, normalise_address
from kbgp.rib.table import LOCAL, AdjOut, Best, Rib, Source

log = logging.getLogger(__name__)

NO_EXPORT = WELL_KNOWN_COMMUNITY_VALUES["no-export"]
NO_ADVERTISE = WELL_KNOWN_COMMUNITY_VALUES["no-advertise"]
FAMILIES = (IPV4_UNICAST, IPV6_UNICAST)
MAX_PREFIX_RESTART = 60.0


@dataclass(slots=True)
class Peer:
    """One neighbour: configuration, its link, and what it sent and was told."""

    config: NeighborConfig
    session: Session
    link: PeerLink | None = None
    adj_out: AdjOut = field(default_factory=AdjOut)
    received: dict[Family, set[int]] = field(default_factory=dict)
    negotiated: Negotiated | None = None
    source: Source | None = None
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
        self.rib = Rib(self.table)
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
        peer = Peer(n, session)
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

    def _route_inbound(self, source: str) -> PeerLink | None:
        peer = self.peers.get(source)
        return peer.link if peer else None

    # ----------------------------------------------------------- originate

    def _originate(self) -> None:
        for o in self.config.originate:
            fam = o.family
            net = ipaddress.ip_network(o.prefix)
            key = PrefixArray.from_strings([str(net)]).keys()[0]
            aid = self.table.intern(self._origin_attrs(o))
            self.rib.announce(LOCAL.key, fam, [key], aid)
            self.rib.decide(fam, [key])

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
        peer.source = Source(peer.key, asn=n.peer_asn, router_id=n.peer_router_id, ibgp=n.ibgp,
                             rr_client=peer.config.route_reflector_client)
        self.rib.set_source(peer.source)
        log.info("peer=%s state=established asn=%d families=%s", peer.key, n.peer_asn,
                 ",".join(family_name(*f) for f in sorted(n.families)))
        if peer.gr_timer is not None:
            peer.gr_timer.cancel()
            peer.gr_timer = None
        # RFC 4724 4.2: families the peer no longer preserves lose their stale routes now;
        # the others wait for End-of-RIB (bounded by the stale timer).
        peer.eor_wait = set()
        for fam in list(self.rib.stale.get(peer.key, {})):
            if fam in n.families and n.peer_forwarding_preserved(fam):
                peer.eor_wait.add(fam)
            else:
                self._sweep(peer, fam)
        if peer.eor_wait:
            loop = asyncio.get_running_loop()
            peer.gr_timer = loop.call_later(self.config.graceful_restart.stale_time,
                                            lambda: self._sweep_all(peer))
        peer.adj_out = AdjOut()
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
        peer.adj_out = AdjOut()
        if e.graceful and n is not None and n.peer_graceful_restart is not None and self.rib.adj_in.get(peer.key):
            count = self.rib.mark_stale(peer.key)
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
        peer.received = {}
        for fam, keys in self.rib.drop_source(peer.key).items():
            self._changed(fam, keys)

    def _undefer(self, peer: Peer, fam: Family | None) -> None:
        """Send what a restarting speaker held back, for one family or all."""
        if peer.negotiated is None:
            return
        for f in sorted(peer.defer if fam is None else peer.defer & {fam}):
            peer.defer.discard(f)
            self._send_full(peer, f)

    def _sweep(self, peer: Peer, fam: Family) -> None:
        for f, keys in self.rib.sweep_stale(peer.key, fam).items():
            for k in keys:
                peer.received.get(f, set()).discard(k)
            self._changed(f, keys)

    def _sweep_all(self, peer: Peer) -> None:
        peer.gr_timer = None
        for fam in list(self.rib.stale.get(peer.key, {})):
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
        withdrawn: dict[Family, list[int]] = {}
        if len(u.withdrawn):
            withdrawn[IPV4_UNICAST] = u.withdrawn.keys()
        if u.mp_withdrawn is not None and len(u.mp_withdrawn):
            withdrawn.setdefault((u.mp_withdrawn.afi, 1), []).extend(u.mp_withdrawn.keys())
        announced: dict[Family, list[int]] = {}
        if len(u.nlri):
            announced[IPV4_UNICAST] = u.nlri.keys()
        if u.mp_nlri is not None and len(u.mp_nlri):
            announced.setdefault((u.mp_nlri.afi, 1), []).extend(u.mp_nlri.keys())
        if u.treat_as_withdraw:
            for fam, keys in announced.items():
                withdrawn.setdefault(fam, []).extend(keys)
            announced = {}
            log.warning("peer=%s UPDATE treated as withdraw: %s", peer.key, u.error[4] if u.error else "")
        for fam, keys in withdrawn.items():
            got = peer.received.get(fam)
            if got:
                got.difference_update(keys)
            self._changed(fam, self.rib.withdraw(peer.key, fam, keys))
        if not announced:
            return
        accept = peer.config.effective_import(n.ibgp) == "accept" and self._loop_free(peer, u.attrs)
        for fam, keys in announced.items():
            peer.received.setdefault(fam, set()).update(keys)
            if accept:
                self._changed(fam, self.rib.announce(peer.key, fam, keys, u.attr_id))
                if self._over_limit(peer, fam):
                    return
            else:
                # Rejected (policy or a loop): an earlier path from this peer must not linger.
                self._changed(fam, self.rib.withdraw(peer.key, fam, keys))

    def _over_limit(self, peer: Peer, fam: Family) -> bool:
        """max-prefixes (counted after import policy): Cease 6/1 with AFI, SAFI and
        the limit (RFC 4486 4), routes dropped, the session stays down for a minute."""
        limit = peer.config.max_prefixes
        if not limit or self.rib.received(peer.key, fam) <= limit or peer.link is None:
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

    def _changed(self, fam: Family, keys: list[int]) -> None:
        if not keys:
            return
        changes = self.rib.decide(fam, keys)
        if not changes:
            return
        for peer in self.peers.values():
            n = peer.negotiated
            if n is None or fam not in n.families or fam not in peer.eor_sent:
                continue
            desired = {k: self._export(peer, fam, new) for k, _old, new in changes}
            self._send_diff(peer, fam, desired)

    def _send_full(self, peer: Peer, fam: Family) -> None:
        desired = {k: self._export(peer, fam, best) for k, best in self.rib.loc.get(fam, {}).items()}
        self._send_diff(peer, fam, desired)
        if peer.link is not None:
            peer.link.send(encode_end_of_rib(*fam))
        peer.eor_sent.add(fam)

    def _send_diff(self, peer: Peer, fam: Family, desired: dict[int, int | None]) -> None:
        n = peer.negotiated
        if n is None or peer.link is None:
            return
        announce, withdraw = peer.adj_out.diff(fam, desired)
        out = []
        if withdraw:
            out.append(encode_updates(withdraw=PrefixArray.from_keys(fam[0], withdraw),
                                      max_size=n.max_message_size))
        for aid, keys in announce.items():
            pa = self.table[aid]
            try:
                attrs = encode_attributes(pa.replace(mp_next_hop=()), n.asn4)
                nh = mp_next_hop_bytes(pa.mp_next_hop) if fam != IPV4_UNICAST or (
                    pa.next_hop is None and pa.mp_next_hop) else b""
                out.append(encode_updates(PrefixArray.from_keys(fam[0], keys), attrs, mp_next_hop=nh,
                                          max_size=n.max_message_size))
            except ValueError as exc:
                log.error("peer=%s cannot send %d routes: %s", peer.key, len(keys), exc)
                for k in keys:
                    peer.adj_out.routes[fam].pop(k, None)
        if out:
            peer.link.send(b"".join(out))

    def _export(self, peer: Peer, fam: Family, best: Best | None) -> int | None:
        """The attribute id this neighbour should hold for a best route, or None."""
        n = peer.negotiated
        if best is None or n is None:
            return None
        src = best.source
        if src.key == peer.key:
            return None
        pa: PathAttributes = self.table[best.attr_id]
        if NO_ADVERTISE in pa.communities:
            return None
        changes: dict[str, Any] = {}
        if n.ibgp:
            if src.ibgp and not src.local:
                # RFC 4456 8: reflect client routes to everyone, non-client routes to clients.
                if not (src.rr_client or peer.config.route_reflector_client):
                    return None
                changes["originator_id"] = pa.originator_id or src.router_id
                changes["cluster_list"] = (self.cluster_id,) + tuple(pa.cluster_list)
            if peer.config.effective_export(True) != "accept":
                return None
            if pa.local_pref is None:
                changes["local_pref"] = 100
            if src.local:
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
            if not src.local:
                changes["med"] = None  # MED is not passed on to another AS (RFC 4271 5.1.4)
            if not src.local or (pa.next_hop is None and not pa.mp_next_hop):
                changes.update(self._next_hop_self(peer, fam, pa, force=True))
        if not changes:
            return best.attr_id
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
        if e.subtype == RouteRefreshSubtype.BEGIN:
            # RFC 7313 4: the peer re-advertises this family; what it does not repeat goes at EoRR.
            self.rib.mark_stale(peer.key, fam)
            return
        if e.subtype == RouteRefreshSubtype.END:
            self._sweep(peer, fam)
            return
        n = peer.negotiated
        if n is None or fam not in n.families:
            return
        peer.adj_out.routes.pop(fam, None)
        if n.enhanced_route_refresh and peer.link is not None:
            from kbgp._fast.wire import encode_route_refresh
            peer.link.send(encode_route_refresh(e.afi, e.safi, RouteRefreshSubtype.BEGIN))
        desired = {k: self._export(peer, fam, best) for k, best in self.rib.loc.get(fam, {}).items()}
        self._send_diff(peer, fam, desired)
        if n.enhanced_route_refresh and peer.link is not None:
            from kbgp._fast.wire import encode_route_refresh
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
            if (peer.config.password and n is None and not last_error
                    and sum(tcp_md5_counters().values()) > peer.md5_failures_at_start):
                last_error = "no session yet; TCP MD5 authentication is the likely cause (a password is set)"
            out.append({
                "address": peer.key,
                "asn": n.peer_asn if n else peer.config.asn,
                "state": s.state.value,
                "uptime": round(s.uptime(now), 1),
                "last_error": last_error,
                "received": sum(len(v) for v in peer.received.values()),
                "accepted": sum(self.rib.received(peer.key, f) for f in FAMILIES),
                "advertised": peer.adj_out.count(),
                "capabilities": n.describe() if n else {},
                "router_id": n.peer_router_id if n else None,
                "description": peer.config.description,
                "stale": sum(len(v) for v in self.rib.stale.get(peer.key, {}).values()),
                "last_notification": _last_notification(s),
                "messages": {"in": s.counters.messages_in, "out": s.counters.messages_out},
                "malformed": dict(s.counters.malformed),
            })
        return out

    def rib_entries(self, family: Family | None = None) -> list[dict]:
        out = []
        for fam in FAMILIES:
            if family is not None and fam != family:
                continue
            candidates: dict[int, list[tuple[Source, int]]] = {}
            for skey, fams in self.rib.adj_in.items():
                for k, aid in fams.get(fam, {}).items():
                    candidates.setdefault(k, []).append((self.rib.sources[skey], aid))
            loc = self.rib.loc.get(fam, {})
            for k in sorted(candidates):
                prefix = PrefixArray.from_keys(fam[0], [k]).prefix(0)
                best = loc.get(k)
                for src, aid in candidates[k]:
                    pa: PathAttributes = self.table[aid]
                    nh = pa.next_hop or (pa.mp_next_hop[0] if pa.mp_next_hop else None)
                    out.append({
                        "prefix": prefix,
                        "family": family_name(*fam),
                        "next_hop": nh,
                        "as_path": pa.as_path_flat(),
                        "origin": ("igp", "egp", "incomplete")[pa.origin] if pa.origin >= 0 else None,
                        "local_pref": pa.local_pref,
                        "med": pa.med,
                        "communities": pa.community_strings(),
                        "large_communities": [f"{a}:{b}:{c}" for a, b, c in pa.large_communities],
                        "originator_id": pa.originator_id,
                        "cluster_list": list(pa.cluster_list),
                        "neighbor": None if src.local else src.key,
                        "best": best is not None and best.source.key == src.key and best.attr_id == aid,
                        "stale": self.rib.is_stale(src.key, fam, k),
                    })
        return out


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
