"""The Kubernetes informer (kbgp.cluster.source.KubeSource) against a fake
API server over real HTTP, through the official client's ``kubernetes.aio``,
on uvloop: what it lists and watches, how fast changes show, and that no
failure of the API ever hands out a wrong or empty snapshot."""
from __future__ import annotations

import asyncio
import logging

import pytest
import uvloop

from kbgp.cluster.source import KubeSource
from kbgp.errors import ClusterApiError, ConfigError

from .apiserver import endpoint_slice, node, service
from .fixtures import Snapshots, run_uvloop, running

# Quick retries for tests; the defaults are 0.5 s doubling up to 30 s.
FAST = {"backoff_initial": 0.05, "backoff_cap": 0.4}
LOG = "kbgp.cluster.source"
FIRST = 5.0  # the first snapshot includes importing the client (about a second)


def source_for(server, snaps, **options) -> KubeSource:
    return KubeSource(snaps, kubeconfig=server.kubeconfig, **{**FAST, **options})


def node_lists(server) -> list:
    return [r for r in server.requests_for("nodes") if not r.is_watch]


def three_nodes(server) -> None:
    server.create(node("n1", "10.0.0.1", "10.244.1.0/24"))
    server.create(node("n2", "10.0.0.2", "10.244.2.0/24"))
    server.create(node("n3", "10.0.0.3", "10.244.3.0/24"))


def test_initial_list_is_one_snapshot_of_all_three_resources(apiserver):
    apiserver.create(node("n1", "10.0.0.1", "10.244.1.0/24", annotations={"kube-router.io/node.asn": "64512"}))
    apiserver.create(node("n2", "10.0.0.2", "10.244.2.0/24"))
    apiserver.create(service("web", "10.96.0.10", "apps", external_ips=["192.0.2.10"]))
    apiserver.create(endpoint_slice("web-x1", "web", [("10.244.1.5", "n1"), ("10.244.2.7", "n2")], "apps"))
    snaps = Snapshots()

    async def body():
        assert isinstance(asyncio.get_running_loop(), uvloop.Loop)
        async with running(source_for(apiserver, snaps)):
            await snaps.wait_for(lambda s: True, FIRST, "at all")
            await asyncio.sleep(0.5)  # bookmarks keep coming: they are no reason for a new snapshot

    run_uvloop(body())
    assert len(snaps.seen) == 1
    s = snaps.last
    assert set(s.nodes) == {"n1", "n2"}
    assert s.nodes["n1"].addresses == (("InternalIP", "10.0.0.1"), ("Hostname", "n1"))
    assert s.nodes["n1"].pod_cidrs == ("10.244.1.0/24",)
    assert s.nodes["n1"].annotations == {"kube-router.io/node.asn": "64512"}
    assert s.services["apps/web"].cluster_ips == ("10.96.0.10",)
    assert s.services["apps/web"].external_ips == ("192.0.2.10",)
    [eps] = s.slices_of("apps/web")
    assert [(e.addresses, e.node_name) for e in eps.endpoints] == [(("10.244.1.5",), "n1"), (("10.244.2.7",), "n2")]
    assert s.errors == ()
    # LIST, then WATCH from the list's resourceVersion with bookmarks, per resource.
    for plural in ("nodes", "services", "endpointslices"):
        first, second = apiserver.requests_for(plural)[:2]
        assert not first.is_watch and first.status == 200
        assert second.is_watch and second.status == 200
        assert second.query["allowWatchBookmarks"] == "true"
        assert second.query["resourceVersion"] == "5"  # four creations after the initial 1
        assert int(second.query["timeoutSeconds"]) >= 300


@pytest.fixture(scope="module")
def kube_client():
    """The official synchronous client (slow to import: once per module)."""
    from kubernetes import client, config
    return client, config


