"""Where Nodes, Services and EndpointSlices come from.

Two sources, one interface (``ClusterSource``): ``KubeSource`` lists and
watches the Kubernetes API through the official client's asyncio API
(``kubernetes.aio``), ``FileSource`` reads and re-reads a file of API objects
(``--cluster-file``).  Both turn raw objects into a ``Snapshot`` through
``snapshot_from_objects`` and call ``on_snapshot(snapshot)`` on the event loop
only when the snapshot differs from the last one.  Neither ever hands out an
empty snapshot because the API or the file could not be read: on any failure
the last good snapshot stays in force.

The informer is kbgp's own, a reflector per resource in the shape of
client-go's (see the Kubernetes "API concepts" page, "Efficient detection of
changes"): LIST, then WATCH from the list's resourceVersion with bookmarks;
ADDED/MODIFIED/DELETED update a store of raw objects by namespace/name;
a watch that ends is resumed from the last resourceVersion seen (an event's
or a BOOKMARK's); "410 Gone/Expired", in the stream or as the HTTP status,
means that resourceVersion is compacted away and the store is replaced by a
fresh LIST.  Events are decoded with orjson straight from the response, never
into the client's pydantic models.
"""
from __future__ import annotations

import asyncio
import hashlib
import importlib
import itertools
import logging
import os
import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

import orjson
import yaml

from kbgp.cluster.model import ReadCache, Snapshot, slim_object, snapshot_from_objects
from kbgp.errors import ClusterApiError, ConfigError

log = logging.getLogger(__name__)

OnSnapshot = Callable[[Snapshot], Any]


class ClusterSource(Protocol):
    """A producer of cluster snapshots; ``run()`` until cancelled."""

    snapshot: Snapshot | None  # the last snapshot handed out, None before the first

    async def run(self) -> None: ...


def make_source(*, on_snapshot: OnSnapshot, cluster_file: str | os.PathLike[str] | None = None,
                kubeconfig: str | os.PathLike[str] | None = None, master: str | None = None,
                **options: Any) -> ClusterSource:
    """The source the flags ask for: ``--cluster-file`` or the Kubernetes API
    (``--kubeconfig``, ``--master``, or the pod's service account).  OPTIONS go
    to the source's constructor."""
    if cluster_file is not None and cluster_file != "":
        if kubeconfig or master:
            raise ConfigError("--cluster-file reads Nodes and Services from a file and cannot be "
                              "combined with --kubeconfig or --master")
        return FileSource(cluster_file, on_snapshot, **options)
    return KubeSource(on_snapshot, kubeconfig=kubeconfig, master=master, **options)


def _deliver(on_snapshot: OnSnapshot, snapshot: Snapshot, previous: Snapshot | None, where: str) -> None:
    """Log the unreadable objects that are new since PREVIOUS, then hand SNAPSHOT over."""
    old = set(previous.errors) if previous is not None else set()
    for line in snapshot.errors:
        if line not in old:
            log.warning("object skipped: %s", line)
    try:
        on_snapshot(snapshot)
    except Exception:  # a bug in the consumer must not stop the source
        log.exception("source=%s the snapshot consumer failed", where)


# --------------------------------------------------------------------- the file


# A file changed less than this long ago may change again without its
# mtime moving (mtime has the kernel's coarse clock granularity, a few ms),
# so it is read again and compared by content until it is older: git's
# "racy timestamp" rule.
_RACY_NS = 2_000_000_000


def _decode(raw: bytes, source: str) -> list[Any]:
    """The documents of a JSON or YAML file (a YAML stream may hold several)."""
    head = raw.lstrip()[:1]
    if not head:
        raise ClusterApiError(f"{source}: the file is empty")
    json_error = None
    if head in (b"{", b"["):
        try:
            return [orjson.loads(raw)]
        except orjson.JSONDecodeError as exc:
            json_error = exc  # perhaps YAML in flow style: try that before failing
    try:
        return list(yaml.load_all(raw, Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader)))
    except yaml.MarkedYAMLError as exc:
        if json_error is not None:
            raise _json_failure(json_error, source) from None
        # Only the problem and its position: str(exc) quotes the offending
        # line, which could hold a password annotation.
        mark = exc.problem_mark or exc.context_mark
        where = f"line {mark.line + 1}, column {mark.column + 1}" if mark else "unknown position"
        raise ClusterApiError(f"{source}: invalid YAML at {where}: "
                              f"{exc.problem or exc.context or 'syntax error'}") from None
    except yaml.YAMLError as exc:
        if json_error is not None:
            raise _json_failure(json_error, source) from None
        raise ClusterApiError(f"{source}: invalid YAML: {' '.join(str(exc).split())}") from None


