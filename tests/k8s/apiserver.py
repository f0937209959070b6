"""A small Kubernetes API server over real HTTP, for tests.

It serves Nodes, Services and EndpointSlices the way kube-apiserver does as
far as a list/watch client can tell (Kubernetes "API concepts"; KEP-956 for
bookmarks):

- ``GET /api/v1/nodes`` (and ``/api/v1/services``, ``/api/v1/namespaces/NS/services``,
  ``/apis/discovery.k8s.io/v1/endpointslices``, ...) lists: a ``NodeList``
  with ``metadata.resourceVersion``, items without kind/apiVersion, pages
  with ``limit``/``continue`` (an expired continue token is an HTTP 410);
- ``?watch=true&resourceVersion=N`` streams chunked JSON lines, the events
  strictly after N in resourceVersion order; no (or "0") resourceVersion
  starts with an ADDED per current object; ``allowWatchBookmarks=true``
  adds a BOOKMARK every ``bookmark_interval`` seconds; ``timeoutSeconds``
  ends the stream cleanly;
- a watch from a resourceVersion older than the compacted history gets
  ``{"type":"ERROR","object":{"kind":"Status","code":410,"reason":"Expired"}}``
  in a 200 stream (``expired="event"``) or a plain HTTP 410 Status
  (``expired="http"``);
- GET/POST/PUT/DELETE of single objects, PATCH with
  ``application/merge-patch+json`` (RFC 7386) and
  ``application/strategic-merge-patch+json`` (applied as a merge patch, which
  is the same for maps such as labels and annotations; list merge keys and
  ``$patch`` directives are refused with 422), each emitting its watch event;
- ``/version``, ``/api``, ``/apis``, ``/api/v1``, ``/apis/discovery.k8s.io/v1``.

One resourceVersion counter for all resources, as etcd's revision.  The
server runs on its own thread and event loop (uvloop), on 127.0.0.1 and an
ephemeral port; every control method (``create``, ``patch``, ``delete``,
``compact``, ``outage``, ``recover``, ``drop_watches``, ``fail_next``) is
synchronous and thread-safe, so a test drives it from its own loop.
"""
from __future__ import annotations

import asyncio
import base64
import copy
import dataclasses
import inspect
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Self

import orjson
import uvloop
from aiohttp import web


@dataclass(frozen=True)
class Kind:
    plural: str
    kind: str
    group_version: str  # "v1" or "discovery.k8s.io/v1"
    namespaced: bool

    @property
    def prefix(self) -> str:
        return "/api/v1" if self.group_version == "v1" else f"/apis/{self.group_version}"


KINDS = {
    "nodes": Kind("nodes", "Node", "v1", False),
    "services": Kind("services", "Service", "v1", True),
    "endpointslices": Kind("endpointslices", "EndpointSlice", "discovery.k8s.io/v1", True),
}
BY_KIND = {k.kind: k for k in KINDS.values()}


@dataclass(frozen=True)
class Request:
    """One request as the server saw it (for assertions)."""

    method: str
    path: str
    query: dict[str, str]
    status: int = 0  # filled when the answer is known
    at: float = 0.0  # time.monotonic() on arrival

    @property
    def is_watch(self) -> bool:
        return self.query.get("watch") in ("true", "1", "True")


@dataclass(eq=False)
class _Watcher:
    kind: Kind
    namespace: str | None
    queue: asyncio.Queue = field(default_factory=asyncio.Queue)
    transport: Any = None


def status_body(code: int, reason: str, message: str) -> dict:
    return {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
            "message": message, "reason": reason, "code": code}


