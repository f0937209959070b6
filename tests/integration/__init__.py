"""Integration tests: real BGP daemons peering inside private network namespaces.

The harness lives in :mod:`.netns` (namespaces, veth links, pytest fixtures)
and :mod:`.daemons` (BIRD, GoBGP, FRR and ExaBGP drivers with one interface).
Everything needs root; without it the fixtures skip with a reason.
"""
