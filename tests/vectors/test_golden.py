"""Golden vectors: OPEN and UPDATE bytes captured from real BIRD 2, GoBGP and
FRR (tests/vectors/golden/capture.py), decoded by kbgp and compared with what
each daemon was configured to send."""
from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pytest

from kbgp._fast.attrs import DecodeContext
from kbgp.bgp.constants import MAX_MESSAGE_LEN
from kbgp.bgp.describe import decode_stream

GOLDEN = Path(__file__).parent / "golden"
DAEMONS = sorted(p.name for p in GOLDEN.iterdir() if (p / "stream.bin").exists())


def test_all_three_daemons_captured():
    assert {"bird", "gobgp", "frr"} <= set(DAEMONS)


@pytest.mark.parametrize("daemon", DAEMONS)
def test_capture_decodes_to_the_configured_routes(daemon: str):
    expected = json.loads((GOLDEN / daemon / "expected.json").read_text())
    stream = (GOLDEN / daemon / "stream.bin").read_bytes()
    records = [d.record() for d in decode_stream([stream], DecodeContext(), MAX_MESSAGE_LEN)]

    assert not [r for r in records if "error" in r], "a real daemon's messages decoded with errors"
    assert Counter(r["type"] for r in records) == Counter(expected["message_types"])

    opens = [r for r in records if r["type"] == "open"]
    assert len(opens) == 1
    o = expected["open"]
    assert opens[0]["asn"] == o["asn"]
    assert opens[0]["router_id"] == o["router_id"]
    assert opens[0]["hold_time"] == o["hold_time"]
    assert sorted(c["code"] for c in opens[0]["capabilities"]) == sorted(o["capabilities"])

    routes = {}
    eor = []
    for r in records:
        if r["type"] != "update":
            continue
        if "end_of_rib" in r:
            eor.append(r["end_of_rib"])
        for prefix in r["announced"]:
            assert prefix not in routes, f"{prefix} announced twice"
            routes[prefix] = r["attributes"]
    assert routes == expected["routes"]
    assert sorted(eor) == sorted(expected["end_of_rib"])
