"""kbgp: a BGP agent for Kubernetes nodes with a native, Cython-compiled BGP speaker."""

__version__ = "0.1.0"
