"""kbgp's writer of kernel routes (rtnetlink), see kbgp.kernel.netlink."""
