"""The one exception hierarchy of kbgp.

``BgpError`` carries what a NOTIFICATION needs (code, subcode, data) and the
RFC 7606 handling chosen for it.  Decoders raise only ``BgpError`` (and its
subclasses); the session boundary is the only place that turns one into a
NOTIFICATION.
"""
from __future__ import annotations

from kbgp.bgp.constants import ErrorCode, Handling, error_name


class KbgpError(Exception):
    """Base of every error kbgp raises on purpose."""


class ConfigError(KbgpError):
    """A flag, annotation, file or setting is invalid; the message says which and why."""


class BgpError(KbgpError):
    """A protocol error: what to send in a NOTIFICATION and how to handle it.

    ``data`` is only ever bytes that were really received (never a length
    field re-used to read past them; see FRR CVE-2017-15865).
    """

    code: int = 0

    def __init__(
        self,
        code: int,
        subcode: int = 0,
        data: bytes = b"",
        handling: Handling = Handling.SESSION_RESET,
        reason: str = "",
    ) -> None:
        self.code = int(code)
        self.subcode = int(subcode)
        self.data = bytes(data)
        self.handling = Handling(handling)
        self.reason = reason
        super().__init__(self.describe())

    def describe(self) -> str:
        text = f"{error_name(self.code, self.subcode)} ({self.code}/{self.subcode})"
        if self.reason:
            text += f": {self.reason}"
        return text

    def __reduce__(self):  # keep pickling (multiprocessing, hypothesis) exact
        return (bgp_error, (self.code, self.subcode, self.data, int(self.handling), self.reason))


class MessageHeaderError(BgpError):
    code = ErrorCode.MESSAGE_HEADER


class OpenMessageError(BgpError):
    code = ErrorCode.OPEN_MESSAGE


class UpdateMessageError(BgpError):
    code = ErrorCode.UPDATE_MESSAGE


class HoldTimerExpired(BgpError):
    code = ErrorCode.HOLD_TIMER_EXPIRED


class FsmError(BgpError):
    code = ErrorCode.FSM


class Cease(BgpError):
    code = ErrorCode.CEASE


class RouteRefreshError(BgpError):
    code = ErrorCode.ROUTE_REFRESH


class SendHoldTimerExpired(BgpError):
    code = ErrorCode.SEND_HOLD_TIMER_EXPIRED


_BY_CODE: dict[int, type[BgpError]] = {
    cls.code: cls
    for cls in (
        MessageHeaderError,
        OpenMessageError,
        UpdateMessageError,
        HoldTimerExpired,
        FsmError,
        Cease,
        RouteRefreshError,
        SendHoldTimerExpired,
    )
}


def bgp_error(
    code: int,
    subcode: int = 0,
    data: bytes = b"",
    handling: int = Handling.SESSION_RESET,
    reason: str = "",
) -> BgpError:
    """Build the ``BgpError`` subclass that matches ``code``."""
    cls = _BY_CODE.get(int(code), BgpError)
    return cls(code, subcode, data, Handling(handling), reason)


class PeerClosed(KbgpError):
    """The peer closed the transport connection."""


class KernelError(KbgpError):
    """A netlink operation failed for one route."""

    def __init__(self, op: str, route: str, errno: int, reason: str = "") -> None:
        self.op = op
        self.route = route
        self.errno = errno
        super().__init__(f"{op} {route}: errno {errno}{': ' + reason if reason else ''}")


class ClusterApiError(KbgpError):
    """The Kubernetes API (or the cluster file) could not be read."""
