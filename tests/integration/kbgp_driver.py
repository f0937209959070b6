"""kbgp's own speaker as one more daemon of the integration harness.

    kb = kbgp_factory(ns_k, "10.0.0.1", 65001, listen=["[::]:179"])
    kb.add_neighbor("10.0.0.2", 65002, families=["ipv4"])        # import/export: accept
    kb.originate("198.51.100.0/24", med=10, communities=["65000:1"])
    kb.start()
    kb.wait_established("10.0.0.2")
    kb.wait_routes(1, "10.0.0.2")      # {"203.0.113.0/24": {"as_path": [65002], ...}}

``Kbgp`` is a ``Daemon`` (tests/integration/daemons.py): the same
add_neighbor / originate / start / stop / kill / freeze / thaw / restart /
wait_established / received_routes / wait_routes / log, so a test can put
it anywhere a BIRD or a GoBGP would go.  It runs ``python -m kbgp speaker
--config FILE --control-socket SOCK`` from this checkout (PYTHONPATH points
at the work tree, so the in-tree compiled modules are the ones used) inside
the namespace, and reads its state with ``kbgp neighbors --json`` and
``kbgp rib --json`` run in the same namespace.

Differences from the other drivers, all from kbgp itself:

* the configuration is read once: routes and neighbours cannot change
  while it runs (originate()/withdraw() after start() raise; restart()
  applies them, with a Cease to every peer);
* an originated route's ORIGIN is always IGP; ``local_pref`` and
  ``as_path_prepend`` are kbgp's own extra route settings;
* graceful restart is one global setting (``configure(graceful_restart=
  {...})``), not per neighbour: add_neighbor(graceful_restart=...) is
  refused;
* import / export: ``import_all`` / ``export_all`` True mean "accept",
  False "reject", None leaves the key out (RFC 8212 defaults: nothing in
  or out over eBGP);
* there is no CLI command that sends a ROUTE-REFRESH yet, so
  request_refresh() raises NotImplementedError.
"""

from __future__ import annotations

import base64
import json
import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any, Iterable

import yaml

from .daemons import (
    QUERY_TIMEOUT,
    RFC_STATES,
    Daemon,
    Neighbor,
    Route,
    norm_addr,
    norm_prefix,
    route_dict,
    wait_until,
)
from .netns import Netns, sh

ROOT = Path(__file__).resolve().parents[2]          # the work tree holding kbgp/
PYTHON = sys.executable


def kbgp_env() -> dict[str, str]:
    """The environment every kbgp command runs with: this checkout first on
    the import path, unbuffered output for the log."""
    env = dict(os.environ)
    env["PYTHONPATH"] = str(ROOT) + (os.pathsep + env["PYTHONPATH"]
                                     if env.get("PYTHONPATH") else "")
    env["PYTHONUNBUFFERED"] = "1"
    return env


_compiled: tuple[bool, str] | None = None


def kbgp_compiled() -> tuple[bool, str]:
    """(True, text) when ``python -m kbgp version`` says every kbgp._fast
    module is compiled, else (False, why).  Asked once per test session."""
    global _compiled
    if _compiled is None:
        p = sh([PYTHON, "-m", "kbgp", "version", "--json"], check=False, env=kbgp_env())
        try:
            info = json.loads(p.stdout)
        except ValueError:
            info = {}
        if p.returncode == 0 and info.get("compiled"):
            _compiled = (True, p.stdout.strip())
        else:
            _compiled = (False, f"kbgp: `python -m kbgp version` does not report compiled "
                                f"modules (exit {p.returncode}): "
                                f"{(p.stdout + p.stderr).strip()[-500:]}")
    return _compiled


