"""kbgp's command line: one program, several subcommands.

Flag names follow kube-router where a kube-router flag exists, so a manifest
can switch from kube-router to kbgp unchanged.
"""
from __future__ import annotations

import argparse
import importlib
import importlib.machinery
import os
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


def _setup_logging(level: str) -> None:
    import logging

    logging.basicConfig(level=getattr(logging, level.upper(), logging.INFO),
                        format="%(asctime)s %(levelname)s %(name)s %(message)s")


def cmd_speaker(args: argparse.Namespace) -> int:
    from kbgp.config import load_speaker_config
    from kbgp.errors import ConfigError
    from kbgp.speaker import run_speaker

    _setup_logging(args.log_level)
    try:
        config = load_speaker_config(args.config)
    except ConfigError as exc:
        print(f"kbgp speaker: {exc}", file=sys.stderr)
        return 2
    import logging

    for warning in config.warnings:
        logging.getLogger("kbgp.config").warning("%s", warning)
    try:
        return run_speaker(config, args.control_socket)
    except OSError as exc:
        print(f"kbgp speaker: {exc}", file=sys.stderr)
        return 1


def _control(args: argparse.Namespace, req: dict) -> dict | None:
    from kbgp.control import request
    from kbgp.errors import KbgpError

    try:
        return request(args.control_socket, req)
    except KbgpError as exc:
        print(f"kbgp {args.command}: {exc}", file=sys.stderr)
        return None
    except OSError as exc:
        print(f"kbgp {args.command}: {args.control_socket}: {exc.strerror or exc}", file=sys.stderr)
        return None


def cmd_neighbors(args: argparse.Namespace) -> int:
    answer = _control(args, {"cmd": "neighbors"})
    if answer is None:
        return 1
    rows = answer["neighbors"]
    if args.json:
        sys.stdout.buffer.write(orjson.dumps(rows, option=orjson.OPT_INDENT_2) + b"\n")
        return 0
    print(f"{'NEIGHBOR':<26} {'AS':>10} {'STATE':<12} {'UPTIME':>9} {'RCVD':>7} {'ACPT':>7} {'ADV':>7}  INFO")
    for r in rows:
        print(f"{r['address']:<26} {r['asn']:>10} {r['state']:<12} {r['uptime']:>9.0f} {r['received']:>7} "
              f"{r['accepted']:>7} {r['advertised']:>7}  {r['last_error']}")
    return 0


def cmd_rib(args: argparse.Namespace) -> int:
    if (args.neighbor is None) != (args.direction is None):
        print("kbgp rib: --neighbor needs --in or --out, and --in/--out need --neighbor", file=sys.stderr)
        return 2
    answer = _control(args, {"cmd": "rib", "family": args.family, "neighbor": args.neighbor,
                             "direction": args.direction})
    if answer is None:
        return 1
    rows = answer["routes"]
    if args.json:
        sys.stdout.buffer.write(orjson.dumps(rows, option=orjson.OPT_INDENT_2) + b"\n")
        return 0
    print(f"   {'PREFIX':<30} {'NEXT HOP':<26} {'FROM':<20} AS PATH")
    for r in rows:
        mark = "*>" if r["best"] else ("  " if r["best"] is None else "* ")
        path = " ".join(str(a) for a in r["as_path"]) or "-"
        print(f"{mark} {r['prefix']:<30} {str(r['next_hop']):<26} {str(r['neighbor'] or 'local'):<20} {path}")
    return 0


def cmd_refresh(args: argparse.Namespace) -> int:
    answer = _control(args, {"cmd": "refresh", "neighbor": args.neighbor})
    if answer is None:
        return 1
    if not answer.get("ok"):
        print(f"kbgp refresh: {args.neighbor} is not an established neighbor", file=sys.stderr)
        return 1
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

    from kbgp.control import DEFAULT_CONTROL_SOCKET

    p = sub.add_parser("speaker", help="run the standalone BGP speaker from a YAML configuration")
    p.add_argument("--config", required=True, help="the speaker's YAML (or JSON) configuration file")
    p.add_argument("--control-socket", default=DEFAULT_CONTROL_SOCKET,
                   help=f"where to listen for kbgp neighbors/rib (default {DEFAULT_CONTROL_SOCKET})")
    p.add_argument("--log-level", default="info", choices=["debug", "info", "warning", "error"])
    p.set_defaults(func=cmd_speaker)

    sub.add_parser("agent", help="run the Kubernetes node agent (kube-router's flags; see README.md)",
                   add_help=False)

    p = sub.add_parser("neighbors", help="list the neighbors of a running kbgp")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.add_argument("--control-socket", default=DEFAULT_CONTROL_SOCKET)
    p.set_defaults(func=cmd_neighbors)

    p = sub.add_parser("rib", help="show the routes of a running kbgp")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.add_argument("--family", choices=["ipv4", "ipv6"], help="one address family (default: both)")
    p.add_argument("--neighbor", help="one neighbor's routes (with --in or --out)")
    way = p.add_mutually_exclusive_group()
    way.add_argument("--in", dest="direction", action="store_const", const="in",
                     help="the neighbor's Adj-RIB-In: what it sent and import policy accepted")
    way.add_argument("--out", dest="direction", action="store_const", const="out",
                     help="the neighbor's Adj-RIB-Out: what it was sent, with the attributes sent")
    p.add_argument("--control-socket", default=DEFAULT_CONTROL_SOCKET)
    p.set_defaults(func=cmd_rib)

    p = sub.add_parser("refresh", help="ask a neighbor to send its routes again (ROUTE-REFRESH, RFC 2918)")
    p.add_argument("neighbor", help="the neighbor's address")
    p.add_argument("--control-socket", default=DEFAULT_CONTROL_SOCKET)
    p.set_defaults(func=cmd_refresh)
    return parser


def cmd_agent(argv: list[str]) -> int:
    """``kbgp agent [kube-router flags]``: kube-router's own flag syntax (pflag),
    so it is parsed by kbgp.cluster.flags, not argparse."""
    from kbgp.cluster.flags import parse_agent_args
    from kbgp.errors import ConfigError, KbgpError

    try:
        flags, warnings = parse_agent_args(argv, os.environ)
    except ConfigError as exc:
        print(f"kbgp agent: {exc}", file=sys.stderr)
        return 2
    if flags.help:
        from kbgp.cluster.flags import usage
        print(usage(), end="")
        return 0
    if flags.version:
        print(f"kbgp {__version__}")
        return 0
    _setup_logging(flags.log_level)
    from kbgp.agent import run_agent
    try:
        return run_agent(flags, warnings)
    except KbgpError as exc:
        print(f"kbgp agent: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:
        print(f"kbgp agent: {exc}", file=sys.stderr)
        return 1


def main(argv: Sequence[str] | None = None) -> int:
    args_list = list(sys.argv[1:] if argv is None else argv)
    # Installed (or linked) under kube-router's name, kbgp is the agent.
    invoked = os.path.basename(sys.argv[0]) if argv is None else ""
    if invoked == "kube-router":
        return cmd_agent(args_list)
    if args_list[:1] == ["agent"]:
        return cmd_agent(args_list[1:])
    parser = build_parser()
    args = parser.parse_args(args_list)
    try:
        return args.func(args)
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        return 0
