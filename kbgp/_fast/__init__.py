"""Compiled (Cython) hot paths of kbgp.

Every module listed in MODULES is a C extension; there is no pure-Python
fallback.  ``kbgp version`` reports, per module, whether it is compiled.
"""

MODULES = ("wire", "attrs", "rib", "netlink")