class Kbgp(Daemon):
    """kbgp's standalone speaker (see the module docstring)."""

    kind = "kbgp"
    binaries = ()

    @classmethod
    def missing(cls) -> str | None:
        ok, why = kbgp_compiled()
        return None if ok else why

    def __init__(self, netns: Netns, router_id: str, asn: int, workdir: str | os.PathLike):
        super().__init__(netns, router_id, asn, workdir)
        self.listen: list[str] = []
        self.hold_time: int | None = None
        self.connect_retry: int = 1
        self.graceful_restart: dict[str, Any] | None = None
        self.log_level = "info"
        self.cluster_id: str | int | None = None
        self.last_exit_codes: list[int | None] = []
        self.route_extra: dict[str, dict[str, Any]] = {}
        self.neighbor_extra: dict[str, dict[str, Any]] = {}
        self.policy_config: dict[str, Any] = {}

    # ---- configuration ----------------------------------------------------
    def configure(self, *, listen: Iterable[str] | None = None, hold_time: int | None = None,
                  connect_retry: int | None = None,
                  graceful_restart: dict[str, Any] | None = None,
                  log_level: str | None = None,
                  cluster_id: str | int | None = None) -> "Kbgp":
        """Global settings (before start()).  LISTEN: "addr:port" strings
        ("[::]:179" accepts IPv4 too).  GRACEFUL_RESTART: the YAML mapping
        {enabled, restart-time, stale-time}.  CLUSTER_ID: the top-level
        ``cluster-id`` (IPv4 text or integer; unset: kbgp uses its router
        id).  CONNECT_RETRY defaults to 1 s
        here (kbgp's own default is 5 s) to keep the tests short."""
        if self.running:
            raise RuntimeError(f"{self}: configure() must come before start()")
        if listen is not None:
            self.listen = list(listen)
        if hold_time is not None:
            self.hold_time = int(hold_time)
        if connect_retry is not None:
            self.connect_retry = int(connect_retry)
        if graceful_restart is not None:
            self.graceful_restart = dict(graceful_restart)
        if log_level is not None:
            self.log_level = log_level
        if cluster_id is not None:
            self.cluster_id = cluster_id
        return self

    def add_neighbor(self, address: str, asn: int, *, ttl_security: int | None = None,
                     description: str | None = None, max_prefixes: int | None = None,
                     peer_class: str | None = None, **kw) -> Neighbor:
        """As Daemon.add_neighbor, plus kbgp's TTL_SECURITY (GTSM hops),
        DESCRIPTION, MAX_PREFIXES and PEER_CLASS.  ASN 0 accepts any AS."""
        nb = super().add_neighbor(address, asn, **kw)
        extra = {"ttl-security": ttl_security, "description": description,
                 "max-prefixes": max_prefixes, "peer-class": peer_class}
        self.neighbor_extra[nb.address] = {k: v for k, v in extra.items() if v is not None}
        return nb

    def set_policy(self, policy: dict[str, Any]) -> "Kbgp":
        """Top-level policy keys (prefix-sets, neighbor-sets, policy), as in
        the YAML file; call reload() afterwards when running."""
        self.policy_config = dict(policy)
        return self

    def reload(self) -> None:
        """Rewrite the configuration file and send SIGHUP (live reconfiguration)."""
        if not self.running:
            raise RuntimeError(f"{self}: reload() needs a running speaker")
        self.conf.write_text(self.config())
        self._signal_all(signal.SIGHUP)

    def _check_neighbor(self, nb: Neighbor) -> None:
        if nb.graceful_restart:
            raise ValueError("kbgp: graceful restart is global: "
                             "use configure(graceful_restart=...)")

    def originate(self, prefix: str, next_hop: str | None = None, communities: Iterable[str] = (),
                  med: int | None = None, large_communities: Iterable[str] = (),
                  *, origin: str = "igp", local_pref: int | None = None,
                  as_path_prepend: tuple[int, int] | None = None) -> Route:
        """Announce PREFIX (before start() only).  AS_PATH_PREPEND: (asn, repeat)."""
        if self.running:
            raise RuntimeError(f"{self}: kbgp reads its routes once; originate() before start() "
                               f"or call restart() after changing them")
        if origin != "igp":
            raise ValueError("kbgp originates with ORIGIN IGP only")
        route = super().originate(prefix, next_hop, communities, med, large_communities,
                                  origin=origin)
        extra: dict[str, Any] = {}
        if local_pref is not None:
            extra["local-pref"] = int(local_pref)
        if as_path_prepend is not None:
            extra["as-path-prepend"] = {"asn": int(as_path_prepend[0]),
                                        "repeat": int(as_path_prepend[1])}
        self.route_extra[route.prefix] = extra
        return route

    def withdraw(self, prefix: str) -> None:
        if self.running:
            raise RuntimeError(f"{self}: kbgp reads its routes once; withdraw() before start() "
                               f"or call restart() after changing them")
        super().withdraw(prefix)
        self.route_extra.pop(norm_prefix(prefix), None)

    def _apply_originate(self, route: Route, old: Route | None) -> None:   # pragma: no cover
        raise RuntimeError("kbgp has no live reconfiguration")

    def _apply_withdraw(self, route: Route) -> None:                       # pragma: no cover
        raise RuntimeError("kbgp has no live reconfiguration")

    def config_dict(self) -> dict[str, Any]:
        cfg: dict[str, Any] = {"router-id": self.router_id, "asn": self.asn}
        if self.listen:
            cfg["listen"] = list(self.listen)
        if self.cluster_id is not None:
            cfg["cluster-id"] = self.cluster_id
        if self.hold_time is not None:
            cfg["hold-time"] = self.hold_time
        cfg["connect-retry"] = self.connect_retry
        if self.graceful_restart is not None:
            cfg["graceful-restart"] = dict(self.graceful_restart)
        neighbors = []
        for nb in self.neighbors.values():
            n: dict[str, Any] = {"address": nb.address, "asn": nb.asn}
            if nb.port != 179:
                n["port"] = nb.port
            if nb.local_address:
                n["local-address"] = nb.local_address
            if nb.password is not None:
                n["password"] = base64.b64encode(nb.password.encode()).decode()
            if nb.passive:
                n["passive"] = True
            if nb.multihop:
                n["multihop-ttl"] = int(nb.multihop)
            if nb.hold_time is not None:
                n["hold-time"] = int(nb.hold_time)
            if nb.route_reflector_client:
                n["route-reflector-client"] = True
            n["families"] = list(nb.families)
            if nb.import_all is not None:
                n["import"] = "accept" if nb.import_all else "reject"
            if nb.export_all is not None:
                n["export"] = "accept" if nb.export_all else "reject"
            n.update(self.neighbor_extra.get(nb.address, {}))
            neighbors.append(n)
        cfg["neighbors"] = neighbors
        routes = []
        for r in self.routes.values():
            o: dict[str, Any] = {"prefix": r.prefix}
            if r.next_hop:
                o["next-hop"] = r.next_hop
            if r.communities:
                o["communities"] = list(r.communities)
            if r.large_communities:
                o["large-communities"] = list(r.large_communities)
            if r.med is not None:
                o["med"] = int(r.med)
            o.update(self.route_extra.get(r.prefix, {}))
            routes.append(o)
        if routes:
            cfg["originate"] = routes
        cfg.update(self.policy_config)
        return cfg

    def config(self) -> str:
        return yaml.safe_dump(self.config_dict(), sort_keys=False, default_flow_style=False)

    @property
    def conf(self) -> Path:
        return self.dir / "kbgp.yaml"

    @property
    def ctl(self) -> Path:
        return self.dir / "kbgp.sock"

    # ---- process control --------------------------------------------------
    def _start(self) -> None:
        self.conf.write_text(self.config())
        self.ctl.unlink(missing_ok=True)
        self._spawn([PYTHON, "-m", "kbgp", "speaker", "--config", str(self.conf),
                     "--control-socket", str(self.ctl), "--log-level", self.log_level],
                    "kbgp.log", env=kbgp_env(), cwd=str(ROOT))

        def ready():
            self._check_alive()
            if not self.ctl.exists():
                return False
            p = self.cli("neighbors", "--json", check=False)
            return p.returncode == 0
        wait_until(ready, 20, f"{self} control socket", on_timeout=self._diag)

    def _graceful_stop(self) -> None:
        # SIGTERM: kbgp sends Cease / Administrative Shutdown to every peer.
        self._signal_all(signal.SIGTERM)

    def stop(self, timeout: float = 15) -> None:
        """SIGTERM (Cease to every established peer), SIGKILL after TIMEOUT.
        ``last_exit_codes`` then holds the exit status (-9: it had to be killed)."""
        procs = list(self.procs)
        super().stop(timeout)
        if procs:
            self.last_exit_codes = [p.returncode for p in procs]

    # ---- observation --------------------------------------------------------
    def cli(self, *args: str, check: bool = True,
            timeout: float = QUERY_TIMEOUT) -> subprocess.CompletedProcess:
        """``python -m kbgp ARGS --control-socket SOCK`` inside the namespace."""
        return self.netns.run([PYTHON, "-m", "kbgp", *args, "--control-socket", str(self.ctl)],
                              check=check, timeout=timeout, env=kbgp_env())

    def neighbors_json(self) -> list[dict]:
        """``kbgp neighbors --json``: one object per configured neighbour."""
        return json.loads(self.cli("neighbors", "--json").stdout)

    def neighbor_status(self, address: str) -> dict:
        want = norm_addr(address)
        for row in self.neighbors_json():
            if norm_addr(row["address"]) == want:
                return row
        raise KeyError(f"{self}: kbgp neighbors shows no {address}")

    def rib(self, family: str | None = None) -> list[dict]:
        """``kbgp rib --json [--family F]``: every path, local ones included."""
        args = ["rib", "--json"]
        if family:
            args += ["--family", family]
        return json.loads(self.cli(*args).stdout)

    def session_state(self, address: str) -> str:
        state = str(self.neighbor_status(address)["state"]).lower()
        return state if state in RFC_STATES else "idle"

    @staticmethod
    def row_to_route(row: dict) -> dict:
        return route_dict(
            as_path=row.get("as_path") or [],
            next_hop=norm_addr(row["next_hop"]) if row.get("next_hop") else None,
            origin=row.get("origin"),
            med=row.get("med"),
            local_pref=row.get("local_pref"),
            communities=row.get("communities") or [],
            large_communities=row.get("large_communities") or [],
            originator_id=row.get("originator_id"),
            cluster_list=row.get("cluster_list") or [],
        )

    def received_routes(self, address: str | None = None, *,
                        rows: list[dict] | None = None) -> dict[str, dict]:
        """Routes learned from neighbours (from ADDRESS only if given), one
        per prefix (the best path when several), in the harness's shape."""
        want = norm_addr(address) if address else None
        chosen: dict[str, dict] = {}
        for row in self.rib() if rows is None else rows:
            peer = row.get("neighbor")
            if not peer:
                continue                    # originated here
            if want and norm_addr(peer) != want:
                continue
            prefix = norm_prefix(row["prefix"])
            if prefix not in chosen or row.get("best"):
                chosen[prefix] = row
        return {p: self.row_to_route(r) for p, r in chosen.items()}

    def request_refresh(self, address: str) -> None:
        raise NotImplementedError("kbgp has no CLI command that sends a ROUTE-REFRESH yet "
                                  "(only the control socket's {'cmd': 'refresh'} request)")

    def _diag(self, address: str | None = None) -> str:
        text = super()._diag(address)
        if address and self.alive() and not self.frozen:
            try:
                text += "\n--- kbgp neighbors ---\n" + json.dumps(
                    self.neighbor_status(address), indent=1)
            except Exception as exc:     # noqa: BLE001 - diagnostics only
                text += f"\n(kbgp neighbors failed: {exc})"
        return text
