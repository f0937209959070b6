"""Pytest fixtures and helpers around the fake API server.

``apiserver`` yields a running ``FakeApiServer`` (bookmarks every 0.1 s, a
bearer token) whose ``kubeconfig`` attribute is a kubeconfig file pointing
at it; ``apiserver_factory(**options)`` makes more, with other options.
``run_uvloop(coro)`` runs a test body on a uvloop loop; ``Snapshots`` is an
``on_snapshot`` callable that records what it got and can wait for a state.
"""
from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable, Coroutine, Iterator
from typing import Any

import pytest
import uvloop

from kbgp.cluster.model import Snapshot

from .apiserver import FakeApiServer


def run_uvloop(coro: Coroutine[Any, Any, Any]) -> Any:
    """Run CORO to completion on a fresh uvloop event loop."""
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        return runner.run(coro)


class Snapshots:
    """An ``on_snapshot`` that keeps every snapshot it is given."""

    def __init__(self) -> None:
        self.seen: list[Snapshot] = []
        self._changed: asyncio.Event | None = None

    def __call__(self, snapshot: Snapshot) -> None:
        assert isinstance(asyncio.get_running_loop(), uvloop.Loop), "on_snapshot must run on the loop"
        self.seen.append(snapshot)
        if self._changed is not None:
            self._changed.set()

    @property
    def last(self) -> Snapshot:
        assert self.seen, "no snapshot yet"
        return self.seen[-1]

    async def wait_for(self, predicate: Callable[[Snapshot], bool], timeout: float = 1.0,
                       what: str = "") -> Snapshot:
        """The first snapshot (the current one included) for which PREDICATE
        holds, within TIMEOUT seconds."""
        if self._changed is None:
            self._changed = asyncio.Event()
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            if self.seen and predicate(self.seen[-1]):
                return self.seen[-1]
            self._changed.clear()
            left = deadline - loop.time()
            if left <= 0:
                raise AssertionError(f"no snapshot {what or 'as expected'} within {timeout} s; "
                                     f"{len(self.seen)} seen, last: {self.seen[-1] if self.seen else None}")
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self._changed.wait(), left)


@contextlib.asynccontextmanager
async def running(source: Any) -> AsyncIterator[asyncio.Task]:
    """Run SOURCE.run() in a task for the duration of the block; a failure of
    the task is raised at the end of the block."""
    task = asyncio.create_task(source.run())
    try:
        yield task
    finally:
        if task.done():
            task.result()  # raises what the source died of
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


@pytest.fixture
def apiserver_factory(tmp_path) -> Iterator[Callable[..., FakeApiServer]]:
    made: list[FakeApiServer] = []

    def make(**options: Any) -> FakeApiServer:
        options.setdefault("bookmark_interval", 0.1)
        server = FakeApiServer(**options).start()
        made.append(server)
        server.kubeconfig = server.write_kubeconfig(tmp_path / f"kubeconfig-{len(made)}")
        return server

    try:
        yield make
    finally:
        for server in made:
            server.stop()


@pytest.fixture
def apiserver(apiserver_factory) -> FakeApiServer:
    return apiserver_factory()
