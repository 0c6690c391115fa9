"""Control calls between nodes: what each one ends, and how ``server`` publishes them.

The bus carries a :class:`~collab.ports.ControlCall` to every node at least once; each
node applies it to its own connections. Applying twice is harmless (nothing left to end).
"""

from __future__ import annotations

import logging

from collab import metrics
from collab.errors import CloseCode, ConnectionEnded
from collab.ports import ControlCall, ControlHandler, ControlKind, DocumentName, Peer
from collab.registry import Registry

log = logging.getLogger("inkroom.server.control")

# Permanent codes (4400-4499): the stock client does not reconnect on its own.
_CODES = {
    ControlKind.END_USER: (CloseCode.FORBIDDEN, "your connection was ended by staff"),
    ControlKind.END_CLASSROOM: (CloseCode.NOT_FOUND, "this classroom was closed"),
    ControlKind.ACCESS_REVOKED: (CloseCode.UNAUTHORIZED, "access revoked"),
}


def matches(call: ControlCall, document: DocumentName, peer: Peer) -> bool:
    """Whether ``call`` selects a connection of ``peer`` to ``document``."""
    if call.user is None and call.classroom is None:
        return False
    if call.user is not None and peer.user_id != call.user:
        return False
    return call.classroom is None or document.split("/", 1)[0] == call.classroom


def apply(registry: Registry, call: ControlCall) -> int:
    """Ends this node's connections ``call`` selects; returns how many."""
    code, default_reason = _CODES[call.kind]
    error = ConnectionEnded(call.reason or default_reason, code)
    ended = registry.end_connections(lambda doc, peer: matches(call, doc, peer), error)
    metrics.CONTROL_CALLS.labels(registry.bus.node_id, call.kind.value).inc()
    log.info(
        "control call applied",
        extra={"call": call.kind.value, "classroom": call.classroom, "ended": ended},
    )
    return ended


def applier(registry: Registry) -> ControlHandler:
    def handle(call: ControlCall) -> None:
        apply(registry, call)

    return handle
