"""kbgp's command line: one program, several subcommands.

Flag names follow kube-router where a kube-router flag exists, so a manifest
can switch from kube-router to kbgp unchanged.
"""
from __future__ import annotations

import argparse
import importlib
import importlib.machinery
import platform
import sys
from collections.abc import Sequence

import orjson

from kbgp import __version__
from kbgp._fast import MODULES


def fast_modules() -> dict[str, dict]:
    """Per kbgp._fast module: whether it is a compiled extension, and from where."""
    out: dict[str, dict] = {}
    for name in MODULES:
        try:
            mod = importlib.import_module(f"kbgp._fast.{name}")
        except ImportError as exc:
            out[name] = {"compiled": False, "error": str(exc)}
            continue
        path = getattr(mod, "__file__", "") or ""
        compiled = path.endswith(tuple(importlib.machinery.EXTENSION_SUFFIXES))
        out[name] = {"compiled": compiled, "path": path}
    return out


def cmd_version(args: argparse.Namespace) -> int:
    mods = fast_modules()
    ok = all(m["compiled"] for m in mods.values())
    if args.json:
        sys.stdout.buffer.write(orjson.dumps({
            "version": __version__,
            "python": platform.python_version(),
            "compiled": ok,
            "fast": mods,
        }) + b"\n")
    else:
        print(f"kbgp {__version__} (Python {platform.python_version()})")
        for name, info in mods.items():
            state = "compiled" if info["compiled"] else "NOT COMPILED"
            where = info.get("path") or info.get("error", "")
            print(f"  kbgp._fast.{name}: {state} ({where})")
    return 0 if ok else 1


def cmd_decode(args: argparse.Namespace) -> int:
    from kbgp._fast.attrs import DecodeContext
    from kbgp.bgp.constants import MAX_EXTENDED_MESSAGE_LEN, MAX_MESSAGE_LEN
    from kbgp.bgp.describe import Summary, decode_hex_lines, decode_stream

    ctx = DecodeContext(asn4=not args.no_asn4, ibgp=args.ibgp)
    max_size = MAX_EXTENDED_MESSAGE_LEN if args.extended_message else MAX_MESSAGE_LEN
    try:
        if args.file == "-":
            stream = sys.stdin.buffer
        else:
            stream = open(args.file, "rb")  # noqa: SIM115 - closed below
    except OSError as exc:
        print(f"kbgp decode: cannot read {args.file}: {exc.strerror}", file=sys.stderr)
        return 2
    out = sys.stdout.buffer
    summary = Summary() if args.summary else None
    try:
        if args.hex:
            lines = (line.decode("ascii", errors="replace") for line in stream)
            items = decode_hex_lines(lines, ctx, max_size)
        else:
            items = decode_stream(iter(lambda: stream.read(1 << 20), b""), ctx, max_size)
        for item in items:
            if summary is not None:
                summary.add(item)
            else:
                out.write(orjson.dumps(item.record()) + b"\n")
    except ValueError as exc:
        print(f"kbgp decode: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:
        print(f"kbgp decode: reading {args.file} failed: {exc.strerror}", file=sys.stderr)
        return 2
    finally:
        if stream is not sys.stdin.buffer:
            stream.close()
    if summary is not None:
        out.write(orjson.dumps(summary.record()) + b"\n")
    out.flush()
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="kbgp", description="BGP agent for Kubernetes nodes")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True

    p = sub.add_parser("version", help="print the version and whether the compiled modules are in use")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(func=cmd_version)

    p = sub.add_parser("decode", help="decode BGP messages to JSON, one object per message")
    p.add_argument("file", metavar="FILE|-", help="a raw BGP byte stream, or '-' for standard input")
    p.add_argument("--hex", action="store_true", help="the input holds one hex-encoded message per line")
    p.add_argument("--summary", action="store_true", help="print one object of counts instead")
    p.add_argument("--no-asn4", action="store_true",
                   help="decode as from a peer without the 4-octet AS capability (2-octet AS_PATH)")
    p.add_argument("--ibgp", action="store_true", help="decode as from an internal (iBGP) peer")
    p.add_argument("--extended-message", action="store_true",
                   help="accept messages up to 65535 bytes (RFC 8654 negotiated)")
    p.set_defaults(func=cmd_decode)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return args.func(args)
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        return 0