def _json_failure(exc: orjson.JSONDecodeError, source: str) -> ClusterApiError:
    return ClusterApiError(f"{source}: invalid JSON at line {exc.lineno}, column {exc.colno}: {exc.msg}")


def objects_of_documents(docs: list[Any], source: str) -> list[Any]:
    """Flatten documents into API objects.  A document is a ``List`` (``kind:
    List`` or ``NodeList`` & co., whose items then get the item kind when they
    lack one), a plain list of objects, or one object; empty documents of a
    YAML stream are skipped."""
    out: list[Any] = []
    for d, doc in enumerate(docs):
        if doc is None:
            continue
        if isinstance(doc, list):
            out.extend(doc)
            continue
        if not isinstance(doc, dict):
            raise ClusterApiError(f"{source}: document {d + 1} is not an object nor a list "
                                  "(expected a List, a list of objects or objects)")
        kind = doc.get("kind")
        is_list = "items" in doc and (kind is None or (isinstance(kind, str) and kind.endswith("List")))
        if not is_list:
            out.append(doc)
            continue
        items = doc.get("items")
        if items is None:
            continue
        if not isinstance(items, list):
            raise ClusterApiError(f"{source}: document {d + 1}: items must be a list")
        item_kind = kind[:-4] if isinstance(kind, str) and kind != "List" else None
        if item_kind:
            for item in items:
                if isinstance(item, dict) and "kind" not in item:
                    item["kind"] = item_kind
        out.extend(items)
    return out


def parse_cluster_file(raw: bytes, source: str) -> Snapshot:
    """The snapshot of a cluster file's bytes; ClusterApiError when the file
    as a whole cannot be read (objects that cannot be read are only listed in
    ``Snapshot.errors``)."""
    return snapshot_from_objects(objects_of_documents(_decode(raw, source), source), source)


@dataclass(frozen=True, slots=True)
class _Read:
    """One read of the cluster file, done off the event loop."""

    signature: tuple[int, int, int, int] | None  # None: the file moved while being read
    digest: bytes = b""
    snapshot: Snapshot | None = None
    error: str = ""
    racy: bool = False


def _signature(st: os.stat_result) -> tuple[int, int, int, int]:
    return (st.st_dev, st.st_ino, st.st_mtime_ns, st.st_size)


