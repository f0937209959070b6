"""KernelSyncer: the one writer of kbgp's routes in a network namespace (issue 6).

The RIB owner calls update() with batches of best-route changes (prefixes by
next hop, withdrawn prefixes); nothing happens on the caller's stack but a
queue append.  One writer task on the event loop:

1. waits for work; when the previous write ended less than ``debounce``
   seconds ago (changes are streaming in), waits out the rest of it so that
   they coalesce; an idle writer writes at once (one loop turn lets a read's
   UPDATEs queue together), and ``max_batch`` queued prefixes skip the wait;
2. folds the queued changes into the wanted state (kbgp.kernel.routes),
   resolving each next hop once: a plain gateway, a tunnel (overlay), or no
   route at all (kube-router's injection decision, kbgp.kernel.tunnels);
3. diffs wanted against installed in C and sends up to ``max_batch`` route
   messages per batch on kbgp's own netlink socket, from a worker thread so
   the event loop keeps running while the kernel works (many messages per
   sendmsg, one ack per run, each route's error on its own);
4. reconciles when due: every ``sync_period`` seconds, soon after a link or
   address change, at once after a notification loss; a dump of the
   kernel's routes of kbgp's protocol repairs what someone else changed.

Nexthop objects (Linux 5.3+, probed at start; ``nexthop_objects``): every
gateway kbgp installs routes via directly gets one kernel nexthop object of
kbgp's protocol (ids from NH_ID_BASE + 1, gateway and the device the kernel
reaches it on), and routes name it with RTA_NH_ID.  Each reconcile re-checks
the objects (re-made after a link flap flushed them, replaced when the
gateway moved to another device); a gateway not on a link, a tunnel and
a kernel without them keep the RTA_GATEWAY/RTA_OIF form.  A route in the
kernel counts as installed in either form: a restart rewrites nothing.

A route of ours that someone deletes is noticed from the route
notifications (a second socket read by the event loop; the notifications
of kbgp's own writes are filtered out in the kernel) and written again
within one debounce.

Restarts: start() adopts the routes of kbgp's protocol and the tun-*
tunnels it finds (nothing is deleted); start() also adopts the nexthop objects of kbgp's protocol.
converged() (called by the agent after End-of-RIB or the GR deferral timer)
deletes the adopted routes no best route wants and then the tunnels and
nexthop objects no route uses.  shutdown(True) removes every route of
kbgp's protocol in its table, then its nexthop objects, tunnels and rules;
shutdown(False) leaves the kernel as it is.

Threads: the event loop owns all state; the single worker thread
("kbgp-netlink") only runs socket sends, tunnel/link requests and the
final clean-up.
"""

from __future__ import annotations

import asyncio
import collections
import errno as errno_mod
import ipaddress
import logging
import socket
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import ClassVar

from kbgp._fast.netlink import RTM_DELROUTE, scan_events
from kbgp._fast.wire import PrefixArray
from kbgp.errors import ConfigError, KernelError
from kbgp.kernel.netlink import (
    NETLINK_GENERIC,
    NH_ID_BASE,
    EventSocket,
    NetlinkChannel,
    NexthopChannel,
    NexthopObject,
    RouteSocket,
    in_netns,
)
from kbgp.kernel.routes import NH_SKIP, KernelRoutes, RouteFailure, validate_update
from kbgp.kernel.tunnels import (
    Decision,
    Links,
    OverlayConfig,
    TunnelManager,
    tunnel_name,
    warn_next_hop_mismatch,
)

__all__ = ["KernelSyncer", "OverlayConfig", "warn_next_hop_mismatch"]

log = logging.getLogger(__name__)

_RESERVED_PROTOCOLS = {0: "RTPROT_UNSPEC", 1: "RTPROT_REDIRECT", 2: "RTPROT_KERNEL",
                       3: "RTPROT_BOOT", 4: "RTPROT_STATIC"}
_RESERVED_TABLES = {0: "RT_TABLE_UNSPEC", 253: "RT_TABLE_DEFAULT", 255: "RT_TABLE_LOCAL"}
_LOGGED_PER_BATCH = 10        # failures logged one by one per batch; the rest summed up
_MIN_RECONCILE_GAP = 2.0      # seconds between event-triggered reconciles
_LINK_EVENT_DELAY = 1.0       # seconds from a link/address change to its reconcile
_NH_ID_LAST = NH_ID_BASE + 0xFFFF   # kbgp's nexthop object ids: NH_ID_BASE + 1 .. this


