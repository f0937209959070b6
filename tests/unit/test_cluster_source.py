"""The cluster file source (kbgp.cluster.source.FileSource, ``--cluster-file``):
the formats it reads, that it sees in-place rewrites and rename-replaces,
and that a half-written, empty or missing file keeps the last good snapshot
with one error naming the file and the position.  Runs on uvloop."""
from __future__ import annotations

import asyncio
import json
import logging
import os

import pytest
import uvloop
import yaml

from kbgp.cluster.model import Snapshot
from kbgp.cluster.source import FileSource, KubeSource, make_source
from kbgp.errors import ClusterApiError, ConfigError

LOG = "kbgp.cluster.source"

# As `kubectl get nodes,services,endpointslices -o yaml` prints it.
KUBECTL_YAML = """\
apiVersion: v1
items:
- apiVersion: v1
  kind: Node
  metadata:
    annotations:
      kube-router.io/node.asn: "64512"
      node.alpha.kubernetes.io/ttl: "0"
    creationTimestamp: "2024-05-01T10:00:00Z"
    labels:
      kubernetes.io/hostname: worker-1
    name: worker-1
    resourceVersion: "1234"
    uid: 1f0e4a52-5d0b-4e8e-9c55-3f1f0f4b7a11
  spec:
    podCIDR: 10.244.1.0/24
    podCIDRs:
    - 10.244.1.0/24
  status:
    addresses:
    - address: 10.0.0.11
      type: InternalIP
    - address: worker-1
      type: Hostname
- apiVersion: v1
  kind: Service
  metadata:
    creationTimestamp: "2024-05-01T09:00:00Z"
    labels:
      component: apiserver
    name: kubernetes
    namespace: default
    resourceVersion: "200"
  spec:
    clusterIP: 10.96.0.1
    clusterIPs:
    - 10.96.0.1
    ports:
    - name: https
      port: 443
      protocol: TCP
      targetPort: 6443
    type: ClusterIP
  status:
    loadBalancer: {}
- addressType: IPv4
  apiVersion: discovery.k8s.io/v1
  endpoints:
  - addresses:
    - 10.0.0.11
    conditions:
      ready: true
    nodeName: worker-1
  kind: EndpointSlice
  metadata:
    labels:
      kubernetes.io/service-name: kubernetes
    name: kubernetes
    namespace: default
    resourceVersion: "201"
  ports:
  - name: https
    port: 6443
    protocol: TCP
kind: List
metadata:
  resourceVersion: ""
"""

OBJECTS = yaml.safe_load(KUBECTL_YAML)["items"]


def run(coro):
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        return runner.run(coro)


class Recorder:
    def __init__(self) -> None:
        self.seen: list[Snapshot] = []

    def __call__(self, snapshot: Snapshot) -> None:
        assert isinstance(asyncio.get_running_loop(), uvloop.Loop)
        self.seen.append(snapshot)


def polls(source: FileSource, n: int = 1) -> None:
    async def go():
        for _ in range(n):
            await source.poll()
    run(go())


def the_cluster(snapshot: Snapshot) -> None:
    assert list(snapshot.nodes) == ["worker-1"]
    n = snapshot.nodes["worker-1"]
    assert n.addresses == (("InternalIP", "10.0.0.11"), ("Hostname", "worker-1"))
    assert n.pod_cidrs == ("10.244.1.0/24",)
    assert n.annotations["kube-router.io/node.asn"] == "64512"
    assert snapshot.services["default/kubernetes"].cluster_ips == ("10.96.0.1",)
    [eps] = snapshot.slices_of("default/kubernetes")
    assert eps.endpoints[0].node_name == "worker-1"
    assert snapshot.errors == ()


def test_kubectl_list_yaml(tmp_path):
    path = tmp_path / "cluster.yaml"
    path.write_text(KUBECTL_YAML)
    the_cluster(FileSource(path, print).load_once())


