"""The speaker's socket edge on loopback: unknown sources are refused before
anything is read, the control socket is private, and queued UPDATEs yield to
KEEPALIVEs (write back-pressure)."""
from __future__ import annotations

import asyncio
import logging
import os
import socket
import stat

import pytest

from kbgp._fast.attrs import PathAttributes, encode_attributes, encode_updates
from kbgp._fast.wire import KEEPALIVE, Framer, PrefixArray
from kbgp.bgp.capabilities import LocalSettings
from kbgp.bgp.session import Session
from kbgp.config import parse_speaker_config
from kbgp.control import request
from kbgp.io import tcp
from kbgp.speaker import Speaker


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def speaker_config(port: int) -> dict:
    return {
        "router-id": "10.0.0.1",
        "asn": 65001,
        "listen": [f"127.0.0.1:{port}"],
        "neighbors": [{"address": "127.0.0.2", "asn": 65002, "passive": True}],
    }


def test_unknown_source_is_closed_unread_and_logged_once_a_minute(tmp_path, caplog):
    port = free_port()
    sock_path = str(tmp_path / "kbgp.sock")

    async def scenario() -> list[bytes]:
        sp = Speaker(parse_speaker_config(speaker_config(port)), sock_path)
        await sp.start()
        got = []
        try:
            for _ in range(2):
                reader, writer = await asyncio.open_connection(
                    "127.0.0.1", port, local_addr=("127.0.0.3", 0))
                writer.write(b"\xff" * 16 + b"\x00\x13\x04")  # a KEEPALIVE nobody should read
                got.append(await asyncio.wait_for(reader.read(4096), 5))
                writer.close()
            # Status: the configured neighbour is listed in any state, mode 0600 socket.
            mode = stat.S_IMODE(os.stat(sock_path).st_mode)
            assert mode == 0o600, oct(mode)
            answer = await asyncio.to_thread(request, sock_path, {"cmd": "neighbors"})
            assert [n["address"] for n in answer["neighbors"]] == ["127.0.0.2"]
            assert answer["neighbors"][0]["state"] == "active"
        finally:
            await sp.stop()
        return got

    with caplog.at_level(logging.WARNING, logger="kbgp.io.tcp"):
        got = asyncio.run(scenario())
    assert got == [b"", b""]  # closed, nothing sent back: no OPEN, no NOTIFICATION
    refusals = [r for r in caplog.records if "not a configured neighbor" in r.getMessage()]
    assert len(refusals) == 1 and "127.0.0.3" in refusals[0].getMessage()


class SlowTransport:
    """Stands in for an asyncio transport whose peer stopped reading: it keeps
    what is written and reports it as unsent until drain() is called."""

    def __init__(self) -> None:
        self.written = bytearray()
        self.unsent = 0

    def write(self, data: bytes) -> None:
        self.written += data
        self.unsent += len(data)

    def get_write_buffer_size(self) -> int:
        return self.unsent

    def is_closing(self) -> bool:
        return False

    def close(self) -> None:
        pass

    def drain(self) -> None:
        self.unsent = 0


def test_queued_updates_never_hold_back_a_keepalive():
    """A 4 MB table for a peer that does not read: PeerLink writes at most
    HIGH_WATER plus one chunk, cut at message boundaries, so the KEEPALIVE the
    session writes next is that close to the head of the stream."""

    async def scenario() -> tuple[bytes, int, int]:
        session = Session(LocalSettings(asn=65001, router_id="10.0.0.1", peer_asn=65002, hold_time=3))
        link = tcp.PeerLink(session, "127.0.0.2", 179, local_address=None, password=None, ttl=1,
                            min_ttl=None, on_effect=lambda *_: None)
        proto = tcp.BgpProtocol(link, inbound=True)
        transport = SlowTransport()
        proto.transport = transport  # type: ignore[assignment]
        session.enabled = True
        link.apply(session.connection_made(proto, True, 0.0))
        from kbgp._fast.wire import encode_open
        from kbgp.bgp.capabilities import local_open
        peer_open = encode_open(local_open(LocalSettings(asn=65002, router_id="10.0.0.2", hold_time=3)))
        link.apply(session.data_received(proto, peer_open + KEEPALIVE, 0.0))
        assert session.established is not None
        transport.drain()
        start = len(transport.written)
        attrs = encode_attributes(PathAttributes(origin=0, as_path=[(2, (65001,))], next_hop="192.0.2.1"))
        table = encode_updates(PrefixArray.sequence("10.0.0.0/24", 1_000_000), attrs)
        link.send(table)
        first_write = len(transport.written) - start
        # The keepalive timer fires while the peer is still not reading.
        link.apply(session.timer(1.5))
        ka_at = transport.written.find(KEEPALIVE, start) - start
        # The peer reads again: the rest follows.
        while link.pending:
            transport.drain()
            link.writable()
        link.shutdown()
        return bytes(transport.written[start:]), first_write, ka_at, len(table)

    stream, first_write, ka_at, table_len = asyncio.run(scenario())
    assert first_write <= tcp.HIGH_WATER + tcp.CHUNK
    assert 0 < ka_at <= tcp.HIGH_WATER + tcp.CHUNK
    assert ka_at == first_write  # right after the first write, between two messages
    # Everything arrives, as whole messages, with the keepalive between two UPDATEs.
    msgs = Framer(4096).messages(stream)
    assert sum(1 for t, _ in msgs if t == 2) == len(Framer(4096).messages(stream[:ka_at] + stream[ka_at + 19:]))
    assert len(stream) == table_len + len(KEEPALIVE)
    assert [t for t, _ in msgs].count(4) == 1


