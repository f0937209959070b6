"""The command line as an operator uses it: `kbgp version` and `kbgp decode`."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from kbgp import __version__
from kbgp._fast import MODULES
from kbgp._fast.attrs import PathAttributes, encode_attributes, encode_end_of_rib, encode_updates
from kbgp._fast.wire import KEEPALIVE, PrefixArray, encode_notification, shutdown_communication

ROOT = Path(__file__).resolve().parents[2]


def kbgp(*args: str, stdin: bytes | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "kbgp", *args], input=stdin, capture_output=True,
                          cwd=ROOT, timeout=60)


def test_every_fast_module_is_compiled():
    # The source tree's .pyx files and the list kbgp reports on are the same set.
    assert sorted(MODULES) == sorted(p.stem for p in (ROOT / "kbgp" / "_fast").glob("*.pyx"))
    res = kbgp("version", "--json")
    assert res.returncode == 0, res.stderr
    info = json.loads(res.stdout)
    assert info["version"] == __version__
    assert info["compiled"] is True
    for name in MODULES:
        assert info["fast"][name]["compiled"] is True, f"kbgp._fast.{name} is not a compiled extension"
        assert info["fast"][name]["path"].endswith(".so")


def test_version_text_names_each_module():
    res = kbgp("version")
    assert res.returncode == 0
    for name in MODULES:
        assert f"kbgp._fast.{name}: compiled" in res.stdout.decode()


@pytest.fixture
def capture(tmp_path: Path) -> Path:
    attrs = encode_attributes(PathAttributes(origin=0, as_path=[(2, (65001,))], next_hop="192.0.2.1"))
    v6 = encode_attributes(PathAttributes(origin=0, as_path=[(2, (65001,))]))
    data = (encode_updates(PrefixArray.sequence("10.0.0.0/24", 2500), attrs)
            + encode_updates(PrefixArray.sequence("2001:db8::/48", 10), v6,
                             mp_next_hop=bytes.fromhex("20010db8" + "00" * 11 + "01"))
            + encode_updates(withdraw=PrefixArray.from_strings(["10.9.0.0/16"]))
            + encode_end_of_rib(1, 1) + KEEPALIVE
            + encode_notification(6, 2, shutdown_communication("maintenance")))
    path = tmp_path / "capture.bgp"
    path.write_bytes(data)
    return path


def test_decode_prints_one_object_per_message(capture: Path):
    res = kbgp("decode", str(capture))
    assert res.returncode == 0, res.stderr
    records = [json.loads(line) for line in res.stdout.splitlines()]
    types = [r["type"] for r in records]
    assert types.count("update") == 3 + 1 + 1 + 1
    assert types[-2:] == ["keepalive", "notification"]
    first = records[0]
    assert first["announced"][0] == "10.0.0.0/24"
    assert first["attributes"] == {"origin": "igp", "as_path": [{"type": "as-sequence", "asns": [65001]}],
                                   "next_hop": "192.0.2.1"}
    v6 = records[3]
    assert v6["announced"][:2] == ["2001:db8::/48", "2001:db8:1::/48"]
    assert v6["attributes"]["mp_next_hop"] == ["2001:db8::1"]
    assert records[4]["withdrawn"] == ["10.9.0.0/16"]
    assert records[5]["end_of_rib"] == "ipv4-unicast"
    assert records[-1]["shutdown_message"] == "maintenance"
    assert records[-1]["name"] == "CEASE/ADMINISTRATIVE_SHUTDOWN"


def test_decode_summary_counts(capture: Path):
    res = kbgp("decode", "--summary", str(capture))
    assert res.returncode == 0
    summary = json.loads(res.stdout)
    assert summary["messages"] == {"update": 6, "keepalive": 1, "notification": 1}
    assert summary["announced"] == {"ipv4": 2500, "ipv6": 10}
    assert summary["withdrawn"] == {"ipv4": 1, "ipv6": 0}
    assert summary["errors"] == {}


def test_decode_hex_goes_on_after_a_malformed_message():
    bad_origin = ("ffffffffffffffffffffffffffffffff" "002f" "02" "0000" "0014"
                  "40010105" "400206020100000001" "400304c0000201" "180a0000")
    lines = "\n".join([KEEPALIVE.hex(), bad_origin, "# a comment", "", KEEPALIVE.hex()]) + "\n"
    res = kbgp("decode", "--hex", "-", stdin=lines.encode())
    assert res.returncode == 0, res.stderr
    records = [json.loads(line) for line in res.stdout.splitlines()]
    assert [r["type"] for r in records] == ["keepalive", "update", "keepalive"]
    assert records[1]["error"]["handling"] == "treat-as-withdraw"
    assert (records[1]["error"]["code"], records[1]["error"]["subcode"]) == (3, 6)
    assert records[1]["announced"] == ["10.0.0.0/24"]


def test_decode_no_asn4_reads_two_octet_paths():
    msg = ("ffffffffffffffffffffffffffffffff" "002d" "02" "0000" "0012"
           "40010100" "4002040201fde9" "400304c0000201" "180a0000")
    res = kbgp("decode", "--hex", "--no-asn4", "-", stdin=msg.encode())
    rec = json.loads(res.stdout)
    assert rec["attributes"]["as_path"] == [{"type": "as-sequence", "asns": [65001]}]
    assert "error" not in rec


def test_decode_ibgp_requires_local_pref():
    msg = ("ffffffffffffffffffffffffffffffff" "002d" "02" "0000" "0012"
           "40010100" "4002040201fde9" "400304c0000201" "180a0000")
    res = kbgp("decode", "--hex", "--no-asn4", "--ibgp", "-", stdin=msg.encode())
    rec = json.loads(res.stdout)
    assert rec["error"]["subcode"] == 3 and rec["error"]["handling"] == "treat-as-withdraw"


def test_decode_stops_when_framing_is_lost(tmp_path: Path):
    path = tmp_path / "broken.bgp"
    path.write_bytes(KEEPALIVE + b"\x00" * 19 + KEEPALIVE)
    res = kbgp("decode", str(path))
    assert res.returncode == 0
    records = [json.loads(line) for line in res.stdout.splitlines()]
    assert len(records) == 2
    assert records[1]["error"]["code"] == 1 and records[1]["error"]["subcode"] == 1


def test_decode_bad_usage_and_unreadable_input(tmp_path: Path):
    assert kbgp("decode").returncode == 2
    missing = kbgp("decode", str(tmp_path / "nope.bgp"))
    assert missing.returncode == 2
    assert b"cannot read" in missing.stderr
    not_hex = kbgp("decode", "--hex", "-", stdin=b"zz\n")
    assert not_hex.returncode == 2
    assert b"line 1 is not hexadecimal" in not_hex.stderr


def test_bundled_sample_decodes():
    res = kbgp("decode", "--summary", str(ROOT / "kbgp" / "data" / "sample.bgp"))
    assert res.returncode == 0
    summary = json.loads(res.stdout)
    assert summary["announced"] == {"ipv4": 6, "ipv6": 4}
    assert summary["errors"] == {}
