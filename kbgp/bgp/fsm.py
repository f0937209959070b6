"""The RFC 4271 section 8 finite state machine, as an explicit table.

Rows are (state, event); a cell names the next state and the action the
session performs.  A (state, event) pair missing from the table is an FSM
error: in OpenSent, OpenConfirm and Established it is answered with the RFC
6608 subcode of that state (5/1, 5/2, 5/3).  The table covers one TCP
connection's life; the session adds the parts that span connections
(connect retry, idle hold back-off, collision resolution).
"""
from __future__ import annotations

from enum import Enum


class State(Enum):
    IDLE = "idle"
    CONNECT = "connect"
    ACTIVE = "active"
    OPENSENT = "opensent"
    OPENCONFIRM = "openconfirm"
    ESTABLISHED = "established"

    @property
    def rank(self) -> int:
        return _RANK[self]


_RANK = {s: i for i, s in enumerate(State)}


class Event(Enum):
    """RFC 4271 8.1 events, by their RFC names (the numbers in comments)."""

    MANUAL_START = "ManualStart"  # 1
    MANUAL_STOP = "ManualStop"  # 2
    CONNECT_RETRY_EXPIRES = "ConnectRetryTimer_Expires"  # 9
    HOLD_EXPIRES = "HoldTimer_Expires"  # 10
    KEEPALIVE_EXPIRES = "KeepaliveTimer_Expires"  # 11
    IDLE_HOLD_EXPIRES = "IdleHoldTimer_Expires"  # 13
    TCP_CONFIRMED = "TcpConnectionConfirmed"  # 17 (inbound) / 16-17 (outbound)
    TCP_FAILS = "TcpConnectionFails"  # 18
    OPEN = "BGPOpen"  # 19
    HEADER_ERR = "BGPHeaderErr"  # 21
    OPEN_ERR = "BGPOpenMsgErr"  # 22
    COLLISION_DUMP = "OpenCollisionDump"  # 23
    NOTIFICATION = "NotifMsg"  # 25
    KEEPALIVE = "KeepAliveMsg"  # 26
    UPDATE = "UpdateMsg"  # 27
    UPDATE_ERR = "UpdateMsgErr"  # 28
    ROUTE_REFRESH = "RouteRefreshMsg"  # RFC 2918
    SEND_HOLD_EXPIRES = "SendHoldTimer_Expires"  # RFC 9687


class Action(Enum):
    CONNECT = "connect"  # start an outbound connection, arm ConnectRetry
    WAIT = "wait"  # wait for an inbound connection (passive), arm ConnectRetry
    SEND_OPEN = "send_open"  # send OPEN, arm the large OpenSent hold timer
    CONFIRM = "confirm"  # check the OPEN, negotiate, send KEEPALIVE, arm timers
    ESTABLISH = "establish"  # session up: report, start routing
    KEEPALIVE = "keepalive"  # send KEEPALIVE, re-arm
    RESTART_HOLD = "restart_hold"  # a message arrived: re-arm the hold timer
    PROCESS_UPDATE = "process_update"
    PROCESS_REFRESH = "process_refresh"
    NOTIFY_CLOSE = "notify_close"  # send NOTIFICATION (the error at hand), close, go Idle
    CLOSE = "close"  # close without NOTIFICATION (one arrived, or TCP failed), go Idle
    RETRY = "retry"  # connection attempt failed: wait ConnectRetry then try again
    IGNORE = "ignore"


S, E, A = State, Event, Action