def test_node_add_patch_delete_through_the_kubernetes_client_seen_within_1s(apiserver, kube_client):
    client, config = kube_client
    cfg = client.Configuration()
    config.load_kube_config(config_file=apiserver.kubeconfig, client_configuration=cfg, persist_config=False)
    core = client.CoreV1Api(client.ApiClient(cfg))
    three_nodes(apiserver)
    snaps = Snapshots()

    async def within_1s(action, predicate, what):
        loop = asyncio.get_running_loop()
        start = loop.time()
        await asyncio.to_thread(action)
        await snaps.wait_for(predicate, 1.0 - (loop.time() - start), what)
        return loop.time() - start

    async def body():
        async with running(source_for(apiserver, snaps)):
            await snaps.wait_for(lambda s: len(s.nodes) == 3, FIRST, "with 3 nodes")
            new = client.V1Node.from_dict(node("n4", "10.0.0.4", "10.244.4.0/24"))
            times = [await within_1s(lambda: core.create_node(new), lambda s: "n4" in s.nodes, "with n4")]
            # The client sends a dict patch as a strategic merge patch.
            patch = {"metadata": {"annotations": {"kube-router.io/rr.client": "42"}}}
            times.append(await within_1s(
                lambda: core.patch_node("n2", patch),
                lambda s: s.nodes["n2"].annotations.get("kube-router.io/rr.client") == "42", "n2 annotated"))
            times.append(await within_1s(
                lambda: core.patch_node("n2", {"metadata": {"annotations": {"kube-router.io/rr.client": None}}},
                                        _content_type="application/merge-patch+json"),
                lambda s: "kube-router.io/rr.client" not in s.nodes["n2"].annotations, "n2 annotation removed"))
            times.append(await within_1s(lambda: core.delete_node("n1"), lambda s: "n1" not in s.nodes,
                                         "without n1"))
            return times

    times = run_uvloop(body())
    assert all(t < 1.0 for t in times), times
    assert set(snaps.last.nodes) == {"n2", "n3", "n4"}
    # The patches went in as the content types named (the server refuses others).
    patches = [r for r in apiserver.requests if r.method == "PATCH"]
    assert [r.status for r in patches] == [200, 200]


@pytest.mark.parametrize("bookmarks", [True, False], ids=["bookmarks", "no-bookmarks"])
def test_bookmarks_move_the_resource_version_so_a_reconnect_needs_no_relist(apiserver_factory, bookmarks):
    server = apiserver_factory(bookmark_interval=0.05 if bookmarks else None)
    server.create(node("n1", "10.0.0.1"))
    snaps = Snapshots()

    async def body():
        async with running(source_for(server, snaps)):
            await snaps.wait_for(lambda s: "n1" in s.nodes, FIRST)
            # Changes to Services move the shared resourceVersion past all
            # the nodes watch has seen; only its bookmarks can tell it so.
            for i in range(3):
                server.create(service(f"s{i}", f"10.96.0.{i + 1}"))
            await snaps.wait_for(lambda s: len(s.services) == 3)
            await asyncio.sleep(0.4)
            compacted = server.compact()
            assert server.drop_watches() == 3
            await asyncio.sleep(0.3)
            server.create(node("n2", "10.0.0.2"))
            await snaps.wait_for(lambda s: "n2" in s.nodes, 2.0)
            return compacted

    compacted = run_uvloop(body())
    watches = [r for r in server.requests_for("nodes") if r.is_watch]
    if bookmarks:
        assert len(node_lists(server)) == 1
        assert any(r.query["resourceVersion"] == compacted and r.status == 200 for r in watches)
    else:  # the control: without bookmarks the old resourceVersion is gone, so a relist
        assert len(node_lists(server)) == 2
        assert watches[1].query["resourceVersion"] == "2" and watches[1].status == 200  # 410 in the stream
    assert all("n1" in s.nodes for s in snaps.seen)


