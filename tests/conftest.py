"""Suite-wide settings.

Under CI (CI=true) Hypothesis runs derandomized: every CI run explores the
same examples, so a green main stays green and a failure is reproducible
from its log.  Developers' runs stay random and keep finding new cases;
a case they find is pinned with @example in the test that found it.
"""
from __future__ import annotations

import os

from hypothesis import settings

settings.register_profile("ci", derandomize=True, print_blob=True)
if os.environ.get("CI"):
    settings.load_profile("ci")