# (state, event) -> (next state, action).  Idle/Connect/Active describe the
# session without a connection; OpenSent onwards, one connection.
TABLE: dict[tuple[State, Event], tuple[State, Action]] = {
    (S.IDLE, E.MANUAL_START): (S.CONNECT, A.CONNECT),
    (S.IDLE, E.IDLE_HOLD_EXPIRES): (S.CONNECT, A.CONNECT),
    (S.IDLE, E.MANUAL_STOP): (S.IDLE, A.IGNORE),
    (S.CONNECT, E.TCP_CONFIRMED): (S.OPENSENT, A.SEND_OPEN),
    (S.CONNECT, E.TCP_FAILS): (S.ACTIVE, A.RETRY),
    (S.CONNECT, E.CONNECT_RETRY_EXPIRES): (S.CONNECT, A.CONNECT),
    (S.CONNECT, E.MANUAL_STOP): (S.IDLE, A.CLOSE),
    (S.ACTIVE, E.TCP_CONFIRMED): (S.OPENSENT, A.SEND_OPEN),
    (S.ACTIVE, E.CONNECT_RETRY_EXPIRES): (S.CONNECT, A.CONNECT),
    (S.ACTIVE, E.TCP_FAILS): (S.ACTIVE, A.RETRY),
    (S.ACTIVE, E.MANUAL_STOP): (S.IDLE, A.CLOSE),
    (S.OPENSENT, E.OPEN): (S.OPENCONFIRM, A.CONFIRM),
    (S.OPENSENT, E.HOLD_EXPIRES): (S.IDLE, A.NOTIFY_CLOSE),
    (S.OPENSENT, E.TCP_FAILS): (S.ACTIVE, A.RETRY),
    (S.OPENSENT, E.NOTIFICATION): (S.IDLE, A.CLOSE),
    (S.OPENSENT, E.HEADER_ERR): (S.IDLE, A.NOTIFY_CLOSE),
    (S.OPENSENT, E.OPEN_ERR): (S.IDLE, A.NOTIFY_CLOSE),
    (S.OPENSENT, E.COLLISION_DUMP): (S.IDLE, A.NOTIFY_CLOSE),
    (S.OPENSENT, E.MANUAL_STOP): (S.IDLE, A.NOTIFY_CLOSE),
    (S.OPENSENT, E.SEND_HOLD_EXPIRES): (S.IDLE, A.NOTIFY_CLOSE),
    (S.OPENCONFIRM, E.KEEPALIVE): (S.ESTABLISHED, A.ESTABLISH),
    (S.OPENCONFIRM, E.KEEPALIVE_EXPIRES): (S.OPENCONFIRM, A.KEEPALIVE),
    (S.OPENCONFIRM, E.HOLD_EXPIRES): (S.IDLE, A.NOTIFY_CLOSE),
    (S.OPENCONFIRM, E.TCP_FAILS): (S.IDLE, A.CLOSE),
    (S.OPENCONFIRM, E.NOTIFICATION): (S.IDLE, A.CLOSE),
    (S.OPENCONFIRM, E.HEADER_ERR): (S.IDLE, A.NOTIFY_CLOSE),
    (S.OPENCONFIRM, E.OPEN_ERR): (S.IDLE, A.NOTIFY_CLOSE),
    (S.OPENCONFIRM, E.COLLISION_DUMP): (S.IDLE, A.NOTIFY_CLOSE),
    (S.OPENCONFIRM, E.MANUAL_STOP): (S.IDLE, A.NOTIFY_CLOSE),
    (S.OPENCONFIRM, E.SEND_HOLD_EXPIRES): (S.IDLE, A.NOTIFY_CLOSE),
    (S.ESTABLISHED, E.KEEPALIVE): (S.ESTABLISHED, A.RESTART_HOLD),
    (S.ESTABLISHED, E.UPDATE): (S.ESTABLISHED, A.PROCESS_UPDATE),
    (S.ESTABLISHED, E.ROUTE_REFRESH): (S.ESTABLISHED, A.PROCESS_REFRESH),
    (S.ESTABLISHED, E.KEEPALIVE_EXPIRES): (S.ESTABLISHED, A.KEEPALIVE),
    (S.ESTABLISHED, E.HOLD_EXPIRES): (S.IDLE, A.NOTIFY_CLOSE),
    (S.ESTABLISHED, E.TCP_FAILS): (S.IDLE, A.CLOSE),
    (S.ESTABLISHED, E.NOTIFICATION): (S.IDLE, A.CLOSE),
    (S.ESTABLISHED, E.HEADER_ERR): (S.IDLE, A.NOTIFY_CLOSE),
    (S.ESTABLISHED, E.UPDATE_ERR): (S.IDLE, A.NOTIFY_CLOSE),
    (S.ESTABLISHED, E.COLLISION_DUMP): (S.IDLE, A.NOTIFY_CLOSE),
    (S.ESTABLISHED, E.MANUAL_STOP): (S.IDLE, A.NOTIFY_CLOSE),
    (S.ESTABLISHED, E.SEND_HOLD_EXPIRES): (S.IDLE, A.NOTIFY_CLOSE),
}

# RFC 6608: the FSM error subcode for an unexpected message in each state.
FSM_ERROR_SUBCODE = {S.OPENSENT: 1, S.OPENCONFIRM: 2, S.ESTABLISHED: 3}


def transition(state: State, event: Event) -> tuple[State, Action] | None:
    """The table's cell, or None for an event that is an FSM error in this state."""
    return TABLE.get((state, event))