def test_reload_resets_changed_and_deconfigures_removed_neighbors(tmp_path):
    pa, pb = free_port(), free_port()

    def cfg(router_id, asn, listen, peer, peer_asn, peer_port, hold=90):
        return parse_speaker_config({
            "router-id": router_id, "asn": asn, "listen": [listen], "connect-retry": 1,
            "neighbors": [{"address": peer, "asn": peer_asn, "port": peer_port, "local-address": listen.split(":")[0],
                           "hold-time": hold}]})

    a_cfg = cfg("10.0.0.1", 65001, f"127.0.0.1:{pa}", "127.0.0.2", 65002, pb)
    b_cfg = cfg("10.0.0.2", 65002, f"127.0.0.2:{pb}", "127.0.0.1", 65001, pa)

    async def until(cond, what, timeout=10.0):
        for _ in range(int(timeout / 0.05)):
            if cond():
                return
            await asyncio.sleep(0.05)
        raise AssertionError(f"timed out waiting for {what}")

    async def scenario():
        a = Speaker(a_cfg, str(tmp_path / "a.sock"))
        b = Speaker(b_cfg, str(tmp_path / "b.sock"))
        await a.start()
        await b.start()
        try:
            bs = lambda: b.peers["127.0.0.1"].session  # noqa: E731
            await until(lambda: bs().state.value == "established", "the session")
            # hold-time changed: reset with Cease 6/6, and the session comes back.
            a.reconfigure(cfg("10.0.0.1", 65001, f"127.0.0.1:{pa}", "127.0.0.2", 65002, pb, hold=30))
            await until(lambda: bs().last_notification_in is not None, "Cease 6/6")
            note = bs().last_notification_in
            assert (note.code, note.subcode) == (6, 6)
            await until(lambda: bs().state.value == "established", "the session again")
            assert bs().negotiated.hold_time == 30
            # neighbour removed: Cease 6/3, and it stays down.
            a.reconfigure(parse_speaker_config({"router-id": "10.0.0.1", "asn": 65001,
                                                "listen": [f"127.0.0.1:{pa}"]}))
            await until(lambda: (bs().last_notification_in.code, bs().last_notification_in.subcode) == (6, 3),
                        "Cease 6/3")
            assert "127.0.0.2" not in a.peers
            # A change that needs a restart is refused; the running config stays.
            a.reconfigure(parse_speaker_config({"router-id": "10.0.0.9", "asn": 65001}))
            assert a.config.router_id == "10.0.0.1"
        finally:
            await a.stop()
            await b.stop()

    asyncio.run(scenario())


def test_rib_per_neighbor_in_and_out(tmp_path):
    pa, pb = free_port(), free_port()
    a_cfg = parse_speaker_config({
        "router-id": "10.0.0.1", "asn": 65001, "listen": [f"127.0.0.1:{pa}"], "connect-retry": 1,
        "neighbors": [{"address": "127.0.0.2", "asn": 65002, "port": pb, "local-address": "127.0.0.1",
                       "import": "accept", "export": "accept"}],
        "originate": [{"prefix": "10.1.0.0/24", "next-hop": "192.0.2.1", "communities": ["65001:7"]}]})
    b_cfg = parse_speaker_config({
        "router-id": "10.0.0.2", "asn": 65002, "listen": [f"127.0.0.2:{pb}"], "connect-retry": 1,
        "neighbors": [{"address": "127.0.0.1", "asn": 65001, "port": pa, "local-address": "127.0.0.2",
                       "import": "accept", "export": "reject"}]})

    async def scenario():
        a = Speaker(a_cfg, str(tmp_path / "a.sock"))
        b = Speaker(b_cfg, str(tmp_path / "b.sock"))
        await a.start()
        await b.start()
        try:
            for _ in range(200):
                if b.rib_entries(neighbor="127.0.0.1", direction="in"):
                    break
                await asyncio.sleep(0.05)
            rib_in = await asyncio.to_thread(request, str(tmp_path / "b.sock"),
                                             {"cmd": "rib", "neighbor": "127.0.0.1", "direction": "in"})
            rib_out = await asyncio.to_thread(request, str(tmp_path / "a.sock"),
                                              {"cmd": "rib", "neighbor": "127.0.0.2", "direction": "out"})
            b_out = b.rib_entries(neighbor="127.0.0.1", direction="out")
            with pytest.raises(Exception, match="not a configured neighbor"):
                await asyncio.to_thread(request, str(tmp_path / "a.sock"),
                                        {"cmd": "rib", "neighbor": "10.9.9.9", "direction": "in"})
        finally:
            await a.stop()
            await b.stop()
        return rib_in["routes"], rib_out["routes"], b_out

    rib_in, rib_out, b_out = asyncio.run(scenario())
    assert [(r["prefix"], r["as_path"], r["next_hop"], r["communities"], r["best"]) for r in rib_in] == [
        ("10.1.0.0/24", [65001], "192.0.2.1", ["65001:7"], True)]
    assert [(r["prefix"], r["as_path"], r["next_hop"], r["local_pref"]) for r in rib_out] == [
        ("10.1.0.0/24", [65001], "192.0.2.1", None)]
    assert b_out == []  # export: reject toward A