class FileSource:
    """Nodes, Services and EndpointSlices from a file, for ``--cluster-file``.

    The file holds what ``kubectl get nodes,services,endpointslices -o yaml``
    prints (a ``List``), or a YAML stream of objects, or a JSON/YAML list of
    objects.  It is polled (``stat`` every POLL_INTERVAL seconds) and read
    again when its inode, mtime or size changes, so both rewriting it in place
    and replacing it by a rename are seen.  A file that cannot be parsed (for
    instance caught half-written), is empty or is missing leaves the last good
    snapshot in force; the problem is logged once, with the parse error's line
    and column.  Writers should still write a temporary file and rename it: a
    YAML file cut at a line boundary can parse, with fewer objects.
    """

    def __init__(self, path: str | os.PathLike[str], on_snapshot: OnSnapshot,
                 poll_interval: float = 0.5) -> None:
        self.path = os.fsdecode(path)
        self.poll_interval = poll_interval
        self.snapshot: Snapshot | None = None
        self._on_snapshot = on_snapshot
        self._signature: tuple[int, int, int, int] | None = None
        self._digest = b""
        self._racy = False
        self._unreadable = False  # an "cannot read" error is logged and not yet resolved

    def load_once(self) -> Snapshot:
        """Read and parse the file now (``--check``); ClusterApiError if it cannot be."""
        try:
            with open(self.path, "rb") as fh:
                raw = fh.read()
        except OSError as exc:
            raise ClusterApiError(f"cannot read cluster file {self.path}: {exc.strerror or exc}") from None
        return parse_cluster_file(raw, self.path)

    async def run(self) -> None:
        while True:
            await self.poll()
            await asyncio.sleep(self.poll_interval)

    async def poll(self) -> None:
        """One look at the file: read it again if it changed."""
        try:
            st = os.stat(self.path)
        except OSError as exc:
            self._cannot_read(exc)
            return
        if _signature(st) == self._signature and not self._racy:
            return
        try:
            got = await asyncio.to_thread(self._read, self._digest)
        except OSError as exc:  # gone between stat and open
            self._cannot_read(exc)
            return
        if got.signature is None:  # being written right now: look again next time
            self._signature = None
            return
        self._signature = got.signature
        self._racy = got.racy
        if self._unreadable:
            self._unreadable = False
            log.info("cluster file=%s readable again", self.path)
        if got.digest == self._digest:
            return  # same bytes: nothing new (and an error in them was logged already)
        self._digest = got.digest
        if got.error:
            log.error("%s; keeping the last good snapshot", got.error)
            return
        snapshot = got.snapshot
        assert snapshot is not None
        if snapshot == self.snapshot:
            log.debug("cluster file=%s rewritten with the same content", self.path)
            return
        previous, self.snapshot = self.snapshot, snapshot
        log.info("cluster file=%s nodes=%d services=%d endpointslices=%d skipped=%d", self.path,
                 len(snapshot.nodes), len(snapshot.services), len(snapshot.endpoint_slices),
                 len(snapshot.errors))
        _deliver(self._on_snapshot, snapshot, previous, self.path)

    def _read(self, last_digest: bytes) -> _Read:
        with open(self.path, "rb") as fh:
            before = os.fstat(fh.fileno())
            raw = fh.read()
            after = os.fstat(fh.fileno())
        if _signature(before) != _signature(after):
            return _Read(signature=None)
        racy = time.time_ns() - after.st_mtime_ns < _RACY_NS
        digest = hashlib.blake2b(raw, digest_size=16).digest()
        if digest == last_digest:
            return _Read(signature=_signature(after), digest=digest, racy=racy)
        try:
            snapshot = parse_cluster_file(raw, self.path)
        except ClusterApiError as exc:
            return _Read(signature=_signature(after), digest=digest, error=str(exc), racy=racy)
        return _Read(signature=_signature(after), digest=digest, snapshot=snapshot, racy=racy)

    def _cannot_read(self, exc: OSError) -> None:
        self._signature = None
        self._digest = b""  # whatever comes back is read and compared afresh
        if not self._unreadable:
            self._unreadable = True
            log.error("cannot read cluster file %s: %s; keeping the last good snapshot, "
                      "retrying every %g s", self.path, exc.strerror or exc, self.poll_interval)


# ------------------------------------------------------------ the Kubernetes API


@dataclass(frozen=True, slots=True)
class Resource:
    """One watched collection of the API."""

    plural: str  # "nodes": also the name in logs
    kind: str  # the kind of its items, which a LIST leaves out
    path: str  # all namespaces
    namespaced: bool


RESOURCES = (
    Resource("nodes", "Node", "/api/v1/nodes", False),
    Resource("services", "Service", "/api/v1/services", True),
    Resource("endpointslices", "EndpointSlice", "/apis/discovery.k8s.io/v1/endpointslices", True),
)


class _Expired(Exception):
    """The resourceVersion asked for is gone from the server's history (410)."""


class _Dropped(Exception):
    """A watch was accepted, then ended before any event and within a second."""


class _Unavailable(Exception):
    """The request failed; retry after a back-off."""

    def __init__(self, reason: str, status: int = 0, retry_after: float = 0.0) -> None:
        super().__init__(reason)
        self.reason = reason
        self.status = status
        self.retry_after = retry_after