def merge_patch(target: Any, patch: Any) -> Any:
    """RFC 7386 section 2."""
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    out = dict(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            out.pop(key, None)
        else:
            out[key] = merge_patch(out.get(key), value)
    return out


def _has_directive(patch: Any) -> bool:
    if isinstance(patch, dict):
        return any(isinstance(k, str) and k.startswith("$") for k in patch) or any(
            _has_directive(v) for v in patch.values())
    if isinstance(patch, list):
        return any(_has_directive(v) for v in patch)
    return False


_INDEX = web.RequestKey("fake_index", int)


class ApiError(Exception):
    def __init__(self, code: int, reason: str, message: str) -> None:
        super().__init__(message)
        self.code, self.reason, self.message = code, reason, message


class FakeApiServer:
    """See the module docstring.  ``token``: when set, requests need
    ``Authorization: Bearer TOKEN`` (else 401).  ``opaque_versions``: the
    resourceVersions look like ``r-00002a`` instead of ``42``, to catch a
    client that does arithmetic on them."""

    def __init__(self, *, bookmark_interval: float | None = 0.2, expired: str = "event",
                 token: str | None = "kbgp-test-token", opaque_versions: bool = False,
                 split_events: bool = False) -> None:
        self.bookmark_interval = bookmark_interval
        self.expired = expired
        self.token = token
        self.opaque_versions = opaque_versions
        self.split_events = split_events  # write each event line in two chunks
        self.host = "127.0.0.1"
        self.port = 0
        self.requests: list[Request] = []
        self.kubeconfig: str | None = None  # set by the fixture: a kubeconfig file for this server
        self._objects: dict[str, dict[tuple[str, str], dict]] = {p: {} for p in KINDS}
        self._history: dict[str, list[tuple[int, bytes]]] = {p: [] for p in KINDS}
        self._rv = 1
        self._compacted = 0  # watches from a resourceVersion below this get 410
        self._continues: dict[str, tuple[int, list[dict]]] = {}
        self._watchers: set[_Watcher] = set()
        self._transports: set[Any] = set()
        self._down = False
        self._refuse = True
        self._failures: list[tuple[int, int, str, Callable[[Request], bool]]] = []
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._runner: web.AppRunner | None = None
        self._site: web.TCPSite | None = None

    # ------------------------------------------------------------ lifecycle

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def start(self) -> Self:
        ready = threading.Event()
        failure: list[Exception] = []

        def main() -> None:
            loop = uvloop.new_event_loop()
            asyncio.set_event_loop(loop)
            self._loop = loop
            try:
                loop.run_until_complete(self._start())
            except Exception as exc:  # noqa: BLE001  (reported to the starting thread)
                failure.append(exc)
                ready.set()
                return
            ready.set()
            loop.run_forever()
            loop.run_until_complete(self._shutdown())
            loop.close()

        self._thread = threading.Thread(target=main, name="fake-apiserver", daemon=True)
        self._thread.start()
        ready.wait(10)
        if failure:
            raise failure[0]
        return self

    def stop(self) -> None:
        if self._loop is not None and self._thread is not None and self._thread.is_alive():
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(10)

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    async def _start(self) -> None:
        app = web.Application(middlewares=[self._middleware], client_max_size=64 << 20)
        app.router.add_route("*", "/{tail:.*}", self._dispatch)
        self._runner = web.AppRunner(app, handle_signals=False, shutdown_timeout=0.5)
        await self._runner.setup()
        await self._listen()

    async def _listen(self) -> None:
        assert self._runner is not None
        self._site = web.TCPSite(self._runner, self.host, self.port, reuse_address=True)
        await self._site.start()
        if not self.port:
            server = self._site._server  # the asyncio Server: read the port it got
            self.port = server.sockets[0].getsockname()[1]  # type: ignore[union-attr]

    async def _shutdown(self) -> None:
        self._abort_all()
        if self._runner is not None:
            await self._runner.cleanup()

    def call(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        """Run FN on the server's loop and return its result (from any thread)."""
        assert self._loop is not None

        async def run() -> Any:
            result = fn(*args, **kwargs)
            return await result if inspect.isawaitable(result) else result

        return asyncio.run_coroutine_threadsafe(run(), self._loop).result(10)

    # ----------------------------------------------------- test controls

    def write_kubeconfig(self, path: Any, token: str | None = None) -> str:
        token = self.token if token is None else token
        user = f"{{token: {token}}}" if token else "{}"
        text = (
            "apiVersion: v1\nkind: Config\n"
            f"clusters:\n- name: fake\n  cluster: {{server: '{self.url}'}}\n"
            f"users:\n- name: tester\n  user: {user}\n"
            "contexts:\n- name: fake\n  context: {cluster: fake, user: tester}\n"
            "current-context: fake\n")
        with open(path, "w") as fh:
            fh.write(text)
        return str(path)

    @property
    def resource_version(self) -> str:
        return self.call(lambda: self._fmt(self._rv))

    def create(self, obj: dict) -> dict:
        return self.call(self._create, copy.deepcopy(obj))

    def replace(self, obj: dict) -> dict:
        return self.call(self._replace, copy.deepcopy(obj))

    def patch(self, kind: str, name: str, patch: dict, namespace: str | None = None) -> dict:
        k = BY_KIND[kind]
        return self.call(self._patch, k, namespace if k.namespaced else None, name, patch)

    def delete(self, kind: str, name: str, namespace: str | None = None) -> dict:
        k = BY_KIND[kind]
        return self.call(self._delete, k, (namespace or "default") if k.namespaced else "", name)

    def get(self, kind: str, name: str, namespace: str | None = None) -> dict | None:
        k = BY_KIND[kind]
        key = ((namespace or "default") if k.namespaced else "", name)
        return self.call(lambda: copy.deepcopy(self._objects[k.plural].get(key)))

    def compact(self) -> str:
        """Forget the history up to now: a watch from an older resourceVersion
        gets 410 Expired.  Also expires every continue token."""
        def run() -> str:
            self._compacted = self._rv
            for events in self._history.values():
                events.clear()
            self._continues.clear()
            return self._fmt(self._rv)
        return self.call(run)

    def drop_watches(self) -> int:
        """Cut every open watch connection (TCP reset); the server stays up."""
        def run() -> int:
            count = 0
            for w in list(self._watchers):
                if w.transport is not None:
                    w.transport.abort()
                    count += 1
            return count
        return self.call(run)

    def outage(self, refuse: bool = True) -> None:
        """The API server goes away: every open connection is reset; with
        REFUSE new connections are refused (the port is closed), else every
        request is answered 503."""
        async def run() -> None:
            self._down = True
            self._refuse = refuse
            self._abort_all()
            if refuse and self._site is not None:
                await self._site.stop()
                self._site = None
        self.call(run)

    def recover(self) -> None:
        """The API server is back, on the same port, with its state."""
        async def run() -> None:
            if self._site is None:
                await self._listen()
            self._down = False
        self.call(run)

    def fail_next(self, status: int, count: int = 1, *, watch: bool | None = None,
                  plural: str | None = None, retry_after: int = 0) -> None:
        """Answer the next COUNT matching requests with STATUS (a Status body)."""
        def match(r: Request) -> bool:
            if watch is not None and r.is_watch != watch:
                return False
            return plural is None or r.path.rstrip("/").endswith("/" + plural)
        self.call(self._failures.append, (status, count, str(retry_after), match))

    def watch_count(self) -> int:
        return self.call(lambda: len(self._watchers))

    def requests_for(self, plural: str) -> list[Request]:
        return [r for r in list(self.requests) if r.path.rstrip("/").endswith("/" + plural)]

    def _abort_all(self) -> None:
        for t in list(self._transports):
            t.abort()
        for w in list(self._watchers):
            if w.transport is not None:
                w.transport.abort()

    # ---------------------------------------------------------- the store

    def _fmt(self, rv: int) -> str:
        return f"r-{rv:06x}" if self.opaque_versions else str(rv)

    def _parse_rv(self, text: str) -> int:
        try:
            if self.opaque_versions:
                if not text.startswith("r-"):
                    raise ValueError(text)
                return int("0x" + text[2:], 0)
            return int(text)
        except ValueError:
            raise ApiError(400, "BadRequest", f"invalid resourceVersion {text!r}") from None

    def _emit(self, k: Kind, kind: str, obj: dict, rv: int) -> None:
        line = orjson.dumps({"type": kind, "object": obj}) + b"\n"
        self._history[k.plural].append((rv, line))
        ns = obj["metadata"].get("namespace")
        for w in self._watchers:
            if w.kind is k and (w.namespace is None or w.namespace == ns):
                w.queue.put_nowait(line)

    def _stamp(self, k: Kind, obj: dict) -> dict:
        self._rv += 1
        obj["kind"] = k.kind
        obj["apiVersion"] = k.group_version
        obj["metadata"]["resourceVersion"] = self._fmt(self._rv)
        return obj

    def _key(self, k: Kind, obj: dict) -> tuple[str, str]:
        meta = obj.get("metadata")
        if not isinstance(meta, dict) or not isinstance(meta.get("name"), str) or not meta["name"]:
            raise ApiError(422, "Invalid", "metadata.name: Required value")
        if k.namespaced:
            meta.setdefault("namespace", "default")
            return (meta["namespace"], meta["name"])
        meta.pop("namespace", None)
        return ("", meta["name"])

    def _create(self, obj: dict, k: Kind | None = None) -> dict:
        if k is None:
            if obj.get("kind") not in BY_KIND:
                raise ValueError(f"the fake API server does not serve kind {obj.get('kind')!r}")
            k = BY_KIND[obj["kind"]]
        key = self._key(k, obj)
        store = self._objects[k.plural]
        if key in store:
            raise ApiError(409, "AlreadyExists", f'{k.plural} "{key[1]}" already exists')
        meta = obj["metadata"]
        meta["uid"] = str(uuid.uuid4())
        meta["creationTimestamp"] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
        store[key] = self._stamp(k, obj)
        self._emit(k, "ADDED", obj, self._rv)
        return copy.deepcopy(obj)

    def _replace(self, obj: dict, k: Kind | None = None) -> dict:
        k = k or BY_KIND[obj["kind"]]
        key = self._key(k, obj)
        store = self._objects[k.plural]
        old = store.get(key)
        if old is None:
            raise ApiError(404, "NotFound", f'{k.plural} "{key[1]}" not found')
        given = obj["metadata"].get("resourceVersion")
        if given and given != old["metadata"]["resourceVersion"]:
            raise ApiError(409, "Conflict", f'Operation cannot be fulfilled on {k.plural} "{key[1]}": '
                           "the object has been modified")
        obj["metadata"]["uid"] = old["metadata"]["uid"]
        obj["metadata"]["creationTimestamp"] = old["metadata"]["creationTimestamp"]
        store[key] = self._stamp(k, obj)
        self._emit(k, "MODIFIED", obj, self._rv)
        return copy.deepcopy(obj)

    def _patch(self, k: Kind, namespace: str | None, name: str, patch: Any) -> dict:
        key = ((namespace or "default") if k.namespaced else "", name)
        old = self._objects[k.plural].get(key)
        if old is None:
            raise ApiError(404, "NotFound", f'{k.plural} "{name}" not found')
        if not isinstance(patch, dict):
            raise ApiError(400, "BadRequest", "the patch must be a JSON object")
        new = merge_patch(copy.deepcopy(old), patch)
        new.setdefault("metadata", {})
        new["metadata"]["name"], new["metadata"]["uid"] = name, old["metadata"]["uid"]
        if k.namespaced:
            new["metadata"]["namespace"] = key[0]
        new["metadata"]["resourceVersion"] = old["metadata"]["resourceVersion"]
        return self._replace(new, k)

    def _delete(self, k: Kind, namespace: str, name: str) -> dict:
        old = self._objects[k.plural].pop((namespace, name), None)
        if old is None:
            raise ApiError(404, "NotFound", f'{k.plural} "{name}" not found')
        self._stamp(k, old)
        self._emit(k, "DELETED", old, self._rv)
        return copy.deepcopy(old)

    # ------------------------------------------------------------- HTTP

    @web.middleware
    async def _middleware(self, request: web.Request, handler: Callable) -> web.StreamResponse:
        entry = Request(request.method, request.path, dict(request.query), at=time.monotonic())
        index = len(self.requests)
        self.requests.append(entry)
        request[_INDEX] = index
        transport = request.transport
        if self._down:
            if self._refuse and transport is not None:
                transport.abort()  # a kept-alive connection to a "dead" server
                raise web.HTTPServiceUnavailable()
            return self._answer(index, entry, web.json_response(
                status_body(503, "ServiceUnavailable", "the server is down"), status=503))
        if self.token and request.path.startswith(("/api", "/apis")) and \
                request.headers.get("Authorization") != f"Bearer {self.token}":
            return self._answer(index, entry, web.json_response(
                status_body(401, "Unauthorized", "Unauthorized"), status=401))
        for i, (status, count, retry_after, match) in enumerate(self._failures):
            if match(entry):
                if count <= 1:
                    del self._failures[i]
                else:
                    self._failures[i] = (status, count - 1, retry_after, match)
                resp = web.json_response(status_body(status, "InjectedFailure", f"injected {status}"),
                                         status=status)
                if retry_after != "0":
                    resp.headers["Retry-After"] = retry_after
                return self._answer(index, entry, resp)
        if transport is not None:
            self._transports.add(transport)
        try:
            resp = await handler(request)
        except ApiError as exc:
            resp = web.json_response(status_body(exc.code, exc.reason, exc.message), status=exc.code)
        finally:
            if transport is not None:
                self._transports.discard(transport)
        return self._answer(index, entry, resp)

    def _answer(self, index: int, entry: Request, resp: web.StreamResponse) -> web.StreamResponse:
        self.requests[index] = dataclasses.replace(entry, status=resp.status)
        return resp

    def _streaming(self, request: web.Request, resp: web.StreamResponse) -> None:
        """Record the status of a stream as soon as its head is sent."""
        index = request[_INDEX]
        self.requests[index] = dataclasses.replace(self.requests[index], status=resp.status)

    async def _dispatch(self, request: web.Request) -> web.StreamResponse:
        path = request.path.rstrip("/")
        if path == "/version":
            return web.json_response({"major": "1", "minor": "33", "gitVersion": "v1.33.0-kbgp-fake"})
        if path == "/api":
            return web.json_response({"kind": "APIVersions", "versions": ["v1"],
                                      "serverAddressByClientCIDRs": []})
        if path == "/apis":
            gv = {"groupVersion": "discovery.k8s.io/v1", "version": "v1"}
            return web.json_response({"kind": "APIGroupList", "apiVersion": "v1", "groups": [
                {"name": "discovery.k8s.io", "versions": [gv], "preferredVersion": gv}]})
        for gv, prefix in (("v1", "/api/v1"), ("discovery.k8s.io/v1", "/apis/discovery.k8s.io/v1")):
            if path == prefix:
                return web.json_response({"kind": "APIResourceList", "groupVersion": gv, "resources": [
                    {"name": k.plural, "singularName": k.kind.lower(), "namespaced": k.namespaced,
                     "kind": k.kind, "verbs": ["create", "delete", "get", "list", "patch", "update", "watch"]}
                    for k in KINDS.values() if k.group_version == gv]})
        return await self._resource(request, path)

    async def _resource(self, request: web.Request, path: str) -> web.StreamResponse:
        for k in KINDS.values():
            if not path.startswith(k.prefix + "/"):
                continue
            parts = path[len(k.prefix) + 1:].split("/")
            namespace = None
            if parts[0] == "namespaces" and len(parts) >= 3 and k.namespaced:
                namespace, parts = parts[1], parts[2:]
            if parts[0] != k.plural or len(parts) > 2:
                continue
            name = parts[1] if len(parts) == 2 else None
            return await self._verb(request, k, namespace, name)
        raise ApiError(404, "NotFound", f"the server could not find the requested resource ({path})")

    async def _verb(self, request: web.Request, k: Kind, namespace: str | None,
                    name: str | None) -> web.StreamResponse:
        method = request.method
        if name is None:
            if method == "GET":
                if request.query.get("watch") in ("true", "1", "True"):
                    return await self._watch(request, k, namespace)
                return self._list(request, k, namespace)
            if method == "POST":
                obj = await self._body(request)
                if k.namespaced and namespace:
                    obj.setdefault("metadata", {})["namespace"] = namespace
                return web.json_response(self._create(obj, k), status=201)
            raise ApiError(405, "MethodNotAllowed", f"{method} is not supported on a collection")
        ns_key = (namespace or "default") if k.namespaced else ""
        if method == "GET":
            obj = self._objects[k.plural].get((ns_key, name))
            if obj is None:
                raise ApiError(404, "NotFound", f'{k.plural} "{name}" not found')
            return web.json_response(obj)
        if method == "DELETE":
            return web.json_response(self._delete(k, ns_key, name))
        if method == "PUT":
            obj = await self._body(request)
            obj.setdefault("metadata", {})["name"] = name
            if k.namespaced:
                obj["metadata"]["namespace"] = ns_key
            return web.json_response(self._replace(obj, k))
        if method == "PATCH":
            ctype = request.content_type
            if ctype not in ("application/merge-patch+json", "application/strategic-merge-patch+json"):
                raise ApiError(415, "UnsupportedMediaType", f"the fake API server does not apply {ctype}")
            patch = await self._body(request)
            if ctype.startswith("application/strategic") and _has_directive(patch):
                raise ApiError(422, "Invalid", "strategic merge patch directives are not supported here")
            return web.json_response(self._patch(k, ns_key, name, patch))
        raise ApiError(405, "MethodNotAllowed", f"{method} is not supported")

    async def _body(self, request: web.Request) -> Any:
        try:
            return orjson.loads(await request.read())
        except orjson.JSONDecodeError as exc:
            raise ApiError(400, "BadRequest", f"invalid JSON: {exc.msg}") from None

    def _list(self, request: web.Request, k: Kind, namespace: str | None) -> web.StreamResponse:
        token = request.query.get("continue")
        if token:
            saved = self._continues.pop(token, None)
            if saved is None:
                raise ApiError(410, "Expired", "The provided continue parameter is too old")
            rv, items = saved
        else:
            rv = self._rv
            items = [copy.deepcopy(o) for key, o in sorted(self._objects[k.plural].items())
                     if namespace is None or key[0] == namespace]
            for item in items:  # items of a list carry no kind/apiVersion
                item.pop("kind", None)
                item.pop("apiVersion", None)
        meta: dict[str, Any] = {"resourceVersion": self._fmt(rv)}
        limit = int(request.query.get("limit") or 0)
        if limit and len(items) > limit:
            rest = items[limit:]
            items = items[:limit]
            token = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode()
            self._continues[token] = (rv, rest)
            meta["continue"] = token
        return web.json_response({"kind": f"{k.kind}List", "apiVersion": k.group_version,
                                  "metadata": meta, "items": items},
                                 dumps=lambda o: orjson.dumps(o).decode())

    async def _watch(self, request: web.Request, k: Kind, namespace: str | None) -> web.StreamResponse:
        q = request.query
        bookmarks = q.get("allowWatchBookmarks") in ("true", "1", "True")
        timeout = float(q["timeoutSeconds"]) if q.get("timeoutSeconds") else 1800.0
        since = q.get("resourceVersion", "")
        watcher = _Watcher(k, namespace)
        if since in ("", "0"):
            initial = [orjson.dumps({"type": "ADDED", "object": o}) + b"\n"
                       for key, o in sorted(self._objects[k.plural].items())
                       if namespace is None or key[0] == namespace]
        else:
            n = self._parse_rv(since)
            if n < self._compacted:
                message = f"too old resource version: {since} ({self._fmt(self._compacted)})"
                if self.expired == "http":
                    raise ApiError(410, "Expired", message)
                resp = web.StreamResponse(headers={"Content-Type": "application/json"})
                resp.enable_chunked_encoding()
                await resp.prepare(request)
                self._streaming(request, resp)
                await resp.write(orjson.dumps({"type": "ERROR", "object": status_body(
                    410, "Expired", message)}) + b"\n")
                await resp.write_eof()
                return resp
            initial = [line for rv, line in self._history[k.plural] if rv > n and (
                namespace is None or orjson.loads(line)["object"]["metadata"].get("namespace") == namespace)]
        # Registered in the same step as the history was read: no event can fall in between.
        for line in initial:
            watcher.queue.put_nowait(line)
        watcher.transport = request.transport
        self._watchers.add(watcher)
        try:
            resp = web.StreamResponse(headers={"Content-Type": "application/json"})
            resp.enable_chunked_encoding()
            await resp.prepare(request)
            self._streaming(request, resp)
            loop = asyncio.get_running_loop()
            deadline = loop.time() + timeout
            next_bookmark = loop.time() + (self.bookmark_interval or 0)
            while True:
                now = loop.time()
                if now >= deadline:
                    break
                if watcher.transport is None or watcher.transport.is_closing():
                    return resp  # the connection was reset (drop_watches, outage) or closed by the client
                wait = min(deadline - now, 0.25)
                if bookmarks and self.bookmark_interval:
                    wait = min(wait, max(0.0, next_bookmark - now))
                try:
                    line = await asyncio.wait_for(watcher.queue.get(), wait)
                except TimeoutError:
                    if bookmarks and self.bookmark_interval and loop.time() >= next_bookmark:
                        next_bookmark = loop.time() + self.bookmark_interval
                        if watcher.queue.empty():  # every event up to now is written: safe to claim _rv
                            line = orjson.dumps({"type": "BOOKMARK", "object": {
                                "kind": k.kind, "apiVersion": k.group_version,
                                "metadata": {"resourceVersion": self._fmt(self._rv)}}}) + b"\n"
                        else:
                            continue
                    else:
                        continue
                try:
                    if self.split_events and len(line) > 2:
                        half = len(line) // 2
                        await resp.write(line[:half])
                        await asyncio.sleep(0.005)
                        await resp.write(line[half:])
                    else:
                        await resp.write(line)
                except ConnectionError:
                    return resp  # reset under our feet
            await resp.write_eof()
            return resp
        finally:
            self._watchers.discard(watcher)


def node(name: str, internal_ip: str, pod_cidr: str | None = None, *,
         annotations: dict[str, str] | None = None, labels: dict[str, str] | None = None) -> dict:
    """A Node object as kubelet would register it (with the bulk routing never reads)."""
    obj: dict[str, Any] = {
        "apiVersion": "v1", "kind": "Node",
        "metadata": {"name": name, "labels": {"kubernetes.io/hostname": name, **(labels or {})},
                     "annotations": dict(annotations or {})},
        "spec": {},
        "status": {"addresses": [{"type": "InternalIP", "address": internal_ip},
                                 {"type": "Hostname", "address": name}],
                   "images": [{"names": [f"registry.example/image-{i}:v1"], "sizeBytes": 1000 + i}
                              for i in range(3)],
                   "conditions": [{"type": "Ready", "status": "True"}]},
    }
    if pod_cidr:
        obj["spec"] = {"podCIDR": pod_cidr, "podCIDRs": [pod_cidr]}
    return obj


def service(name: str, cluster_ip: str, namespace: str = "default", *, type: str = "ClusterIP",
            external_ips: list[str] | None = None, annotations: dict[str, str] | None = None) -> dict:
    spec: dict[str, Any] = {"type": type, "clusterIP": cluster_ip, "clusterIPs": [cluster_ip],
                            "ports": [{"port": 80, "protocol": "TCP"}]}
    if external_ips:
        spec["externalIPs"] = list(external_ips)
    return {"apiVersion": "v1", "kind": "Service",
            "metadata": {"name": name, "namespace": namespace, "annotations": dict(annotations or {})},
            "spec": spec}


def endpoint_slice(name: str, service_name: str, endpoints: list[tuple[str, str]],
                   namespace: str = "default") -> dict:
    """ENDPOINTS: (address, node name) pairs."""
    return {"apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
            "metadata": {"name": name, "namespace": namespace,
                         "labels": {"kubernetes.io/service-name": service_name}},
            "addressType": "IPv4",
            "endpoints": [{"addresses": [a], "nodeName": n, "conditions": {"ready": True}}
                          for a, n in endpoints],
            "ports": [{"port": 8080, "protocol": "TCP"}]}
