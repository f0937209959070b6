"""``kbgp agent --check``: flags and the cluster file validated, the plan
printed, a non-zero exit on errors; bad input named, never a crash, never a
password."""
from __future__ import annotations

import base64
import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "kbgp", "agent", *args], capture_output=True,
                          text=True, cwd=ROOT, timeout=60)


def cluster(tmp_path, **annotations) -> str:
    items = [{"kind": "Node", "metadata": {"name": n, "annotations": annotations if n == "a" else {}},
              "spec": {"podCIDR": f"10.244.{i}.0/24"},
              "status": {"addresses": [{"type": "InternalIP", "address": f"10.0.0.{i}"}]}}
             for i, n in ((1, "a"), (2, "b"))]
    path = tmp_path / "cluster.json"
    path.write_text(json.dumps({"apiVersion": "v1", "kind": "List", "items": items}))
    return str(path)


def test_check_prints_the_plan_and_exits_zero(tmp_path):
    p = run("--check", "--cluster-file", cluster(tmp_path), "--hostname-override", "a",
            "--peer-router-ips=192.0.2.1", "--peer-router-asns=65000",
            f"--peer-router-passwords={base64.b64encode(b'topsecret').decode()}")
    assert p.returncode == 0, p.stderr
    plan = json.loads(p.stdout)
    assert [peer["address"] for peer in plan["peers"]] == ["10.0.0.2", "192.0.2.1"]
    assert plan["peers"][1]["password"] == "<set>"
    assert plan["speaker"]["router-id"] == "10.0.0.1"
    assert "topsecret" not in p.stdout + p.stderr
    assert base64.b64encode(b"topsecret").decode() not in p.stdout + p.stderr


def test_check_names_a_bad_annotation_and_exits_one(tmp_path):
    p = run("--check", "--cluster-file", cluster(tmp_path, **{"kube-router.io/peer.asns": "65x",
                                                               "kube-router.io/peer.ips": "192.0.2.9"}),
            "--hostname-override", "a")
    assert p.returncode == 1
    plan = json.loads(p.stdout)
    assert any("kube-router.io/peer.asns" in e and "65x" in e and "node a" in e for e in plan["errors"]), plan
    # The rest of the configuration still works: the mesh peer is there.
    assert [peer["address"] for peer in plan["peers"]] == ["10.0.0.2"]


def test_bad_flag_and_missing_file_are_clear_errors(tmp_path):
    p = run("--check", "--cluster-file", str(tmp_path / "nope.yaml"), "--hostname-override", "a")
    assert p.returncode == 1 and "nope.yaml" in p.stderr and "Traceback" not in p.stderr
    p = run("--check", "--cluster-file", cluster(tmp_path), "--peer-router-asns=abc")
    assert p.returncode == 2 and "--peer-router-asns" in p.stderr and "Traceback" not in p.stderr
    p = run("--check", "--cluster-file", cluster(tmp_path), "--hostname-override", "zzz")
    assert p.returncode == 1 and json.loads(p.stdout)["waiting"]


def test_kube_router_flags_for_other_features_are_accepted_with_a_warning(tmp_path):
    p = run("--check", "--cluster-file", cluster(tmp_path), "--hostname-override", "a",
            "--run-firewall=true", "--run-service-proxy=true", "--masquerade-all")
    assert p.returncode == 0, p.stderr
    assert "--run-firewall" in p.stderr and "--run-service-proxy" in p.stderr
