"""Everything between kbgp's BGP state machines and the operating system's sockets."""
from __future__ import annotations
