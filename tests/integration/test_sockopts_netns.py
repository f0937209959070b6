"""TCP MD5 and GTSM between two network namespaces, as two BGP speakers would see them.

Each test makes a fresh pair of namespaces joined by a veth pair:

    kbgpt-<pid>-<n>-srv  kv0  10.201.0.1/30  fd00:201::1/64
    kbgpt-<pid>-<n>-cli  kv1  10.201.0.2/30  fd00:201::2/64

and removes them when it ends, passed or failed.  The server and the client each
run in their own namespace as a short Python program started with
``ip netns exec``; they use kbgp.io.sockopts and report back as one JSON line.
A connection that must not happen is given 3 s (the kernel drops the SYNs
silently, so the client only ever sees a timeout); the server's namespace then
has to show which kernel counter grew.
"""
from __future__ import annotations

import errno
import itertools
import json
import os
import select
import shutil
import socket
import subprocess
import sys
import textwrap
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

from kbgp.io.sockopts import set_tcp_md5

ROOT = Path(__file__).resolve().parents[2]
BLOCK_TIMEOUT = 3.0  # how long a connection that must fail is given
PROC_TIMEOUT = 20.0  # a helper that takes longer than this is stuck
NETNS_DIR = "/run/netns"  # where iproute2 keeps named namespaces
SERVER_KEY = b"kbgp-netns-key"
WRONG_KEY = b"kbgp-netns-other"

pytestmark = pytest.mark.netns

_counter = itertools.count(1)

SERVER = textwrap.dedent(
    """
    import json, select, sys
    from kbgp.io import sockopts as so

    cfg = json.loads(sys.argv[1])
    md5_before = so.tcp_md5_counters()
    ttl_before = so.read_netstat().get("TCPMinTTLDrop", 0)
    lsock = so.create_listener(cfg["listen"], 0)
    for entry in cfg["md5"]:
        so.set_tcp_md5(lsock, entry["peer"], bytes.fromhex(entry["key"]), entry.get("prefixlen"))
    if cfg["min_ttl"] is not None:
        so.set_min_ttl(lsock, cfg["min_ttl"])
    print(json.dumps({"port": lsock.getsockname()[1]}), flush=True)
    result = {"accepted": False}
    # Wait for a connection, or for the test to close stdin once the client gave up.
    ready, _, _ = select.select([lsock, sys.stdin], [], [], cfg["wait"])
    if lsock in ready:
        conn, addr = lsock.accept()
        conn.setblocking(True)
        conn.settimeout(5)
        data = conn.recv(64)
        conn.sendall(b"echo:" + data)
        result.update(accepted=True, peer=addr[0], received=data.decode())
        conn.close()
    result["md5_before"] = md5_before
    result["md5_after"] = so.tcp_md5_counters()
    result["minttl_drops"] = so.read_netstat().get("TCPMinTTLDrop", 0) - ttl_before
    print(json.dumps(result), flush=True)
    """
)

CLIENT = textwrap.dedent(
    """
    import errno, json, os, select, socket, sys
    from kbgp.io import sockopts as so

    cfg = json.loads(sys.argv[1])
    sock = so.create_client_socket(cfg["remote"], cfg["local"])
    if cfg["key"] is not None:
        so.set_tcp_md5(sock, cfg["remote"], bytes.fromhex(cfg["key"]))
    if cfg["ttl"] is not None:
        so.set_ttl(sock, cfg["ttl"])
    result = {"connected": False}
    err = sock.connect_ex((cfg["remote"], cfg["port"]))
    if err not in (0, errno.EINPROGRESS):
        result["error"] = os.strerror(err)
    else:
        _, writable, _ = select.select([], [sock], [], cfg["timeout"])
        soerr = sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR) if writable else None
        if not writable:
            result["error"] = "timeout"
        elif soerr:
            result["error"] = os.strerror(soerr)
        else:
            result["connected"] = True
            sock.setblocking(True)
            sock.settimeout(5)
            sock.sendall(b"kbgp-hello")
            result["reply"] = sock.recv(64).decode()
    sock.close()
    print(json.dumps(result), flush=True)
    """
)


# --------------------------------------------------------------------------- namespaces

def _ip(*args: str, check: bool = True) -> subprocess.CompletedProcess:
    res = subprocess.run(["ip", *args], capture_output=True, text=True, timeout=15)
    if check and res.returncode != 0:
        raise RuntimeError(f"ip {' '.join(args)} failed: {res.stderr.strip()}")
    return res