class KernelSyncer:
    """Writes the RIB's best routes into the kernel and keeps them there."""

    _active: ClassVar[set[tuple[str | None, int]]] = set()   # (netns, table) being written

    def __init__(self, *, protocol: int = 17, table: int = 254, sync_period: float = 60.0,
                 overlay: OverlayConfig | None = None, debounce: float = 0.005,
                 max_batch: int = 100_000, netns: str | None = None,
                 nexthop_objects: bool | None = None) -> None:
        if isinstance(protocol, bool) or not isinstance(protocol, int) or not 0 <= protocol <= 255:
            raise ConfigError(f"route protocol: {protocol!r} is not 1..255")
        if protocol in _RESERVED_PROTOCOLS:
            raise ConfigError(f"route protocol: {protocol} is the kernel's "
                              f"{_RESERVED_PROTOCOLS[protocol]}; use a protocol number of kbgp's "
                              f"own (17, kube-router's, by default)")
        if isinstance(table, bool) or not isinstance(table, int) or not 1 <= table <= 0xFFFFFFFF:
            raise ConfigError(f"route table: {table!r} is not 1..4294967295")
        if table in _RESERVED_TABLES:
            raise ConfigError(f"route table: {table} is {_RESERVED_TABLES[table]}")
        if not sync_period > 0:
            raise ConfigError(f"injected_routes_sync_period: {sync_period!r} is not a positive "
                              f"number of seconds")
        if not debounce >= 0:
            raise ConfigError(f"kernel debounce: {debounce!r} is not >= 0 seconds")
        if isinstance(max_batch, bool) or not isinstance(max_batch, int) or max_batch < 1:
            raise ConfigError(f"kernel max_batch: {max_batch!r} is not a positive integer")
        if overlay is not None and not isinstance(overlay, OverlayConfig):
            raise ConfigError(f"overlay: {type(overlay).__name__} is not an OverlayConfig")
        if nexthop_objects is not None and not isinstance(nexthop_objects, bool):
            raise ConfigError(f"kernel nexthop_objects: {nexthop_objects!r} is not True, False "
                              f"or None (use them when the kernel has them)")
        self.nexthop_objects = nexthop_objects
        self.protocol = protocol
        self.table = table
        self.sync_period = float(sync_period)
        self.overlay = overlay
        self.debounce = float(debounce)
        self._last_write_end = 0.0
        self.max_batch = max_batch
        self.netns = netns
        self.routes = KernelRoutes(protocol, table)

        self._pending: collections.deque = collections.deque()
        self._queued = 0
        self._gw_nh: dict[int, dict[str, int]] = {1: {}, 2: {}}
        self._tunnel_nh: dict[tuple[int, int], str] = {}
        self._wake = asyncio.Event()
        self._idle = asyncio.Event()
        self._reconcile_due = False
        self._reconcile_reason = ""
        self._reconcile_handle: asyncio.TimerHandle | None = None
        self._reconcile_at = 0.0
        self._last_reconcile_t = -1e9
        self._cleanup_due = False
        self._started = False
        self._closed = False
        self._loop: asyncio.AbstractEventLoop | None = None
        self._pool: ThreadPoolExecutor | None = None
        self._wsock: RouteSocket | None = None
        self._dsock: RouteSocket | None = None
        self._events: EventSocket | None = None
        self._tunnels: TunnelManager | None = None
        self._nhc: NexthopChannel | None = None          # None: routes carry their gateway
        self._nh_objs: dict[int, tuple[int, int]] = {}    # our object id -> (afi, next hop id)
        self._kernel_nh: dict[int, NexthopObject] = {}   # every object, as last read/written
        self._nh_next = NH_ID_BASE + 1
        self._nh_cleanup_due = False
        self._runner: asyncio.Task | None = None
        self._ticker: asyncio.Task | None = None
        self._last_errors: collections.deque = collections.deque(maxlen=20)
        self._last_reconcile: dict | None = None
        self._notes: dict[tuple[int, str], str] = {}
        self.counters = collections.Counter()

    # ================================================================ public
    async def start(self) -> None:
        """Open the sockets (in ``netns``), adopt the routes of our protocol
        and the tun-* tunnels already there, start the writer, the event
        reader and the periodic reconcile."""
        if self._started or self._closed:
            raise RuntimeError("KernelSyncer.start() may be called once")
        key = (self.netns, self.table)
        if key in KernelSyncer._active:
            raise RuntimeError(f"a kernel syncer already writes table {self.table} in netns "
                               f"{self.netns or '(this one)'}: one writer per namespace")
        KernelSyncer._active.add(key)
        self._loop = asyncio.get_running_loop()
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="kbgp-netlink")
        try:
            await self._in_pool(self._open)
            await self._reconcile("start")
        except BaseException:
            KernelSyncer._active.discard(key)
            await self._close_sockets()
            raise
        self._started = True
        self._loop.add_reader(self._events.fileno(), self._on_events)
        self._runner = asyncio.create_task(self._run(), name="kbgp-kernel-writer")
        self._ticker = asyncio.create_task(self._tick(), name="kbgp-kernel-reconcile")
        c = self.routes.counts()["total"]
        log.info("kernel syncer started protocol=%d table=%d netns=%s adopted_routes=%d "
                 "tunnels=%d overlay=%s nexthop_objects=%s adopted_nexthops=%d", self.protocol,
                 self.table, self.netns or "-", c["adopted"],
                 len(self._tunnels.tunnels) if self._tunnels else 0, self._overlay_text(),
                 "yes" if self._nhc is not None else "no", len(self._nh_objs))

    def update(self, afi: int, announce: dict[str, PrefixArray],
               withdraw: PrefixArray | None) -> None:
        """Queue one RIB change (never blocks): announce maps a gateway
        address to the prefixes whose best route now uses it (replacing any
        earlier next hop of theirs); withdraw holds prefixes without a best
        route now.  The arrays must not be changed afterwards."""
        n = validate_update(afi, announce, withdraw)
        if self._closed:
            raise RuntimeError("the kernel syncer is shut down")
        if n == 0:
            return
        self._pending.append((afi, announce, withdraw, n))
        self._queued += n
        self._idle.clear()
        self._wake.set()

    def converged(self) -> None:
        """The RIB has re-learned its routes (End-of-RIB from the peers or the
        GR deferral timer): delete the adopted routes nobody wants, then the
        tunnels no route uses."""
        if self.routes.converged:
            return
        n = self.routes.converge()
        self._cleanup_due = self._tunnels is not None
        self._nh_cleanup_due = self._nhc is not None
        log.info("kernel routes converged: adopted routes no best route wants are deleted "
                 "count=%d", n)
        self._idle.clear()
        self._wake.set()

    async def flush(self) -> None:
        """Wait until everything queued so far is written (tests, shutdown)."""
        if not self._started:
            return
        while self._has_work() or not self._idle.is_set():
            if self._runner is None or self._runner.done():
                if self._runner is not None and not self._runner.cancelled() \
                        and self._runner.exception() is not None:
                    raise RuntimeError("the kernel writer task failed") from self._runner.exception()
                return
            waiter = asyncio.ensure_future(self._idle.wait())
            try:
                await asyncio.wait({waiter, self._runner}, return_when=asyncio.FIRST_COMPLETED)
            finally:
                waiter.cancel()

    async def shutdown(self, remove_routes: bool) -> None:
        """Stop.  remove_routes: delete every route of our protocol in our
        table (both families), the tun-* tunnels and the table-77 rules
        (a clean shutdown without graceful restart); otherwise leave the
        kernel untouched (graceful restart, or a planned restart)."""
        if self._closed:
            return
        self._closed = True
        if self._started:
            KernelSyncer._active.discard((self.netns, self.table))
        if self._reconcile_handle is not None:
            self._reconcile_handle.cancel()
        if self._loop is not None and self._events is not None and self._started:
            self._loop.remove_reader(self._events.fileno())
        for task in (self._ticker, self._runner):
            if task is not None:
                task.cancel()
                try:
                    await task
                except asyncio.CancelledError:
                    pass
                except Exception:
                    log.exception("kernel writer task ended with an error")
        self._pending.clear()
        self._queued = 0
        if remove_routes and self._started:
            try:
                removed = await self._in_pool(self._remove_everything)
                log.info("kernel routes removed at shutdown routes=%d nexthops=%d tunnels=%d "
                         "rules=%d", *removed)
            except Exception:
                log.exception("removing kbgp's kernel routes at shutdown failed")
        elif self._started:
            log.info("kernel routes kept at shutdown installed=%d",
                     self.routes.counts()["total"]["installed"])
        await self._close_sockets()

    def status(self) -> dict:
        """Counts for `kbgp status` and metrics."""
        c = self.routes.counts()
        failed = []
        for afi, st in self.routes.states.items():
            for prefix, nh, conflict in st.failed(10):
                failed.append({"prefix": prefix, "gateway": self.routes.label(afi, nh),
                               "conflict": conflict})
        return {
            "protocol": self.protocol,
            "table": self.table,
            "netns": self.netns,
            "started": self._started,
            "converged": self.routes.converged,
            "installed": c["total"]["installed"],
            "wanted": c["total"]["wanted"],
            "not_installed_by_decision": c["total"]["skipped"],
            "adopted": c["total"]["adopted"],
            "pending": self._queued + c["total"]["pending"],
            "failed": {"count": c["total"]["failed"], "conflicts": c["total"]["conflicts"],
                       "routes": failed, "last_errors": list(self._last_errors)},
            "ipv4": c["ipv4"],
            "ipv6": c["ipv6"],
            "tunnels": sorted(self._tunnels.tunnels) if self._tunnels else [],
            "nexthop_objects": self._nhc is not None,
            "nexthops": len(self._nh_objs),
            "overlay": self._overlay_text(),
            "last_reconcile": self._last_reconcile,
            "counters": dict(self.counters),
        }

    # ================================================================ setup
    async def _in_pool(self, fn: Callable, *args):
        return await self._loop.run_in_executor(self._pool, fn, *args)

    def _open(self) -> None:
        """(netlink thread) The sockets, all made inside the namespace.  The
        event socket exists before the first dump: no change is missed."""
        self._wsock = in_netns(self.netns, RouteSocket)
        self._dsock = in_netns(self.netns, RouteSocket)
        portid = self._wsock.portid
        self._events = in_netns(self.netns, lambda: EventSocket(ignore=portid))
        if self.nexthop_objects is not False:
            nhc = in_netns(self.netns, NexthopChannel)
            err = nhc.probe(self.protocol)
            if err:
                nhc.close()
                log.log(logging.WARNING if self.nexthop_objects else logging.INFO,
                        "kernel nexthop objects unavailable errno=%d error=%r; routes carry "
                        "their gateway", err, errno_mod.errorcode.get(err, str(err)))
            else:
                self._nhc = nhc
        if self.overlay is not None:
            links = in_netns(self.netns, lambda: Links(
                NetlinkChannel(), NetlinkChannel(NETLINK_GENERIC)))
            self._tunnels = TunnelManager(links, self.overlay, self.protocol)

    async def _close_sockets(self) -> None:
        def close_all():
            for s in (self._wsock, self._dsock, self._events, self._nhc):
                if s is not None:
                    s.close()
            if self._tunnels is not None:
                self._tunnels.links.close()
        if self._pool is not None:
            try:
                await self._in_pool(close_all)
            finally:
                self._pool.shutdown(wait=False)
                self._pool = None

    def _overlay_text(self) -> str:
        o = self.overlay
        if o is None:
            return "none"
        if not o.enabled:
            return "off"
        return f"{o.type}/{o.encap}" + (f":{o.encap_port}" if o.encap == "fou" else "")

    # ================================================================ the writer
    def _has_work(self) -> bool:
        return bool(self._pending or self.routes.pending or self._reconcile_due
                    or self._cleanup_due or self._nh_cleanup_due)

    async def _run(self) -> None:
        while True:
            if not self._has_work():
                self._idle.set()
                await self._wake.wait()
                self._wake.clear()
                continue
            self._idle.clear()
            if self._pending and self._queued < self.max_batch:
                # Coalesce only under load: right after a write, wait out the
                # rest of the debounce; an idle writer goes at once.
                since = time.monotonic() - self._last_write_end
                await asyncio.sleep(max(0.0, self.debounce - since) if self.debounce > 0 else 0)
            try:
                await self._cycle()
                self._last_write_end = time.monotonic()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("kernel write cycle failed; the next reconcile repairs the state")
                self.counters["cycle_errors_total"] += 1
                self._request_reconcile(5.0, "write cycle error")
                await asyncio.sleep(1.0)

    async def _cycle(self) -> None:
        await self._apply_pending()
        await self._write_dirty()
        if self._reconcile_due:
            self._reconcile_due = False
            await self._reconcile(self._reconcile_reason or "periodic")
            await self._apply_pending()
            await self._write_dirty()
        if self._cleanup_due:
            self._cleanup_due = False
            await self._cleanup_tunnels()
        if self._nh_cleanup_due:
            self._nh_cleanup_due = False
            await self._cleanup_nexthops()

    async def _apply_pending(self) -> None:
        while self._pending:
            afi, announce, withdraw, n = self._pending.popleft()
            self._queued -= n
            by_nh: dict[int, PrefixArray] = {}
            for gw, arr in announce.items():
                if not len(arr):
                    continue
                nh = self._gw_nh[afi].get(gw)
                if nh is None:
                    nh = await self._resolve(afi, gw)
                    self._gw_nh[afi][gw] = nh
                by_nh[nh] = by_nh[nh].concat(arr) if nh in by_nh else arr
            self.routes.apply(afi, by_nh, withdraw)

    async def _write_dirty(self) -> None:
        for afi in (1, 2):
            while True:
                seq0 = self._wsock.take_seq(self.max_batch)
                batch = self.routes.build(afi, self.max_batch, seq0, RouteSocket.CHUNK,
                                          self._wsock.max_msgs)
                if batch is None:
                    break
                try:
                    errors = await self._in_pool(self._wsock.send_batch, batch)
                except OSError as e:
                    # The answers are lost: what the kernel did is unknown
                    # until a dump says it.
                    log.error("netlink route write failed routes=%d error=%s; reconciling",
                              batch.n, e)
                    self.counters["write_errors_total"] += 1
                    self._request_reconcile(1.0, "write error")
                    await asyncio.sleep(1.0)     # no tight loop on a broken socket
                    return
                failures = self.routes.complete(afi, batch, errors)
                self.counters["batches_total"] += 1
                self.counters["routes_added_total"] += batch.adds
                self.counters["routes_replaced_total"] += batch.replaces
                self.counters["routes_deleted_total"] += batch.deletes
                if failures:
                    self._report(failures)
                if self._pending:                # e.g. withdrawals queued meanwhile
                    await self._apply_pending()
        if self._tunnels is not None and self.routes.converged:
            for (afi, nh) in self._tunnel_nh:
                if self.routes.states[afi].nexthop_refs(nh) == (0, 0):
                    self._cleanup_due = True
                    break

    def _report(self, failures: list[RouteFailure]) -> None:
        by_errno = collections.Counter()
        for i, f in enumerate(failures):
            self.counters["route_errors_total"] += 1
            if f.errno == errno_mod.EEXIST:
                self.counters["foreign_conflicts_total"] += 1
            self._last_errors.append({**f.describe(), "at": round(time.time(), 3)})
            if i < _LOGGED_PER_BATCH:
                log.error("kernel route %s failed prefix=%s gateway=%s errno=%d error=%r%s",
                          f.op, f.prefix, f.gateway, f.errno, f.reason,
                          " (a route of another protocol holds this prefix; kbgp leaves it alone)"
                          if f.errno == errno_mod.EEXIST else "")
            else:
                by_errno[f.reason] += 1
        if by_errno:
            log.error("kernel route failures: %d more in this batch (%s); retried at the next "
                      "reconcile", sum(by_errno.values()),
                      ", ".join(f"{k}: {v}" for k, v in by_errno.most_common()))

    # ================================================================ next hops
    def _note(self, key: tuple[int, str], level: int, msg: str, *args) -> None:
        """Log msg once per change of what is said about key (a gateway):
        reconciles re-take every decision, the log says only what changed."""
        text = msg % args
        if self._notes.get(key) != text:
            self._notes[key] = text
            log.log(level, "%s", text)

    async def _resolve(self, afi: int, gw: str) -> int:
        """The next hop id for routes via gateway text gw (kube-router 5.2)."""
        st = self.routes.states[afi]
        key = (afi, gw)
        try:
            addr = ipaddress.ip_address(gw)
        except ValueError:
            self._note(key, logging.ERROR,
                       "kernel routes not installed: gateway=%r is not an IP address", gw)
            return NH_SKIP
        if addr.version != (4 if afi == 1 else 6):
            self._note(key, logging.ERROR,
                       "kernel routes not installed: gateway=%s is IPv%d for IPv%d prefixes",
                       addr, addr.version, 4 if afi == 1 else 6)
            return NH_SKIP
        text = str(addr)
        decision = self._tunnels.decide(text) if self._tunnels is not None else Decision.DIRECT
        if decision is Decision.TUNNEL:
            try:
                index, src = await self._in_pool(self._tunnels.ensure, text)
            except (KernelError, OSError) as e:
                self.counters["tunnel_errors_total"] += 1
                self._note(key, logging.ERROR,
                           "tunnel to next_hop=%s failed error=%s; routes via it are not "
                           "installed until it can be made (retried at each reconcile)", text, e)
                nh = self.routes.nexthop(afi, text)
                st.set_skip(nh, True)
                return nh
            name = tunnel_name(text)
            nh = self.routes.nexthop(afi, None, index, src, label=f"dev {name}")
            st.set_skip(nh, False)
            self._tunnel_nh[(afi, nh)] = name
            self._note(key, logging.DEBUG, "next_hop=%s via tunnel %s ifindex=%d", text, name,
                       index)
            return nh
        nh = self.routes.nexthop(afi, text)
        if decision is Decision.DIRECT and self._nhc is not None:
            await self._ensure_nexthop(afi, nh, text)
        if decision is Decision.SKIP:
            self._note(key, logging.INFO,
                       "kernel routes via next_hop=%s not installed: not on a subnet of the "
                       "node's addresses and the overlay is off (the underlay routes them)", text)
        else:
            self._note(key, logging.DEBUG, "next_hop=%s direct", text)
        st.set_skip(nh, decision is Decision.SKIP)
        return nh

    async def _reresolve(self) -> None:
        """Re-take the injection decision for every gateway known (the node's
        subnets may have changed, a tunnel may have failed or vanished)."""
        for afi, cache in self._gw_nh.items():
            for gw, old in list(cache.items()):
                new = await self._resolve(afi, gw)
                if new != old:
                    self.routes.states[afi].remap(old, new)
                    cache[gw] = new
                    self._tunnel_nh.pop((afi, old), None)

    async def _cleanup_tunnels(self) -> None:
        if self._tunnels is None or not self.routes.converged:
            return
        in_use = set()
        for afi, ids in self.routes.nexthops_in_use().items():
            for nh in ids:
                info = self.routes.states[afi].nexthop_info(nh)
                if info["oif"] and not info["gateway"]:
                    in_use.add(info["oif"])
        needed = {name for name, t in self._tunnels.tunnels.items() if t.index in in_use}
        removed = set(await self._in_pool(self._tunnels.cleanup, needed))
        self.counters["tunnels_removed_total"] += len(removed)
        # Forget the next hops over tunnels that are gone or unused: a later
        # route via the same gateway takes the decision (and makes the
        # tunnel) again.
        for key, name in list(self._tunnel_nh.items()):
            afi, nh = key
            if name in removed or self.routes.states[afi].nexthop_refs(nh) == (0, 0):
                del self._tunnel_nh[key]
                for gw, v in list(self._gw_nh[afi].items()):
                    if v == nh:
                        del self._gw_nh[afi][gw]

    # ================================================================ nexthop objects
    def _ours(self, o: NexthopObject) -> bool:
        """A nexthop object kbgp may change or delete: its protocol, its ids."""
        return o.protocol == self.protocol and NH_ID_BASE < o.id <= _NH_ID_LAST

    async def _read_nexthops(self, adopt: bool) -> None:
        """Read the kernel's nexthop objects; at start, adopt ours: each one
        via a gateway becomes the object of that gateway's next hop, so the
        routes using it (RTA_NH_ID) count as installed."""
        try:
            objs = await self._in_pool(self._nhc.dump)
        except (KernelError, OSError) as e:
            log.error("nexthop object dump failed error=%s", e)
            return
        self._kernel_nh = {o.id: o for o in objs}
        if not adopt:
            return
        for o in objs:
            if not self._ours(o) or o.gateway is None \
                    or o.family not in (socket.AF_INET, socket.AF_INET6):
                continue       # no gateway: not one kbgp makes; deleted once converged
            afi = 1 if o.family == socket.AF_INET else 2
            st = self.routes.states[afi]
            nh = self.routes.nexthop(afi, o.gateway)
            if st.kid_of(nh):
                continue       # a second object for one gateway: deleted once converged
            st.set_kid(nh, o.id)
            self._nh_objs[o.id] = (afi, nh)

    def _new_nh_id(self) -> int | None:
        for _ in range(_NH_ID_LAST - NH_ID_BASE):
            i = self._nh_next
            self._nh_next = i + 1 if i < _NH_ID_LAST else NH_ID_BASE + 1
            if i not in self._nh_objs and i not in self._kernel_nh:
                return i
        return None

    async def _ensure_nexthop(self, afi: int, nh: int, gw: str) -> None:
        """Give next hop nh (via gateway gw) its nexthop object, made or
        replaced when missing or when the kernel now reaches gw on another
        device.  A gateway not on a link keeps the gateway form."""
        st = self.routes.states[afi]
        if afi == 2 and ipaddress.ip_address(gw).is_link_local:
            return       # which link is part of the next hop itself: the gateway form
        kid = st.kid_of(nh)
        cur = self._kernel_nh.get(kid) if kid else None
        try:
            oif = await self._in_pool(self._nhc.gateway_oif, gw)
        except OSError:
            oif = 0
        if oif == 0:
            if kid and cur is None:
                st.set_kid(nh, 0)            # object gone and cannot be made again now
                self._nh_objs.pop(kid, None)
            self._note((afi, f"nh {gw}"), logging.INFO,
                       "next_hop=%s is not on a link now: routes via it carry the gateway "
                       "(no nexthop object)", gw)
            return
        if cur is not None and cur.oif == oif and cur.gateway == gw:
            return
        try:
            if kid:
                await self._in_pool(self._nhc.set, kid, gw, oif, self.protocol)
            else:
                # a new id: never replace an object someone made meanwhile
                for _ in range(8):
                    kid = self._new_nh_id()
                    if kid is None:
                        self._note((afi, f"nh {gw}"), logging.ERROR,
                                   "no free nexthop object id for next_hop=%s: its routes "
                                   "carry the gateway", gw)
                        return
                    try:
                        await self._in_pool(self._nhc.set, kid, gw, oif, self.protocol, False)
                        break
                    except KernelError as e:
                        if e.errno != errno_mod.EEXIST:
                            raise
                        self._kernel_nh[kid] = NexthopObject(kid, 0, 0, None, 0)  # not ours
                else:
                    return
        except (KernelError, OSError) as e:
            self.counters["nexthop_errors_total"] += 1
            self._note((afi, f"nh {gw}"), logging.ERROR,
                       "nexthop object id=%d via next_hop=%s failed error=%s; its routes carry "
                       "the gateway", kid, gw, e)
            if cur is None:
                st.set_kid(nh, 0)
                self._nh_objs.pop(kid, None)
            return
        self._kernel_nh[kid] = NexthopObject(kid, socket.AF_INET if afi == 1 else socket.AF_INET6,
                                             self.protocol, gw, oif)
        self._nh_objs[kid] = (afi, nh)
        st.set_kid(nh, kid)
        self.counters["nexthop_objects_written_total"] += 1
        self._note((afi, f"nh {gw}"), logging.DEBUG, "nexthop object id=%d next_hop=%s oif=%d",
                   kid, gw, oif)

    async def _cleanup_nexthops(self) -> None:
        """Once converged: delete our nexthop objects no route uses (adopted
        ones nobody wants, or a gateway's object after its last route left)."""
        if self._nhc is None or not self.routes.converged:
            return
        try:
            objs = await self._in_pool(self._nhc.dump)
        except (KernelError, OSError) as e:
            log.error("nexthop object dump failed error=%s", e)
            return
        self._kernel_nh = {o.id: o for o in objs}
        removed = []
        for o in objs:
            if not self._ours(o):
                continue
            owner = self._nh_objs.get(o.id)
            if owner is not None:
                afi, nh = owner
                st = self.routes.states[afi]
                if st.kid_of(nh) == o.id and st.nexthop_refs(nh) != (0, 0):
                    continue
            try:
                await self._in_pool(self._nhc.delete, o.id)
            except (KernelError, OSError) as e:
                log.error("nexthop object delete failed id=%d error=%s", o.id, e)
                continue
            removed.append(o.id)
            self._kernel_nh.pop(o.id, None)
            if owner is not None:
                del self._nh_objs[o.id]
                afi, nh = owner
                st = self.routes.states[afi]
                if st.kid_of(nh) == o.id:
                    st.set_kid(nh, 0)
                # a later route via this gateway makes its object again
                for gw, v in list(self._gw_nh[afi].items()):
                    if v == nh:
                        del self._gw_nh[afi][gw]
        if removed:
            self.counters["nexthop_objects_removed_total"] += len(removed)
            log.info("unused nexthop objects deleted count=%d ids=%s", len(removed),
                     ",".join(str(i) for i in removed[:_LOGGED_PER_BATCH]))

    # ================================================================ reconcile
    def _request_reconcile(self, delay: float, reason: str) -> None:
        if self._loop is None or self._closed:
            return
        now = self._loop.time()
        at = max(now + delay, self._last_reconcile_t + _MIN_RECONCILE_GAP)
        if self._reconcile_handle is not None:
            if self._reconcile_at <= at:
                return
            self._reconcile_handle.cancel()
        self._reconcile_at = at
        self._reconcile_handle = self._loop.call_at(at, self._reconcile_now, reason)

    def _reconcile_now(self, reason: str) -> None:
        self._reconcile_handle = None
        self._reconcile_due = True
        self._reconcile_reason = reason
        self._idle.clear()
        self._wake.set()

    async def _tick(self) -> None:
        while True:
            await asyncio.sleep(self.sync_period)
            self._reconcile_now("periodic")

    async def _reconcile(self, reason: str) -> None:
        """Read what the kernel holds of our protocol in our table and fold
        it into the installed state (routes missing or changed are written
        again by the next build; unknown ones are adopted, or deleted once
        converged).  Also re-checks tunnels and rules when an overlay is
        configured."""
        t0 = time.monotonic()
        self._last_reconcile_t = self._loop.time()
        if self._nhc is not None:
            await self._read_nexthops(adopt=reason == "start")
        if self._tunnels is not None:
            await self._in_pool(self._tunnels.refresh)
            added, removed = await self._in_pool(self._tunnels.sync_rules)
            if added or removed:
                log.info("overlay rules lookup=77 added=%s removed=%s", added, removed)
            await self._reresolve()           # re-checks the nexthop objects too
        elif self._nhc is not None:
            for afi, cache in self._gw_nh.items():
                for gw, nh in list(cache.items()):
                    if nh != NH_SKIP and not self.routes.states[afi].nexthop_info(nh)["skip"]:
                        await self._ensure_nexthop(afi, nh, gw)
        result = {}
        for afi, family in ((1, socket.AF_INET), (2, socket.AF_INET6)):
            st = self.routes.states[afi]
            st.reconcile_begin()
            done = False
            reads = 0
            try:
                for buf, k, seq in self._dsock.dump_iter(family):
                    if st.reconcile_feed(buf, k, seq):
                        done = True
                        break
                    reads += 1
                    if reads % 8 == 0:
                        await asyncio.sleep(0)
            finally:
                if not done:
                    # A dump left half read keeps the socket busy: replace it.
                    old = self._dsock
                    self._dsock = await self._in_pool(in_netns, self.netns, RouteSocket)
                    old.close()
            result["ipv4" if afi == 1 else "ipv6"] = st.reconcile_end()
        missing = sum(r["missing"] for r in result.values())
        changed = sum(r["changed"] for r in result.values())
        unknown = sum(r["unknown"] for r in result.values())
        self.counters["reconciles_total"] += 1
        if reason != "start":
            self.counters["repaired_total"] += missing + changed
        self._last_reconcile = {"at": round(time.time(), 3), "reason": reason,
                                "seconds": round(time.monotonic() - t0, 4),
                                "missing": missing, "changed": changed, "unknown": unknown}
        level = logging.INFO if (missing or changed or unknown) and reason != "start" \
            else logging.DEBUG
        log.log(level, "kernel reconcile reason=%s missing=%d changed=%d unknown=%d seconds=%.3f",
                reason, missing, changed, unknown, time.monotonic() - t0)
        if self.routes.converged and self._tunnels is not None:
            self._cleanup_due = True
        if self.routes.converged and self._nhc is not None:
            self._nh_cleanup_due = True

    # ================================================================ events
    def _on_events(self) -> None:
        """Route/link/address notifications (event loop reader)."""
        v4, v6 = self.routes.states[1], self.routes.states[2]
        repaired = changed = wanted = links = 0
        for _ in range(256):                  # bounded: let other callbacks run
            try:
                k = self._events.read()
            except OSError as e:
                if e.errno == errno_mod.ENOBUFS:
                    self.counters["event_overruns_total"] += 1
                    self._request_reconcile(0.0, "route notifications lost (ENOBUFS)")
                    continue
                log.error("route notification socket failed error=%s", e)
                self._request_reconcile(1.0, "notification socket error")
                return
            if k is None:
                break
            try:
                r, c, w, lk = scan_events(self._events.rbuf, k, self._wsock.portid, v4, v6)
            except ValueError as e:
                log.error("malformed route notification ignored error=%s", e)
                continue
            repaired += r
            changed += c
            wanted += w
            links += lk
        if repaired or changed:
            self.counters["repaired_total"] += repaired
            self.counters["foreign_changes_total"] += changed
            log.info("kernel routes changed by someone else deleted=%d written=%d; repairing",
                     repaired, changed)
            self._idle.clear()
            self._wake.set()
        if wanted:
            self._request_reconcile(0.0, "route replaced by another program")
        if links:
            self._request_reconcile(_LINK_EVENT_DELAY, "link or address change")

    # ================================================================ shutdown
    def _remove_everything(self) -> tuple[int, int, int, int]:
        """(netlink thread) Delete every route of our protocol in our table
        as the kernel lists them, then our nexthop objects, the tunnels and
        the overlay rules."""
        routes = 0
        for family in (socket.AF_INET, socket.AF_INET6):
            for _ in range(3):
                arr = self._wsock.dump_array(self.protocol, self.table, family)
                if not len(arr):
                    break
                errors = self._wsock.apply(RTM_DELROUTE, arr, protocol=self.protocol,
                                           table=self.table)
                routes += len(arr) - len(errors)
                for seq, err in list(errors.items())[:_LOGGED_PER_BATCH]:
                    if err != errno_mod.ESRCH:
                        log.error("kernel route delete failed prefix=%s errno=%d error=%r",
                                  arr.prefix(seq - self._wsock.last_seq_start), err,
                                  errno_mod.errorcode.get(err, str(err)))
        nexthops = 0
        if self._nhc is not None:
            # after the routes: deleting an object would take routes with it
            for o in self._nhc.dump():
                if o.protocol == self.protocol and NH_ID_BASE < o.id <= _NH_ID_LAST:
                    try:
                        nexthops += self._nhc.delete(o.id)
                    except KernelError as e:
                        log.error("nexthop object delete failed id=%d error=%s", o.id, e)
        tunnels = rules = 0
        if self._tunnels is not None:
            tunnels = len(self._tunnels.cleanup(set()))
            for cidr in self.overlay.pod_cidrs:
                try:
                    self._tunnels.links.delete_rule(cidr)
                    rules += 1
                except KernelError as e:
                    if e.errno not in (errno_mod.ENOENT, errno_mod.ESRCH):
                        log.error("overlay rule removal failed cidr=%s error=%s", cidr, e)
        return routes, nexthops, tunnels, rules