@pytest.mark.parametrize("expired", ["event", "http"], ids=["410-in-stream", "http-410"])
def test_expired_resource_version_relists_and_replaces_the_store(apiserver_factory, expired, caplog):
    caplog.set_level(logging.INFO, logger=LOG)
    server = apiserver_factory(expired=expired)
    three_nodes(server)
    snaps = Snapshots()

    async def body():
        async with running(source_for(server, snaps)):
            await snaps.wait_for(lambda s: len(s.nodes) == 3, FIRST)
            # The informer misses these events, and the server forgets them.
            server.outage()
            server.delete("Node", "n1")
            server.patch("Node", "n2", {"metadata": {"annotations": {"kbgp.test/x": "1"}}})
            server.create(node("n4", "10.0.0.4"))
            compacted = server.compact()
            mark = len(server.requests)
            server.recover()
            await snaps.wait_for(lambda s: set(s.nodes) == {"n2", "n3", "n4"}
                                 and s.nodes["n2"].annotations.get("kbgp.test/x") == "1", 3.0, "after the relist")
            return compacted, mark

    compacted, mark = run_uvloop(body())
    after = [r for r in server.requests[mark:] if r.path == "/api/v1/nodes" and r.status]
    stale = next(r for r in after if r.is_watch)
    assert int(stale.query["resourceVersion"]) < int(compacted)
    assert stale.status == (200 if expired == "event" else 410)
    relist = next(r for r in after[after.index(stale):] if not r.is_watch)
    assert relist.status == 200
    assert any("resource=nodes" in r.message and "expired" in r.message for r in caplog.records)
    # Never a snapshot that lost nodes along the way, nor one that kept n1 with n4.
    assert all(len(s.nodes) == 3 for s in snaps.seen)


@pytest.mark.parametrize("refuse", [True, False], ids=["connection-refused", "503"])
def test_outage_keeps_the_last_snapshot_then_resumes_without_relist(apiserver_factory, refuse, caplog):
    caplog.set_level(logging.INFO, logger=LOG)
    server = apiserver_factory()
    three_nodes(server)
    server.create(service("web", "10.96.0.10"))
    snaps = Snapshots()
    source = source_for(server, snaps)

    async def body():
        async with running(source):
            await snaps.wait_for(lambda s: len(s.nodes) == 3, FIRST)
            before = len(snaps.seen)
            server.outage(refuse=refuse)
            await asyncio.sleep(1.5)  # several failed attempts at up to 0.4 s
            assert len(snaps.seen) == before
            assert source.snapshot is snaps.last and len(source.snapshot.nodes) == 3
            server.create(node("n9", "10.0.0.9"))
            server.recover()
            await snaps.wait_for(lambda s: "n9" in s.nodes, 3.0, "with n9 after the outage")
            await asyncio.sleep(0.8)  # every watch is back

    run_uvloop(body())
    assert all(len(s.nodes) >= 3 and len(s.services) == 1 for s in snaps.seen)
    down = [r for r in caplog.records if "Kubernetes API unavailable" in r.message]
    assert len(down) == 1 and down[0].levelno == logging.WARNING
    assert ("reason=WATCH /" in down[0].message
            and ("HTTP 503 Service Unavailable: the server is down" if not refuse else "ClientConnectorError")
            in down[0].message), down[0].message
    up = [r for r in caplog.records if "Kubernetes API available again" in r.message]
    assert len(up) == 1 and up[0].levelno == logging.INFO
    # Resumed from the last resourceVersion: n9 came as a watch event, not by a relist.
    assert len(node_lists(server)) == 1
    watches = [r for r in server.requests_for("nodes") if r.is_watch and r.status == 200]
    assert len(watches) >= 2 and watches[-1].query["resourceVersion"] == "5"


def test_services_and_endpoint_slices_follow_changes(apiserver):
    apiserver.create(node("n1", "10.0.0.1"))
    apiserver.create(service("web", "10.96.0.10", "apps"))
    apiserver.create(endpoint_slice("web-a", "web", [("10.244.1.5", "n1")], "apps"))
    snaps = Snapshots()

    async def body():
        async with running(source_for(apiserver, snaps)):
            await snaps.wait_for(lambda s: "apps/web" in s.services, FIRST)
            apiserver.patch("Service", "web", {"spec": {"type": "LoadBalancer", "externalTrafficPolicy": "Local"},
                                               "status": {"loadBalancer": {"ingress": [{"ip": "198.51.100.7"}]}}},
                            namespace="apps")
            s = await snaps.wait_for(lambda s: s.services["apps/web"].lb_ingress == (("198.51.100.7", ""),))
            assert s.services["apps/web"].external_traffic_policy == "Local"
            apiserver.create(endpoint_slice("web-b", "web", [("10.244.2.9", "n2")], "apps"))
            s = await snaps.wait_for(lambda s: len(s.slices_of("apps/web")) == 2)
            apiserver.create(service("web", "10.96.1.1", "other"))  # same name, other namespace
            s = await snaps.wait_for(lambda s: "other/web" in s.services)
            assert s.services["apps/web"].cluster_ips == ("10.96.0.10",)
            apiserver.delete("EndpointSlice", "web-a", "apps")
            s = await snaps.wait_for(lambda s: [e.name for e in s.slices_of("apps/web")] == ["web-b"])
            apiserver.delete("Service", "web", "apps")
            await snaps.wait_for(lambda s: set(s.services) == {"other/web"})

    run_uvloop(body())