def _remove_netns(ns: str) -> str | None:
    """Delete ``ns``; None when it is gone, else why not (a few tries: another process
    entering or leaving a namespace at that moment can make the removal fail)."""
    why = ""
    for _ in range(5):
        res = _ip("netns", "del", ns, check=False)
        if not os.path.exists(os.path.join(NETNS_DIR, ns)):
            return None
        why = res.stderr.strip() or f"exit status {res.returncode}, still in {NETNS_DIR}"
        print(f"ip netns del {ns}: {why}", file=sys.stderr)
        time.sleep(0.2)
    return why


@pytest.fixture(scope="module")
def netns_available() -> None:
    if os.geteuid() != 0:
        pytest.skip("needs root to create network namespaces")
    if shutil.which("ip") is None:
        pytest.skip("iproute2 'ip' not found")
    probe = f"kbgpt-{os.getpid()}-probe"
    res = _ip("netns", "add", probe, check=False)
    if res.returncode != 0:
        pytest.skip(f"'ip netns add' does not work here: {res.stderr.strip()}")
    why = _remove_netns(probe)
    if why:
        raise RuntimeError(f"cannot remove the probe namespace {probe}: {why}")


@pytest.fixture(scope="module")
def md5_available(netns_available) -> None:
    with socket.socket() as s:
        try:
            set_tcp_md5(s, "192.0.2.1", b"probe")
        except OSError as exc:
            if exc.errno == errno.ENOPROTOOPT:
                pytest.skip("kernel without CONFIG_TCP_MD5SIG")


@dataclass
class Pair:
    server_ns: str
    client_ns: str
    server4: str = "10.201.0.1"
    client4: str = "10.201.0.2"
    server6: str = "fd00:201::1"
    client6: str = "fd00:201::2"


@pytest.fixture
def pair(netns_available):
    base = f"kbgpt-{os.getpid()}-{next(_counter)}"
    p = Pair(server_ns=f"{base}-srv", client_ns=f"{base}-cli")
    made: list[str] = []
    try:
        for ns in (p.server_ns, p.client_ns):
            _ip("netns", "add", ns)
            made.append(ns)
        _ip("-n", p.server_ns, "link", "add", "kv0", "type", "veth",
            "peer", "name", "kv1", "netns", p.client_ns)
        for ns, dev, v4, v6 in ((p.server_ns, "kv0", p.server4, p.server6),
                                (p.client_ns, "kv1", p.client4, p.client6)):
            _ip("-n", ns, "link", "set", "lo", "up")
            _ip("-n", ns, "addr", "add", f"{v4}/30", "dev", dev)
            _ip("-n", ns, "addr", "add", f"{v6}/64", "dev", dev, "nodad")
            _ip("-n", ns, "link", "set", dev, "up")
        yield p
    finally:
        # Deleting a namespace also deletes its end of the veth pair, and so the pair.
        left = [f"{ns}: {why}" for ns in made if (why := _remove_netns(ns))]
        if left:
            raise RuntimeError("network namespaces left behind: " + "; ".join(left))


def _spawn(ns: str, program: str, cfg: dict) -> subprocess.Popen:
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(
        filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])))
    return subprocess.Popen(
        ["ip", "netns", "exec", ns, sys.executable, "-c", program, json.dumps(cfg)],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        text=True, cwd=ROOT, env=env,
    )


def _line(proc: subprocess.Popen, timeout: float) -> dict:
    ready, _, _ = select.select([proc.stdout], [], [], timeout)
    line = proc.stdout.readline() if ready else ""
    if not line:
        proc.kill()
        _, err = proc.communicate(timeout=5)
        raise AssertionError(f"helper gave no answer: {err.strip()}")
    return json.loads(line)


def _stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        proc.kill()
    proc.wait(timeout=10)
    for f in (proc.stdin, proc.stdout, proc.stderr):
        if f is not None and not f.closed:
            f.close()


def run_session(
    p: Pair,
    *,
    listen: str,
    remote: str,
    local: str,
    server_md5: list[dict] | None = None,
    client_key: bytes | None = None,
    min_ttl: int | None = None,
    ttl: int | None = None,
) -> tuple[dict, dict]:
    """Run the server in one namespace and the client in the other; both reports."""
    server_cfg = {
        "listen": listen,
        "md5": [dict(e, key=e["key"].hex()) for e in server_md5 or []],
        "min_ttl": min_ttl,
        "wait": PROC_TIMEOUT,
    }
    server = _spawn(p.server_ns, SERVER, server_cfg)
    client = None
    try:
        port = _line(server, PROC_TIMEOUT)["port"]
        client_cfg = {
            "remote": remote, "local": local, "port": port, "ttl": ttl,
            "key": client_key.hex() if client_key is not None else None,
            "timeout": BLOCK_TIMEOUT,
        }
        client = _spawn(p.client_ns, CLIENT, client_cfg)
        client_report = _line(client, PROC_TIMEOUT)
        server.stdin.close()  # the client is done: the server stops waiting
        server_report = _line(server, PROC_TIMEOUT)
        return server_report, client_report
    finally:
        _stop(server)
        if client is not None:
            _stop(client)