def _node_list_without_kinds() -> str:
    nodes = [dict(o) for o in OBJECTS if o["kind"] == "Node"]
    for o in nodes:
        del o["kind"], o["apiVersion"]
    others = [o for o in OBJECTS if o["kind"] != "Node"]
    return (yaml.safe_dump({"apiVersion": "v1", "kind": "NodeList", "items": nodes}) + "---\n"
            + yaml.safe_dump_all(others))


@pytest.mark.parametrize("text", [
    json.dumps({"apiVersion": "v1", "kind": "List", "items": OBJECTS}, indent=2),
    json.dumps(OBJECTS),
    yaml.safe_dump(OBJECTS),
    yaml.safe_dump_all(OBJECTS),
    "---\n" + yaml.safe_dump_all(OBJECTS, explicit_start=True) + "---\n",
    _node_list_without_kinds(),
    yaml.safe_dump({"items": OBJECTS}, default_flow_style=True),
], ids=["json-list", "json-array", "yaml-array", "yaml-stream", "yaml-stream-empty-docs",
        "nodelist-items-without-kind", "yaml-flow"])
def test_every_format_gives_the_same_snapshot(tmp_path, text):
    path = tmp_path / "cluster"
    path.write_text(text)
    got = FileSource(path, print).load_once()
    the_cluster(got)
    reference = tmp_path / "kubectl.yaml"
    reference.write_text(KUBECTL_YAML)
    assert got == FileSource(reference, print).load_once()


@pytest.mark.parametrize("text, message", [
    ('{"kind": "List", "items": [', "invalid JSON at line 1, column 28: "),
    ("kind: List\nitems:\n- kind: Node\n  metadata: {name: a\n", "invalid YAML at line 5, column 1: "),
    ("42\n", "document 1 is not an object nor a list"),
    ("kind: List\nitems: {a: 1}\n", "document 1: items must be a list"),
    ("  \n\n", "the file is empty"),
])
def test_load_once_names_the_file_and_the_problem(tmp_path, text, message):
    path = tmp_path / "cluster.yaml"
    path.write_text(text)
    with pytest.raises(ClusterApiError) as err:
        FileSource(path, print).load_once()
    assert str(err.value).startswith(f"{path}: {message}")


def test_load_once_missing_file(tmp_path):
    with pytest.raises(ClusterApiError, match=f"^cannot read cluster file {tmp_path}/none.yaml: "
                                              "No such file or directory$"):
        FileSource(tmp_path / "none.yaml", print).load_once()


def test_yaml_error_does_not_quote_the_line(tmp_path):
    path = tmp_path / "cluster.yaml"
    path.write_text("kind: Node\nmetadata:\n  annotations:\n    kube-router.io/peer.passwords: [c2VjcmV0\n")
    with pytest.raises(ClusterApiError) as err:
        FileSource(path, print).load_once()
    assert "line" in str(err.value) and "c2VjcmV0" not in str(err.value)


def test_in_place_rewrite_is_seen(tmp_path):
    path = tmp_path / "cluster.json"
    path.write_text(json.dumps(OBJECTS))
    rec = Recorder()
    src = FileSource(path, rec)
    polls(src)
    inode = os.stat(path).st_ino
    changed = json.loads(json.dumps(OBJECTS))
    changed[0]["metadata"]["labels"]["rack"] = "r9"
    with open(path, "r+") as fh:  # same inode: truncate and write
        fh.truncate(0)
        fh.write(json.dumps(changed))
    assert os.stat(path).st_ino == inode
    polls(src)
    assert len(rec.seen) == 2 and rec.seen[1].nodes["worker-1"].labels["rack"] == "r9"
    assert src.snapshot is rec.seen[1]


