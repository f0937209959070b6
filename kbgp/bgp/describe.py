"""Turn captured BGP bytes into the JSON records of ``kbgp decode``.

Two inputs: a raw byte stream (messages back to back, as written on a TCP
session) or one hex-encoded message per line.  Each message yields one record
(documented in the README); a malformed one carries ``error`` and decoding goes
on with the next message wherever framing allows.
"""
from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field

from kbgp._fast.attrs import AttrTable, DecodeContext, Update, decode_message, error_dict
from kbgp._fast.wire import split_message
from kbgp.bgp.constants import (
    HEADER_LEN,
    MARKER,
    ErrorCode,
    Handling,
    HeaderError,
    MsgType,
)
from kbgp.errors import BgpError, bgp_error

_TYPE_NAMES = {t.value: t.name.lower().replace("_", "-") for t in MsgType}


@dataclass(slots=True)
class Decoded:
    """One message of a capture: its header, its value, or the error that stopped it."""

    type_name: str
    length: int | None
    value: object | None = None
    error: BgpError | None = None

    def record(self) -> dict:
        rec: dict = {"type": self.type_name}
        if self.length is not None:
            rec["length"] = self.length
        if self.value is not None:
            rec.update(self.value.to_dict())
        if self.error is not None:
            rec["error"] = error_dict((self.error.code, self.error.subcode, int(self.error.handling), 0,
                                       self.error.reason))
        return rec


def decode_one(msg: bytes, ctx: DecodeContext, table: AttrTable | None, max_size: int) -> Decoded:
    """Decode one whole message (header included)."""
    length = int.from_bytes(msg[16:18], "big") if len(msg) >= 18 else None
    type_name = _TYPE_NAMES.get(msg[18], "unknown") if len(msg) >= 19 else "unknown"
    try:
        mtype, body = split_message(msg, max_size)
        return Decoded(type_name, length, decode_message(mtype, body, ctx, table))
    except BgpError as exc:
        if exc.code == ErrorCode.MESSAGE_HEADER:
            type_name = "unknown" if exc.subcode != HeaderError.BAD_MESSAGE_LENGTH else type_name
        return Decoded(type_name, length, None, exc)


def decode_stream(chunks: Iterable[bytes], ctx: DecodeContext, max_size: int) -> Iterator[Decoded]:
    """Messages from a raw byte stream.  A bad marker or an impossible length
    loses framing: that error is the last record."""
    table = AttrTable()
    buf = bytearray()
    pos = 0
    for chunk in chunks:
        buf += chunk
        while len(buf) - pos >= HEADER_LEN:
            if buf[pos:pos + 16] != MARKER:
                yield Decoded("unknown", None, None, bgp_error(
                    ErrorCode.MESSAGE_HEADER, HeaderError.CONNECTION_NOT_SYNCHRONIZED, b"",
                    Handling.SESSION_RESET, f"marker is not all ones at byte {pos}; framing lost"))
                return
            length = int.from_bytes(buf[pos + 16:pos + 18], "big")
            if length < HEADER_LEN or length > max_size:
                yield decode_one(bytes(buf[pos:pos + HEADER_LEN]), ctx, table, max_size)
                return
            if len(buf) - pos < length:
                break
            yield decode_one(bytes(buf[pos:pos + length]), ctx, table, max_size)
            pos += length
        if pos > 1 << 20:
            del buf[:pos]
            pos = 0
    if len(buf) - pos:
        yield Decoded("unknown", None, None, bgp_error(
            ErrorCode.MESSAGE_HEADER, HeaderError.BAD_MESSAGE_LENGTH, b"", Handling.SESSION_RESET,
            f"the input ends inside a message ({len(buf) - pos} bytes left over)"))


def decode_hex_lines(lines: Iterable[str], ctx: DecodeContext, max_size: int) -> Iterator[Decoded]:
    """One hex-encoded message per line; blank lines and '#' comments are skipped.
    Raises ValueError for a line that is not hex (unreadable input)."""
    table = AttrTable()
    for number, line in enumerate(lines, 1):
        text = line.strip()
        if not text or text.startswith("#"):
            continue
        try:
            msg = bytes.fromhex(text.replace(":", ""))
        except ValueError:
            raise ValueError(f"line {number} is not hexadecimal: {text[:40]!r}") from None
        yield decode_one(msg, ctx, table, max_size)


@dataclass(slots=True)
class Summary:
    """Counts for ``kbgp decode --summary``."""

    messages: Counter = field(default_factory=Counter)
    announced: Counter = field(default_factory=Counter)
    withdrawn: Counter = field(default_factory=Counter)
    errors: Counter = field(default_factory=Counter)

    def add(self, item: Decoded) -> None:
        self.messages[item.type_name] += 1
        value = item.value
        if isinstance(value, Update):
            self.announced["ipv4"] += len(value.nlri)
            self.withdrawn["ipv4"] += len(value.withdrawn)
            if value.mp_nlri is not None:
                self.announced["ipv4" if value.mp_nlri.afi == 1 else "ipv6"] += len(value.mp_nlri)
            if value.mp_withdrawn is not None:
                self.withdrawn["ipv4" if value.mp_withdrawn.afi == 1 else "ipv6"] += len(value.mp_withdrawn)
            if value.errors:
                self.errors[Handling(value.handling).label] += 1
        if item.error is not None:
            self.errors[item.error.handling.label] += 1

    def record(self) -> dict:
        return {
            "messages": dict(self.messages),
            "announced": {"ipv4": self.announced["ipv4"], "ipv6": self.announced["ipv6"]},
            "withdrawn": {"ipv4": self.withdrawn["ipv4"], "ipv6": self.withdrawn["ipv6"]},
            "errors": dict(self.errors),
        }