def grew(report: dict, counter: str) -> int:
    return report["md5_after"].get(counter, 0) - report["md5_before"].get(counter, 0)


def assert_connected(server: dict, client: dict) -> None:
    assert client["connected"], client
    assert client["reply"] == "echo:kbgp-hello"
    assert server["accepted"] and server["received"] == "kbgp-hello"


def assert_blocked(server: dict, client: dict) -> None:
    assert not client["connected"], client
    assert client["error"] == "timeout", client  # dropped, not refused
    assert not server["accepted"], server


FAMILIES = {
    # name: (server listens on, server's address, client's address, peer as the server sees it)
    "ipv4": lambda p: (p.server4, p.server4, p.client4),
    "ipv6": lambda p: (p.server6, p.server6, p.client6),
    # a dual-stack [::] listener, an IPv4 client: the server sees ::ffff:10.201.0.2
    "mapped": lambda p: ("::", p.server4, p.client4),
}


# --------------------------------------------------------------------------- TCP MD5

@pytest.mark.parametrize("family", ["ipv4", "ipv6", "mapped"])
def test_md5_matching_keys_connect(pair, md5_available, family):
    listen, remote, local = FAMILIES[family](pair)
    server, client = run_session(
        pair, listen=listen, remote=remote, local=local,
        server_md5=[{"peer": local, "key": SERVER_KEY}], client_key=SERVER_KEY,
    )
    assert_connected(server, client)
    if family == "mapped":
        assert server["peer"] == f"::ffff:{local}"
    assert grew(server, "TCPMD5Failure") == 0
    assert grew(server, "TCPMD5NotFound") == 0


@pytest.mark.parametrize("family", ["ipv4", "ipv6"])
def test_md5_prefix_key_connects(pair, md5_available, family):
    listen, remote, local = FAMILIES[family](pair)
    prefix = ("10.201.0.0", 30) if family == "ipv4" else ("fd00:201::", 64)
    server, client = run_session(
        pair, listen=listen, remote=remote, local=local,
        server_md5=[{"peer": prefix[0], "prefixlen": prefix[1], "key": SERVER_KEY}],
        client_key=SERVER_KEY,
    )
    assert_connected(server, client)


def test_md5_on_server_only_blocks(pair, md5_available):
    listen, remote, local = FAMILIES["ipv4"](pair)
    server, client = run_session(
        pair, listen=listen, remote=remote, local=local,
        server_md5=[{"peer": local, "key": SERVER_KEY}], client_key=None,
    )
    assert_blocked(server, client)
    assert grew(server, "TCPMD5NotFound") > 0, server


@pytest.mark.parametrize("family", ["ipv4", "ipv6"])
def test_md5_wrong_key_blocks(pair, md5_available, family):
    listen, remote, local = FAMILIES[family](pair)
    server, client = run_session(
        pair, listen=listen, remote=remote, local=local,
        server_md5=[{"peer": local, "key": SERVER_KEY}], client_key=WRONG_KEY,
    )
    assert_blocked(server, client)
    assert grew(server, "TCPMD5Failure") > 0, server


# --------------------------------------------------------------------------- GTSM

@pytest.mark.parametrize("family", ["ipv4", "ipv6", "mapped"])
def test_gtsm_ttl_255_connects(pair, family):
    listen, remote, local = FAMILIES[family](pair)
    server, client = run_session(
        pair, listen=listen, remote=remote, local=local, min_ttl=255, ttl=255,
    )
    assert_connected(server, client)
    assert server["minttl_drops"] == 0


@pytest.mark.parametrize("family", ["ipv4", "ipv6", "mapped"])
def test_gtsm_ttl_254_blocked(pair, family):
    listen, remote, local = FAMILIES[family](pair)
    server, client = run_session(
        pair, listen=listen, remote=remote, local=local, min_ttl=255, ttl=254,
    )
    assert_blocked(server, client)
    assert server["minttl_drops"] > 0, server