def test_rewrite_with_same_size_and_mtime_is_seen(tmp_path):
    # mtime moves in steps of the kernel's clock tick: a rewrite of the same
    # size within one tick leaves (inode, mtime, size) as they were.
    path = tmp_path / "cluster.json"
    a = json.dumps(OBJECTS).replace("worker-1", "worker-a")
    b = a.replace("worker-a", "worker-b")
    assert len(a) == len(b)
    path.write_text(a)
    rec = Recorder()
    src = FileSource(path, rec)
    polls(src)
    before = os.stat(path)
    with open(path, "r+") as fh:
        fh.write(b)
    os.utime(path, ns=(before.st_atime_ns, before.st_mtime_ns))
    after = os.stat(path)
    assert (after.st_ino, after.st_mtime_ns, after.st_size) == (before.st_ino, before.st_mtime_ns, before.st_size)
    polls(src)
    assert [list(s.nodes) for s in rec.seen] == [["worker-a"], ["worker-b"]]


def test_rename_replace_is_seen(tmp_path):
    path = tmp_path / "cluster.yaml"
    path.write_text(KUBECTL_YAML)
    rec = Recorder()
    src = FileSource(path, rec)
    polls(src)
    tmp = tmp_path / ".cluster.yaml.tmp"
    tmp.write_text(KUBECTL_YAML.replace("10.0.0.11", "10.0.0.99"))
    os.replace(tmp, path)
    polls(src)
    assert len(rec.seen) == 2
    assert rec.seen[1].nodes["worker-1"].addresses[0] == ("InternalIP", "10.0.0.99")


def test_unchanged_content_is_not_handed_out_again(tmp_path):
    path = tmp_path / "cluster.yaml"
    path.write_text(KUBECTL_YAML)
    rec = Recorder()
    src = FileSource(path, rec)
    polls(src, 3)
    os.utime(path, ns=(1, 1))  # touched
    polls(src)
    path.write_text(json.dumps({"kind": "List", "items": OBJECTS}))  # same objects, other format
    polls(src, 2)
    assert len(rec.seen) == 1