def _status_text(status: int, reason: str, body: bytes) -> str:
    """``HTTP 403 Forbidden: <the Status message>``, bounded."""
    text = f"HTTP {status} {reason}".rstrip()
    try:
        doc = orjson.loads(body) if body else None
    except orjson.JSONDecodeError:
        doc = None
    if isinstance(doc, dict) and isinstance(doc.get("message"), str):
        text += f": {doc['message']}"
    return text[:300]


def _retry_after(headers: Any) -> float:
    value = headers.get("Retry-After") if headers is not None else None
    try:
        return max(0.0, float(value)) if value else 0.0
    except ValueError:
        return 0.0


class _Reflector:
    """LIST then WATCH one resource, keeping its raw objects by namespace/name."""

    def __init__(self, source: KubeSource, resource: Resource) -> None:
        self.source = source
        self.resource = resource
        self.store: dict[str, dict] = {}
        self.resource_version: str | None = None
        self.listed = False
        self.doing = "LIST"  # or "WATCH": the request under way, for error messages
        self.failures = 0  # failed requests in a row: the back-off
        self.expiries = 0  # 410s in a row without an event in between

    def _key(self, obj: Any) -> str | None:
        meta = obj.get("metadata") if isinstance(obj, dict) else None
        name = meta.get("name") if isinstance(meta, dict) else None
        if not isinstance(name, str) or not name:
            return None
        if not self.resource.namespaced:
            return name
        ns = meta.get("namespace")  # type: ignore[union-attr]
        return f"{ns if isinstance(ns, str) and ns else 'default'}/{name}"

    async def run(self) -> None:
        src = self.source
        drops = 0
        need_list = True
        while True:
            try:
                if need_list:
                    await self._list()
                    need_list = False
                await self._watch()
                drops = 0
            except _Dropped as exc:
                # Usually the first sign of an outage: the reconnection that
                # follows says what is wrong.  A server that keeps accepting
                # and dropping watches is an outage of its own.
                drops += 1
                if drops >= 3:
                    src.api_failed(self.resource, str(exc), 0)
                await asyncio.sleep(src.backoff(drops))
            except _Expired as exc:
                need_list = True
                self.expiries += 1
                log.info("resource=%s resource_version=%s expired (%s): listing again",
                         self.resource.plural, self.resource_version, exc)
                if self.expiries > 1:  # expired again before any event: do not spin on LIST
                    await asyncio.sleep(src.backoff(self.expiries - 1))
            except _Unavailable as exc:
                self.failures += 1
                src.api_failed(self.resource, exc.reason, exc.status)
                await asyncio.sleep(max(src.backoff(self.failures), min(exc.retry_after, src.backoff_cap)))
            except src.transient_errors as exc:
                self.failures += 1
                src.api_failed(self.resource, f"{self.doing} {self.resource.path}: {_describe_exception(exc)}", 0)
                await asyncio.sleep(src.backoff(self.failures))
            except Exception:
                # A bug: say so with the traceback, then start this resource
                # over from a LIST rather than stop watching the cluster.
                self.failures += 1
                log.exception("resource=%s informer failed: listing again", self.resource.plural)
                need_list = True
                await asyncio.sleep(src.backoff(self.failures))

    async def _list(self) -> None:
        """Replace the store by a full LIST (in pages; all pages share the
        first page's resourceVersion)."""
        src = self.source
        self.doing = "LIST"
        items: dict[str, dict] = {}
        token: str | None = None
        version: str | None = None
        while True:
            query = [("limit", str(src.page_size))]
            if token is not None:
                query.append(("continue", token))
            resp = await src.get(self.resource.path, query, src.request_timeout)
            try:
                body = await resp.read()
                status, reason, headers = resp.status, resp.reason or "", resp.headers
            finally:
                resp.release()
            if status == 410 and token is not None:
                # The continue token expired mid-list: start over from a fresh list.
                items, token, version = {}, None, None
                continue
            if status != 200:
                raise _Unavailable(f"LIST {self.resource.path}: {_status_text(status, reason, body)}",
                                   status, _retry_after(headers))
            try:
                doc = orjson.loads(body)
            except orjson.JSONDecodeError as exc:
                raise _Unavailable(f"LIST {self.resource.path}: response is not JSON: {exc.msg}") from None
            if not isinstance(doc, dict):
                raise _Unavailable(f"LIST {self.resource.path}: response is not an object")
            meta = doc.get("metadata") if isinstance(doc.get("metadata"), dict) else {}
            if version is None:
                version = meta.get("resourceVersion")
            for obj in doc.get("items") or ():
                key = self._key(obj)
                if key is None:
                    log.warning("resource=%s LIST item without metadata.name ignored", self.resource.plural)
                    continue
                obj["kind"] = self.resource.kind
                items[key] = slim_object(obj)
            token = meta.get("continue") or None
            if token is None:
                break
        if not isinstance(version, str) or not version:
            raise _Unavailable(f"LIST {self.resource.path}: no metadata.resourceVersion in the response")
        first = not self.listed
        self.store = items
        self.resource_version = version
        self.listed = True
        self.failures = 0
        src.api_ok(self.resource)
        log.log(logging.INFO if first else logging.DEBUG, "resource=%s listed objects=%d resource_version=%s",
                self.resource.plural, len(items), version)
        src.changed()

    async def _watch(self) -> None:
        """One WATCH from ``resource_version``.  Returns when an established
        stream ends (server timeout or a dropped connection: the caller
        resumes at once); raises _Expired, or _Unavailable when the stream
        could not be established."""
        src = self.source
        self.doing = "WATCH"
        loop = asyncio.get_running_loop()
        # Spread the server-side timeouts as client-go does, so the watches
        # of a thousand agents do not all reconnect at the same moment.
        timeout = int(src.watch_timeout * (1.0 + random.random()))
        timeout = max(1, timeout)
        query = [("watch", "true"), ("resourceVersion", self.resource_version or ""),
                 ("allowWatchBookmarks", "true"), ("timeoutSeconds", str(timeout))]
        resp = await src.get(self.resource.path, query, timeout + src.request_timeout)
        try:
            if resp.status != 200:
                body = await resp.read()
                text = _status_text(resp.status, resp.reason or "", body)
                if resp.status == 410:
                    raise _Expired(text)
                raise _Unavailable(f"WATCH {self.resource.path}: {text}", resp.status,
                                   _retry_after(resp.headers))
            self.failures = 0
            src.api_ok(self.resource)
            started = loop.time()
            events = 0
            try:
                async for line in resp.content:
                    if line.strip():
                        self._apply(line)
                        events += 1
            except src.transient_errors as exc:
                if events == 0 and loop.time() - started < 1.0:
                    raise _Dropped(f"WATCH {self.resource.path}: dropped at once: "
                                   f"{_describe_exception(exc)}") from None
                log.debug("resource=%s watch broken (%s): resuming from resource_version=%s",
                          self.resource.plural, _describe_exception(exc), self.resource_version)
                return
            if events == 0 and loop.time() - started < 1.0:
                raise _Dropped(f"WATCH {self.resource.path}: the server closed the stream at once")
            log.debug("resource=%s watch ended: resuming from resource_version=%s",
                      self.resource.plural, self.resource_version)
        finally:
            resp.close()

    def _apply(self, line: bytes) -> None:
        try:
            event = orjson.loads(line)
        except orjson.JSONDecodeError as exc:
            raise _Unavailable(f"WATCH {self.resource.path}: event is not JSON: {exc.msg}") from None
        kind = event.get("type") if isinstance(event, dict) else None
        obj = event.get("object") if isinstance(event, dict) else None
        if not isinstance(obj, dict):
            raise _Unavailable(f"WATCH {self.resource.path}: event without an object")
        if kind == "ERROR":
            code = obj.get("code")
            text = f"{obj.get('reason', '')}: {obj.get('message', '')}"[:300]
            if code == 410:
                raise _Expired(text)
            raise _Unavailable(f"WATCH {self.resource.path}: error event {code} {text}",
                               code if isinstance(code, int) else 0)
        meta = obj.get("metadata")
        version = meta.get("resourceVersion") if isinstance(meta, dict) else None
        self.expiries = 0
        if kind == "BOOKMARK":
            if isinstance(version, str) and version:
                self.resource_version = version
            return
        key = self._key(obj)
        if key is None or kind not in ("ADDED", "MODIFIED", "DELETED"):
            log.debug("resource=%s watch event type=%s ignored", self.resource.plural, kind)
            return
        if kind == "DELETED":
            self.store.pop(key, None)
        else:
            obj["kind"] = self.resource.kind
            self.store[key] = slim_object(obj)
        if isinstance(version, str) and version:
            self.resource_version = version
        self.source.changed()