def test_server_watch_timeout_resumes_the_watch_without_relisting(apiserver):
    three_nodes(apiserver)
    snaps = Snapshots()

    async def body():
        async with running(source_for(apiserver, snaps, watch_timeout=1)):
            await snaps.wait_for(lambda s: len(s.nodes) == 3, FIRST)
            await asyncio.sleep(3.5)  # timeoutSeconds between 1 and 2: at least two reconnects
            apiserver.patch("Node", "n3", {"metadata": {"labels": {"rack": "r7"}}})
            await snaps.wait_for(lambda s: s.nodes["n3"].labels.get("rack") == "r7")

    run_uvloop(body())
    watches = [r for r in apiserver.requests_for("nodes") if r.is_watch]
    assert len(watches) >= 3
    assert all(1 <= int(r.query["timeoutSeconds"]) < 2 for r in watches)
    assert len(node_lists(apiserver)) == 1


def test_paged_list_split_event_lines_and_opaque_resource_versions(apiserver_factory):
    server = apiserver_factory(split_events=True, opaque_versions=True)
    for i in range(1, 6):
        server.create(node(f"n{i}", f"10.0.0.{i}"))
    snaps = Snapshots()

    async def body():
        async with running(source_for(server, snaps, page_size=2)):
            await snaps.wait_for(lambda s: len(s.nodes) == 5, FIRST)
            server.patch("Node", "n5", {"metadata": {"annotations": {"a": "b"}}})
            await snaps.wait_for(lambda s: s.nodes["n5"].annotations == {"a": "b"})
            server.delete("Node", "n4")
            await snaps.wait_for(lambda s: "n4" not in s.nodes)

    run_uvloop(body())
    assert len(snaps.seen) == 3  # never a snapshot of a partial list
    lists = node_lists(server)
    assert [("continue" in r.query) for r in lists] == [False, True, True]
    assert all(r.query["resourceVersion"].startswith("r-") for r in server.requests_for("nodes") if r.is_watch)


def test_no_snapshot_before_every_resource_is_listed_and_failures_are_retried(apiserver, caplog):
    caplog.set_level(logging.INFO, logger=LOG)
    three_nodes(apiserver)
    apiserver.create(endpoint_slice("web-a", "web", [("10.244.1.5", "n1")]))
    apiserver.fail_next(500, count=3, watch=False, plural="endpointslices")
    apiserver.fail_next(429, count=1, watch=True, plural="nodes", retry_after=1)
    snaps = Snapshots()

    async def body():
        async with running(source_for(apiserver, snaps)):
            await snaps.wait_for(lambda s: True, FIRST)
            apiserver.create(node("n4", "10.0.0.4"))
            await snaps.wait_for(lambda s: "n4" in s.nodes)

    run_uvloop(body())
    assert len(snaps.seen[0].endpoint_slices) == 1 and len(snaps.seen[0].nodes) == 3
    assert [r.status for r in apiserver.requests_for("endpointslices") if not r.is_watch] == [500, 500, 500, 200]
    throttled, resumed = [r for r in apiserver.requests_for("nodes") if r.is_watch][:2]
    assert (throttled.status, resumed.status) == (429, 200)
    assert resumed.at - throttled.at >= 0.35  # Retry-After: 1, capped by backoff_cap=0.4
    down = [r for r in caplog.records if "Kubernetes API unavailable" in r.message]
    assert len(down) == 1 and ("HTTP 500" in down[0].message or "HTTP 429" in down[0].message)


