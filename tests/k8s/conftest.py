"""Fixtures of the Kubernetes tests: the fake API server (see fixtures.py)."""
from __future__ import annotations

from .fixtures import apiserver, apiserver_factory  # noqa: F401  (fixtures)
