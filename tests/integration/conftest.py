"""Fixtures for the integration tests: private namespaces and real daemons.

``netns_factory`` and ``daemon_factory`` clean up at teardown, also when the
test failed; a session fixture first removes ``kbgpi-`` namespaces left by
killed runs.  On failure the daemons' logs are printed into the report.
"""

from __future__ import annotations

from typing import Iterator

import pytest

from .daemons import DAEMONS, Daemon
from .netns import Netns, netns_factory, netns_stale_cleanup  # noqa: F401  (fixtures)


@pytest.fixture(scope="session", autouse=True)
def _kbgpi_stale_namespaces(netns_stale_cleanup):  # noqa: F811
    return netns_stale_cleanup


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    rep = outcome.get_result()
    setattr(item, f"kbgpi_rep_{rep.when}", rep)


class DaemonFactory:
    """``daemon_factory(kind, netns, router_id, asn) -> Daemon`` with KIND
    one of "bird", "gobgp", "frr", "exabgp" (or a Daemon subclass); the
    work directory is the test's tmp_path.  Skips the test when the daemon
    is not installed."""

    def __init__(self, workdir) -> None:
        self.workdir = workdir
        self.created: list[Daemon] = []

    def __call__(self, kind: str | type[Daemon], netns: Netns, router_id: str, asn: int) -> Daemon:
        cls = DAEMONS[kind] if isinstance(kind, str) else kind
        reason = cls.missing()
        if reason:
            pytest.skip(reason)
        d = cls(netns, router_id, asn, self.workdir)
        self.created.append(d)
        return d

    def logs(self) -> str:
        return "\n\n".join(f"######## {d!r} ########\n{d.log()}" for d in self.created)

    def cleanup(self) -> None:
        for d in reversed(self.created):
            try:
                d.kill()
            except Exception:
                pass


@pytest.fixture
def daemon_factory(request, netns_factory, tmp_path) -> Iterator[DaemonFactory]:  # noqa: F811
    factory = DaemonFactory(tmp_path)
    try:
        yield factory
    finally:
        rep = getattr(request.node, "kbgpi_rep_call", None)
        if rep is not None and rep.failed:
            print(factory.logs())
        factory.cleanup()


@pytest.fixture
def kbgp_factory(daemon_factory):
    """``kbgp_factory(netns, router_id, asn, **settings) -> Kbgp``: kbgp's own
    speaker as one more daemon of ``daemon_factory`` (killed at teardown, its
    log printed on failure).  SETTINGS go to ``Kbgp.configure`` (listen,
    hold_time, connect_retry, graceful_restart, log_level).  Skips the test
    when ``python -m kbgp version`` does not report compiled modules."""
    from .kbgp_driver import Kbgp

    def make(netns: Netns, router_id: str, asn: int, **settings) -> Kbgp:
        kb = daemon_factory(Kbgp, netns, router_id, asn)
        kb.configure(**settings)
        return kb

    return make


@pytest.fixture
def cluster(request, netns_factory, tmp_path):
    """A LAN (bridge) for kbgp agents and their cluster file
    (tests/integration/agent_driver.py).  Agents are killed at teardown and
    their logs printed when the test failed."""
    from .agent_driver import Cluster

    c = Cluster(netns_factory, tmp_path / "cluster")
    try:
        yield c
    finally:
        rep = getattr(request.node, "kbgpi_rep_call", None)
        if rep is not None and rep.failed:
            print(c.logs())
        c.stop()
