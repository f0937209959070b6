"""The local control socket behind ``kbgp neighbors`` and ``kbgp rib``.

A Unix stream socket, mode 0600 (root only by default): one JSON request per
line, one JSON answer per line.  Requests: ``{"cmd": "neighbors"}``,
``{"cmd": "rib", "family": "ipv4"|"ipv6"|null, "neighbor": ADDR, "direction": "in"|"out"}``, ``{"cmd": "refresh",
"neighbor": ADDR}``.  Nothing secret is ever in an answer: neighbour
passwords are not part of any reply.
"""
from __future__ import annotations

import asyncio
import contextlib
import os
import socket
from typing import Any

import orjson

from kbgp.bgp.messages import parse_family
from kbgp.errors import KbgpError

DEFAULT_CONTROL_SOCKET = "/run/kbgp/kbgp.sock"


class ControlServer:
    def __init__(self, path: str, speaker: Any) -> None:
        self.path = path
        self.speaker = speaker
        self.server: asyncio.AbstractServer | None = None

    async def start(self) -> None:
        os.makedirs(os.path.dirname(os.path.abspath(self.path)), exist_ok=True)
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.path)
        old = os.umask(0o177)
        try:
            self.server = await asyncio.start_unix_server(self._client, path=self.path)
        finally:
            os.umask(old)
        os.chmod(self.path, 0o600)

    async def stop(self) -> None:
        if self.server is not None:
            self.server.close()
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.path)

    async def _client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            line = await reader.readline()
            try:
                answer = self.handle(orjson.loads(line))
            except (orjson.JSONDecodeError, ValueError, TypeError, KeyError) as exc:
                answer = {"error": f"bad request: {exc}"}
            writer.write(orjson.dumps(answer) + b"\n")
            await writer.drain()
        finally:
            writer.close()

    def handle(self, req: dict) -> dict:
        cmd = req.get("cmd")
        if cmd == "neighbors":
            return {"neighbors": self.speaker.neighbors()}
        if cmd == "rib":
            fam = req.get("family")
            direction = req.get("direction")
            if direction not in (None, "in", "out"):
                return {"error": f"direction must be 'in' or 'out', not {direction!r}"}
            return {"routes": self.speaker.rib_entries(parse_family(fam) if fam else None,
                                                       req.get("neighbor"), direction)}
        if cmd == "refresh":
            ok = self.speaker.request_refresh(str(req["neighbor"]))
            return {"ok": ok}
        return {"error": f"unknown command {cmd!r}"}


def request(path: str, req: dict, timeout: float = 10.0) -> dict:
    """Send one request to a running kbgp and return its answer."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        s.settimeout(timeout)
        try:
            s.connect(path)
        except FileNotFoundError:
            raise KbgpError(f"no kbgp control socket at {path}: is kbgp running?") from None
        except PermissionError:
            raise KbgpError(f"permission denied on {path}: the control socket is for root") from None
        except ConnectionRefusedError:
            raise KbgpError(f"nothing listens on {path}: kbgp is not running") from None
        s.sendall(orjson.dumps(req) + b"\n")
        chunks = []
        while True:
            data = s.recv(1 << 20)
            if not data:
                break
            chunks.append(data)
    answer = orjson.loads(b"".join(chunks))
    if "error" in answer:
        raise KbgpError(answer["error"])
    return answer