def test_wrong_token_is_an_error_and_no_snapshot(apiserver, tmp_path, caplog):
    caplog.set_level(logging.INFO, logger=LOG)
    three_nodes(apiserver)
    bad = apiserver.write_kubeconfig(tmp_path / "bad-kubeconfig", token="not-the-token")
    snaps = Snapshots()

    async def body():
        async with running(KubeSource(snaps, kubeconfig=bad, **FAST)):
            await asyncio.sleep(2.0)

    run_uvloop(body())
    assert snaps.seen == []
    down = [r for r in caplog.records if "Kubernetes API unavailable" in r.message]
    assert len(down) == 1 and down[0].levelno == logging.ERROR and "HTTP 401" in down[0].message
    assert "not-the-token" not in caplog.text


def test_unreadable_objects_are_skipped_and_named_once(apiserver, caplog):
    caplog.set_level(logging.INFO, logger=LOG)
    three_nodes(apiserver)
    broken = node("bad", "10.0.0.66")
    broken["spec"] = {"podCIDRs": "10.244.66.0/24"}  # a string, not a list
    apiserver.create(broken)
    snaps = Snapshots()

    async def body():
        async with running(source_for(apiserver, snaps)):
            await snaps.wait_for(lambda s: len(s.nodes) == 3, FIRST)
            apiserver.patch("Node", "n1", {"metadata": {"labels": {"x": "y"}}})
            await snaps.wait_for(lambda s: s.nodes["n1"].labels.get("x") == "y")

    run_uvloop(body())
    assert snaps.last.errors == (f"{apiserver.url}: Node bad: spec.podCIDRs must be a list of strings",)
    skipped = [r for r in caplog.records if "object skipped" in r.message]
    assert len(skipped) == 1 and "Node bad" in skipped[0].message


def test_master_overrides_the_kubeconfig_server(apiserver, tmp_path):
    three_nodes(apiserver)
    port = apiserver.port
    elsewhere = apiserver.write_kubeconfig(tmp_path / "elsewhere")
    with open(elsewhere) as fh:
        text = fh.read().replace(f":{port}", ":9")  # the discard port: nothing listens
    with open(elsewhere, "w") as fh:
        fh.write(text)
    snaps = Snapshots()

    async def body():
        async with running(KubeSource(snaps, kubeconfig=elsewhere, master=apiserver.url + "/", **FAST)) as task:
            await snaps.wait_for(lambda s: len(s.nodes) == 3, FIRST)
            assert not task.done()

    run_uvloop(body())


def test_configuration_errors_are_named(tmp_path, monkeypatch):
    monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)

    async def fails(source):
        with pytest.raises(ClusterApiError) as err:
            await source.run()
        return str(err.value)

    assert "--kubeconfig" in run_uvloop(fails(KubeSource(print)))
    missing = tmp_path / "nope"
    assert run_uvloop(fails(KubeSource(print, kubeconfig=missing))) == f"--kubeconfig {missing}: no such file"
    garbled = tmp_path / "garbled"
    garbled.write_text("apiVersion: v1\nusers:\n- name: x\n  user: {token: s3cret\n")
    text = run_uvloop(fails(KubeSource(print, kubeconfig=garbled)))
    assert text.startswith(f"--kubeconfig {garbled}: invalid YAML at line") and "s3cret" not in text
    with pytest.raises(ConfigError, match="--master '127.0.0.1:6443': expected an http:// or https:// URL"):
        KubeSource(print, master="127.0.0.1:6443")


def test_in_cluster_without_a_service_account_is_a_clear_error(monkeypatch):
    import os
    if os.path.exists("/var/run/secrets/kubernetes.io/serviceaccount/token"):
        pytest.skip("this machine runs in a pod")
    monkeypatch.setenv("KUBERNETES_SERVICE_HOST", "127.0.0.1")
    monkeypatch.setenv("KUBERNETES_SERVICE_PORT", "6443")

    async def fails():
        with pytest.raises(ClusterApiError, match="^in-cluster configuration: "):
            await KubeSource(print).run()

    run_uvloop(fails())