def _describe_exception(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


class KubeSource:
    """Nodes, Services and EndpointSlices from the Kubernetes API.

    Configuration as kube-router's ``--kubeconfig``/``--master``: with
    neither, the pod's service account (when KUBERNETES_SERVICE_HOST is set);
    else the kubeconfig file; ``master`` overrides the server URL.  The first
    snapshot comes once all three resources have been listed; later ones at
    most every DEBOUNCE seconds while events arrive, and only when different.
    """

    def __init__(self, on_snapshot: OnSnapshot, kubeconfig: str | os.PathLike[str] | None = None,
                 master: str | None = None, *, watch_timeout: float = 300.0,
                 request_timeout: float = 60.0, page_size: int = 500, debounce: float = 0.05,
                 backoff_initial: float = 0.5, backoff_cap: float = 30.0) -> None:
        if master is not None and master != "" and not master.startswith(("http://", "https://")):
            raise ConfigError(f"--master {master!r}: expected an http:// or https:// URL")
        self.kubeconfig = os.fsdecode(kubeconfig) if kubeconfig else None
        self.master = master.rstrip("/") if master else None
        self.watch_timeout = watch_timeout
        self.request_timeout = request_timeout
        self.page_size = page_size
        self.debounce = debounce
        self.backoff_initial = backoff_initial
        self.backoff_cap = backoff_cap
        self.snapshot: Snapshot | None = None
        self.server = ""  # the API server's URL, once configured
        # What a broken connection raises; aiohttp's errors join once it is imported.
        self.transient_errors: tuple[type[BaseException], ...] = (OSError, asyncio.TimeoutError)
        self._on_snapshot = on_snapshot
        self._reflectors: list[_Reflector] = []
        self._api: Any = None  # kubernetes.aio ApiClient while running
        self._cache = ReadCache()
        self._flush_handle: asyncio.TimerHandle | None = None
        self._failing: dict[str, str] = {}  # resource -> reason, while requests fail
        self._outage_since: float | None = None

    # -- configuration

    async def api_client(self) -> Any:
        """A ``kubernetes.aio`` ApiClient for the configured server (the caller closes it)."""
        # Importing the client takes about a second of CPU: not on the loop,
        # where BGP sessions keep their timers.
        await asyncio.to_thread(importlib.import_module, "kubernetes.aio.config")
        from kubernetes.aio import client, config

        cfg = client.Configuration()
        if self.kubeconfig:
            if not os.path.exists(self.kubeconfig):
                raise ClusterApiError(f"--kubeconfig {self.kubeconfig}: no such file")
            try:
                await config.load_kube_config(config_file=self.kubeconfig, client_configuration=cfg,
                                              persist_config=False)
            except yaml.YAMLError as exc:
                mark = getattr(exc, "problem_mark", None)
                where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
                raise ClusterApiError(f"--kubeconfig {self.kubeconfig}: invalid YAML{where}") from None
            except (config.ConfigException, OSError, ValueError, TypeError, KeyError) as exc:
                raise ClusterApiError(f"--kubeconfig {self.kubeconfig}: {_describe_exception(exc)}") from None
        elif not self.master:
            if not os.environ.get("KUBERNETES_SERVICE_HOST"):
                raise ClusterApiError("no Kubernetes API to read: give --kubeconfig or --master, run in a pod "
                                      "(KUBERNETES_SERVICE_HOST is not set), or use --cluster-file")
            try:
                config.load_incluster_config(client_configuration=cfg)
            except config.ConfigException as exc:
                raise ClusterApiError(f"in-cluster configuration: {exc}") from None
        if self.master:
            cfg.host = self.master
        self.server = cfg.host
        return await asyncio.to_thread(client.ApiClient, cfg)  # loads the CA bundle: off the loop too

    # -- running

    async def run(self) -> None:
        self._api = await self.api_client()
        import aiohttp  # imported with the client

        self.transient_errors = (OSError, asyncio.TimeoutError, aiohttp.ClientError)
        try:
            self._reflectors = [_Reflector(self, r) for r in RESOURCES]
            log.info("watching server=%s resources=%s", self.server,
                     ",".join(r.plural for r in RESOURCES))
            async with asyncio.TaskGroup() as tg:
                for reflector in self._reflectors:
                    tg.create_task(reflector.run(), name=f"kbgp-informer-{reflector.resource.plural}")
        finally:
            if self._flush_handle is not None:
                self._flush_handle.cancel()
                self._flush_handle = None
            api, self._api = self._api, None
            await api.close()

    async def get(self, path: str, query: list[tuple[str, str]], timeout: float) -> Any:
        """GET PATH?QUERY through the client (its authentication, TLS and
        connection pool); the aiohttp response, unread, whatever its status.
        The generated CoreV1Api is not used: importing it alone takes seconds,
        and its pydantic models are not wanted here."""
        params = await self._api.param_serialize(
            method="GET", resource_path=path, query_params=query,
            header_params={"Accept": "application/json"}, auth_settings=["BearerToken"])
        rest = await self._api.call_api(*params, _request_timeout=float(timeout), _preload_content=False)
        return rest.response

    def backoff(self, failures: int) -> float:
        """Seconds to wait after FAILURES failures in a row: exponential with
        "equal jitter" (half fixed, half random), capped."""
        ceiling = min(self.backoff_cap, self.backoff_initial * (2 ** min(failures - 1, 30)))
        return ceiling / 2 + random.uniform(0, ceiling / 2)

    # -- called by the reflectors

    def api_failed(self, resource: Resource, reason: str, status: int) -> None:
        first = not self._failing and self._outage_since is None
        self._failing[resource.plural] = reason
        if first:
            self._outage_since = time.monotonic()
            level = logging.ERROR if status in (401, 403) else logging.WARNING
            log.log(level, "Kubernetes API unavailable: server=%s resource=%s reason=%s; "
                    "keeping the last snapshot and retrying", self.server, resource.plural, reason)
        else:
            log.debug("resource=%s still failing: %s", resource.plural, reason)

    def api_ok(self, resource: Resource) -> None:
        self._failing.pop(resource.plural, None)
        if self._outage_since is not None and not self._failing:
            log.info("Kubernetes API available again: server=%s after=%.1fs", self.server,
                     time.monotonic() - self._outage_since)
            self._outage_since = None

    def changed(self) -> None:
        """A store changed: build a snapshot after DEBOUNCE seconds (events
        arriving meanwhile join the same snapshot)."""
        if self._flush_handle is None:
            self._flush_handle = asyncio.get_running_loop().call_later(self.debounce, self._flush)

    def _flush(self) -> None:
        self._flush_handle = None
        if not self._reflectors or not all(r.listed for r in self._reflectors):
            return  # no snapshot before every resource has been listed once
        objects = itertools.chain.from_iterable(r.store.values() for r in self._reflectors)
        snapshot = snapshot_from_objects(objects, self.server or "the API server", self._cache)
        if snapshot == self.snapshot:
            return
        previous, self.snapshot = self.snapshot, snapshot
        log.debug("snapshot nodes=%d services=%d endpointslices=%d skipped=%d", len(snapshot.nodes),
                  len(snapshot.services), len(snapshot.endpoint_slices), len(snapshot.errors))
        _deliver(self._on_snapshot, snapshot, previous, self.server)
