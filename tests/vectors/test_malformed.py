"""The malformed-message corpus: each case decodes to the handling and the
NOTIFICATION code/subcode that RFC 4271, RFC 7606 and the robustness notes
require, through the same path as `kbgp decode`."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from kbgp._fast.attrs import AttrTable, DecodeContext
from kbgp.bgp.constants import MAX_EXTENDED_MESSAGE_LEN, MAX_MESSAGE_LEN
from kbgp.bgp.describe import decode_one

CORPUS = Path(__file__).parent / "malformed"
CASES = sorted(CORPUS.glob("*.json"))


def test_corpus_is_large_enough():
    assert len(CASES) >= 80


def decode_case(case: dict) -> dict:
    c = case["context"]
    ctx = DecodeContext(asn4=c.get("asn4", True), ibgp=c.get("ibgp", False))
    max_size = MAX_EXTENDED_MESSAGE_LEN if c.get("extended_message") else MAX_MESSAGE_LEN
    return decode_one(bytes.fromhex(case["hex"]), ctx, AttrTable(), max_size).record()


@pytest.mark.parametrize("path", CASES, ids=[p.stem for p in CASES])
def test_case(path: Path):
    case = json.loads(path.read_text())
    expect = case["expect"]
    rec = decode_case(case)
    if expect["handling"] == "none":
        assert "error" not in rec, f"{case['description']}: unexpected {rec.get('error')}"
    else:
        assert "error" in rec, f"{case['description']}: no error reported"
        err = rec["error"]
        got = (err["handling"], err["code"], err["subcode"])
        assert got == (expect["handling"], expect["code"], expect["subcode"]), (
            f"{case['description']}: got {got} ({err['reason']})")
    if "announced" in expect:
        assert rec.get("announced") == expect["announced"]
    if "withdrawn" in expect:
        assert rec.get("withdrawn") == expect["withdrawn"]
    for key in expect.get("absent_attributes", ()):
        assert key not in rec.get("attributes", {}), f"{key} should have been discarded"
