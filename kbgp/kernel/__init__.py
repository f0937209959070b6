"""kbgp's kernel side (issue 6).

netlink.py: kbgp's own rtnetlink sockets (bulk route writes, dumps, route
events, small requests); routes.py: wanted versus installed routes (pure);
tunnels.py: kube-router's overlay (injection decision, tun-* tunnels, table
77, rules); syncer.py: KernelSyncer, the one writer per network namespace.
"""