def test_rib_lists_both_families_in_order(tmp_path):
    cfg = parse_speaker_config({
        "router-id": "10.0.0.1", "asn": 65001,
        "originate": [{"prefix": "2001:db8::/48"}, {"prefix": "10.2.0.0/24"}, {"prefix": "10.1.0.0/24"}]})

    async def scenario():
        sp = Speaker(cfg, str(tmp_path / "k.sock"))
        await sp.start()
        try:
            return await asyncio.to_thread(request, str(tmp_path / "k.sock"), {"cmd": "rib"})
        finally:
            await sp.stop()

    routes = asyncio.run(scenario())["routes"]
    assert [r["prefix"] for r in routes] == ["10.1.0.0/24", "10.2.0.0/24", "2001:db8::/48"]
    assert all(r["best"] and r["neighbor"] is None for r in routes)


def test_update_group_sends_a_members_routes_to_the_others_only(tmp_path):
    """Three route-reflector clients share one update group.  Whichever of
    them announces (here the first to come up, which is the group's first
    member), the other two get its routes, reflected, and it gets none back."""
    from kbgp._fast.attrs import DecodeContext, decode_update
    from kbgp._fast.wire import encode_open
    from kbgp.bgp.capabilities import local_open

    port = free_port()
    clients = ["127.0.0.2", "127.0.0.3", "127.0.0.4"]
    cfg = {"router-id": "10.0.0.1", "asn": 65001, "listen": [f"127.0.0.1:{port}"],
           "cluster-id": "10.9.9.9",
           "neighbors": [{"address": a, "asn": 65001, "passive": True, "route-reflector-client": True}
                         for a in clients]}

    async def client(address: str, announce: bytes | None, got: dict, up: asyncio.Event,
                     go: asyncio.Event) -> None:
        reader, writer = await asyncio.open_connection("127.0.0.1", port, local_addr=(address, 0))
        writer.write(encode_open(local_open(LocalSettings(asn=65001, router_id=address, hold_time=30))))
        framer = Framer()
        prefixes: set[str] = set()
        eor = False
        while True:
            data = await reader.read(65536)
            assert data, f"{address}: connection closed"
            for mtype, body in framer.messages(data):
                if mtype == 1:
                    writer.write(KEEPALIVE)
                elif mtype == 4:
                    up.set()
                elif mtype == 2:
                    u = decode_update(body, DecodeContext(asn4=True, ibgp=True))
                    if u.end_of_rib is not None:
                        eor = True
                        continue
                    prefixes.update(u.nlri.to_strings())
                    got.setdefault("attrs", u.attrs)
            got["prefixes"] = prefixes
            if eor and announce is not None:
                await go.wait()
                writer.write(announce)
                announce = None

    async def scenario():
        sp = Speaker(parse_speaker_config(cfg), str(tmp_path / "kbgp.sock"))
        await sp.start()
        got = {a: {} for a in clients}
        ups = {a: asyncio.Event() for a in clients}
        go = asyncio.Event()
        attrs = encode_attributes(PathAttributes(origin=0, as_path=[], next_hop="192.0.2.77", local_pref=100))
        announce = encode_updates(PrefixArray.from_strings(["192.0.2.0/24", "198.51.100.0/24"]), attrs)
        tasks = [asyncio.create_task(client(clients[0], announce, got[clients[0]], ups[clients[0]], go))]
        await asyncio.wait_for(ups[clients[0]].wait(), 10)
        for a in clients[1:]:
            tasks.append(asyncio.create_task(client(a, None, got[a], ups[a], go)))
            await asyncio.wait_for(ups[a].wait(), 10)
        # The announcing client is the group's first member.
        group = next(iter(sp.groups.values()))
        assert [p.key for p in group.members] == clients and len(sp.groups) == 1
        go.set()
        try:
            for _ in range(100):
                if all(len(got[a].get("prefixes", ())) == 2 for a in clients[1:]):
                    break
                await asyncio.sleep(0.05)
            await asyncio.sleep(0.3)
        finally:
            for t in tasks:
                t.cancel()
            await sp.stop()
        return got

    got = asyncio.run(scenario())
    for a in clients[1:]:
        assert got[a]["prefixes"] == {"192.0.2.0/24", "198.51.100.0/24"}, (a, got[a])
        assert got[a]["attrs"].originator_id == "127.0.0.2"
        assert list(got[a]["attrs"].cluster_list) == ["10.9.9.9"]
    assert got[clients[0]].get("prefixes", set()) == set()