@pytest.mark.parametrize("full, cut, where", [
    (json.dumps({"kind": "List", "items": OBJECTS}, indent=1), lambda text: text[: len(text) // 2],
     "invalid JSON at line 47, column 19: unexpected end of data"),
    # Cut inside a quoted string: block YAML cut at a line end could still parse.
    (KUBECTL_YAML, lambda text: text[: text.index('"64512"') + 3],
     "invalid YAML at line 7, column 35: found unexpected end of stream"),
], ids=["json", "yaml"])
def test_half_written_file_keeps_the_last_snapshot_and_logs_one_error(tmp_path, caplog, full, cut, where):
    caplog.set_level(logging.INFO, logger=LOG)
    path = tmp_path / "cluster"
    path.write_text(full)
    rec = Recorder()
    src = FileSource(path, rec)
    polls(src)
    good = src.snapshot
    path.write_text(cut(full))
    polls(src, 4)  # racy re-reads included: still one error
    assert rec.seen == [good] and src.snapshot is good
    errors = [r for r in caplog.records if r.levelno == logging.ERROR]
    assert len(errors) == 1
    assert errors[0].getMessage().startswith(f"{path}: {where}"), errors[0].getMessage()
    changed = full.replace("10.0.0.11", "10.0.0.12")
    path.write_text(changed)
    polls(src)
    assert len(rec.seen) == 2 and rec.seen[1].nodes["worker-1"].addresses[0][1] == "10.0.0.12"


def test_empty_file_keeps_the_last_snapshot(tmp_path, caplog):
    path = tmp_path / "cluster.yaml"
    path.write_text(KUBECTL_YAML)
    rec = Recorder()
    src = FileSource(path, rec)
    polls(src)
    path.write_text("")  # truncated by a writer that has not written yet
    polls(src, 2)
    assert len(rec.seen) == 1
    assert [r.getMessage() for r in caplog.records if r.levelno == logging.ERROR] == [
        f"{path}: the file is empty; keeping the last good snapshot"]


def test_missing_file_is_one_error_then_read_when_it_appears(tmp_path, caplog):
    caplog.set_level(logging.INFO, logger=LOG)
    path = tmp_path / "cluster.yaml"
    rec = Recorder()
    src = FileSource(path, rec, poll_interval=0.5)
    polls(src, 3)
    assert rec.seen == [] and src.snapshot is None
    errors = [r.getMessage() for r in caplog.records if r.levelno == logging.ERROR]
    assert errors == [(f"cannot read cluster file {path}: No such file or directory; "
                       "keeping the last good snapshot, retrying every 0.5 s")]
    path.write_text(KUBECTL_YAML)
    polls(src)
    the_cluster(rec.seen[0])
    assert any("readable again" in r.getMessage() for r in caplog.records)
    # Gone again: the snapshot stays; back with the same content: nothing new.
    path.unlink()
    polls(src, 2)
    assert src.snapshot is rec.seen[0]
    path.write_text(KUBECTL_YAML)
    polls(src)
    assert len(rec.seen) == 1
    assert len([r for r in caplog.records if r.levelno == logging.ERROR]) == 2


def test_unreadable_objects_are_skipped_and_logged_once(tmp_path, caplog):
    path = tmp_path / "cluster.yaml"
    bad = {"kind": "Node", "metadata": {"name": "broken"}, "spec": {"podCIDRs": "10.244.7.0/24"}}
    path.write_text(yaml.safe_dump_all([*OBJECTS, bad]))
    rec = Recorder()
    src = FileSource(path, rec)
    polls(src)
    path.write_text(yaml.safe_dump_all([*OBJECTS, bad, {"kind": "Node", "metadata": {"name": "new"}}]))
    polls(src)
    assert len(rec.seen) == 2 and "new" in rec.seen[1].nodes and "broken" not in rec.seen[1].nodes
    assert rec.seen[1].errors == (f"{path}: Node broken: spec.podCIDRs must be a list of strings",)
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert warnings == [f"object skipped: {path}: Node broken: spec.podCIDRs must be a list of strings"]


def test_a_failing_consumer_does_not_stop_the_source(tmp_path, caplog):
    path = tmp_path / "cluster.yaml"
    path.write_text(KUBECTL_YAML)
    calls = []

    def consumer(snapshot):
        calls.append(snapshot)
        raise RuntimeError("bug")

    src = FileSource(path, consumer)
    polls(src)
    path.write_text(KUBECTL_YAML.replace("worker-1", "worker-2"))
    polls(src)
    assert len(calls) == 2
    assert any(r.levelno == logging.ERROR and r.exc_info for r in caplog.records)


def test_run_polls_until_cancelled(tmp_path):
    path = tmp_path / "cluster.yaml"
    path.write_text(KUBECTL_YAML)
    rec = Recorder()

    async def body():
        src = FileSource(path, rec, poll_interval=0.05)
        task = asyncio.create_task(src.run())
        loop = asyncio.get_running_loop()
        await asyncio.sleep(0.2)
        tmp = tmp_path / "next"
        tmp.write_text(KUBECTL_YAML.replace("worker-1", "worker-9"))
        start = loop.time()
        os.replace(tmp, path)
        while len(rec.seen) < 2 and loop.time() - start < 1.0:
            await asyncio.sleep(0.01)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        return loop.time() - start

    took = run(body())
    assert [list(s.nodes) for s in rec.seen] == [["worker-1"], ["worker-9"]]
    assert took < 0.5


def test_make_source_picks_the_source_from_the_flags(tmp_path):
    assert isinstance(make_source(on_snapshot=print, cluster_file=tmp_path / "c.yaml"), FileSource)
    src = make_source(on_snapshot=print, kubeconfig=tmp_path / "kubeconfig", master="https://10.0.0.1:6443")
    assert isinstance(src, KubeSource) and src.master == "https://10.0.0.1:6443"
    assert isinstance(make_source(on_snapshot=print), KubeSource)
    with pytest.raises(ConfigError, match="--cluster-file .* cannot be combined with --kubeconfig or --master"):
        make_source(on_snapshot=print, cluster_file="c.yaml", kubeconfig="k")
